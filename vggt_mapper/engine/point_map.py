"""
A coloured point map merged on a capped voxel grid; points can be added and taken out again.

Each voxel holds the sums of the positions and colours of the points that fell in it and
their count, so its point is their centroid and a keyframe's contribution can be subtracted
again exactly. Voxels are found by a 63-bit integer key of their grid cell, kept sorted, so
adding points is a vectorised ``searchsorted`` plus one insert, never a Python loop.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.config import MapConfig
from vggt_mapper.engine.types import MapSnapshot

__all__ = ['PointMap']

_LOG = logging.getLogger(__name__)

_BITS = 21
_OFFSET = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1


class PointMap:
    """
    Voxel-merged coloured map: ``fuse`` adds world points, ``unfuse`` takes the same points out.

    Callers keep the points they fused (``vggt_mapper.engine.world_map`` keeps them per keyframe,
    in keyframe coordinates), so a pose correction is ``unfuse`` at the old pose and ``fuse`` at
    the new one. When the grid would exceed ``max_points`` voxels its voxel edge doubles (2×2×2
    cells merge, exactly, since sums add up; later ``unfuse`` calls land in the coarse cells that
    hold those sums). With ``voxel_size == 0`` points are kept unmerged until the cap, then the
    grid starts at a size derived from the map's extent.

    :param config: the map settings.
    """

    def __init__(self, config: MapConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Empty the map."""
        self.voxel_size = float(self.config.voxel_size)
        self._keys = np.empty(0, np.int64)
        self._sum_xyz = np.empty((0, 3), np.float64)
        self._sum_rgb = np.empty((0, 3), np.float32)
        self._count = np.empty(0, np.float32)
        self._next_raw_key = 0

    @property
    def num_points(self) -> int:
        """Return the number of points (voxels) in the merged map."""
        return int(self._keys.shape[0])

    @property
    def points_fused(self) -> int:
        """Return how many source points were merged into the grid (the voxel counts' sum)."""
        return int(round(float(self._count.sum(dtype=np.float64))))

    @property
    def nbytes(self) -> int:
        """Bytes held by the grid."""
        return int(self._keys.nbytes + self._sum_xyz.nbytes + self._sum_rgb.nbytes
                   + self._count.nbytes)

    def _cell_keys(self, points_world: NDArray[np.float64]
                   ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        cells = np.floor(points_world / self.voxel_size)
        valid = np.all(np.abs(cells) < _OFFSET - 1, axis=1)
        cells = cells[valid].astype(np.int64) + _OFFSET
        keys = (cells[:, 0] << (2 * _BITS)) | (cells[:, 1] << _BITS) | cells[:, 2]
        return keys, valid

    def _accumulate(self, keys: NDArray[np.int64], xyz: NDArray[np.float64],
                    rgb: NDArray[np.float32], count: NDArray[np.float32], sign: float) -> None:
        if keys.size == 0:
            return
        unique, inverse = np.unique(keys, return_inverse=True)
        num = unique.shape[0]
        sum_xyz = np.stack([np.bincount(inverse, xyz[:, c], num) for c in range(3)], axis=1)
        sum_rgb = np.stack([np.bincount(inverse, rgb[:, c], num) for c in range(3)], axis=1)
        sum_count = np.bincount(inverse, count, num)
        pos = np.searchsorted(self._keys, unique)
        found = pos < self._keys.shape[0]
        found[found] = self._keys[pos[found]] == unique[found]
        at = pos[found]
        self._sum_xyz[at] += sign * sum_xyz[found]
        self._sum_rgb[at] += sign * sum_rgb[found].astype(np.float32)
        self._count[at] += sign * sum_count[found].astype(np.float32)
        if sign > 0 and not np.all(found):
            new = ~found
            self._keys = np.insert(self._keys, pos[new], unique[new])
            self._sum_xyz = np.insert(self._sum_xyz, pos[new], sum_xyz[new], axis=0)
            self._sum_rgb = np.insert(self._sum_rgb, pos[new],
                                      sum_rgb[new].astype(np.float32), axis=0)
            self._count = np.insert(self._count, pos[new], sum_count[new].astype(np.float32))
        if sign < 0:
            keep = self._count > 0.5
            if not np.all(keep):
                self._keys = self._keys[keep]
                self._sum_xyz = self._sum_xyz[keep]
                self._sum_rgb = self._sum_rgb[keep]
                self._count = self._count[keep]

    def _fuse(self, points_world: NDArray[np.float64], colors_rgb: NDArray[np.uint8],
              sign: float) -> None:
        rgb = colors_rgb.astype(np.float32)
        if self.voxel_size <= 0:
            if sign < 0:
                self._remove_raw(points_world)
                return
            num = points_world.shape[0]
            keys = np.arange(self._next_raw_key, self._next_raw_key + num, dtype=np.int64)
            self._next_raw_key += num
            self._keys = np.concatenate([self._keys, keys])
            self._sum_xyz = np.concatenate([self._sum_xyz, points_world])
            self._sum_rgb = np.concatenate([self._sum_rgb, rgb])
            self._count = np.concatenate([self._count, np.ones(num, np.float32)])
        else:
            keys, valid = self._cell_keys(points_world)
            if not np.all(valid):
                _LOG.warning('dropped %d points too far from the origin for the voxel grid '
                             '(voxel size %g)', int((~valid).sum()), self.voxel_size)
            self._accumulate(keys, points_world[valid], rgb[valid],
                             np.ones(keys.shape[0], np.float32), sign)
        self._enforce_cap()

    def _remove_raw(self, points_world: NDArray[np.float64]) -> None:
        # Unmerged storage: drop the stored points equal to these (same pose, same values).
        view = np.ascontiguousarray(self._sum_xyz).view([('', np.float64)] * 3).reshape(-1)
        gone = np.ascontiguousarray(points_world).view([('', np.float64)] * 3).reshape(-1)
        keep = ~np.isin(view, gone)
        self._keys = self._keys[keep]
        self._sum_xyz = self._sum_xyz[keep]
        self._sum_rgb = self._sum_rgb[keep]
        self._count = self._count[keep]

    def _enforce_cap(self) -> None:
        if self.num_points <= self.config.max_points:
            return
        if self.voxel_size <= 0:
            # First time over the cap without a grid: pick the voxel that would give about
            # half the cap if the points covered the bounding box's surface.
            centroids = self._sum_xyz / self._count[:, None]
            extent = np.ptp(centroids, axis=0)
            area = 2 * (extent[0] * extent[1] + extent[1] * extent[2] + extent[0] * extent[2])
            self.voxel_size = float(max(np.sqrt(max(area, 1e-12) / self.config.max_points),
                                        1e-6))
            keys, valid = self._cell_keys(centroids)
            del centroids
            self._merge_rows(keys, valid)
        while self.num_points > self.config.max_points:
            self.voxel_size *= 2.0
            _LOG.info('map over %d points: voxel size doubled to %g', self.config.max_points,
                      self.voxel_size)
            self._merge_rows(self._coarser_keys(self._keys), None)

    @staticmethod
    def _coarser_keys(keys: NDArray[np.int64]) -> NDArray[np.int64]:
        # A point in cell i lies in cell floor(i / 2) of the grid twice as coarse, so halving
        # each (offset) cell index in the key is exact; the sums then simply add up.
        out = np.zeros_like(keys)
        for shift in (2 * _BITS, _BITS, 0):
            cell = ((keys >> shift) & _MASK) - _OFFSET
            out |= ((cell >> 1) + _OFFSET) << shift
        return out

    def _merge_rows(self, keys: NDArray[np.int64], valid: NDArray[np.bool_] | None) -> None:
        """Regroup the voxels under new keys (one per row, or per valid row), summing."""
        if valid is not None and not np.all(valid):
            self._sum_xyz = self._sum_xyz[valid]
            self._sum_rgb = self._sum_rgb[valid]
            self._count = self._count[valid]
        unique, inverse = np.unique(keys, return_inverse=True)
        del keys
        num = unique.shape[0]
        sum_xyz = np.empty((num, 3), np.float64)
        sum_rgb = np.empty((num, 3), np.float32)
        for channel in range(3):
            sum_xyz[:, channel] = np.bincount(inverse, self._sum_xyz[:, channel], num)
            sum_rgb[:, channel] = np.bincount(inverse, self._sum_rgb[:, channel], num)
        count = np.bincount(inverse, self._count, num).astype(np.float32)
        self._keys, self._sum_xyz, self._sum_rgb, self._count = unique, sum_xyz, sum_rgb, count

    def fuse(self, points_world: NDArray[np.floating], colors_rgb: NDArray[np.uint8]) -> None:
        """
        Add points to the map.

        :param points_world: (N, 3) points in the map's frame.
        :param colors_rgb: (N, 3) uint8 colours.
        """
        self._fuse(np.asarray(points_world, dtype=np.float64),
                   np.asarray(colors_rgb, dtype=np.uint8), 1.0)

    def unfuse(self, points_world: NDArray[np.floating], colors_rgb: NDArray[np.uint8]) -> None:
        """
        Take out points that ``fuse`` added earlier (the same values).

        :param points_world: (N, 3) the points as they were fused.
        :param colors_rgb: (N, 3) their colours.
        """
        self._fuse(np.asarray(points_world, dtype=np.float64),
                   np.asarray(colors_rgb, dtype=np.uint8), -1.0)

    def snapshot(self) -> MapSnapshot:
        """Return the merged map: one point per voxel (centroid and mean colour), a copy."""
        count = np.maximum(self._count, 1e-6)[:, None]
        points = (self._sum_xyz / count).astype(np.float32)
        colours = np.clip(np.rint(self._sum_rgb / count), 0, 255).astype(np.uint8)
        return MapSnapshot(points, colours)
