"""
Round trips and malformed cases of vggt_mapper.io.ros_messages, on rosbags message classes.

rosbags messages are serialised to CDR and back, so the bytes are what a bag or a ROS graph
carries; a second, minimal "rclpy-like" layout (array.array data, keyword construction) checks
the duck typing that the live node relies on.
"""

from __future__ import annotations

import array
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from rosbags.typesys import get_typestore, Stores
from scipy.spatial.transform import Rotation

from vggt_mapper.io import ros_messages
from vggt_mapper.io.errors import ConversionError
from vggt_mapper.io.ros_messages import (
    cloud_to_points,
    compressed_to_rgb,
    IMAGE_ENCODINGS,
    image_to_rgb,
    MAP_FROM_WORLD,
    map_from_world_points,
    map_from_world_pose,
    matrix_to_pose,
    matrix_to_transform,
    MessageTypes,
    ns_to_stamp,
    points_to_cloud,
    poses_to_path,
    rgb_to_compressed,
    rgb_to_image,
    rosbags_message_types,
    stamp_to_ns,
    transform_to_matrix,
)
from vggt_mapper.io.tum import tum_line

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


def cdr_round_trip(msg: Any) -> Any:
    """Serialise a rosbags message to CDR bytes and back, as a bag write/read does."""
    msgtype = msg.__msgtype__
    return TYPESTORE.deserialize_cdr(TYPESTORE.serialize_cdr(msg, msgtype), msgtype)


def plain_types() -> MessageTypes:
    """Message classes that behave like rclpy's: keyword construction, array.array bytes."""
    def make(name: str) -> type:
        def init(self: object, **kwargs: object) -> None:
            self.__dict__.update(kwargs)
        cls = type(name, (), {'__init__': init})
        cls.FLOAT32 = 7  # type: ignore[attr-defined]
        return cls

    classes = {field: make(field) for field in ros_messages._TYPE_NAMES}
    return MessageTypes(**classes, byte_array=ros_messages._array_bytes)


@pytest.fixture(params=['rosbags', 'rclpy_like'])
def types(request: pytest.FixtureRequest) -> MessageTypes:
    return rosbags_message_types() if request.param == 'rosbags' else plain_types()


def maybe_cdr(msg: Any, types: MessageTypes) -> Any:
    return cdr_round_trip(msg) if hasattr(msg, '__msgtype__') else msg


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_stamp_round_trip_is_exact(types: MessageTypes) -> None:
    for stamp_ns in (0, 1, 999_999_999, 1_000_000_000, 1_732_000_000_123_456_789, -1):
        stamp = ns_to_stamp(stamp_ns, types)
        assert 0 <= stamp.nanosec < 1_000_000_000
        assert stamp_to_ns(stamp) == stamp_ns
    assert (ns_to_stamp(1_700_000_000_000_000_001, types).sec,
            ns_to_stamp(1_700_000_000_000_000_001, types).nanosec) == (1_700_000_000, 1)


def test_stamp_out_of_int32_range_is_refused(types: MessageTypes) -> None:
    with pytest.raises(ConversionError, match='int32'):
        ns_to_stamp(2**31 * 1_000_000_000, types)


def test_cloud_layout_and_round_trip(types: MessageTypes, rng: np.random.Generator) -> None:
    points = rng.normal(size=(100, 3)).astype(np.float32)
    colors = rng.integers(0, 256, size=(100, 3), dtype=np.uint8)
    msg = maybe_cdr(points_to_cloud(points, colors, 1_234_000_000_005, 'map', types), types)
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 100, 16, 1600)
    assert msg.is_dense is True and not msg.is_bigendian
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ('x', 0, 7, 1), ('y', 4, 7, 1), ('z', 8, 7, 1), ('rgb', 12, 7, 1)]
    assert msg.header.frame_id == 'map' and stamp_to_ns(msg.header.stamp) == 1_234_000_000_005
    data = np.frombuffer(bytes(msg.data), np.uint8)
    assert data.size == 1600
    # The packed colour is 0x00RRGGBB in a little-endian uint32 (RViz's "rgb" convention).
    first_rgb = int.from_bytes(data[12:16].tobytes(), 'little')
    assert first_rgb == (int(colors[0, 0]) << 16) | (int(colors[0, 1]) << 8) | int(colors[0, 2])
    back_points, back_colors = cloud_to_points(msg)
    np.testing.assert_array_equal(back_points, points)
    np.testing.assert_array_equal(back_colors, colors)


