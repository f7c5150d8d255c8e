"""The map frame of each segment and the data carried into it (``vggt_mapper.ros.frames``)."""

from __future__ import annotations

import math

import numpy as np

from vggt_mapper.engine.types import KeyframePose, MapSnapshot
from vggt_mapper.io.ros_messages import MAP_FROM_WORLD
from vggt_mapper.ros.frames import (
    camera_frame_of,
    map_frame_from_up,
    poses_in_map,
    snapshot_in_map,
    UNLEVELLED,
)


def keyframe(index: int, segment: int, position: list[float]) -> KeyframePose:
    pose = np.eye(4)
    pose[:3, 3] = position
    return KeyframePose(index, f'k{index}', index, pose, np.eye(3), (4, 4), np.eye(3), (4, 4),
                        segment)


def test_convention_unknown_gravity_is_the_fixed_rep103_turn() -> None:
    frame = map_frame_from_up(None, 'tf')
    assert frame is UNLEVELLED and frame.levelled_by == '' and math.isnan(frame.tilt_deg)
    np.testing.assert_array_equal(frame.map_from_world, MAP_FROM_WORLD)
    assert 'not levelled' in frame.describe()


def test_a_tilted_up_direction_gives_a_level_frame_and_its_tilt() -> None:
    up_world = np.array([0.0, -np.cos(0.3), -np.sin(0.3)])  # the camera looks 0.3 rad down
    frame = map_frame_from_up(up_world, 'tf')
    np.testing.assert_allclose(frame.map_from_world[:3, :3] @ up_world, [0, 0, 1], atol=1e-12)
    assert abs(frame.tilt_deg - np.degrees(0.3)) < 1e-9
    assert 'levelled by gravity from tf' in frame.describe()


def test_each_segment_goes_into_its_own_map_frame() -> None:
    frames = {0: map_frame_from_up(np.array([0.0, -1.0, 0.0]), 'tf'),
              1: map_frame_from_up(np.array([0.0, 0.0, -1.0]), 'tf')}
    poses = poses_in_map([keyframe(0, 0, [0.0, 1.0, 0.0]), keyframe(1, 1, [0.0, 0.0, 1.0]),
                          keyframe(2, 2, [1.0, 0.0, 0.0])], frames)
    # Each keyframe's position along its segment's down direction is -1 in map z.
    assert poses[0].world_from_cam[2, 3] == -1.0 and poses[1].world_from_cam[2, 3] == -1.0
    np.testing.assert_allclose(poses[2].world_from_cam[:3, 3], MAP_FROM_WORLD[:3, :3] @ [1, 0, 0])
    snapshot = MapSnapshot(np.array([[0, 1, 0], [0, 0, 1]], np.float32),
                           np.zeros((2, 3), np.uint8), np.array([0, 1], np.int32))
    moved = snapshot_in_map(snapshot, frames)
    np.testing.assert_allclose(moved.points_world[:, 2], [-1.0, -1.0], atol=1e-6)
    assert moved.points_world.dtype == np.float32
    np.testing.assert_array_equal(moved.segments, snapshot.segments)


def test_camera_frame_parameter_then_images_then_default() -> None:
    assert camera_frame_of('cam_optical', 'front_optical_frame') == 'cam_optical'
    assert camera_frame_of('', 'front_optical_frame') == 'front_optical_frame'
    assert camera_frame_of('', '') == 'camera_optical'
