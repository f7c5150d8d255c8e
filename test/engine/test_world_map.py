"""Tests of the derived world map: fused per segment, patched when keyframes move or merge."""

from __future__ import annotations

import numpy as np

from vggt_mapper.engine.config import MapConfig
from vggt_mapper.engine.keyframe_store import KeyframeCloud
from vggt_mapper.engine.world_map import WorldMap
from vggt_mapper.geometry.sim3 import Sim3


def _cloud(num: int, seed: int = 0) -> KeyframeCloud:
    rng = np.random.default_rng(seed)
    return KeyframeCloud(rng.uniform(-1, 1, (num, 3)).astype(np.float32),
                         rng.integers(0, 256, (num, 3), dtype=np.uint8),
                         np.zeros((num, 2), np.uint16), np.ones(num, np.float16))


def _at(x: float, scale: float = 1.0) -> Sim3:
    return Sim3(scale, np.eye(3), np.array([x, 0.0, 0.0]))


def test_keyframes_are_placed_with_their_sim3_pose() -> None:
    world = WorldMap(MapConfig(voxel_size=0.0))
    cloud = _cloud(100)
    points = world.add(0, 0, _at(5.0, scale=2.0), cloud)
    assert np.allclose(points, 2.0 * cloud.points_local + [5.0, 0.0, 0.0], atol=1e-5)
    assert world.num_points == 100


def test_a_moved_keyframe_leaves_no_ghost() -> None:
    world = WorldMap(MapConfig(voxel_size=0.02))
    cloud, other = _cloud(400), _cloud(400, seed=1)
    world.add(0, 0, _at(0.0), cloud)
    world.add(1, 0, _at(10.0), other)
    assert world.needs_move(0, 0, _at(3.0))
    world.move(0, 0, _at(3.0), cloud)
    points = world.snapshot().points_world
    assert not np.any(np.abs(points[:, 0]) < 1.5)  # nothing left at the old place
    assert np.count_nonzero(np.abs(points[:, 0] - 3.0) < 1.5) > 300


def test_a_tiny_correction_does_not_touch_the_map() -> None:
    world = WorldMap(MapConfig(voxel_size=0.02))
    world.add(0, 0, _at(0.0), _cloud(100))
    assert not world.needs_move(0, 0, _at(0.001))
    assert world.needs_move(0, 0, _at(0.01))


def test_segments_are_kept_apart_and_merge() -> None:
    world = WorldMap(MapConfig(voxel_size=0.05))
    world.add(0, 0, _at(0.0), _cloud(200))
    cloud = _cloud(200, seed=1)
    world.add(1, 1, _at(0.0), cloud)
    snapshot = world.snapshot()
    assert world.segments() == [0, 1]
    assert set(np.unique(snapshot.segments)) == {0, 1}
    # Merging segment 1 into 0 moves its keyframe into segment 0's grid.
    assert world.needs_move(1, 0, _at(20.0))
    world.move(1, 0, _at(20.0), cloud)
    merged = world.snapshot()
    assert world.segments() == [0]
    assert np.all(merged.segments == 0)
    assert np.count_nonzero(merged.points_world[:, 0] > 15.0) > 100
