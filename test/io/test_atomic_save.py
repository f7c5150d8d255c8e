"""Atomic writes and ``save_map``: no partial files or mixed sets, no silent overwrite."""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest

from vggt_mapper.engine.types import KeyframePose, MapSnapshot
from vggt_mapper.io import (
    atomic_write,
    atomic_write_bytes,
    ExportError,
    prepare_output_folder,
    read_cameras_json,
    read_ply,
    read_tum,
    recover_map,
    save_map,
)
from vggt_mapper.io.file_set import JOURNAL_NAME


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


# A save of a 6-keyframe map into argv[1], killed (os._exit, like kill -9) at the point argv[2]
# names: 'staging' while the files are written, 'switch' after two of the four are in place.
_KILLED_SAVE = """
import os, sys
from pathlib import Path
import numpy as np
from vggt_mapper.engine.types import KeyframePose, MapSnapshot
from vggt_mapper.io import export

outdir, where = Path(sys.argv[1]), sys.argv[2]
K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
poses = [KeyframePose(i, f'f{i}.png', i * 50_000_000, np.eye(4), K, (48, 64), K, (48, 64))
         for i in range(6)]
snapshot = MapSnapshot(np.zeros((7, 3), np.float32), np.zeros((7, 3), np.uint8))
if where == 'staging':
    export.write_ply = lambda *args, **kwargs: os._exit(9)
else:
    real_replace, moved = os.replace, []
    def replace(source, target):
        if Path(target).parent == outdir:
            moved.append(target)
            if len(moved) == 3:
                os._exit(9)
        real_replace(source, target)
    os.replace = replace
export.save_map(outdir, poses, snapshot, overwrite=True)
"""


def _kill_a_save(outdir: Path, where: str) -> None:
    completed = subprocess.run([sys.executable, '-c', _KILLED_SAVE, str(outdir), where],
                               capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 9, completed.stderr


def _set_sizes(outdir: Path) -> tuple[int, int, int]:
    """Keyframes in the TUM file and in cameras.json, points in the PLY."""
    return (len(read_tum(outdir / 'trajectory.tum')),
            len(read_cameras_json(outdir / 'cameras.json')), len(read_ply(outdir / 'map.ply')[0]))


def _hidden(outdir: Path) -> list[str]:
    return sorted(path.name for path in outdir.iterdir() if path.name.startswith('.'))


def test_save_killed_while_writing_leaves_the_previous_set(tmp_path: Path) -> None:
    save_map(tmp_path, _poses(2), _snapshot(30))

    _kill_a_save(tmp_path, 'staging')

    # The GLB of the new set was written, but only in the staging folder: the set in place is
    # still the previous one, whole.
    assert _set_sizes(tmp_path) == (2, 2, 30)
    assert _hidden(tmp_path)  # the killed save's staging folder
    saved = save_map(tmp_path, _poses(3), _snapshot(40), overwrite=True)
    assert _set_sizes(tmp_path) == (3, 3, 40) and saved.num_keyframes == 3
    assert _hidden(tmp_path) == []


def test_save_killed_while_switching_is_finished_by_the_next_run(tmp_path: Path) -> None:
    save_map(tmp_path, _poses(2), _snapshot(30))

    _kill_a_save(tmp_path, 'switch')

    assert (tmp_path / JOURNAL_NAME).is_file()  # committed: the new set is the one that counts
    recovery = recover_map(tmp_path)
    assert len(recovery.finished) == 2
    assert _set_sizes(tmp_path) == (6, 6, 7)
    assert _hidden(tmp_path) == []


def test_stale_temporary_files_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    save_map(tmp_path, _poses(2), _snapshot(30))
    (tmp_path / '.map.glb.k3j_x9q2.tmp').write_bytes(b'half a GLB')
    (tmp_path / '.vggt_mapper-save-abc123').mkdir()
    (tmp_path / '.my_notes').write_text('not ours: kept')

    recovery = recover_map(tmp_path)

    assert sorted(recovery.removed) == ['.map.glb.k3j_x9q2.tmp', '.vggt_mapper-save-abc123']
    assert _hidden(tmp_path) == ['.my_notes'] and _set_sizes(tmp_path) == (2, 2, 30)


def test_output_folder_under_a_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / 'results.txt'
    blocker.write_text('a file where a folder was meant')
    with pytest.raises(ExportError, match="'.*results.txt' is a file, not a folder"):
        prepare_output_folder(blocker / 'run1' / 'out')


def _read_only_folder(tmp_path: Path) -> Path:
    """Return a folder this process cannot write into: chmod for users, sysfs for root."""
    folder = tmp_path / 'read_only'
    folder.mkdir()
    folder.chmod(0o555)
    candidates = [folder, Path('/sys/kernel')]
    for candidate in candidates:
        try:
            (candidate / '.write_test').touch()
        except OSError:
            return candidate
        (candidate / '.write_test').unlink()
    pytest.skip('no folder here is read-only for this user (root without sysfs)')


def test_read_only_output_folder_is_refused(tmp_path: Path) -> None:
    folder = _read_only_folder(tmp_path)
    try:
        with pytest.raises(ExportError, match='is not writable'):
            prepare_output_folder(folder)
    finally:
        (tmp_path / 'read_only').chmod(0o755)


def test_prepare_output_folder_creates_and_reports_new_folders(tmp_path: Path) -> None:
    created = prepare_output_folder(tmp_path / 'a' / 'b')
    assert created == [tmp_path / 'a' / 'b', tmp_path / 'a']
    assert list((tmp_path / 'a' / 'b').iterdir()) == []  # the probe file is gone
