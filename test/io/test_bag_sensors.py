"""
A rosbag2 with a camera, its CameraInfo and TF maps to a metric map.

The bag is written with ``rosbags`` in the layout a robot records: ``/camera/image_raw``
(sensor_msgs/Image, frame ``camera_optical``), ``/camera/camera_info``, ``/tf`` (``odom →
base_link`` at 50 Hz from a synthetic odometry with a 2 % scale error and noise) and
``/tf_static`` (``base_link → camera_link → camera_optical``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores
from scipy.spatial.transform import Rotation

from vggt_mapper.engine.config import MapperConfig
from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.geometry.sim3 import umeyama_sim3
from vggt_mapper.io import ros_messages as conv
from vggt_mapper.io.errors import InputError
from vggt_mapper.io.rosbag2 import iter_bag_frames
from vggt_mapper.io.tf_buffer import TransformBuffer, TransformLookupError
from vggt_mapper.synthetic import (
    BASE_FROM_CAMERA,
    NOISE_LEVELS,
    simulate_odometry,
    SyntheticPredictor,
    SyntheticSequence,
)

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
TYPES = conv.rosbags_message_types(TYPESTORE)
STAMP0_NS = 1_700_000_000_000_000_000
FRAME_NS = 100_000_000
TF_NS = 20_000_000
CAMERA_LINK_FROM_OPTICAL = np.array(BASE_FROM_CAMERA)
CAMERA_LINK_FROM_OPTICAL[:3, 3] = 0.0
BASE_FROM_CAMERA_LINK = np.eye(4)
BASE_FROM_CAMERA_LINK[:3, 3] = BASE_FROM_CAMERA[:3, 3]


def camera_info(stamp_ns: int, k: np.ndarray, width: int, height: int,
                d: tuple[float, ...] = (0.0,) * 5, model: str = 'plumb_bob') -> Any:
    info = TYPESTORE.types['sensor_msgs/msg/CameraInfo']
    roi = TYPESTORE.types['sensor_msgs/msg/RegionOfInterest']
    projection = np.hstack([k, np.zeros((3, 1))])
    return info(header=conv.make_header(stamp_ns, 'camera_optical', TYPES), height=height,
                width=width, distortion_model=model, d=np.array(d, dtype=np.float64),
                k=k.reshape(-1).astype(np.float64), r=np.eye(3).reshape(-1),
                p=projection.reshape(-1), binning_x=0, binning_y=0,
                roi=roi(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def write_robot_bag(path: Path, sequence: SyntheticSequence, odom_from_base: np.ndarray,
                    *, with_camera_info: bool = True) -> None:
    """Images at 10 Hz, CameraInfo with each, odometry TF at 50 Hz, the static mount."""
    with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        def connection(topic: str, msgtype: str) -> Any:
            return writer.add_connection(topic, msgtype, typestore=TYPESTORE)

        images = connection('/camera/image_raw', 'sensor_msgs/msg/Image')
        infos = connection('/camera/camera_info', 'sensor_msgs/msg/CameraInfo')
        tf = connection('/tf', 'tf2_msgs/msg/TFMessage')
        tf_static = connection('/tf_static', 'tf2_msgs/msg/TFMessage')

        def write(conn: Any, msg: Any, stamp_ns: int) -> None:
            writer.write(conn, stamp_ns, TYPESTORE.serialize_cdr(msg, conn.msgtype))

        write(tf_static, TYPES.tf_message(transforms=[
            conv.matrix_to_transform(BASE_FROM_CAMERA_LINK, STAMP0_NS, 'base_link',
                                     'camera_link', TYPES),
            conv.matrix_to_transform(CAMERA_LINK_FROM_OPTICAL, STAMP0_NS, 'camera_link',
                                     'camera_optical', TYPES)]), STAMP0_NS)
        # Odometry at 50 Hz: the frames' poses, and between them the same motion interpolated.
        for stamp_ns in range(STAMP0_NS, STAMP0_NS + len(sequence) * FRAME_NS, TF_NS):
            position = (stamp_ns - STAMP0_NS) / FRAME_NS
            low = min(int(position), len(sequence) - 2)
            weight = position - low
            pose = np.eye(4)
            rotations = Rotation.from_matrix(odom_from_base[[low, low + 1], :3, :3])
            pose[:3, :3] = (rotations[0] * Rotation.from_rotvec(
                weight * (rotations[0].inv() * rotations[1]).as_rotvec())).as_matrix()
            pose[:3, 3] = (1 - weight) * odom_from_base[low, :3, 3] \
                + weight * odom_from_base[low + 1, :3, 3]
            write(tf, TYPES.tf_message(transforms=[conv.matrix_to_transform(
                pose, stamp_ns, 'odom', 'base_link', TYPES)]), stamp_ns)
        for index in range(len(sequence)):
            stamp_ns = STAMP0_NS + index * FRAME_NS
            write(images, conv.rgb_to_image(sequence.frame(index), stamp_ns, 'camera_optical',
                                            TYPES), stamp_ns)
            if with_camera_info:
                write(infos, camera_info(stamp_ns, sequence.intrinsics, sequence.width,
                                         sequence.height), stamp_ns)


@pytest.fixture(scope='module')
def robot_bag(tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[Path, SyntheticSequence, np.ndarray]:
    sequence = SyntheticSequence.orbit(90, step_m=0.04, height=60, width=80)
    odometry = simulate_odometry(sequence.poses_world_from_cam, seed=3)
    path = tmp_path_factory.mktemp('bags') / 'robot'
    write_robot_bag(path, sequence, odometry.odom_from_base)
    return path, sequence, odometry.odom_from_camera


def test_bag_maps_to_a_metric_map_whose_scale_matches_the_odometry(
        robot_bag: tuple[Path, SyntheticSequence, np.ndarray]) -> None:
    path, sequence, odom_from_camera = robot_bag
    frames = list(iter_bag_frames(path))
    assert all(frame.odom_from_camera is not None for frame in frames)
    np.testing.assert_allclose(frames[7].odom_from_camera, odom_from_camera[7], atol=1e-9)
    np.testing.assert_allclose(frames[7].intrinsics, sequence.intrinsics)
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=126)
    with Mapper(MapperConfig(window_size=8, overlap=3), predictor) as mapper:
        for frame in frames:
            mapper.add_frame(frame.image_rgb, frame.stamp_ns, frame.name,
                             **frame.sensor_kwargs())
        mapper.flush()
        trajectory = mapper.trajectory()
        scale = mapper.metric_scales[0]
    assert scale.metric and scale.source == 'odometry' and scale.samples >= 5
    indices = [int(pose.name.split('_')[1]) for pose in trajectory]
    # Map camera centres against the odometry's: a metric map needs no scale to fit.
    fit = umeyama_sim3(np.array([pose.position_world for pose in trajectory]),
                       odom_from_camera[indices, :3, 3])
    assert fit.scale == pytest.approx(1.0, abs=0.02), scale


def test_camera_info_and_odometry_can_be_turned_off(
        robot_bag: tuple[Path, SyntheticSequence, np.ndarray]) -> None:
    path, _, _ = robot_bag
    frame = next(iter_bag_frames(path, camera_info=False, odometry=False))
    assert frame.intrinsics is None and frame.odom_from_camera is None
    with pytest.raises(InputError, match='not a sensor_msgs/msg/CameraInfo topic'):
        iter_bag_frames(path, camera_info='/camera/info')


def test_distorted_camera_info_undistorts_the_images(tmp_path: Path) -> None:
    sequence = SyntheticSequence.orbit(3, height=60, width=80)
    k = sequence.intrinsics
    with Writer(tmp_path / 'bag', version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        images = writer.add_connection('/cam/image_raw', 'sensor_msgs/msg/Image',
                                       typestore=TYPESTORE)
        infos = writer.add_connection('/cam/camera_info', 'sensor_msgs/msg/CameraInfo',
                                      typestore=TYPESTORE)
        for index in range(3):
            stamp_ns = STAMP0_NS + index * FRAME_NS
            writer.write(images, stamp_ns, TYPESTORE.serialize_cdr(conv.rgb_to_image(
                sequence.frame(index), stamp_ns, 'camera_optical', TYPES), images.msgtype))
            writer.write(infos, stamp_ns, TYPESTORE.serialize_cdr(camera_info(
                stamp_ns, k, 80, 60, (-0.2, 0.05, 0.0, 0.0, 0.0)), infos.msgtype))
    frame = next(iter_bag_frames(tmp_path / 'bag'))
    assert frame.intrinsics is not None and frame.odom_from_camera is None  # no TF in the bag
    assert frame.intrinsics[0, 0] != pytest.approx(k[0, 0], rel=1e-3)  # the new pinhole K
    assert not np.array_equal(frame.image_rgb, sequence.frame(0))


def test_tf_buffer_interpolates_and_never_extrapolates() -> None:
    buffer = TransformBuffer(max_gap_ns=300)
    start, end = np.eye(4), np.eye(4)
    end[:3, :3] = Rotation.from_euler('z', 90, degrees=True).as_matrix()
    end[:3, 3] = (2.0, 0.0, 0.0)
    buffer.add('odom', 'base_link', 100, start, static=False)
    buffer.add('odom', 'base_link', 300, end, static=False)
    mount = np.eye(4)
    mount[:3, 3] = (0.0, 0.0, 1.0)
    buffer.add('base_link', 'camera', 0, mount, static=True)
    middle = buffer.lookup('odom', 'camera', 200)
    np.testing.assert_allclose(middle[:3, 3], (1.0, 0.0, 1.0), atol=1e-12)
    assert Rotation.from_matrix(middle[:3, :3]).as_euler('xyz', degrees=True)[2] \
        == pytest.approx(45.0)
    np.testing.assert_allclose(buffer.lookup('camera', 'odom', 200), np.linalg.inv(middle),
                               atol=1e-12)
    with pytest.raises(TransformLookupError, match='no extrapolation'):
        buffer.lookup('odom', 'camera', 301)
    buffer.add('odom', 'base_link', 700, end, static=False)
    with pytest.raises(TransformLookupError, match='gap'):
        buffer.lookup('odom', 'camera', 500)
    with pytest.raises(TransformLookupError, match="'map' is not in TF"):
        buffer.lookup('map', 'camera', 200)


def test_frames_outside_the_tf_data_are_mapped_without_odometry(tmp_path: Path) -> None:
    sequence = SyntheticSequence.orbit(6, height=60, width=80)
    odometry = simulate_odometry(sequence.poses_world_from_cam)
    # TF covers frames 0-3 only: frames 4 and 5 come after its last sample.
    short = SyntheticSequence(sequence.poses_world_from_cam[:4], height=60, width=80)
    write_robot_bag(tmp_path / 'bag', short, odometry.odom_from_base[:4],
                    with_camera_info=False)
    frames = iter_bag_frames(tmp_path / 'bag')
    read = list(frames)
    assert [frame.odom_from_camera is not None for frame in read] == [True] * 4
    # The TF stream ends at frame 3's stamp plus less than one frame period.
    assert frames.sensors.with_odometry == 4
    late = frames.sensors.odometry_at(frames._tf, 'odom', 'camera_optical',
                                      STAMP0_NS + 5 * FRAME_NS)
    assert late is None
    assert frames.sensors.without_odometry == {'outside the TF data': 1}
