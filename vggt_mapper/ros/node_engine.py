"""
The ``Mapper`` as the node's worker thread drives it (no rclpy here).

``MappingWorker`` owns a mapper-like object and calls it from its thread only. The node needs a
few things done on that thread besides mapping frames, without a command of its own each:

* **Mode switches** (``mode`` parameter: ``mapping`` / ``localization``) are requested from a
  parameter callback (any thread) and applied before the next frame (``Mapper.set_mode``; the
  windows that mapping the pending keyframes completes go to the listeners as usual).
* **Localization results**: in localization mode ``Mapper.add_frame`` places keyframes against
  the map and completes no window, so no window listener hears of them; each new
  ``Mapper.last_localization`` goes to ``on_localized`` with its pose in the segment's output
  unit (metres when the segment is metric, as the trajectory).
* **Map state and occupancy grid** are read on the worker thread (``map_state``, ``grid``),
  from a window listener or a ``MappingWorker.save`` writer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import threading

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vggt_mapper.engine.config import OccupancyConfig
from vggt_mapper.engine.localization import Localization
from vggt_mapper.engine.map_state import MapState
from vggt_mapper.engine.mapper import LOCALIZATION, Mapper, MAPPING
from vggt_mapper.engine.occupancy import map_occupancy, OccupancyGrid
from vggt_mapper.engine.types import KeyframePose, MapperStats, MapSnapshot, WindowResult

__all__ = ['MODES', 'LocalizedPose', 'NodeEngine']

#: ``mode`` parameter values.
MODES = (MAPPING, LOCALIZATION)


@dataclass(frozen=True)
class LocalizedPose:
    """
    One keyframe's localization result, as the node publishes it.

    :param result: the engine's result (``placement`` None when it was not placed).
    :param world_from_cam: 4×4 float64 camera pose in the segment's world, in the segment's
        output unit (metres when metric); None when not placed.
    :param segment: the segment it was placed in (-1 when not placed).
    """

    result: Localization
    world_from_cam: NDArray[np.float64] | None
    segment: int


class NodeEngine:
    """
    A ``MapperLike`` for ``MappingWorker``: the node's mapper with mode switches and hooks.

    :param mapper: the engine (the worker thread calls it; see the module docstring).
    :param on_localized: called on the worker thread with each localization result.
    """

    def __init__(self, mapper: Mapper,
                 on_localized: Callable[[LocalizedPose], None] | None = None) -> None:
        self.mapper = mapper
        self._on_localized = on_localized
        self._lock = threading.Lock()
        self._requested_mode: str | None = None
        self._last_localization: Localization | None = None

    def request_mode(self, mode: str) -> None:
        """
        Ask for a mode switch before the next frame (any thread).

        :param mode: ``mapping`` or ``localization``.
        :raises ValueError: for another mode.
        """
        if mode not in MODES:
            raise ValueError(f'mode must be one of {", ".join(MODES)}, got {mode!r}')
        with self._lock:
            self._requested_mode = mode

    def _apply_mode(self) -> list[WindowResult]:
        with self._lock:
            mode, self._requested_mode = self._requested_mode, None
        if mode is None:
            return []
        return self.mapper.set_mode(mode)

    # -- MapperLike ----------------------------------------------------------------------------

    def add_frame(self, image_rgb: NDArray[np.uint8], stamp_ns: int, name: str | None = None,
                  *, intrinsics: NDArray[np.float64] | None = None,
                  odom_from_camera: NDArray[np.float64] | None = None) -> list[WindowResult]:
        """
        Apply a requested mode, then offer the frame (see ``Mapper.add_frame``).

        :param image_rgb: (H, W, 3) uint8 RGB.
        :param stamp_ns: the frame stamp.
        :param name: the frame name.
        :param intrinsics: the known K of ``image_rgb``, or None.
        :param odom_from_camera: the camera's odometry pose at ``stamp_ns``, or None.
        :return: the windows completed (by the mode switch and by the frame).
        """
        results = self._apply_mode()
        results += self.mapper.add_frame(image_rgb, stamp_ns, name, intrinsics=intrinsics,
                                         odom_from_camera=odom_from_camera)
        located = self.mapper.last_localization
        if located is not None and located is not self._last_localization:
            self._last_localization = located
            if self._on_localized is not None:
                self._on_localized(self._localized_pose(located))
        return results

    def _localized_pose(self, result: Localization) -> LocalizedPose:
        placement = result.placement
        if placement is None:
            return LocalizedPose(result, None, -1)
        scale = self.mapper.metric_scales.get(placement.segment)
        pose = np.array(placement.world_from_cam, dtype=np.float64, copy=True)
        if scale is not None:  # the placement is in the engine's unit, the outputs are not
            pose[:3, 3] *= scale.factor
        return LocalizedPose(result, pose, placement.segment)

    def flush(self) -> list[WindowResult]:
        """Map the pending keyframes (``Mapper.flush``); apply a requested mode first."""
        return self._apply_mode() + self.mapper.flush()

    def reset(self) -> None:
        """Forget the map (``Mapper.reset``)."""
        self._last_localization = None
        self.mapper.reset()

    def trajectory(self) -> list[KeyframePose]:
        """Return the mapped keyframes' poses (as the mapper gives them)."""
        return self.mapper.trajectory()

    def map_snapshot(self) -> MapSnapshot:
        """Return the fused map now (as the mapper gives it)."""
        return self.mapper.map_snapshot()

    @property
    def stats(self) -> MapperStats:
        """Return the mapper's counters."""
        return self.mapper.stats

    # -- worker-thread reads --------------------------------------------------------------------

    def map_state(self) -> MapState:
        """Return the mapper's state, to save it (the caller closes it)."""
        return self.mapper.map_state()

    def grid(self, map_from_world: ArrayLike, config: OccupancyConfig,
             up_world: ArrayLike | None) -> OccupancyGrid:
        """
        Build the occupancy grid of the active segment (``engine.occupancy.map_occupancy``).

        :param map_from_world: 4×4 frame to level and lay the grid in.
        :param config: the grid settings.
        :param up_world: (3,) up in the segment's world, None to fit the floor plane.
        :return: the grid.
        :raises OccupancyError: when no grid can be built yet (no map, no floor).
        """
        return map_occupancy(self.mapper, map_from_world, config, up_world=up_world)