def test_cloud_with_nan_is_not_dense(types: MessageTypes) -> None:
    points = np.array([[0, 0, 1], [np.nan, 0, 1]], np.float32)
    msg = points_to_cloud(points, np.zeros((2, 3), np.uint8), 0, 'map', types)
    assert msg.is_dense is False


def test_empty_cloud(types: MessageTypes) -> None:
    msg = maybe_cdr(points_to_cloud(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8),
                                    0, 'map', types), types)
    assert (msg.width, msg.row_step) == (0, 0)
    points, colors = cloud_to_points(msg)
    assert points.shape == (0, 3) and colors is not None and colors.shape == (0, 3)


def test_cloud_reader_handles_organised_padded_big_endian_layout() -> None:
    # 2 x 3 organised cloud, z first, an intensity field, 4 bytes of row padding, big-endian.
    height, width, point_step = 2, 3, 20
    row_step = width * point_step + 4
    dtype = np.dtype({'names': ['z', 'y', 'x', 'intensity', 'rgba'],
                      'formats': ['>f4'] * 4 + ['>u4'], 'offsets': [0, 4, 8, 12, 16],
                      'itemsize': point_step})
    values = np.zeros(height * width, dtype)
    points = np.arange(18, dtype=np.float32).reshape(6, 3)
    values['x'], values['y'], values['z'] = points.T
    values['rgba'] = np.arange(6, dtype=np.uint32) * 0x010203
    raw = np.zeros((height, row_step), np.uint8)
    raw[:, :width * point_step] = values.view(np.uint8).reshape(height, -1)
    fields = [SimpleNamespace(name=n, offset=o, datatype=d, count=1)
              for n, o, d in (('z', 0, 7), ('y', 4, 7), ('x', 8, 7), ('intensity', 12, 7),
                              ('rgba', 16, 6))]
    cloud = SimpleNamespace(height=height, width=width, point_step=point_step,
                            row_step=row_step, is_bigendian=True, fields=fields,
                            data=array.array('B', raw.tobytes()))
    back, colors = cloud_to_points(cloud)
    np.testing.assert_array_equal(back, points)
    assert colors is not None
    np.testing.assert_array_equal(colors[2], [2, 4, 6])


@pytest.mark.parametrize(('change', 'message'), [
    ({'fields': 'no_z'}, "no 'z' field"),
    ({'point_step': 8}, 'does not fit point_step'),
    ({'row_step': 10}, 'row_step 10 <'),
    ({'data': 'truncated'}, 'truncated'),
])
def test_malformed_cloud_is_refused(change: dict[str, object], message: str) -> None:
    types = rosbags_message_types()
    msg = points_to_cloud(np.ones((4, 3), np.float32), np.ones((4, 3), np.uint8), 0, 'map',
                          types)
    if change.get('fields') == 'no_z':
        msg.fields = [f for f in msg.fields if f.name != 'z']
    elif change.get('data') == 'truncated':
        msg.data = msg.data[:-1]
    else:
        for key, value in change.items():
            setattr(msg, key, value)
    with pytest.raises(ConversionError, match=message):
        cloud_to_points(msg)


