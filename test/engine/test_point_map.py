"""Tests of the voxel point map: merging, the size cap, taking points out again."""

from __future__ import annotations

import numpy as np

from vggt_mapper.engine.config import MapConfig
from vggt_mapper.engine.point_map import PointMap


def _cloud(num: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    points = rng.uniform(-1, 1, size=(num, 3)).astype(np.float32)
    colours = rng.integers(0, 256, size=(num, 3), dtype=np.uint8)
    return points, colours


def test_points_in_one_voxel_merge_to_their_centroid_and_mean_colour() -> None:
    point_map = PointMap(MapConfig(voxel_size=1.0))
    points = np.array([[0.1, 0.1, 0.1], [0.3, 0.5, 0.7], [2.5, 0.5, 0.5]], np.float32)
    colours = np.array([[0, 0, 0], [100, 200, 50], [9, 9, 9]], np.uint8)
    point_map.fuse(points, colours)
    snapshot = point_map.snapshot()
    assert snapshot.num_points == 2
    order = np.argsort(snapshot.points_world[:, 0])
    assert np.allclose(snapshot.points_world[order[0]], [0.2, 0.3, 0.4])
    assert np.array_equal(snapshot.colors_rgb[order[0]], [50, 100, 25])
    # The same points again (another keyframe) do not add voxels.
    point_map.fuse(points, colours)
    assert point_map.num_points == 2


def test_map_never_exceeds_the_cap() -> None:
    point_map = PointMap(MapConfig(voxel_size=0.001, max_points=5000))
    for index in range(30):
        points, colours = _cloud(2000, seed=index)
        point_map.fuse(points + [index * 0.5, 0.0, 0.0], colours)
        assert point_map.num_points <= 5000
    assert point_map.voxel_size > 0.001
    # Coarsening merges voxels exactly: every source point is still counted once.
    assert point_map.points_fused == 30 * 2000


def test_unmerged_map_is_capped_too() -> None:
    point_map = PointMap(MapConfig(voxel_size=0.0, max_points=3000))
    for index in range(10):
        points, colours = _cloud(1000, seed=index)
        point_map.fuse(points + [float(index), 0.0, 0.0], colours)
        assert point_map.num_points <= 3000
    assert point_map.voxel_size > 0


def test_unfuse_takes_out_exactly_what_fuse_added() -> None:
    point_map = PointMap(MapConfig(voxel_size=0.05))
    base, base_colours = _cloud(500)
    point_map.fuse(base, base_colours)
    before = point_map.snapshot()
    extra, extra_colours = _cloud(300, seed=1)
    point_map.fuse(extra + [0.01, 0.0, 0.0], extra_colours)
    point_map.unfuse(extra + [0.01, 0.0, 0.0], extra_colours)
    after = point_map.snapshot()
    assert after.num_points == before.num_points
    order_a = np.lexsort(after.points_world.T)
    order_b = np.lexsort(before.points_world.T)
    assert np.allclose(after.points_world[order_a], before.points_world[order_b], atol=1e-5)
    assert point_map.points_fused == 500


def test_unfuse_after_the_grid_coarsened_still_balances() -> None:
    # Points fused on the fine grid land in the coarse cells that hold their sums.
    point_map = PointMap(MapConfig(voxel_size=0.001, max_points=800))
    first, first_colours = _cloud(600)
    point_map.fuse(first, first_colours)
    second, second_colours = _cloud(600, seed=3)
    point_map.fuse(second, second_colours)
    assert point_map.voxel_size > 0.001
    point_map.unfuse(first, first_colours)
    assert point_map.points_fused == 600


def test_voxel_cells_are_floored_on_both_sides_of_zero() -> None:
    # Cell index = floor(x / voxel_size): -0.2 and -0.8 share cell -1, 0.2 is in cell 0.
    # Truncation towards zero would put all three in cell 0 (and y = z = -0.5 too).
    point_map = PointMap(MapConfig(voxel_size=1.0))
    points = np.array([[-0.2, -0.5, -0.5], [-0.8, -0.5, -0.5], [0.2, -0.5, -0.5]], np.float32)
    point_map.fuse(points, np.zeros((3, 3), np.uint8))
    xs = np.sort(point_map.snapshot().points_world[:, 0])
    np.testing.assert_allclose(xs, [-0.5, 0.2], atol=1e-6)


def test_coarsening_halves_negative_cells_by_floor_too() -> None:
    # Cells -2, -1, 0 at voxel 1; the cap of 2 doubles the voxel: cells -2 and -1 merge into
    # cell -1 (centroid -1.0), cell 0 stays alone.
    point_map = PointMap(MapConfig(voxel_size=1.0, max_points=2))
    points = np.array([[-1.5, 0.5, 0.5], [-0.5, 0.5, 0.5], [0.5, 0.5, 0.5]], np.float32)
    point_map.fuse(points, np.zeros((3, 3), np.uint8))
    assert point_map.voxel_size == 2.0
    xs = np.sort(point_map.snapshot().points_world[:, 0])
    np.testing.assert_allclose(xs, [-1.0, 0.5], atol=1e-6)
