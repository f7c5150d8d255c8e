"""
The world map of every segment, derived from keyframe clouds and the keyframes' Sim(3) poses.

Each keyframe's points live in its own frame (``vggt_mapper.engine.keyframe_store``); this
module fuses them into one voxel grid per map segment at the keyframe's current pose and
remembers that pose. When the pose graph moves a keyframe (a loop closure) or two segments
merge, ``needs_move`` tells cheaply (from the cloud's bounding box) whether its points moved by
more than a fraction of a voxel, and ``move`` takes them out at the old pose and puts them back
at the new one: the map is patched, never rebuilt from scratch (the nvblox/voxblox idea of
re-integrating submaps after a correction).
"""

from __future__ import annotations

from dataclasses import dataclass
import itertools

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.config import MapConfig
from vggt_mapper.engine.keyframe_store import KeyframeCloud
from vggt_mapper.engine.point_map import PointMap
from vggt_mapper.engine.types import MapSnapshot
from vggt_mapper.geometry.sim3 import Sim3

__all__ = ['WorldMap']

# A keyframe whose points would move by less than this fraction of the voxel edge stays put.
_MOVE_TOLERANCE_VOXELS = 0.25


@dataclass
class _Fused:
    segment: int
    world_from_node: Sim3
    corners_local: NDArray[np.float64]


def _corners(cloud: KeyframeCloud) -> NDArray[np.float64]:
    """Return the cloud's bounding-box corners (its farthest-moving points under a Sim(3))."""
    if cloud.num_points == 0:
        return np.zeros((1, 3))
    low = cloud.points_local.min(axis=0).astype(np.float64)
    high = cloud.points_local.max(axis=0).astype(np.float64)
    return np.array(list(itertools.product(*zip(low, high, strict=True))))


class WorldMap:
    """
    One capped voxel map per segment, fed and corrected keyframe by keyframe.

    :param config: voxel size and cap (per segment).
    """

    def __init__(self, config: MapConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget every segment and keyframe."""
        self._grids: dict[int, PointMap] = {}
        self._fused: dict[int, _Fused] = {}

    @property
    def num_points(self) -> int:
        """Points (voxels) of all segments."""
        return sum(grid.num_points for grid in self._grids.values())

    @property
    def nbytes(self) -> int:
        """Bytes held by the grids."""
        return sum(grid.nbytes for grid in self._grids.values())

    def segments(self) -> list[int]:
        """Return the segments that hold points, ascending."""
        return sorted(segment for segment, grid in self._grids.items() if grid.num_points)

    def voxel_size(self, segment: int) -> float:
        """
        Return the current voxel edge of a segment's grid (it grows when the cap is hit).

        :param segment: the segment.
        :return: the edge in world units (``MapConfig.voxel_size`` for a new segment).
        """
        grid = self._grids.get(segment)
        return grid.voxel_size if grid is not None else float(self.config.voxel_size)

    def add(self, index: int, segment: int, world_from_node: Sim3, cloud: KeyframeCloud
            ) -> NDArray[np.float32]:
        """
        Fuse a new keyframe's points.

        :param index: keyframe index.
        :param segment: its map segment.
        :param world_from_node: its pose (local cloud frame → segment world).
        :param cloud: its local points.
        :return: (N, 3) float32 the points in the segment's world frame.
        :raises ValueError: if the keyframe was added before.
        """
        if index in self._fused:
            raise ValueError(f'keyframe {index} is already in the world map')
        points_world = world_from_node.apply(cloud.points_local)
        self._grid(segment).fuse(points_world, cloud.colors_rgb)
        self._fused[index] = _Fused(segment, world_from_node, _corners(cloud))
        return points_world.astype(np.float32)

    def needs_move(self, index: int, segment: int, world_from_node: Sim3) -> bool:
        """
        Tell whether a keyframe must be re-fused for a new pose.

        :param index: keyframe index (added before).
        :param segment: its segment now.
        :param world_from_node: its pose now.
        :return: True if the segment changed or a bounding-box corner moves by more than a
            quarter voxel.
        """
        fused = self._fused[index]
        if fused.segment != segment:
            return True
        shift = np.linalg.norm(world_from_node.apply(fused.corners_local)
                               - fused.world_from_node.apply(fused.corners_local), axis=1)
        tolerance = _MOVE_TOLERANCE_VOXELS * max(self.voxel_size(segment), 1e-9)
        return bool(shift.max() > tolerance)

    def move(self, index: int, segment: int, world_from_node: Sim3, cloud: KeyframeCloud
             ) -> None:
        """
        Re-fuse a keyframe at a new pose, possibly in another segment (after a merge).

        :param index: keyframe index (added before).
        :param segment: its segment now.
        :param world_from_node: its pose now.
        :param cloud: its local points (the same ones that were added).
        """
        fused = self._fused[index]
        self._grid(fused.segment).unfuse(fused.world_from_node.apply(cloud.points_local),
                                         cloud.colors_rgb)
        self._grid(segment).fuse(world_from_node.apply(cloud.points_local), cloud.colors_rgb)
        self._fused[index] = _Fused(segment, world_from_node, fused.corners_local)

    def snapshot(self) -> MapSnapshot:
        """Return every segment's points with their segment ids (a copy)."""
        parts = [(segment, self._grids[segment].snapshot()) for segment in self.segments()]
        if not parts:
            return MapSnapshot(np.empty((0, 3), np.float32), np.empty((0, 3), np.uint8),
                               np.empty(0, np.int32))
        return MapSnapshot(
            np.concatenate([snap.points_world for _, snap in parts]),
            np.concatenate([snap.colors_rgb for _, snap in parts]),
            np.concatenate([np.full(snap.num_points, segment, np.int32)
                            for segment, snap in parts]))

    def _grid(self, segment: int) -> PointMap:
        grid = self._grids.get(segment)
        if grid is None:
            grid = self._grids[segment] = PointMap(self.config)
        return grid
