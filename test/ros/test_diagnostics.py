"""MappingHealth: the level and message of /diagnostics, without ROS."""

from __future__ import annotations

import pytest

from vggt_mapper.ros.diagnostics import LAG_WINDOWS, Level, MappingHealth, STICKY_S


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_steady_lag_is_normal_operation() -> None:
    health = MappingHealth()
    for lag_s in (31.0, 29.5, 30.4, 30.0, 31.2, 29.9):  # a CPU window: 30 s, every time
        health.window_done(True, lag_s)
    assert health.judge('', True) == (Level.OK, 'mapping')
    assert health.last_lag_s == 29.9


def test_a_rising_lag_warns_until_it_stops_rising() -> None:
    health = MappingHealth()
    for lag_s in (2.0, 2.5, 3.5, 5.0):  # the mapper falls further behind at every window
        health.window_done(True, lag_s)
    level, message = health.judge('', True)
    assert level is Level.WARN and message == (
        f'mapping lag rising: 2.0 s to 5.0 s over the last {LAG_WINDOWS} windows')
    health.window_done(True, 4.0)  # caught up a little
    assert health.judge('', True)[0] is Level.OK


@pytest.mark.parametrize('lags', [(2.0, 2.1, 2.2, 2.3), (2.0, 4.0, 3.0, 5.0), (2.0, 3.0, 5.0)])
def test_small_or_unsteady_growth_is_not_a_rising_lag(lags: tuple[float, ...]) -> None:
    health = MappingHealth()
    for lag_s in lags:
        health.window_done(True, lag_s)
    assert health.judge('', True)[0] is Level.OK


def test_counted_problems_warn_for_a_while() -> None:
    clock = Clock()
    health = MappingHealth(clock)
    health.count('malformed images skipped', 0)
    assert health.judge('', True)[0] is Level.OK
    health.count('malformed images skipped', 2)
    assert health.judge('', True) == (Level.WARN, 'malformed images skipped')
    clock.now += STICKY_S - 1.0
    health.count('malformed images skipped', 2)  # no new one
    assert health.judge('', True)[0] is Level.WARN
    clock.now += 2.0
    assert health.judge('', True)[0] is Level.OK


def test_errors_come_first() -> None:
    health = MappingHealth()
    health.window_failed('predictor failed 2 windows in a row')
    assert health.judge('', True) == (Level.ERROR,
                                      'predictor failing: predictor failed 2 windows in a row')
    assert health.judge('KeyError: x', True) == (Level.ERROR, 'worker stopped: KeyError: x')
    assert health.judge('', False)[0] is Level.ERROR
    health.window_done(True, 1.0)  # the predictor answers again
    assert health.judge('', True)[0] is Level.WARN  # 1 of the last 2 windows failed
