"""
Pure, vectorised numpy ⇄ ROS message conversions, for rclpy and rosbags message classes alike.

Nothing here imports rclpy: the message classes are passed in as a ``MessageTypes`` (built by
``rosbags_message_types()`` for bag files or ``rclpy_message_types()`` in the live node), and
incoming messages are read by duck typing (``msg.height``, ``msg.data``, ...), so the live node
and the bag writer publish byte-identical messages and tests need no ROS graph.

Frames (REP 103 / REP 105):

* The engine's world frame is VGGT's first-keyframe camera frame with OpenCV optical axes
  (x right, y down, z forward). The published ``map`` frame has REP 103 body axes (x forward,
  y left, z up) and the same origin: ``p_map = R_map_from_world @ p_world`` with the fixed
  rotation ``MAP_FROM_WORLD`` (x_map = z_world, y_map = -x_world, z_map = -y_world). ``map`` is
  therefore level only if the first keyframe's camera was level.
* Camera poses are published as ``map → <camera>_optical`` transforms: the child frame keeps the
  optical axes (REP 103 ``_optical`` suffix), so ``T_map_optical = MAP_FROM_WORLD @
  world_from_cam``.
* Map units are the engine's (the first window's arbitrary scale times ``MapperConfig.scale``).
* The *levelled* map frame (``level_map_from_world``) is ``MAP_FROM_WORLD`` turned by the
  shortest rotation that makes gravity's up its +z: the frame of the occupancy grid
  (``grid_to_occupancy_msg``), level whatever the first camera's attitude.

Stamps are integer nanoseconds (``stamp_ns``) and become ``builtin_interfaces/Time`` with
``sec = stamp_ns // 10**9`` and ``nanosec = stamp_ns % 10**9`` (exact, no floats).
"""

from __future__ import annotations

import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from vggt_mapper.geometry.gravity import level_frame
from vggt_mapper.geometry.rotation import matrix_to_quat_xyzw, quat_xyzw_to_matrix
from vggt_mapper.io.errors import ConversionError
from vggt_mapper.io.images import decode_image, rgb8_from_pixels

if TYPE_CHECKING:  # the engine (gtsam, faiss) is not loaded for a type
    from vggt_mapper.engine.occupancy import OccupancyGrid

__all__ = [
    'CLOUD_POINT_STEP',
    'CameraInfoRecord',
    'IMAGE_ENCODINGS',
    'MAP_FROM_WORLD',
    'MessageTypes',
    'camera_info_from_msg',
    'cloud_to_points',
    'compressed_to_rgb',
    'grid_to_occupancy_msg',
    'image_to_rgb',
    'level_map_from_world',
    'make_header',
    'map_from_world_pose',
    'map_from_world_points',
    'matrix_to_pose',
    'matrix_to_transform',
    'ns_to_stamp',
    'points_to_cloud',
    'poses_to_path',
    'rclpy_message_types',
    'rgb_to_compressed',
    'rgb_to_image',
    'rosbags_message_types',
    'stamp_to_ns',
    'transform_to_matrix',
]

NS_PER_S = 1_000_000_000

