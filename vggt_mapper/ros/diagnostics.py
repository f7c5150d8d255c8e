"""
How healthy the mapping is, for ``/diagnostics`` (no rclpy here).

Levels follow ``diagnostic_msgs/DiagnosticStatus``: ``OK``, ``WARN``, ``ERROR``.

* ERROR: the worker stopped (a bug), or the predictor fails on every window.
* WARN: half or more of the recent windows were refused or failed; the mapping lag is rising
  (the time from a window's newest keyframe to the newest image, at the end of each window,
  grew over the last ``LAG_WINDOWS`` windows to at least ``LAG_GROWTH`` times its first value:
  the mapper falls further behind the camera); malformed images were skipped or TF lookups
  failed in the last ``STICKY_S`` seconds (a 1 Hz monitor cannot miss them); a standing
  condition holds (``set_condition``: e.g. no segment is metric yet while the node needs one).
* Dropped frames alone are normal operation: a camera faster than the window rate fills the
  bounded queue between windows (``drop_oldest`` keeps the newest). They are counted in the
  values (``frames_dropped``) and do not change the level.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
import enum
import time

__all__ = ['LAG_GROWTH', 'LAG_WINDOWS', 'Level', 'MappingHealth', 'RECENT_WINDOWS', 'STICKY_S']

#: Outcomes of the last windows judged.
RECENT_WINDOWS = 10
#: How long a warning about skipped images or failed TF lookups stays.
STICKY_S = 30.0
#: A rising lag: over this many windows ...
LAG_WINDOWS = 4
#: ... never shrinking, and growing by at least this factor.
LAG_GROWTH = 1.5


class Level(enum.IntEnum):
    """``diagnostic_msgs/DiagnosticStatus`` levels."""

    OK = 0
    WARN = 1
    ERROR = 2


class MappingHealth:
    """Collect what the node sees and judge it (see the module docstring); one thread at a time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """
        Start with nothing seen.

        :param clock: monotonic seconds (tests pass a fake one).
        """
        self._clock = clock
        self._recent: deque[bool] = deque(maxlen=RECENT_WINDOWS)
        self._lags: deque[float] = deque(maxlen=LAG_WINDOWS)
        self._predictor_failing = ''
        self._counts: dict[str, int] = {}
        self._warn_until: dict[str, float] = {}
        self._conditions: dict[str, bool] = {}

    @property
    def last_lag_s(self) -> float:
        """Return the mapping lag at the end of the last window (0 before the first)."""
        return self._lags[-1] if self._lags else 0.0

    def window_done(self, accepted: bool, lag_s: float | None = None) -> None:
        """
        Record a window's outcome.

        :param accepted: the window joined the map.
        :param lag_s: newest image stamp minus the window's newest keyframe stamp, seconds;
            None when unknown (a refused window).
        """
        self._recent.append(accepted)
        if accepted:
            self._predictor_failing = ''
        if lag_s is not None:
            self._lags.append(float(lag_s))

    def window_failed(self, predictor_error: str = '') -> None:
        """
        Record a window that raised (an engine error).

        :param predictor_error: the error when the predictor failed on every attempt.
        """
        self._recent.append(False)
        if predictor_error:
            self._predictor_failing = predictor_error

    def count(self, what: str, total: int) -> None:
        """
        Update a counter whose growth is a sticky warning (``what`` is its message).

        :param what: e.g. ``malformed images skipped``.
        :param total: the count so far.
        """
        if total > self._counts.get(what, 0):
            self._warn_until[what] = self._clock() + STICKY_S
        self._counts[what] = total

    def set_condition(self, what: str, active: bool) -> None:
        """
        Set a standing warning (``what`` is its message), WARN while ``active``.

        :param what: e.g. ``no map segment is metric yet``.
        :param active: whether it holds now.
        """
        self._conditions[what] = active

    def reset(self) -> None:
        """Forget the windows (a reset map); counters and sticky warnings stay."""
        self._recent.clear()
        self._lags.clear()
        self._predictor_failing = ''

    def judge(self, fatal_error: str, running: bool) -> tuple[Level, str]:
        """
        Return the level and message now.

        :param fatal_error: the worker's fatal error, empty if none.
        :param running: the worker thread is alive.
        :return: the level and a one-line message.
        """
        if fatal_error:
            return Level.ERROR, f'worker stopped: {fatal_error}'
        if not running:
            return Level.ERROR, 'worker stopped: no frame is mapped any more'
        if self._predictor_failing:
            return Level.ERROR, f'predictor failing: {self._predictor_failing}'
        now = self._clock()
        reasons = [what for what, until in self._warn_until.items() if until > now]
        reasons += [what for what, active in self._conditions.items() if active]
        if self._lag_rising():
            reasons.insert(0, f'mapping lag rising: {self._lags[0]:.1f} s to '
                              f'{self._lags[-1]:.1f} s over the last {len(self._lags)} windows')
        bad = self._recent.count(False)
        if self._recent and 2 * bad >= len(self._recent):
            reasons.insert(0, f'{bad} of the last {len(self._recent)} windows rejected or failed')
        if reasons:
            return Level.WARN, '; '.join(reasons)
        return Level.OK, 'mapping'

    def _lag_rising(self) -> bool:
        lags = list(self._lags)
        if len(lags) < LAG_WINDOWS or lags[0] <= 0.0:
            return False
        never_shrinks = all(b >= a for a, b in zip(lags, lags[1:], strict=False))
        return never_shrinks and lags[-1] >= LAG_GROWTH * lags[0]
