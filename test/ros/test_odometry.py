"""OdometryLog: odometry poses kept by image stamp until the windows have gone past them."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_mapper.ros.odometry import OdometryLog


def pose(x: float) -> np.ndarray:
    matrix = np.eye(4)
    matrix[0, 3] = x
    return matrix


def test_a_recorded_pose_is_found_by_its_stamp_until_forgotten() -> None:
    log = OdometryLog()
    for stamp in range(10):
        log.record(stamp, pose(stamp))
    np.testing.assert_array_equal(log.lookup(7), pose(7))
    assert log.lookup(11) is None
    log.forget_before(5)
    assert len(log) == 5 and log.lookup(4) is None and log.lookup(5) is not None
    log.clear()
    assert len(log) == 0


def test_it_is_bounded_even_if_no_window_ever_ends() -> None:
    log = OdometryLog(capacity=3)
    for stamp in range(10):
        log.record(stamp, pose(stamp))
    assert len(log) == 3 and log.lookup(6) is None and log.lookup(9) is not None


def test_the_log_keeps_its_own_copies() -> None:
    log = OdometryLog()
    mine = pose(1.0)
    log.record(1, mine)
    mine[0, 3] = 99.0
    found = log.lookup(1)
    assert found is not None and found[0, 3] == 1.0
    found[0, 3] = 42.0
    assert log.lookup(1)[0, 3] == 1.0  # type: ignore[index]
    with pytest.raises(ValueError, match='capacity'):
        OdometryLog(capacity=0)
