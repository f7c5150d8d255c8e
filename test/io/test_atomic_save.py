"""Atomic writes and ``save_map``: no partial files, no silent overwrite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vggt_mapper.engine.types import KeyframePose, MapSnapshot
from vggt_mapper.io import (
    atomic_write,
    atomic_write_bytes,
    ExportError,
    read_cameras_json,
    read_ply,
    read_tum,
    save_map,
)


def _poses(count: int) -> list[KeyframePose]:
    intrinsics = np.array([[50.0, 0.0, 32.0], [0.0, 50.0, 24.0], [0.0, 0.0, 1.0]])
    poses = []
    for index in range(count):
        world_from_cam = np.eye(4)
        world_from_cam[2, 3] = 0.1 * index
        poses.append(KeyframePose(index, f'f{index}.png', index * 50_000_000, world_from_cam,
                                  intrinsics, (48, 64), intrinsics, (48, 64)))
    return poses


def _snapshot(count: int) -> MapSnapshot:
    rng = np.random.default_rng(1)
    return MapSnapshot(points_world=rng.normal(size=(count, 3)).astype(np.float32),
                       colors_rgb=rng.integers(0, 256, (count, 3), dtype=np.uint8))


def test_atomic_write_refuses_overwrite_unless_asked(tmp_path: Path) -> None:
    target = tmp_path / 'out.bin'
    target.write_bytes(b'old')

    with pytest.raises(ExportError, match='already exist'):
        atomic_write_bytes(target, b'new')
    assert target.read_bytes() == b'old'

    atomic_write_bytes(target, b'new', overwrite=True)
    assert target.read_bytes() == b'new'
    assert sorted(path.name for path in tmp_path.iterdir()) == ['out.bin']


def test_failed_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / 'out.bin'
    with pytest.raises(RuntimeError, match='disk on fire'):
        with atomic_write(target) as stream:
            stream.write(b'half of the data')
            raise RuntimeError('disk on fire')
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / 'out.bin'
    target.write_bytes(b'complete old data')
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target, overwrite=True) as stream:
            stream.write(b'partial')
            raise KeyboardInterrupt
    assert target.read_bytes() == b'complete old data'
    assert [path.name for path in tmp_path.iterdir()] == ['out.bin']


def test_written_file_is_readable_by_others(tmp_path: Path) -> None:
    target = atomic_write_bytes(tmp_path / 'out.bin', b'x')
    assert target.stat().st_mode & 0o044 == 0o044


def test_save_map_writes_the_four_files(tmp_path: Path) -> None:
    poses, snapshot = _poses(4), _snapshot(300)

    saved = save_map(tmp_path / 'new' / 'out', poses, snapshot)

    assert [path.name for path in saved.paths] == ['map.glb', 'map.ply', 'trajectory.tum',
                                                   'cameras.json']
    assert all(path.is_file() for path in saved.paths)
    assert (saved.num_points, saved.num_keyframes) == (300, 4)
    assert saved.glb.read_bytes()[:4] == b'glTF'
    points, _ = read_ply(saved.ply)
    np.testing.assert_array_equal(points, snapshot.points_world)
    stamps = [pose.stamp_ns for pose in read_tum(saved.tum)]
    assert stamps == [0, 50_000_000, 100_000_000, 150_000_000]
    assert [pose.name for pose in read_cameras_json(saved.cameras_json)] == [
        'f0.png', 'f1.png', 'f2.png', 'f3.png']


def test_save_map_refuses_existing_outputs_and_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / 'cameras.json').write_text('keep me')

    with pytest.raises(ExportError, match='cameras.json'):
        save_map(tmp_path, _poses(2), _snapshot(10))

    assert [path.name for path in tmp_path.iterdir()] == ['cameras.json']
    assert (tmp_path / 'cameras.json').read_text() == 'keep me'
    saved = save_map(tmp_path, _poses(2), _snapshot(10), overwrite=True)
    assert len(read_cameras_json(saved.cameras_json)) == 2


def test_save_map_empty_map_and_trajectory(tmp_path: Path) -> None:
    saved = save_map(tmp_path, [], _snapshot(0))
    assert read_tum(saved.tum) == []
    assert read_cameras_json(saved.cameras_json) == []
    assert read_ply(saved.ply)[0].shape == (0, 3)


def test_save_map_outdir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / 'file').write_text('')
    with pytest.raises(ExportError, match='not a folder'):
        save_map(tmp_path / 'file', _poses(1), _snapshot(1))
