"""GLB export: valid glTF (Khronos validator), official-demo orientation, frustums."""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import subprocess

import numpy as np
import pytest
import trimesh

from vggt_mapper.engine.types import KeyframePose
from vggt_mapper.io import build_scene, ExportError, write_glb
from vggt_mapper.io.glb import GLTF_FROM_CAM0

REPO_ROOT = Path(__file__).resolve().parents[2]
VALIDATOR_SCRIPT = Path(__file__).with_name('validate_gltf.js')


def _pose(index: int, world_from_cam: np.ndarray) -> KeyframePose:
    intrinsics = np.array([[60.0, 0.0, 31.5], [0.0, 60.0, 23.5], [0.0, 0.0, 1.0]])
    return KeyframePose(index=index, name=f'frame_{index}', stamp_ns=index * 10**8,
                        world_from_cam=world_from_cam, intrinsics=intrinsics, model_hw=(48, 64),
                        intrinsics_original=intrinsics * [[2], [2], [1]],
                        original_hw=(96, 128))


def _trajectory(count: int = 3) -> list[KeyframePose]:
    poses = []
    for index in range(count):
        world_from_cam = np.eye(4)
        world_from_cam[0, 3] = 0.2 * index
        poses.append(_pose(index, world_from_cam))
    return poses


def _cloud(count: int = 500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    points = (rng.normal(size=(count, 3)) * [1.0, 0.5, 0.3] + [0.0, 0.0, 4.0]).astype(np.float32)
    colors = rng.integers(0, 256, size=(count, 3), dtype=np.uint8)
    return points, colors


def _validate(path: Path) -> dict:
    """Run the Khronos glTF validator on ``path``; skip if node or the package is missing."""
    node = shutil.which('node')
    if node is None:
        pytest.skip('node is not installed; the glTF validator runs on Node.js (apt install '
                    'nodejs, then npm ci at the repository root)')
    if not (REPO_ROOT / 'node_modules' / 'gltf-validator').is_dir():
        pytest.skip('npm package gltf-validator is missing; run `npm ci` at the repository root')
    completed = subprocess.run([node, str(VALIDATOR_SCRIPT), str(path)], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.mark.parametrize('case', ['map', 'no_cameras', 'empty', 'cameras_only'])
def test_written_glb_passes_the_khronos_validator(tmp_path: Path, case: str) -> None:
    points, colors = _cloud()
    poses = _trajectory()
    if case in ('empty', 'cameras_only'):
        points, colors = points[:0], colors[:0]
    if case == 'empty':
        poses = []
    path = write_glb(tmp_path / 'map.glb', points, colors, poses,
                     show_cameras=case != 'no_cameras')

    report = _validate(path)

    issues = report['issues']
    assert issues['numErrors'] == 0, json.dumps(issues['messages'], indent=1)
    assert issues['numWarnings'] == 0, json.dumps(issues['messages'], indent=1)
    expected_vertices = {'map': 500 + 3 * 5, 'no_cameras': 500, 'empty': 0, 'cameras_only': 15}
    assert report['info'].get('totalVertexCount', 0) == expected_vertices[case]


def test_glb_orientation_matches_the_official_demo() -> None:
    """World = first camera (OpenCV); glTF = (-x, -y, z): y up, nothing mirrored."""
    points = np.array([[1.0, 0.0, 5.0], [0.0, -1.0, 5.0]], np.float32)  # right, above (y down)
    colors = np.array([[255, 0, 0], [0, 255, 0]], np.uint8)
    scene = build_scene(points, colors, [_pose(0, np.eye(4))], show_cameras=False)

    cloud = scene.geometry['map_points']
    # Official: inv(extrinsics[0]) @ diag(1, -1, -1) @ Ry(180) with extrinsics[0] = identity.
    ry_180 = np.diag([-1.0, 1.0, -1.0, 1.0])
    official = np.eye(4) @ np.diag([1.0, -1.0, -1.0, 1.0]) @ ry_180
    np.testing.assert_allclose(GLTF_FROM_CAM0, official)
    np.testing.assert_allclose(cloud.vertices, [[-1.0, 0.0, 5.0], [0.0, 1.0, 5.0]])
    # The point above the camera is up (+y) in glTF.
    assert cloud.vertices[1, 1] > 0
    np.testing.assert_array_equal(cloud.colors[:, :3], colors)


def test_glb_uses_the_first_keyframe_as_view_even_if_not_identity() -> None:
    world_from_cam0 = np.eye(4)
    world_from_cam0[:3, 3] = [1.0, 2.0, 3.0]
    point_in_cam0 = np.array([0.5, -0.25, 2.0])
    point_world = (point_in_cam0 + world_from_cam0[:3, 3]).astype(np.float32)[None]
    scene = build_scene(point_world, np.zeros((1, 3), np.uint8), [_pose(0, world_from_cam0)],
                        show_cameras=False)
    np.testing.assert_allclose(scene.geometry['map_points'].vertices[0],
                               [-0.5, 0.25, 2.0], atol=1e-6)


def test_frustum_apex_at_camera_centre_and_base_in_front() -> None:
    points, colors = _cloud()
    poses = _trajectory(2)
    scene = build_scene(points, colors, poses)

    frustum = scene.geometry['camera_0001']
    centre_gltf = GLTF_FROM_CAM0[:3, :3] @ poses[1].position_world
    np.testing.assert_allclose(frustum.vertices[0], centre_gltf, atol=1e-9)
    # Base corners are in front of the camera: +z in glTF (the camera looks along +z there).
    assert (frustum.vertices[1:, 2] > centre_gltf[2]).all()
    # The base has the image's aspect ratio (64 x 48 pixels).
    base = frustum.vertices[1:]
    width = np.linalg.norm(base[1] - base[0])
    height = np.linalg.norm(base[2] - base[1])
    assert width / height == pytest.approx(64 / 48)


def test_glb_loads_back_with_trimesh(tmp_path: Path) -> None:
    points, colors = _cloud()
    path = write_glb(tmp_path / 'map.glb', points, colors, _trajectory())
    loaded = trimesh.load(path)
    clouds = [geom for geom in loaded.geometry.values()
              if isinstance(geom, trimesh.PointCloud)]
    assert len(clouds) == 1 and len(clouds[0].vertices) == 500
    assert len(loaded.geometry) == 1 + 3


def test_bad_arrays_are_export_errors(tmp_path: Path) -> None:
    points, colors = _cloud(10)
    with pytest.raises(ExportError, match='colors_rgb'):
        write_glb(tmp_path / 'a.glb', points, colors[:5], [])
    points[3] = np.nan
    with pytest.raises(ExportError, match='non-finite'):
        write_glb(tmp_path / 'a.glb', points, colors, [])
    assert not any(tmp_path.iterdir())