#: 4×4 rotation from the engine's world frame (OpenCV optical axes) to the REP 103 ``map`` frame.
MAP_FROM_WORLD: NDArray[np.float64] = np.array([
    [0.0, 0.0, 1.0, 0.0],
    [-1.0, 0.0, 0.0, 0.0],
    [0.0, -1.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
])
MAP_FROM_WORLD.flags.writeable = False

# sensor_msgs/PointField datatype constants → little/big-endian-free numpy kinds.
_POINT_FIELD_DTYPES: dict[int, str] = {
    1: 'i1', 2: 'u1', 3: 'i2', 4: 'u2', 5: 'i4', 6: 'u4', 7: 'f4', 8: 'f8',
}
_FLOAT32 = 7
_UINT32 = 6

#: Bytes per published point: x, y, z float32 and a packed rgb (float32 holding 0x00RRGGBB).
CLOUD_POINT_STEP = 16
_CLOUD_DTYPE = np.dtype({'names': ['x', 'y', 'z', 'rgb'],
                         'formats': ['<f4', '<f4', '<f4', '<u4'],
                         'offsets': [0, 4, 8, 12], 'itemsize': CLOUD_POINT_STEP})
#: With a ``segment`` (uint32) per point: the map segment it belongs to.
SEGMENT_CLOUD_POINT_STEP = 20
_SEGMENT_CLOUD_DTYPE = np.dtype({'names': ['x', 'y', 'z', 'rgb', 'segment'],
                                 'formats': ['<f4', '<f4', '<f4', '<u4', '<u4'],
                                 'offsets': [0, 4, 8, 12, 16],
                                 'itemsize': SEGMENT_CLOUD_POINT_STEP})

#: Raw image encodings ``image_to_rgb`` reads → (channels, bytes per channel).
IMAGE_ENCODINGS: dict[str, tuple[int, int]] = {
    'rgb8': (3, 1), 'bgr8': (3, 1), 'rgba8': (4, 1), 'bgra8': (4, 1),
    'mono8': (1, 1), 'mono16': (1, 2),
}


def _numpy_int8(data: bytes) -> NDArray[np.int8]:
    return np.frombuffer(data, dtype=np.int8).copy()


@dataclass(frozen=True)
class MessageTypes:
    """
    The message classes the builders instantiate, from rclpy packages or a rosbags typestore.

    Every message is built with all fields as keywords, which both libraries accept.

    :param time: ``builtin_interfaces/msg/Time``.
    :param header: ``std_msgs/msg/Header``.
    :param point_field: ``sensor_msgs/msg/PointField``.
    :param point_cloud2: ``sensor_msgs/msg/PointCloud2``.
    :param image: ``sensor_msgs/msg/Image``.
    :param compressed_image: ``sensor_msgs/msg/CompressedImage``.
    :param vector3: ``geometry_msgs/msg/Vector3``.
    :param point: ``geometry_msgs/msg/Point``.
    :param quaternion: ``geometry_msgs/msg/Quaternion``.
    :param transform: ``geometry_msgs/msg/Transform``.
    :param transform_stamped: ``geometry_msgs/msg/TransformStamped``.
    :param pose: ``geometry_msgs/msg/Pose``.
    :param pose_stamped: ``geometry_msgs/msg/PoseStamped``.
    :param path: ``nav_msgs/msg/Path``.
    :param tf_message: ``tf2_msgs/msg/TFMessage``.
    :param occupancy_grid: ``nav_msgs/msg/OccupancyGrid``.
    :param map_meta_data: ``nav_msgs/msg/MapMetaData``.
    :param byte_array: turns raw bytes into what the library stores in a ``uint8[]`` field
        (a numpy uint8 array for rosbags, an ``array.array('B')`` for rclpy).
    :param int8_array: the same for an ``int8[]`` field (numpy int8, ``array.array('b')``).
    """

    time: Any
    header: Any
    point_field: Any
    point_cloud2: Any
    image: Any
    compressed_image: Any
    vector3: Any
    point: Any
    quaternion: Any
    transform: Any
    transform_stamped: Any
    pose: Any
    pose_stamped: Any
    path: Any
    tf_message: Any
    occupancy_grid: Any
    map_meta_data: Any
    byte_array: Callable[[bytes], Any]
    int8_array: Callable[[bytes], Any] = _numpy_int8  # rosbags' storage; rclpy: array('b')


_TYPE_NAMES = {
    'time': 'builtin_interfaces/msg/Time',
    'header': 'std_msgs/msg/Header',
    'point_field': 'sensor_msgs/msg/PointField',
    'point_cloud2': 'sensor_msgs/msg/PointCloud2',
    'image': 'sensor_msgs/msg/Image',
    'compressed_image': 'sensor_msgs/msg/CompressedImage',
    'vector3': 'geometry_msgs/msg/Vector3',
    'point': 'geometry_msgs/msg/Point',
    'quaternion': 'geometry_msgs/msg/Quaternion',
    'transform': 'geometry_msgs/msg/Transform',
    'transform_stamped': 'geometry_msgs/msg/TransformStamped',
    'pose': 'geometry_msgs/msg/Pose',
    'pose_stamped': 'geometry_msgs/msg/PoseStamped',
    'path': 'nav_msgs/msg/Path',
    'tf_message': 'tf2_msgs/msg/TFMessage',
    'occupancy_grid': 'nav_msgs/msg/OccupancyGrid',
    'map_meta_data': 'nav_msgs/msg/MapMetaData',
}


def _numpy_bytes(data: bytes) -> NDArray[np.uint8]:
    return np.frombuffer(data, dtype=np.uint8).copy()


def _array_int8(data: bytes) -> array.array[int]:
    buffer = array.array('b')  # rclpy's storage for int8[] (OccupancyGrid.data)
    buffer.frombytes(data)
    return buffer


def _array_bytes(data: bytes) -> array.array[int]:
    # array.array('B') is rclpy's own storage for uint8[]: assigning it skips the per-byte checks
    # the generated setters run on bytes or lists.
    buffer = array.array('B')
    buffer.frombytes(data)
    return buffer


def rosbags_message_types(typestore: Any = None) -> MessageTypes:
    """
    Message classes of a rosbags typestore (ROS 2 Jazzy definitions by default).

    :param typestore: a ``rosbags.typesys`` typestore; None uses ``Stores.ROS2_JAZZY``.
    :return: the classes, with numpy uint8 arrays for ``uint8[]`` fields.
    """
    if typestore is None:
        from rosbags.typesys import get_typestore, Stores
        typestore = get_typestore(Stores.ROS2_JAZZY)
    classes = {key: typestore.types[name] for key, name in _TYPE_NAMES.items()}
    return MessageTypes(**classes, byte_array=_numpy_bytes, int8_array=_numpy_int8)


def rclpy_message_types() -> MessageTypes:
    """
    Message classes of the installed ROS 2 Python message packages (needs a sourced ROS 2).

    :return: the classes, with ``array.array('B')`` for ``uint8[]`` fields.
    """
    import importlib

    classes = {}
    for key, name in _TYPE_NAMES.items():
        package, _, message = name.split('/')
        classes[key] = getattr(importlib.import_module(f'{package}.msg'), message)
    return MessageTypes(**classes, byte_array=_array_bytes, int8_array=_array_int8)


def _as_uint8(data: Any) -> NDArray[np.uint8]:
    """View a message's ``uint8[]`` field (numpy array, array.array, bytes, list) as uint8."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else (
            np.asarray(data, dtype=np.uint8).reshape(-1))
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


# ---------------------------------------------------------------------------------------------
# Stamps


def stamp_to_ns(stamp: Any) -> int:
    """
    Integer nanoseconds of a ``builtin_interfaces/Time`` (exact, no float rounding).

    :param stamp: any object with integer ``sec`` and ``nanosec``.
    :return: ``sec * 10**9 + nanosec``.
    """
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int, types: MessageTypes) -> Any:
    """
    Build a ``builtin_interfaces/Time`` from integer nanoseconds.

    :param stamp_ns: nanoseconds since the epoch (negative allowed; ``nanosec`` stays in
        [0, 10**9)).
    :param types: the message classes to instantiate.
    :return: the Time message.
    :raises ConversionError: if the seconds do not fit Time's int32 ``sec``.
    """
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    if not -2**31 <= sec < 2**31:
        raise ConversionError(f'stamp {stamp_ns} ns does not fit builtin_interfaces/Time '
                              f'(int32 seconds); pass nanoseconds since the epoch')
    return types.time(sec=sec, nanosec=nanosec)


def make_header(stamp_ns: int, frame_id: str, types: MessageTypes) -> Any:
    """
    Build a ``std_msgs/Header``.

    :param stamp_ns: stamp, integer nanoseconds.
    :param frame_id: the frame.
    :param types: the message classes to instantiate.
    :return: the Header.
    """
    return types.header(stamp=ns_to_stamp(stamp_ns, types), frame_id=frame_id)


# ---------------------------------------------------------------------------------------------
# Frames and poses


def map_from_world_points(points_world: NDArray[np.floating]) -> NDArray[np.float32]:
    """
    Rotate engine-world points (OpenCV axes) into the REP 103 ``map`` frame.

    :param points_world: (N, 3) points in the world frame.
    :return: (N, 3) float32 points in the map frame (x forward, y left, z up).
    """
    points = np.asarray(points_world, dtype=np.float32).reshape(-1, 3)
    # x_map = z_world, y_map = -x_world, z_map = -y_world (rows of MAP_FROM_WORLD).
    return np.stack([points[:, 2], -points[:, 0], -points[:, 1]], axis=1)


def map_from_world_pose(world_from_cam: NDArray[np.floating]) -> NDArray[np.float64]:
    """
    Express a camera pose in the ``map`` frame; the camera keeps its optical axes.

    :param world_from_cam: 4×4 (or (K, 4, 4)) camera pose in the engine's world frame.
    :return: ``MAP_FROM_WORLD @ world_from_cam``, float64, the pose of ``<camera>_optical``.
    """
    return MAP_FROM_WORLD @ np.asarray(world_from_cam, dtype=np.float64)


def level_map_from_world(up_world: NDArray[np.floating]) -> NDArray[np.float64]:
    """
    Return the ``map`` frame levelled by gravity: ``MAP_FROM_WORLD`` turned so up is +z.

    The shortest rotation does it (``geometry.gravity.level_frame``), so the heading changes
    no more than levelling needs: with a level first camera this is ``MAP_FROM_WORLD``.

    :param up_world: (3,) up (against gravity) in the engine's world frame, any length: from
        TF (``engine.floor.camera_up_world``) or the floor fit (``FloorPlane.up_world``).
    :return: 4×4 float64 ``levelled_map_from_world`` (a rotation; the origin stays the first
        keyframe's camera).
    """
    return level_frame(MAP_FROM_WORLD, up_world)


def _split_poses(poses: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Split (K, 4, 4) rigid poses into translations (K, 3) and quaternions xyzw (K, 4), qw ≥ 0."""
    matrices = np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)
    if not np.all(np.isfinite(matrices)):
        raise ConversionError('pose contains NaN or infinite values')
    quat_xyzw = matrix_to_quat_xyzw(matrices[:, :3, :3])
    return matrices[:, :3, 3], quat_xyzw


def matrix_to_transform(parent_from_child: NDArray[np.floating], stamp_ns: int, parent: str,
                        child: str, types: MessageTypes) -> Any:
    """
    Build a ``geometry_msgs/TransformStamped`` (the tf of ``child`` in ``parent``).

    :param parent_from_child: 4×4 rigid transform mapping child coordinates to parent ones.
    :param stamp_ns: header stamp, integer nanoseconds.
    :param parent: header.frame_id.
    :param child: child_frame_id.
    :param types: the message classes to instantiate.
    :return: the TransformStamped.
    :raises ConversionError: if the matrix has non-finite entries.
    """
    translations, quats = _split_poses(parent_from_child)
    (tx, ty, tz), (qx, qy, qz, qw) = translations[0], quats[0]
    transform = types.transform(
        translation=types.vector3(x=float(tx), y=float(ty), z=float(tz)),
        rotation=types.quaternion(x=float(qx), y=float(qy), z=float(qz), w=float(qw)))
    return types.transform_stamped(header=make_header(stamp_ns, parent, types),
                                   child_frame_id=child, transform=transform)


def transform_to_matrix(transform: Any) -> NDArray[np.float64]:
    """
    4×4 matrix of a ``Transform`` or ``TransformStamped`` (what tf2 lookups return).

    :param transform: a message with ``translation``/``rotation``, or a stamped one.
    :return: 4×4 float64 parent-from-child matrix.
    :raises ConversionError: if the quaternion has zero or non-finite norm.
    """
    inner = getattr(transform, 'transform', transform)
    t, q = inner.translation, inner.rotation
    quat_xyzw = np.array([q.x, q.y, q.z, q.w], dtype=np.float64)
    norm = float(np.linalg.norm(quat_xyzw))
    if not np.isfinite(norm) or norm < 1e-9:
        raise ConversionError(f'transform rotation quaternion {quat_xyzw.tolist()} has no '
                              f'usable norm')
    matrix = np.eye(4)
    matrix[:3, :3] = quat_xyzw_to_matrix(quat_xyzw)  # normalises q
    matrix[:3, 3] = [t.x, t.y, t.z]
    return matrix


def _pose_message(translation: NDArray[np.float64], quat_xyzw: NDArray[np.float64],
                  types: MessageTypes) -> Any:
    return types.pose(
        position=types.point(x=float(translation[0]), y=float(translation[1]),
                             z=float(translation[2])),
        orientation=types.quaternion(x=float(quat_xyzw[0]), y=float(quat_xyzw[1]),
                                     z=float(quat_xyzw[2]), w=float(quat_xyzw[3])))


def matrix_to_pose(frame_from_body: NDArray[np.floating], stamp_ns: int, frame_id: str,
                   types: MessageTypes) -> Any:
    """
    Build a ``geometry_msgs/PoseStamped``.

    :param frame_from_body: 4×4 rigid pose of the body in ``frame_id``.
    :param stamp_ns: header stamp, integer nanoseconds.
    :param frame_id: header.frame_id.
    :param types: the message classes to instantiate.
    :return: the PoseStamped.
    :raises ConversionError: if the matrix has non-finite entries.
    """
    translations, quats = _split_poses(frame_from_body)
    return types.pose_stamped(header=make_header(stamp_ns, frame_id, types),
                              pose=_pose_message(translations[0], quats[0], types))


def poses_to_path(frame_from_bodies: NDArray[np.floating], stamps_ns: Sequence[int],
                  stamp_ns: int, frame_id: str, types: MessageTypes) -> Any:
    """
    Build a ``nav_msgs/Path`` from K poses (quaternions computed in one batch).

    :param frame_from_bodies: (K, 4, 4) poses in ``frame_id``, K may be 0.
    :param stamps_ns: K stamps of the poses, integer nanoseconds.
    :param stamp_ns: the Path header stamp.
    :param frame_id: frame of the path and of every pose.
    :param types: the message classes to instantiate.
    :return: the Path.
    :raises ConversionError: if the counts differ or a pose has non-finite entries.
    """
    matrices = np.asarray(frame_from_bodies, dtype=np.float64).reshape(-1, 4, 4)
    if len(stamps_ns) != matrices.shape[0]:
        raise ConversionError(f'{matrices.shape[0]} poses but {len(stamps_ns)} stamps')
    poses = []
    if matrices.shape[0]:
        translations, quats = _split_poses(matrices)
        poses = [types.pose_stamped(header=make_header(stamp, frame_id, types),
                                    pose=_pose_message(translation, quat, types))
                 for stamp, translation, quat in zip(stamps_ns, translations, quats,
                                                     strict=True)]
    return types.path(header=make_header(stamp_ns, frame_id, types), poses=poses)


# ---------------------------------------------------------------------------------------------
# Point clouds


def points_to_cloud(points: NDArray[np.floating], colors_rgb: NDArray[np.uint8], stamp_ns: int,
                    frame_id: str, types: MessageTypes,
                    segment_ids: NDArray[np.integer] | None = None) -> Any:
    """
    Build an unorganised ``sensor_msgs/PointCloud2`` with x, y, z and packed rgb.

    With ``segment_ids`` a ``segment`` field (UINT32 at offset 16, ``point_step`` 20) says which
    map segment each point belongs to (RViz can colour by it).

    Layout (little-endian, ``point_step`` 16): x, y, z float32 at offsets 0, 4, 8 and ``rgb`` at
    12, declared FLOAT32 as RViz and PCL expect but holding the uint32 ``0x00RRGGBB`` bits.
    ``height`` 1, ``width`` N, ``row_step`` 16·N, ``is_dense`` true iff every point is finite.

    :param points: (N, 3) coordinates in ``frame_id`` (N may be 0).
    :param colors_rgb: (N, 3) uint8 colours.
    :param stamp_ns: header stamp, integer nanoseconds.
    :param frame_id: header.frame_id.
    :param types: the message classes to instantiate.
    :param segment_ids: optional (N,) segment of each point.
    :return: the PointCloud2.
    :raises ConversionError: if the shapes disagree or the colours are not uint8.
    """
    points = np.asarray(points)
    colors = np.asarray(colors_rgb)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ConversionError(f'points must be (N, 3), got shape {points.shape}')
    if colors.shape != points.shape or colors.dtype != np.uint8:
        raise ConversionError(f'colors_rgb must be uint8 {points.shape}, got '
                              f'{colors.dtype} {colors.shape}')
    dtype = _CLOUD_DTYPE if segment_ids is None else _SEGMENT_CLOUD_DTYPE
    cloud = np.empty(points.shape[0], dtype=dtype)
    cloud['x'], cloud['y'], cloud['z'] = points[:, 0], points[:, 1], points[:, 2]
    rgb = colors.astype(np.uint32)
    cloud['rgb'] = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    fields = [types.point_field(name=name, offset=offset, datatype=_FLOAT32, count=1)
              for name, offset in (('x', 0), ('y', 4), ('z', 8), ('rgb', 12))]
    if segment_ids is not None:
        segments = np.asarray(segment_ids).reshape(-1)
        if segments.shape[0] != points.shape[0]:
            raise ConversionError(f'segment_ids must have {points.shape[0]} entries, got '
                                  f'{segments.shape[0]}')
        cloud['segment'] = segments
        fields.append(types.point_field(name='segment', offset=16, datatype=_UINT32, count=1))
    return types.point_cloud2(
        header=make_header(stamp_ns, frame_id, types), height=1, width=int(points.shape[0]),
        fields=fields, is_bigendian=False, point_step=dtype.itemsize,
        row_step=dtype.itemsize * int(points.shape[0]),
        data=types.byte_array(cloud.tobytes()),
        is_dense=bool(np.isfinite(points).all()))


def cloud_to_points(cloud: Any) -> tuple[NDArray[np.float32], NDArray[np.uint8] | None]:
    """
    Read x, y, z and (if present) packed ``rgb``/``rgba`` from any ``PointCloud2`` layout.

    Organised clouds (height > 1), row padding (row_step > width·point_step), extra fields and
    big-endian data are handled; points are returned in row-major order, NaNs kept.

    :param cloud: a PointCloud2 (rclpy or rosbags).
    :return: (N, 3) float32 points and (N, 3) uint8 colours, or None without a colour field.
    :raises ConversionError: if x/y/z are missing, a field lies outside ``point_step``,
        ``row_step`` is too small, or ``data`` is shorter than ``row_step·height``.
    """
    height, width = int(cloud.height), int(cloud.width)
    point_step, row_step = int(cloud.point_step), int(cloud.row_step)
    data = _as_uint8(cloud.data)
    order = '>' if cloud.is_bigendian else '<'
    fields = {field.name: field for field in cloud.fields}
    for axis in ('x', 'y', 'z'):
        if axis not in fields:
            raise ConversionError(f'PointCloud2 has no {axis!r} field; fields are '
                                  f'{sorted(fields)}')
    names, formats, offsets = [], [], []
    color_name = next((name for name in ('rgb', 'rgba') if name in fields), None)
    for name in ('x', 'y', 'z') + ((color_name,) if color_name else ()):
        field = fields[name]
        kind = _POINT_FIELD_DTYPES.get(int(field.datatype))
        if kind is None:
            raise ConversionError(f'PointCloud2 field {name!r} has unknown datatype '
                                  f'{field.datatype}')
        if name == color_name:
            if np.dtype(kind).itemsize != 4:
                raise ConversionError(f'PointCloud2 field {name!r} must be 4 bytes (packed '
                                      f'0x00RRGGBB), got datatype {field.datatype}')
            kind = 'u4'  # the float32 declaration only carries the uint32 bits
        if int(field.offset) + np.dtype(kind).itemsize > point_step:
            raise ConversionError(f'PointCloud2 field {name!r} at offset {field.offset} does '
                                  f'not fit point_step {point_step}')
        names.append(name)
        formats.append(order + kind)
        offsets.append(int(field.offset))
    if row_step < width * point_step:
        raise ConversionError(f'PointCloud2 row_step {row_step} < width {width} × point_step '
                              f'{point_step}')
    if data.size < row_step * height:
        raise ConversionError(f'PointCloud2 data is truncated: {data.size} bytes, expected '
                              f'row_step {row_step} × height {height} = {row_step * height}')
    dtype = np.dtype({'names': names, 'formats': formats, 'offsets': offsets,
                      'itemsize': point_step})
    rows = data[:row_step * height].reshape(height, row_step)[:, :width * point_step]
    structured = np.ascontiguousarray(rows).reshape(-1).view(dtype)
    points = np.stack([structured['x'], structured['y'], structured['z']],
                      axis=1).astype(np.float32)
    if color_name is None:
        return points, None
    packed = structured[color_name].astype(np.uint32)
    colors = np.stack([(packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF],
                      axis=1).astype(np.uint8)
    return points, colors


# ---------------------------------------------------------------------------------------------
# Occupancy grids


def grid_to_occupancy_msg(grid: OccupancyGrid, stamp_ns: int, frame_id: str,
                          types: MessageTypes) -> Any:
    """
    Build a ``nav_msgs/OccupancyGrid`` (what Nav2's costmaps and map_server take).

    ``data`` is row-major from cell (0, 0), the lower-left corner, rows along +y, as the
    message defines it; values -1 (unknown), 0 (free), 100 (occupied). ``info.origin`` is that
    corner's pose in ``frame_id``: ``(x0, y0, floor_z)``, turned by ``origin_yaw`` about z, so
    the grid lies on the floor in RViz; ``map_load_time`` is the stamp.

    :param grid: the grid (``engine.occupancy``), in the frame ``frame_id`` names (the levelled
        ``map``: publish ``level_map_from_world`` for it).
    :param stamp_ns: header stamp, integer nanoseconds.
    :param frame_id: header.frame_id.
    :param types: the message classes to instantiate.
    :return: the OccupancyGrid.
    :raises ConversionError: if the grid does not fit the message (cells other than -1..100,
        a resolution float32 cannot hold, more than 2**32 - 1 cells on a side).
    """
    cells = np.ascontiguousarray(grid.cells, dtype=np.int8)
    if cells.size and (cells.min() < -1 or cells.max() > 100):
        raise ConversionError(f'occupancy values must be in -1..100, got {cells.min()}..'
                              f'{cells.max()}')
    if not 0 < np.float32(grid.resolution) < np.inf:
        raise ConversionError(f'resolution {grid.resolution} does not fit a float32')
    if max(cells.shape) >= 2**32:
        raise ConversionError(f'a {cells.shape} grid does not fit uint32 width/height')
    half_yaw = 0.5 * grid.origin_yaw
    origin = types.pose(
        position=types.point(x=float(grid.origin_xy[0]), y=float(grid.origin_xy[1]),
                             z=float(grid.floor_z)),
        orientation=types.quaternion(x=0.0, y=0.0, z=float(np.sin(half_yaw)),
                                     w=float(np.cos(half_yaw))))
    info = types.map_meta_data(map_load_time=ns_to_stamp(stamp_ns, types),
                               resolution=float(np.float32(grid.resolution)),
                               width=grid.width, height=grid.height, origin=origin)
    return types.occupancy_grid(header=make_header(stamp_ns, frame_id, types), info=info,
                                data=types.int8_array(cells.tobytes()))


# ---------------------------------------------------------------------------------------------
# Images


def image_to_rgb(msg: Any) -> NDArray[np.uint8]:
    """
    Decode a raw ``sensor_msgs/Image`` into an (H, W, 3) uint8 RGB array.

    Encodings: rgb8, bgr8, rgba8, bgra8 (alpha dropped), mono8 (replicated to three channels)
    and mono16, which is scaled to 8 bits by keeping the high byte (``value >> 8``): a fixed
    linear rule, so brightness stays consistent from frame to frame (no per-image stretch).
    Row padding (``step`` > width · pixel size) is allowed; ``is_bigendian`` is honoured.

    :param msg: an Image (rclpy or rosbags).
    :return: a new contiguous (height, width, 3) uint8 RGB array.
    :raises ConversionError: for an unknown encoding, an empty image, a ``step`` smaller
        than a row, or ``data`` whose size is not ``step × height``.
    """
    encoding = str(msg.encoding).lower()
    if encoding not in IMAGE_ENCODINGS:
        raise ConversionError(f'unsupported image encoding {msg.encoding!r}; supported: '
                              f'{", ".join(IMAGE_ENCODINGS)}')
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ConversionError(f'empty image: {width}x{height} pixels')
    channels, depth = IMAGE_ENCODINGS[encoding]
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ConversionError(f'image step {step} is smaller than one {encoding} row of '
                              f'{width} pixels ({row_bytes} bytes)')
    data = _as_uint8(msg.data)
    if data.size != step * height:
        problem = 'truncated' if data.size < step * height else 'too long'
        raise ConversionError(f'image data is {problem}: {data.size} bytes, expected step '
                              f'{step} × height {height} = {step * height}')
    rows = data.reshape(height, step)[:, :row_bytes]
    if depth == 2:
        order = '>' if msg.is_bigendian else '<'
        values = np.ascontiguousarray(rows).view(order + 'u2').reshape(height, width)
        return rgb8_from_pixels(values)  # the 16-bit rule of every door
    pixels = rows.reshape(height, width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if encoding.startswith('bgr'):
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return pixels[:, :, :3].copy()  # never a view of the message's buffer


def compressed_to_rgb(msg: Any) -> NDArray[np.uint8]:
    """
    Decode a ``sensor_msgs/CompressedImage`` (JPEG, PNG, ...) to (H, W, 3) uint8 RGB.

    Decoded by ``vggt_mapper.io.images.decode_image`` like image files: grey images are
    replicated to three channels, transparent pixels become white, 16-bit PNGs keep their high
    byte. ``compressedDepth`` (a depth transport, not a camera image) is refused.

    :param msg: a CompressedImage (rclpy or rosbags).
    :return: (H, W, 3) uint8 RGB array.
    :raises ConversionError: for empty data, a compressedDepth format, or bytes OpenCV
        cannot decode.
    """
    fmt = str(msg.format)
    if 'compresseddepth' in fmt.lower():
        raise ConversionError(f'CompressedImage format {fmt!r} is a depth transport, not a '
                              f'camera image; subscribe to the colour image instead')
    data = _as_uint8(msg.data)
    if data.size == 0:
        raise ConversionError(f'CompressedImage (format {fmt!r}) has no data')
    try:
        return decode_image(data.tobytes())  # the decoder of every door (folder, upload, bag)
    except (OSError, ValueError, SyntaxError) as err:
        raise ConversionError(f'CompressedImage (format {fmt!r}, {data.size} bytes) could not '
                              f'be decoded: {err}') from err


def rgb_to_image(image_rgb: NDArray[np.uint8], stamp_ns: int, frame_id: str,
                 types: MessageTypes, encoding: str = 'rgb8') -> Any:
    """
    Encode an RGB array as a raw ``sensor_msgs/Image`` (tests, synthetic bags, republishing).

    Grey encodings take the RGB mean; mono16 stores ``gray × 257`` (so ``image_to_rgb`` gives
    the grey value back exactly); alpha is 255.

    :param image_rgb: (H, W, 3) uint8 RGB.
    :param stamp_ns: header stamp, integer nanoseconds.
    :param frame_id: header.frame_id (the camera's optical frame).
    :param types: the message classes to instantiate.
    :param encoding: one of ``IMAGE_ENCODINGS``.
    :return: the Image, little-endian, ``step`` = width × pixel size.
    :raises ConversionError: for a non-(H, W, 3) uint8 array or an unknown encoding.
    """
    rgb = np.asarray(image_rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConversionError(f'image_rgb must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}')
    if encoding not in IMAGE_ENCODINGS:
        raise ConversionError(f'unsupported image encoding {encoding!r}; supported: '
                              f'{", ".join(IMAGE_ENCODINGS)}')
    height, width = rgb.shape[:2]
    alpha = np.full((height, width, 1), 255, dtype=np.uint8)
    gray = np.round(rgb.mean(axis=2)).astype(np.uint8)
    if encoding == 'mono16':
        pixels: NDArray[Any] = gray.astype('<u2') * np.uint16(257)
    elif encoding == 'mono8':
        pixels = gray
    else:
        pixels = rgb[:, :, ::-1] if encoding.startswith('bgr') else rgb
        if encoding.endswith('a8'):
            pixels = np.concatenate([pixels, alpha], axis=2)
    channels, depth = IMAGE_ENCODINGS[encoding]
    return types.image(header=make_header(stamp_ns, frame_id, types), height=height, width=width,
                       encoding=encoding, is_bigendian=0, step=width * channels * depth,
                       data=types.byte_array(np.ascontiguousarray(pixels).tobytes()))


def rgb_to_compressed(image_rgb: NDArray[np.uint8], stamp_ns: int, frame_id: str,
                      types: MessageTypes, fmt: str = 'png') -> Any:
    """
    Encode an RGB array as a ``sensor_msgs/CompressedImage`` (``png`` is lossless).

    :param image_rgb: (H, W, 3) uint8 RGB.
    :param stamp_ns: header stamp, integer nanoseconds.
    :param frame_id: header.frame_id.
    :param types: the message classes to instantiate.
    :param fmt: ``png`` or ``jpeg``.
    :return: the CompressedImage.
    :raises ConversionError: if OpenCV cannot encode the array in ``fmt``.
    """
    rgb = np.asarray(image_rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConversionError(f'image_rgb must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}')
    ok, encoded = cv2.imencode('.' + fmt, np.ascontiguousarray(rgb[:, :, ::-1]))
    if not ok:
        raise ConversionError(f'OpenCV could not encode a {rgb.shape} image as {fmt!r}')
    return types.compressed_image(header=make_header(stamp_ns, frame_id, types), format=fmt,
                                  data=types.byte_array(encoded.tobytes()))


@dataclass(frozen=True)
class CameraInfoRecord:
    """
    The parts of a ``sensor_msgs/CameraInfo`` the exports record (``camera_info.json``).

    :param frame_id: the camera's optical frame.
    :param stamp_ns: stamp of the recorded message, integer nanoseconds.
    :param width: image width in pixels.
    :param height: image height in pixels.
    :param distortion_model: e.g. ``plumb_bob``.
    :param d: distortion coefficients.
    :param k: 3×3 intrinsics, row-major (9 values).
    :param p: 3×4 projection matrix, row-major (12 values).
    """

    frame_id: str
    stamp_ns: int
    width: int
    height: int
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]
    p: tuple[float, ...]

    def to_json_dict(self) -> dict[str, Any]:
        """:return: the record as plain JSON types."""
        return {'frame_id': self.frame_id, 'stamp_ns': self.stamp_ns, 'width': self.width,
                'height': self.height, 'distortion_model': self.distortion_model,
                'd': list(self.d), 'k': list(self.k), 'p': list(self.p)}


def camera_info_from_msg(msg: Any) -> CameraInfoRecord:
    """
    Record a ``sensor_msgs/CameraInfo``.

    :param msg: a CameraInfo (rclpy or rosbags).
    :return: the record.
    :raises ConversionError: if ``k`` does not have 9 values or ``p`` 12.
    """
    k = [float(value) for value in np.asarray(msg.k, dtype=np.float64).reshape(-1)]
    p = [float(value) for value in np.asarray(msg.p, dtype=np.float64).reshape(-1)]
    if len(k) != 9 or len(p) != 12:
        raise ConversionError(f'CameraInfo k must have 9 values and p 12, got {len(k)} and '
                              f'{len(p)}')
    return CameraInfoRecord(
        frame_id=str(msg.header.frame_id), stamp_ns=stamp_to_ns(msg.header.stamp),
        width=int(msg.width), height=int(msg.height),
        distortion_model=str(msg.distortion_model),
        d=tuple(float(value) for value in np.asarray(msg.d, dtype=np.float64).reshape(-1)),
        k=tuple(k), p=tuple(p))