@pytest.mark.parametrize('encoding', sorted(IMAGE_ENCODINGS))
def test_image_round_trip_every_encoding(types: MessageTypes, encoding: str,
                                         rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    msg = maybe_cdr(rgb_to_image(rgb, 42, 'cam_optical', types, encoding), types)
    assert msg.encoding == encoding and msg.header.frame_id == 'cam_optical'
    back = image_to_rgb(msg)
    assert back.shape == (5, 7, 3) and back.dtype == np.uint8 and back.flags.c_contiguous
    if encoding.startswith('mono'):
        gray = np.round(rgb.mean(axis=2)).astype(np.uint8)
        np.testing.assert_array_equal(back, np.repeat(gray[:, :, None], 3, axis=2))
    else:
        np.testing.assert_array_equal(back, rgb)


def test_image_with_row_padding_and_known_pixels() -> None:
    # 2 x 2 bgr8 with 2 padding bytes per row: pixel (row 1, col 0) is pure red.
    rows = [[0, 0, 0, 0, 0, 0, 9, 9], [0, 0, 255, 0, 255, 0, 9, 9]]
    msg = SimpleNamespace(height=2, width=2, step=8, encoding='bgr8', is_bigendian=0,
                          data=bytes(sum(rows, [])))
    rgb = image_to_rgb(msg)
    np.testing.assert_array_equal(rgb[1, 0], [255, 0, 0])
    np.testing.assert_array_equal(rgb[1, 1], [0, 255, 0])


def test_mono16_scaling_rule_keeps_the_high_byte() -> None:
    values = np.array([[0, 255, 256, 65535]], dtype='>u2')
    msg = SimpleNamespace(height=1, width=4, step=8, encoding='mono16', is_bigendian=1,
                          data=values.tobytes())
    np.testing.assert_array_equal(image_to_rgb(msg)[0, :, 0], [0, 0, 1, 255])


@pytest.mark.parametrize(('fields', 'message'), [
    ({'encoding': 'yuv422'}, "unsupported image encoding 'yuv422'"),
    ({'step': 5}, 'step 5 is smaller'),
    ({'data': bytes(11)}, 'truncated'),
    ({'data': bytes(13)}, 'too long'),
    ({'height': 0, 'data': b''}, 'empty image'),
])
def test_malformed_image_is_refused(fields: dict[str, object], message: str) -> None:
    msg = SimpleNamespace(height=2, width=2, step=6, encoding='rgb8', is_bigendian=0,
                          data=bytes(12))
    for key, value in fields.items():
        setattr(msg, key, value)
    with pytest.raises(ConversionError, match=message):
        image_to_rgb(msg)


def test_compressed_png_round_trip_is_lossless(types: MessageTypes,
                                               rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, size=(6, 9, 3), dtype=np.uint8)
    msg = maybe_cdr(rgb_to_compressed(rgb, 5, 'cam_optical', types, 'png'), types)
    assert msg.format == 'png'
    np.testing.assert_array_equal(compressed_to_rgb(msg), rgb)


def test_compressed_jpeg_decodes_close(types: MessageTypes) -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :, 0] = 200
    back = compressed_to_rgb(rgb_to_compressed(rgb, 5, 'cam', types, 'jpeg'))
    assert np.abs(back.astype(int) - rgb).max() <= 3


