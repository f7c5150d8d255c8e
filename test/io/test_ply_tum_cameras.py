"""PLY, TUM and cameras.json exports: read back what was written."""

from __future__ import annotations

import json
from pathlib import Path

from evo.tools import file_interface
import numpy as np
import pytest
from scipy.spatial.transform import Rotation
import trimesh

from vggt_mapper.engine.types import KeyframePose
from vggt_mapper.io import (
    ExportError,
    InputError,
    read_cameras_json,
    read_ply,
    read_tum,
    write_cameras_json,
    write_ply,
    write_tum,
)
from vggt_mapper.io.tum import format_stamp, parse_stamp


def _random_poses(count: int, seed: int = 3) -> list[KeyframePose]:
    rng = np.random.default_rng(seed)
    rotations = Rotation.random(count, random_state=seed).as_matrix()
    intrinsics = np.array([[210.5, 0.0, 259.0], [0.0, 211.0, 147.0], [0.0, 0.0, 1.0]])
    poses = []
    for index in range(count):
        world_from_cam = np.eye(4)
        world_from_cam[:3, :3] = rotations[index]
        world_from_cam[:3, 3] = rng.normal(size=3)
        poses.append(KeyframePose(
            index=index, name=f'img_{index:03d}.png',
            stamp_ns=1_700_000_000_123_456_789 + index * 33_333_333,
            world_from_cam=world_from_cam, intrinsics=intrinsics, model_hw=(294, 518),
            intrinsics_original=intrinsics * [[1.2], [1.2], [1.0]], original_hw=(353, 622)))
    return poses


