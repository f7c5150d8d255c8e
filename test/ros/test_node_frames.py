"""
mapper_node's frames and TF, with the rclpy test double and a simulated tf2 clock.

The camera frame, a map levelled by TF, and ``map -> odom`` when a window ends long after its
images.
"""

from __future__ import annotations

from collections.abc import Callable
import json
from pathlib import Path
from typing import Any

from node_helpers import (
    diagnostic_values,
    feed,
    image_messages,
    settled,
    STAMP0_NS,
    STEP_NS,
    timer,
    wait_until,
)
import numpy as np
import pytest
import ros_fakes
from scipy.spatial.transform import Rotation

from vggt_mapper.geometry.rotation import quat_xyzw_to_matrix
from vggt_mapper.io import ros_messages as conv
from vggt_mapper.io.ply import read_ply
from vggt_mapper.io.tum import read_tum
from vggt_mapper.synthetic import SyntheticPredictor

CAMERA = 'front_camera_optical_frame'
#: base_link (x forward, y left, z up) from an optical camera looking forward.
OPTICAL_IN_BASE = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
#: The synthetic orbit's camera looks down by atan(0.25) = 14.0°, without roll (world +y down).
PITCH_DEG = float(np.degrees(np.arctan(0.25)))
UP_CAM = np.array([0.0, -np.cos(np.arctan(0.25)), -np.sin(np.arctan(0.25))])
DELAY_NS = 30_000_000_000  # a VGGT-1B window on a CPU


def base_from_cam(pitch_deg: float = PITCH_DEG) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_euler('y', pitch_deg, degrees=True).as_matrix() @ OPTICAL_IN_BASE
    pose[:3, 3] = [0.2, 0.0, 0.5]
    return pose


def odom_from_base(stamp_ns: int) -> np.ndarray:
    """Odometry of a robot driving and turning: a different pose at every stamp."""
    seconds = (stamp_ns - STAMP0_NS) / 1e9
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_euler('z', 3.0 * seconds, degrees=True).as_matrix()
    pose[:3, 3] = [1.0 + 0.1 * seconds, 2.0, 0.0]
    return pose


def provide_tf(camera: str = CAMERA, odometry: bool = True) -> None:
    types = conv.rclpy_message_types()
    ros_fakes.Buffer.transforms = {('base_link', camera): conv.matrix_to_transform(
        base_from_cam(), 0, 'base_link', camera, types)}
    if odometry:
        ros_fakes.Buffer.transforms[('odom', 'base_link')] = lambda stamp_ns: (
            conv.matrix_to_transform(odom_from_base(stamp_ns), stamp_ns, 'odom', 'base_link',
                                     types))


def published_poses(node: Any) -> list[np.ndarray]:
    """Return the camera poses of the last ``~/path``, as 4×4 ``map_from_cam``."""
    poses = []
    for stamped in node.publishers['~/path'].messages[-1].poses:
        position, orientation = stamped.pose.position, stamped.pose.orientation
        pose = np.eye(4)
        pose[:3, :3] = quat_xyzw_to_matrix([orientation.x, orientation.y, orientation.z,
                                            orientation.w])
        pose[:3, 3] = [position.x, position.y, position.z]
        poses.append(pose)
    return poses


def tilt_of_cameras_deg(poses: list[np.ndarray]) -> np.ndarray:
    """Angle between each camera's true up direction, in the map, and the map's z axis."""
    ups = np.stack([pose[:3, :3] @ UP_CAM for pose in poses])
    return np.degrees(np.arccos(np.clip(ups[:, 2], -1.0, 1.0)))


def test_the_camera_frame_is_the_images_frame_by_default(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node()
    feed(node, image_messages(frames[1], frame_id=CAMERA))
    tf = ros_fakes.TransformBroadcaster.instances[0].sent[-1]
    assert tf.child_frame_id == CAMERA
    assert not node.logger.messages('warning')


def test_a_camera_frame_differing_from_the_images_is_warned_once(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(camera_frame='cam_left_optical')
    feed(node, image_messages(frames[1][:3], frame_id=CAMERA))
    warnings = [m for m in node.logger.messages('warning') if 'camera_frame' in m]
    assert len(warnings) == 1 and repr(CAMERA) in warnings[0]


def test_tf_levels_the_map_and_the_saved_files_are_in_it(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]],
        tmp_path: Path) -> None:
    provide_tf(odometry=False)
    node = make_node()
    feed(node, image_messages(frames[1], frame_id=CAMERA))
    poses = published_poses(node)
    # Every camera's up (known from TF) is the map's z: the map is level.
    assert np.all(tilt_of_cameras_deg(poses) < 0.5), tilt_of_cameras_deg(poses)
    assert 'levelled by gravity from tf' in diagnostic_values(node)['map_frame']
    assert any('14.0° off level' in m for m in node.logger.messages('info'))

    response = node.call_service('~/save_map')
    assert response.success and "frame 'map'" in response.message
    folder = tmp_path / 'out' / 'latest'
    tum = read_tum(folder / 'trajectory.tum')
    np.testing.assert_allclose([p.world_from_cam[:3, 3] for p in tum],
                               [pose[:3, 3] for pose in poses], atol=1e-5)
    points, _ = read_ply(folder / 'map.ply')
    published, _ = conv.cloud_to_points(node.publishers['~/map'].messages[-1])
    np.testing.assert_allclose(points, published, atol=1e-5)
    note = json.loads((folder / 'map_frame.json').read_text())
    assert note['frame_id'] == 'map' and note['segments']['0']['levelled_by'] == 'tf'
    cameras = json.loads((folder / 'cameras.json').read_text())
    assert 'map_frame.json' in cameras['conventions']['world_frame']


