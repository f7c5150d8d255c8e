"""The mapping engine's one object: frames in, aligned keyframe poses and a merged map out.

CONTRACT SKELETON — the engine helper implements these bodies; the signatures are what the
doors (ROS node, CLI, web app) program against. Do not change them without telling everyone.
"""

from __future__ import annotations

from numpy.typing import NDArray
import numpy as np

from vggt_mapper.engine.config import MapperConfig
from vggt_mapper.engine.types import KeyframePose, MapperStats, MapSnapshot, WindowResult
from vggt_mapper.predictor.base import Predictor

__all__ = ['Mapper']


class Mapper:
    """
    Incremental mapper: keyframes → overlapping windows → predictions → Sim(3) → one map.

    Synchronous: ``add_frame`` runs the predictor when a window is complete, so a door that must
    stay responsive calls it from a worker thread (``vggt_mapper.engine.worker``). Nothing here
    grows without bound: at most ``window_size`` keyframes wait for the predictor.
    """

    def __init__(self, config: MapperConfig, predictor: Predictor) -> None:
        raise NotImplementedError

    def add_frame(self, image_rgb: NDArray[np.uint8], stamp_ns: int,
                  name: str | None = None) -> list[WindowResult]:
        """
        Offer one frame; returns the windows it completed (usually none or one).

        Bad frames (wrong dtype/shape, empty) are logged, counted in ``stats.frames_skipped``
        and ignored: this never raises for bad input.
        """
        raise NotImplementedError

    def flush(self) -> list[WindowResult]:
        """Process the last, partial window (end of stream)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget everything: trajectory, map, pending keyframes, counters."""
        raise NotImplementedError

    def trajectory(self) -> list[KeyframePose]:
        """Current poses of all mapped keyframes, in keyframe order."""
        raise NotImplementedError

    def map_snapshot(self) -> MapSnapshot:
        """The merged coloured map now (a copy the caller may keep)."""
        raise NotImplementedError

    @property
    def stats(self) -> MapperStats:
        """Counters (frames seen/skipped, keyframes, windows, lag)."""
        raise NotImplementedError
