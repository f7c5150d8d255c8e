"""Tests of the voxel point map: merging, the size cap, local point sets and pose updates."""

from __future__ import annotations

import numpy as np

from vggt_mapper.engine.config import MapConfig
from vggt_mapper.engine.point_map import PointMap


def _pose(translation: tuple[float, float, float]) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, 3] = translation
    return pose


def _cloud(num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    points = rng.uniform(-1, 1, size=(num, 3)).astype(np.float32)
    colours = rng.integers(0, 256, size=(num, 3), dtype=np.uint8)
    return points, colours


def test_points_in_one_voxel_merge_to_their_centroid_and_mean_colour() -> None:
    point_map = PointMap(MapConfig(voxel_size=1.0))
    points = np.array([[0.1, 0.1, 0.1], [0.3, 0.5, 0.7], [2.5, 0.5, 0.5]], np.float32)
    colours = np.array([[0, 0, 0], [100, 200, 50], [9, 9, 9]], np.uint8)
    points_world = point_map.add_keyframe(0, points, colours, _pose((0.0, 0.0, 0.0)))
    assert np.allclose(points_world, points)
    snapshot = point_map.snapshot()
    assert snapshot.num_points == 2
    order = np.argsort(snapshot.points_world[:, 0])
    assert np.allclose(snapshot.points_world[order[0]], [0.2, 0.3, 0.4])
    assert np.array_equal(snapshot.colors_rgb[order[0]], [50, 100, 25])
    # The same points again (another keyframe) do not add voxels.
    point_map.add_keyframe(1, points, colours, _pose((0.0, 0.0, 0.0)))
    assert point_map.num_points == 2


def test_points_are_placed_with_the_keyframe_pose() -> None:
    point_map = PointMap(MapConfig(voxel_size=0.001))
    points, colours = _cloud(100)
    points_world = point_map.add_keyframe(0, points, colours, _pose((5.0, 0.0, 0.0)))
    assert np.allclose(points_world, points + [5.0, 0.0, 0.0], atol=1e-5)


def test_map_never_exceeds_the_cap() -> None:
    point_map = PointMap(MapConfig(voxel_size=0.001, max_points=5000, active_keyframes=3))
    for index in range(30):
        points, colours = _cloud(2000, seed=index)
        point_map.add_keyframe(index, points, colours, _pose((index * 0.5, 0.0, 0.0)))
        assert point_map.num_points <= 5000
    assert point_map.voxel_size > 0.001
    assert point_map.active_keyframes() == [27, 28, 29]
    # Coarsening merges voxels exactly: every source point is still counted once.
    assert point_map.points_fused == 30 * 2000


def test_unmerged_map_is_capped_too() -> None:
    point_map = PointMap(MapConfig(voxel_size=0.0, max_points=3000))
    for index in range(10):
        points, colours = _cloud(1000, seed=index)
        point_map.add_keyframe(index, points, colours, _pose((float(index), 0.0, 0.0)))
        assert point_map.num_points <= 3000
    assert point_map.voxel_size > 0


def test_pose_update_moves_an_active_keyframe_without_recomputation() -> None:
    point_map = PointMap(MapConfig(voxel_size=0.01, active_keyframes=2))
    points, colours = _cloud(500)
    point_map.add_keyframe(0, points, colours, _pose((0.0, 0.0, 0.0)))
    other, other_colours = _cloud(500, seed=1)
    point_map.add_keyframe(1, other, other_colours, _pose((10.0, 0.0, 0.0)))
    before = point_map.num_points
    assert point_map.update_pose(0, _pose((0.0, 20.0, 0.0)))
    snapshot = point_map.snapshot()
    assert snapshot.num_points == before
    moved = snapshot.points_world[snapshot.points_world[:, 1] > 15.0]
    assert moved.shape[0] > 0.9 * (before / 2)
    near_origin = ((np.abs(snapshot.points_world[:, 1]) < 1.5)
                   & (np.abs(snapshot.points_world[:, 0]) < 1.5))
    assert not np.any(near_origin)
    # Evicted keyframes are final.
    point_map.add_keyframe(2, points, colours, _pose((0.0, 0.0, 0.0)))
    assert not point_map.update_pose(0, _pose((0.0, 0.0, 0.0)))


def test_voxel_cells_are_floored_on_both_sides_of_zero() -> None:
    # Cell index = floor(x / voxel_size): -0.2 and -0.8 share cell -1, 0.2 is in cell 0.
    # Truncation towards zero would put all three in cell 0 (and y = z = -0.5 too).
    point_map = PointMap(MapConfig(voxel_size=1.0))
    points = np.array([[-0.2, -0.5, -0.5], [-0.8, -0.5, -0.5], [0.2, -0.5, -0.5]], np.float32)
    point_map.add_keyframe(0, points, np.zeros((3, 3), np.uint8), _pose((0.0, 0.0, 0.0)))
    xs = np.sort(point_map.snapshot().points_world[:, 0])
    np.testing.assert_allclose(xs, [-0.5, 0.2], atol=1e-6)


def test_coarsening_halves_negative_cells_by_floor_too() -> None:
    # Cells -2, -1, 0 at voxel 1; the cap of 2 doubles the voxel: cells -2 and -1 merge into
    # cell -1 (centroid -1.0), cell 0 stays alone.
    point_map = PointMap(MapConfig(voxel_size=1.0, max_points=2))
    points = np.array([[-1.5, 0.5, 0.5], [-0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], np.float32)
    point_map.add_keyframe(0, points, np.zeros((3, 3), np.uint8), _pose((0.0, 0.0, 0.0)))
    assert point_map.voxel_size == 2.0
    xs = np.sort(point_map.snapshot().points_world[:, 0])
    np.testing.assert_allclose(xs, [-1.0, 0.5], atol=1e-6)