def test_ply_round_trip_own_reader_and_trimesh(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    points = rng.normal(size=(1000, 3)).astype(np.float32)
    colors = rng.integers(0, 256, size=(1000, 3), dtype=np.uint8)

    path = write_ply(tmp_path / 'map.ply', points, colors)
    points_back, colors_back = read_ply(path)
    loaded = trimesh.load(path)

    np.testing.assert_array_equal(points_back, points)
    np.testing.assert_array_equal(colors_back, colors)
    assert path.read_bytes().startswith(b'ply\nformat binary_little_endian 1.0\n')
    np.testing.assert_array_equal(np.asarray(loaded.vertices, np.float32), points)
    np.testing.assert_array_equal(loaded.colors[:, :3], colors)


def test_ply_empty_and_bad_input(tmp_path: Path) -> None:
    path = write_ply(tmp_path / 'empty.ply', np.zeros((0, 3), np.float32),
                     np.zeros((0, 3), np.uint8))
    points, colors = read_ply(path)
    assert points.shape == (0, 3) and colors.shape == (0, 3)
    with pytest.raises(ExportError, match='uint8'):
        write_ply(tmp_path / 'x.ply', np.zeros((2, 3)), np.zeros((2, 3), np.float32))
    with pytest.raises(ExportError, match='1 non-finite'):
        write_ply(tmp_path / 'nan.ply', np.array([[0, 0, 1], [np.nan, 0, 1]]),
                  np.zeros((2, 3), np.uint8))
    assert not (tmp_path / 'nan.ply').exists()
    (tmp_path / 'ascii.ply').write_text('ply\nformat ascii 1.0\nend_header\n')
    with pytest.raises(InputError, match='layout'):
        read_ply(tmp_path / 'ascii.ply')


def test_stamp_text_is_exact_to_the_nanosecond() -> None:
    assert format_stamp(1_700_000_000_123_456_789) == '1700000000.123456789'
    assert format_stamp(5) == '0.000000005'
    assert format_stamp(-1_500_000_000) == '-1.500000000'
    for stamp_ns in (0, 5, 1_700_000_000_123_456_789, -1_500_000_000, 2**62 + 1):
        assert parse_stamp(format_stamp(stamp_ns)) == stamp_ns
    assert parse_stamp('1.5e-3') == 1_500_000


def test_tum_round_trip(tmp_path: Path) -> None:
    poses = _random_poses(6)

    path = write_tum(tmp_path / 'trajectory.tum', poses)
    back = read_tum(path)

    lines = [line for line in path.read_text().splitlines() if not line.startswith('#')]
    assert len(lines) == 6
    assert lines[0].split()[0] == '1700000000.123456789'
    assert [pose.stamp_ns for pose in back] == [pose.stamp_ns for pose in poses]
    for original, read in zip(poses, back, strict=True):
        np.testing.assert_allclose(read.world_from_cam, original.world_from_cam, atol=1e-12)
    # Quaternion stored x, y, z, w with w >= 0 (q and -q are one rotation).
    assert all(float(line.split()[7]) >= 0 for line in lines)


def test_tum_is_world_from_cam_with_xyzw_quaternion(tmp_path: Path) -> None:
    world_from_cam = np.eye(4)
    world_from_cam[:3, :3] = Rotation.from_euler('z', 90, degrees=True).as_matrix()
    world_from_cam[:3, 3] = [1.0, 2.0, 3.0]
    pose = _random_poses(1)[0]
    pose = KeyframePose(pose.index, pose.name, 2_000_000_001, world_from_cam, pose.intrinsics,
                        pose.model_hw, pose.intrinsics_original, pose.original_hw)

    path = write_tum(tmp_path / 't.tum', [pose])

    fields = path.read_text().splitlines()[1].split()
    assert fields[0] == '2.000000001'
    np.testing.assert_allclose([float(v) for v in fields[1:4]], [1.0, 2.0, 3.0])
    half = np.sqrt(0.5)
    np.testing.assert_allclose([float(v) for v in fields[4:]], [0.0, 0.0, half, half])


def test_tum_reads_with_evo(tmp_path: Path) -> None:
    poses = _random_poses(4)
    path = write_tum(tmp_path / 'trajectory.tum', poses)
    trajectory = file_interface.read_tum_trajectory_file(str(path))
    assert trajectory.num_poses == 4
    np.testing.assert_allclose(trajectory.positions_xyz,
                               [pose.position_world for pose in poses])
    np.testing.assert_allclose(trajectory.poses_se3[2], poses[2].world_from_cam, atol=1e-9)


def test_tum_reader_reports_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / 'bad.tum'
    path.write_text('# comment\n0.0 0 0 0 0 0 0 1\n1.0 0 0 0 0 0 1\n')
    with pytest.raises(InputError, match='line 3'):
        read_tum(path)


def test_tum_refuses_a_non_rigid_pose(tmp_path: Path) -> None:
    pose = _random_poses(1)[0]
    skewed = pose.world_from_cam.copy()
    skewed[:3, :3] *= 2.0
    bad = KeyframePose(0, 'x', 0, skewed, pose.intrinsics, pose.model_hw,
                       pose.intrinsics_original, pose.original_hw)
    with pytest.raises(ExportError, match='non-orthonormal'):
        write_tum(tmp_path / 't.tum', [bad])
    assert not (tmp_path / 't.tum').exists()


def test_cameras_json_contents_and_round_trip(tmp_path: Path) -> None:
    poses = _random_poses(3)

    path = write_cameras_json(tmp_path / 'cameras.json', poses)
    document = json.loads(path.read_text())
    back = read_cameras_json(path)

    assert document['format'] == 'vggt_mapper.cameras/1'
    camera = document['cameras'][1]
    assert camera['name'] == 'img_001.png'
    assert camera['stamp_ns'] == poses[1].stamp_ns
    assert camera['timestamp'] == pytest.approx(poses[1].stamp_ns / 1e9)
    assert camera['intrinsics']['model'] == {
        'K': poses[1].intrinsics.tolist(), 'width': 518, 'height': 294}
    assert camera['intrinsics']['original']['width'] == 622
    assert camera['intrinsics']['original']['height'] == 353
    np.testing.assert_allclose(camera['intrinsics']['original']['K'],
                               poses[1].intrinsics_original)
    cam_from_world = np.array(camera['cam_from_world'])
    world_from_cam = np.array(camera['world_from_cam'])
    np.testing.assert_allclose(cam_from_world @ world_from_cam, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(world_from_cam, poses[1].world_from_cam)
    for original, read in zip(poses, back, strict=True):
        assert (read.index, read.name, read.stamp_ns) == (original.index, original.name,
                                                          original.stamp_ns)
        assert (read.model_hw, read.original_hw) == (original.model_hw, original.original_hw)
        np.testing.assert_array_equal(read.world_from_cam, original.world_from_cam)
        np.testing.assert_array_equal(read.intrinsics_original, original.intrinsics_original)


def test_cameras_json_reader_refuses_other_json(tmp_path: Path) -> None:
    path = tmp_path / 'other.json'
    path.write_text('{"cameras": []}')
    with pytest.raises(InputError, match='vggt_mapper.cameras/1'):
        read_cameras_json(path)