def test_without_tf_the_map_keeps_the_first_cameras_attitude_and_says_so(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(grid_period_s=0.0)  # no grid: no floor fit either
    feed(node, image_messages(frames[1], frame_id=CAMERA))
    tilts = tilt_of_cameras_deg(published_poses(node))
    assert tilts[0] == pytest.approx(PITCH_DEG, abs=0.5)
    assert any(f'no TF base_link -> {CAMERA}' in m for m in node.logger.messages('info'))
    assert 'not levelled' in diagnostic_values(node)['map_frame']


def feed_live(node: Any, images: list[np.ndarray]) -> list[int]:
    """Images stamped by the simulated clock as they arrive, one mapped after the other."""
    stamps = []
    for image in images:
        ros_fakes.Buffer.now_ns += STEP_NS
        stamps.append(ros_fakes.Buffer.now_ns)
        [msg] = image_messages([image], frame_id=CAMERA, stamp0_ns=ros_fakes.Buffer.now_ns)
        node.subscriptions['image'].callback(msg)
        wait_until(lambda: settled(node))
    return stamps


class DelayedPredictor:
    """Each window takes ``DELAY_NS`` of simulated time, as VGGT-1B does on a CPU."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def predict(self, frames_rgb: Any) -> Any:
        ros_fakes.Buffer.now_ns += DELAY_NS
        return self.inner.predict(frames_rgb)


def check_map_to_odom(node: Any) -> None:
    """Check that the correction chained with odometry and the mount gives the VGGT pose."""
    sent = [tf for tf in ros_fakes.TransformBroadcaster.instances[0].sent
            if tf.child_frame_id == 'odom']
    assert sent, node.logger.messages('warning')
    stamp_ns = conv.stamp_to_ns(sent[-1].header.stamp)
    map_from_cam = published_poses(node)[-1]
    np.testing.assert_allclose(
        conv.transform_to_matrix(sent[-1]) @ odom_from_base(stamp_ns) @ base_from_cam(),
        map_from_cam, atol=1e-6)
    assert node._tf_failures == 0


@pytest.mark.parametrize('tf_cache_s', [10.0, 300.0])
def test_map_to_odom_survives_windows_that_end_30_s_after_their_images(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]],
        tf_cache_s: float) -> None:
    ros_fakes.Buffer.now_ns = STAMP0_NS
    provide_tf()
    predictor = DelayedPredictor(SyntheticPredictor(frames[0], model_width=84))
    node = make_node(predictor=predictor, publish_tf='map_to_odom', tf_cache_s=tf_cache_s)
    feed_live(node, frames[1])
    assert node.worker.stats.windows_done >= 2
    # Odometry was recorded as each image arrived: even a 10 s tf2 history is enough.
    check_map_to_odom(node)
    assert len(node._odometry) < len(frames[1])  # forgotten once the windows went past


def test_map_to_odom_from_the_tf2_history_when_odometry_lags_the_images(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    ros_fakes.Buffer.now_ns = STAMP0_NS
    provide_tf()
    ros_fakes.Buffer.latency_ns = {('odom', 'base_link'): 50_000_000}  # not there at intake
    predictor = DelayedPredictor(SyntheticPredictor(frames[0], model_width=84))
    node = make_node(predictor=predictor, publish_tf='map_to_odom')
    feed_live(node, frames[1])
    assert len(node._odometry) == 0
    [buffer] = ros_fakes.Buffer.instances
    assert buffer.cache_ns == 300 * 10**9  # tf_cache_s: the history outlasts the windows
    check_map_to_odom(node)


def test_map_to_odom_without_tf_warns_and_counts(make_node: Callable[..., Any],
                                                 frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(publish_tf='map_to_odom')
    feed(node, image_messages(frames[1]))
    assert ros_fakes.TransformBroadcaster.instances[0].sent == []
    assert node._tf_failures == node.worker.stats.windows_done
    assert any('does not exist' in m for m in node.logger.messages('warning'))
    assert 'TF lookups failed' in diagnostic_values(node)['last_error'] + str(
        node.publishers['/diagnostics'].messages[-1].status[0].message)


def test_republish_timer_resends_map_to_odom_with_the_current_time(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    types = conv.rclpy_message_types()
    ros_fakes.Buffer.transforms = {
        ('base_link', 'camera_optical'): conv.matrix_to_transform(
            np.eye(4), 0, 'base_link', 'camera_optical', types),
        ('odom', 'base_link'): conv.matrix_to_transform(
            np.eye(4), 0, 'odom', 'base_link', types),
    }
    node = make_node(publish_tf='map_to_odom', map_publish_period_s=2.0)
    feed(node, image_messages(frames[1]))
    sent = ros_fakes.TransformBroadcaster.instances[0].sent
    timer(node, 2.0)()
    assert sent[-1].child_frame_id == 'odom'
    assert conv.stamp_to_ns(sent[-1].header.stamp) == ros_fakes.Clock().now().nanoseconds


def test_reset_stops_resending_the_old_camera_pose(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(map_publish_period_s=2.0)
    feed(node, image_messages(frames[1]))
    sent = ros_fakes.TransformBroadcaster.instances[0].sent
    response = node.call_service('~/reset')
    assert response.success
    count = len(sent)
    timer(node, 2.0)()
    assert len(sent) == count, 'the pose of the forgotten map is still sent on /tf'
    assert node.worker.map_snapshot().num_points == 0 and node.worker.trajectory() == []
    assert node.publishers['~/map'].messages[-1].width == 0
    assert node.publishers['~/path'].messages[-1].poses == []
