"""A map of two segments, exported: every segment shown, each file says which point is whose."""

from __future__ import annotations

from dataclasses import replace
import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from vggt_mapper.engine.types import KeyframePose, MapSnapshot
from vggt_mapper.io import read_cameras_json, read_ply, read_tum
from vggt_mapper.io.export import save_map, STATS_FILE_NAME
from vggt_mapper.io.glb import build_scene, main_segment
from vggt_mapper.io.ply import read_ply_segments, write_ply


def _pose(index: int, x: float, segment: int) -> KeyframePose:
    intrinsics = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]])
    world_from_cam = np.eye(4)
    world_from_cam[0, 3] = x
    return KeyframePose(index, f'frame_{index}', (index + 1) * 10**8, world_from_cam,
                        intrinsics, (48, 64), intrinsics, (48, 64), segment)


def _two_segments() -> tuple[list[KeyframePose], MapSnapshot]:
    # Segment 0 has three keyframes, segment 1 two; both maps sit around their own origin.
    poses = [_pose(0, 0.0, 0), _pose(1, 0.2, 0), _pose(2, 0.4, 0), _pose(3, 0.0, 1),
             _pose(4, 0.2, 1)]
    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (600, 3)).astype(np.float32) + [0, 0, 3]
    colours = rng.integers(0, 256, (600, 3), dtype=np.uint8)
    segments = np.repeat([0, 1], 300).astype(np.int32)
    return poses, MapSnapshot(points.astype(np.float32), colours, segments)


def test_ply_carries_the_segment_of_each_point_only_when_there_are_several(
        tmp_path: Path) -> None:
    _, snapshot = _two_segments()
    write_ply(tmp_path / 'two.ply', snapshot.points_world, snapshot.colors_rgb,
              segment_ids=snapshot.segments)
    points, colours = read_ply(tmp_path / 'two.ply')
    assert np.allclose(points, snapshot.points_world) and np.array_equal(colours,
                                                                         snapshot.colors_rgb)
    assert np.array_equal(read_ply_segments(tmp_path / 'two.ply'), snapshot.segments)
    write_ply(tmp_path / 'one.ply', snapshot.points_world, snapshot.colors_rgb,
              segment_ids=np.zeros(600, np.int32))
    assert b'segment' not in (tmp_path / 'one.ply').read_bytes()[:400]
    assert not read_ply_segments(tmp_path / 'one.ply').any()


def test_glb_sets_every_other_segment_beside_the_main_one() -> None:
    poses, snapshot = _two_segments()
    scene = build_scene(snapshot.points_world, snapshot.colors_rgb, poses,
                        segment_ids=snapshot.segments)
    main = scene.geometry['map_points'].vertices
    other = scene.geometry['map_points_segment_1'].vertices
    assert len(main) == len(other) == 300
    # Same-sized clouds around the same origin in their own frames: side by side, no overlap.
    assert other[:, 0].min() > main[:, 0].max()
    assert main_segment(poses) == 0
    assert main_segment([replace(p, segment=1 - p.segment) for p in poses]) == 1


def test_saved_map_of_two_segments_keeps_every_keyframe_and_the_stats(tmp_path: Path) -> None:
    poses, snapshot = _two_segments()
    saved = save_map(tmp_path, poses, snapshot, stats={'segments': 2, 'loops': {'accepted': 0}})
    cameras = read_cameras_json(saved.cameras_json)
    assert [(c.index, c.segment) for c in cameras] == [(p.index, p.segment) for p in poses]
    # A TUM trajectory has one frame: the main segment's keyframes.
    assert [t.stamp_ns for t in read_tum(saved.tum)] == [p.stamp_ns for p in poses[:3]]
    stats = json.loads((tmp_path / STATS_FILE_NAME).read_text())
    assert stats['format'] == 'vggt_mapper.map_stats/1' and stats['segments'] == 2
    assert saved.stats_json == tmp_path / STATS_FILE_NAME and saved.stats_json in saved.paths
    loaded = trimesh.load(saved.glb)
    assert {'map_points', 'map_points_segment_1'} <= set(loaded.geometry)


def test_glb_of_two_segments_passes_the_khronos_validator(tmp_path: Path) -> None:
    from test_glb import _validate  # the validator helper of the GLB tests

    poses, snapshot = _two_segments()
    saved = save_map(tmp_path, poses, snapshot)
    report = _validate(saved.glb)
    assert report['issues']['numErrors'] == 0, report['issues']['messages'][:5]


def test_stats_must_be_json() -> None:
    poses, snapshot = _two_segments()
    with pytest.raises((TypeError, ValueError)):
        save_map(Path('/nonexistent-never-written'), poses, snapshot, stats={'bad': object()})
