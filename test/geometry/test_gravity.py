"""Gravity from camera poses and the level frame (``vggt_mapper.geometry.gravity``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vggt_mapper.geometry.errors import GeometryError
from vggt_mapper.geometry.gravity import gravity_up_world, level_frame, tilt_deg, UP_BASE

#: The engine's world (the first camera's OpenCV axes) turned to REP 103 axes: x = z, y = -x,
#: z = -y (``io.ros_messages.MAP_FROM_WORLD``).
REP103_FROM_CAMERA = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

#: base_link (x forward, y left, z up) from a forward-looking optical camera (z forward, x right,
#: y down): the usual mounting, pitched down by ``pitch`` degrees.
OPTICAL_IN_BASE = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def base_from_cam(pitch_deg: float) -> np.ndarray:
    return Rotation.from_euler('y', pitch_deg, degrees=True).as_matrix() @ OPTICAL_IN_BASE


def walk(world_from_base: list[np.ndarray], cam_in_base: np.ndarray) -> np.ndarray:
    """Camera poses in a world that is the first camera's frame."""
    first_cam = world_from_base[0] @ cam_in_base
    poses = []
    for base in world_from_base:
        pose = np.eye(4)
        pose[:3, :3] = first_cam.T @ base @ cam_in_base
        poses.append(pose)
    return np.stack(poses)


def test_convention_level_camera_gives_the_fixed_rep103_rotation() -> None:
    # A level optical camera: up is -y, forward is z; the level frame is x = z, y = -x, z = -y.
    rotation = level_frame(REP103_FROM_CAMERA, [0.0, -1.0, 0.0])[:3, :3]
    np.testing.assert_allclose(rotation, [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)


def test_a_pitched_camera_on_a_level_robot_gives_a_level_frame_with_its_heading() -> None:
    cam_in_base = base_from_cam(14.0)  # the sample's 14° look down
    headings = [Rotation.from_euler('z', yaw, degrees=True).as_matrix() for yaw in (0, 20, 45)]
    poses = walk(headings, cam_in_base)
    up_cam = cam_in_base.T @ UP_BASE
    up_world = gravity_up_world(poses, up_cam)
    level = level_frame(REP103_FROM_CAMERA, up_world)[:3, :3]
    assert tilt_deg(up_world, level) == pytest.approx(0.0, abs=1e-9)
    # Unlevelled, the first camera's frame turned to REP 103 axes is 14° off.
    assert tilt_deg(up_world, REP103_FROM_CAMERA) == pytest.approx(14.0, abs=1e-6)
    # Level x is the first camera's heading: base x of the first pose (up to the 14° pitch).
    first_base_x = cam_in_base.T @ np.array([1.0, 0.0, 0.0])  # in the first camera = world
    np.testing.assert_allclose(level @ first_base_x, [1.0, 0.0, 0.0], atol=1e-9)
    assert np.linalg.det(level) == pytest.approx(1.0)


def test_a_wrong_keyframe_rotation_is_left_out() -> None:
    cam_in_base = base_from_cam(0.0)
    headings = [Rotation.from_euler('z', yaw, degrees=True).as_matrix()
                for yaw in range(0, 100, 10)]
    poses = walk(headings, cam_in_base)
    poses[5, :3, :3] = poses[5, :3, :3] @ Rotation.from_euler('x', 90, degrees=True).as_matrix()
    up_cam = cam_in_base.T @ UP_BASE
    truth = np.array([0.0, -1.0, 0.0])
    plain_mean = (poses[:, :3, :3] @ up_cam).mean(axis=0)
    assert np.degrees(np.arccos(plain_mean @ truth / np.linalg.norm(plain_mean))) > 3.0
    up = gravity_up_world(poses, up_cam)
    assert np.degrees(np.arccos(np.clip(up @ truth, -1, 1))) < 1e-6


@pytest.mark.parametrize(('poses', 'up', 'match'), [
    (np.zeros((0, 4, 4)), [0, 0, 1], 'K >= 1'),
    (np.tile(np.eye(4), (2, 1, 1)), [0, 0, 0], 'no direction'),
    (np.tile(np.eye(4), (2, 1, 1)), [0, 1], 'up_cam'),
])
def test_bad_input_is_refused(poses: np.ndarray, up: list[float], match: str) -> None:
    with pytest.raises(GeometryError, match=match):
        gravity_up_world(poses, up)
