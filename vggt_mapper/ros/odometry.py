"""
Odometry poses recorded when images arrive, for the ``map -> odom`` correction (no rclpy here).

``map -> odom`` needs ``odom -> base`` at the stamp of the keyframe a window ends with. The
window ends seconds to minutes after that image arrived (the queue, then VGGT: a CPU takes a
minute for a full window), by which time a tf2 buffer's history (10 s by default) has moved on
("Lookup would require extrapolation into the past"). So the node looks the pose up in the image
callback, when it is fresh, and keeps it here by stamp until the windows have gone past it.

Bounded: entries older than the newest keyframe a window published are forgotten
(``forget_before``), and at most ``capacity`` entries are kept (the oldest go first), for a
predictor that never finishes a window.
"""

from __future__ import annotations

from collections import OrderedDict
import threading

import numpy as np
from numpy.typing import NDArray

__all__ = ['DEFAULT_CAPACITY', 'OdometryLog']

#: About 11 minutes of a 30 Hz camera with no window finished.
DEFAULT_CAPACITY = 20_000


class OdometryLog:
    """``odom_from_base`` by image stamp; thread-safe (image callback in, worker thread out)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        """
        Create an empty log.

        :param capacity: the most poses kept (>= 1).
        :raises ValueError: for a capacity below 1.
        """
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self._capacity = capacity
        self._poses: OrderedDict[int, NDArray[np.float64]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Return the number of poses kept."""
        with self._lock:
            return len(self._poses)

    def record(self, stamp_ns: int, odom_from_base: NDArray[np.floating]) -> None:
        """
        Keep the odometry pose of one image.

        :param stamp_ns: the image stamp.
        :param odom_from_base: 4×4 pose of the base in the odometry frame at that stamp.
        """
        pose = np.array(odom_from_base, dtype=np.float64, copy=True)
        with self._lock:
            self._poses[int(stamp_ns)] = pose
            while len(self._poses) > self._capacity:
                self._poses.popitem(last=False)

    def lookup(self, stamp_ns: int) -> NDArray[np.float64] | None:
        """
        Return the pose recorded for a stamp.

        :param stamp_ns: an image stamp.
        :return: a copy of the 4×4 ``odom_from_base``, or None if none was recorded (or it was
            forgotten).
        """
        with self._lock:
            pose = self._poses.get(int(stamp_ns))
        return None if pose is None else pose.copy()

    def forget_before(self, stamp_ns: int) -> None:
        """
        Forget the poses of images older than ``stamp_ns`` (windows have gone past them).

        :param stamp_ns: the newest keyframe stamp a window ended with.
        """
        with self._lock:
            for stamp in [s for s in self._poses if s < stamp_ns]:
                del self._poses[stamp]

    def clear(self) -> None:
        """Forget everything (a reset map)."""
        with self._lock:
            self._poses.clear()