@pytest.mark.parametrize(('fmt', 'data', 'message'), [
    ('jpeg', b'', 'has no data'),
    ('jpeg', b'not a jpeg at all', 'could not be decoded'),
    ('16UC1; compressedDepth', b'\x00' * 20, 'depth transport'),
])
def test_malformed_compressed_is_refused(fmt: str, data: bytes, message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        compressed_to_rgb(SimpleNamespace(format=fmt, data=array.array('B', data)))


def test_map_frame_is_rep103_body_axes() -> None:
    # Camera optical axes in the world (x right, y down, z forward) → map x forward, y left, z up.
    forward, right, down = np.eye(3)[2], np.eye(3)[0], np.eye(3)[1]
    np.testing.assert_array_equal(map_from_world_points(forward[None]), [[1, 0, 0]])
    np.testing.assert_array_equal(map_from_world_points(right[None]), [[0, -1, 0]])
    np.testing.assert_array_equal(map_from_world_points(down[None]), [[0, 0, -1]])
    assert np.isclose(np.linalg.det(MAP_FROM_WORLD[:3, :3]), 1.0)
    # The first keyframe (identity world_from_cam) sits at the map origin, looking along +x.
    map_from_cam = map_from_world_pose(np.eye(4))
    np.testing.assert_array_equal(map_from_cam[:3, 2], [1, 0, 0])  # optical z → map x
    points = np.random.default_rng(0).normal(size=(10, 3))
    np.testing.assert_allclose(map_from_world_points(points),
                               points @ MAP_FROM_WORLD[:3, :3].T, rtol=1e-6)


def test_transform_and_pose_round_trip(types: MessageTypes) -> None:
    pose = np.eye(4)
    pose[:3, :3] = Rotation.from_euler('xyz', [0.3, -1.2, 2.5]).as_matrix()
    pose[:3, 3] = [1.5, -2.0, 0.25]
    tf = maybe_cdr(matrix_to_transform(pose, 77, 'map', 'cam_optical', types), types)
    assert (tf.header.frame_id, tf.child_frame_id, stamp_to_ns(tf.header.stamp)) == (
        'map', 'cam_optical', 77)
    np.testing.assert_allclose(transform_to_matrix(tf), pose, atol=1e-12)
    stamped = maybe_cdr(matrix_to_pose(pose, 78, 'map', types), types)
    p, q = stamped.pose.position, stamped.pose.orientation
    rebuilt = np.eye(4)
    rebuilt[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    rebuilt[:3, 3] = [p.x, p.y, p.z]
    np.testing.assert_allclose(rebuilt, pose, atol=1e-12)


def test_convention_pose_messages_and_tum_lines_share_one_quaternion(
        types: MessageTypes) -> None:
    # q and -q are one rotation; every output picks qw >= 0 through geometry.rotation, so a pose
    # reads the same in /tf, ~/pose, ~/path and trajectory.tum.
    poses = np.tile(np.eye(4), (20, 1, 1))
    poses[:, :3, :3] = Rotation.random(20, random_state=0).as_matrix()
    path = poses_to_path(poses, list(range(20)), 20, 'map', types)
    for pose, stamped in zip(poses, path.poses, strict=True):
        q = stamped.pose.orientation
        tf_q = matrix_to_transform(pose, 0, 'map', 'cam', types).transform.rotation
        tum_quat = [float(value) for value in tum_line(0, pose).split()[4:]]
        assert q.w >= 0
        assert [q.x, q.y, q.z, q.w] == [tf_q.x, tf_q.y, tf_q.z, tf_q.w] == tum_quat


def test_path_round_trip(types: MessageTypes) -> None:
    rotations = Rotation.from_euler('z', [[0.0], [0.5], [1.0]]).as_matrix()
    poses = np.tile(np.eye(4), (3, 1, 1))
    poses[:, :3, :3] = rotations
    poses[:, :3, 3] = np.arange(9).reshape(3, 3)
    path = maybe_cdr(poses_to_path(poses, [10, 20, 30], 30, 'map', types), types)
    assert path.header.frame_id == 'map' and stamp_to_ns(path.header.stamp) == 30
    assert [stamp_to_ns(p.header.stamp) for p in path.poses] == [10, 20, 30]
    for pose, stamped in zip(poses, path.poses, strict=True):
        np.testing.assert_allclose([stamped.pose.position.x, stamped.pose.position.y,
                                    stamped.pose.position.z], pose[:3, 3])
    assert poses_to_path(np.zeros((0, 4, 4)), [], 0, 'map', types).poses == []
    with pytest.raises(ConversionError, match='2 stamps'):
        poses_to_path(poses, [1, 2], 0, 'map', types)


def test_non_finite_pose_and_zero_quaternion_are_refused(types: MessageTypes) -> None:
    pose = np.eye(4)
    pose[0, 3] = np.nan
    with pytest.raises(ConversionError, match='NaN'):
        matrix_to_transform(pose, 0, 'map', 'cam', types)
    zero = SimpleNamespace(translation=SimpleNamespace(x=0, y=0, z=0),
                           rotation=SimpleNamespace(x=0, y=0, z=0, w=0))
    with pytest.raises(ConversionError, match='norm'):
        transform_to_matrix(zero)
