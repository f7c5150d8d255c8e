"""
rosbag2 in and out, without ROS: camera frames from a bag, and the mapper's outputs into one.

``iter_bag_frames`` reads sensor_msgs/Image or CompressedImage from a rosbag2 directory (sqlite3
or mcap storage) with the ``rosbags`` library. ``OutputBagWriter`` writes what the live
``mapper_node`` publishes — ``/tf``, ``/vggt_mapper/map``, ``/vggt_mapper/window_cloud``,
``/vggt_mapper/path`` and ``/vggt_mapper/pose`` — built by the same
``vggt_mapper.io.ros_messages`` functions on rosbags message classes, so ``ros2 bag play`` with
RViz or Foxglove replays an offline run as if the node had mapped it live. Frames and stamps
follow ``vggt_mapper.io.ros_messages`` (REP 103 ``map``, ``*_optical`` camera, integer ns).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import logging
from pathlib import Path
import shutil
from types import TracebackType
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.serde import SerdeError
from rosbags.typesys import get_typestore, Stores

from vggt_mapper.engine.types import InputFrame, KeyframePose, MapSnapshot, WindowResult
from vggt_mapper.io import ros_messages as conv
from vggt_mapper.io.errors import ConversionError, ExportError, InputError

__all__ = ['IMAGE_MSGTYPES', 'BagFrames', 'OutputBagWriter', 'iter_bag_frames']

_LOGGER = logging.getLogger(__name__)

IMAGE_MSGTYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
#: Skipped messages logged one by one before only the final count is logged.
_WARN_FIRST = 5


class BagFrames(Iterator[InputFrame]):
    """
    Frames of one image topic of a rosbag2, in bag order (an iterator with counters).

    Stamps are the messages' header stamps in integer nanoseconds (the bag's receive time when a
    header stamp is zero). Malformed messages (undecodable, wrong step, truncated, unknown
    encoding) are skipped, counted in ``skipped`` and logged as warnings.

    :ivar topic: the topic read.
    :ivar msgtype: its message type.
    :ivar num_messages: messages on the topic (for progress bars).
    :ivar skipped: malformed messages skipped so far.
    """

    def __init__(self, bag_dir: Path, topic: str | None = None) -> None:
        """
        Open the bag and pick the image topic.

        :param bag_dir: the rosbag2 directory (with metadata.yaml) or a bag file.
        :param topic: image topic; None picks the bag's only image topic.
        :raises InputError: if the bag cannot be opened, has no image topic, or ``topic`` is
            missing, not an image topic, or None while several image topics exist (the message
            lists the image topics).
        """
        if not Path(bag_dir).exists():
            raise InputError(f'cannot open rosbag2 {str(bag_dir)!r}: no such file or folder')
        self._typestore = get_typestore(Stores.ROS2_JAZZY)
        try:
            self._reader = AnyReader([Path(bag_dir)], default_typestore=self._typestore)
            self._reader.open()
        except AnyReaderError as err:
            raise InputError(f'cannot open rosbag2 {str(bag_dir)!r}: {err}') from err
        try:
            connections = self._select(self._reader.connections, str(bag_dir), topic)
        except InputError:
            self._reader.close()
            raise
        self.topic = connections[0].topic
        self.msgtype = connections[0].msgtype
        self.num_messages = sum(connection.msgcount for connection in connections)
        self.skipped = 0
        self._index = 0
        self._open = True
        self._messages = self._reader.messages(connections=connections)

    @staticmethod
    def _select(connections: Sequence[Connection], bag: str,
                topic: str | None) -> list[Connection]:
        images = sorted({c.topic for c in connections if c.msgtype in IMAGE_MSGTYPES})
        listing = ', '.join(images) if images else 'none'
        if topic is None:
            if len(images) != 1:
                everything = ', '.join(sorted({f'{c.topic} ({c.msgtype})' for c in connections}))
                raise InputError(
                    f'rosbag2 {bag!r} has {len(images)} image topics ({listing}); choose one '
                    f'with --topic' if images else
                    f'rosbag2 {bag!r} has no sensor_msgs/Image or CompressedImage topic; its '
                    f'topics are: {everything or "none"}')
            topic = images[0]
        if topic not in images:
            raise InputError(f'topic {topic!r} is not an image topic of rosbag2 {bag!r}; image '
                             f'topics: {listing}')
        return [c for c in connections if c.topic == topic]

    def __iter__(self) -> BagFrames:
        """:return: self."""
        return self

    def __next__(self) -> InputFrame:
        """
        Decode the next good frame.

        :return: the frame.
        :raises StopIteration: at the end of the topic (the bag is closed then).
        """
        for connection, timestamp, rawdata in self._messages:
            self._index += 1
            try:
                msg: Any = self._reader.deserialize(rawdata, connection.msgtype)
                if connection.msgtype.endswith('/CompressedImage'):
                    image_rgb = conv.compressed_to_rgb(msg)
                else:
                    image_rgb = conv.image_to_rgb(msg)
            except (ConversionError, AnyReaderError, SerdeError) as err:
                self.skipped += 1
                if self.skipped <= _WARN_FIRST:
                    _LOGGER.warning('skipping malformed message %d on %s: %s', self._index,
                                    self.topic, err)
                continue
            stamp_ns = conv.stamp_to_ns(msg.header.stamp) or int(timestamp)
            return InputFrame(image_rgb=image_rgb, stamp_ns=stamp_ns,
                              name=f'frame_{self._index - 1:06d}')
        self.close()
        raise StopIteration

    def close(self) -> None:
        """Close the bag (also done at the end of the topic); logs the skipped count."""
        if self._open:
            self._open = False
            self._reader.close()
            if self.skipped:
                _LOGGER.warning('skipped %d malformed of %d messages on %s', self.skipped,
                                self._index, self.topic)


def iter_bag_frames(bag_dir: Path, topic: str | None = None) -> BagFrames:
    """
    Iterate over the camera frames of a rosbag2 (sqlite3 or mcap; Image or CompressedImage).

    :param bag_dir: the rosbag2 directory.
    :param topic: the image topic; None picks the only image topic of the bag.
    :return: an iterator of ``InputFrame`` with ``topic``, ``num_messages`` and ``skipped``.
    :raises InputError: see ``BagFrames``.
    """
    return BagFrames(bag_dir, topic)


def _qos(durability: QosDurability) -> Qos:
    zero = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
               durability=durability, deadline=zero, lifespan=zero,
               liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=zero,
               avoid_ros_namespace_conventions=False)


class OutputBagWriter:
    """
    Write the mapper's outputs into a new rosbag2 (mcap by default) the way the node publishes.

    Per accepted window, stamped (and logged) at the latest keyframe's image stamp:
    ``/tf`` (map → camera optical frame), ``/vggt_mapper/map`` (whole map, PointCloud2,
    transient-local like the node's latched topic), ``/vggt_mapper/window_cloud``,
    ``/vggt_mapper/path`` (transient-local) and ``/vggt_mapper/pose``. Rejected windows write
    nothing, as the node publishes nothing for them.

    Use as a context manager; the bag is finalised (metadata.yaml) on exit.
    """

    def __init__(self, path: Path, *, storage: str = 'mcap', map_frame: str = 'map',
                 camera_frame: str = 'camera_optical', namespace: str = '/vggt_mapper',
                 overwrite: bool = False) -> None:
        """
        Prepare the writer (nothing is created before ``__enter__``).

        :param path: the bag directory to create.
        :param storage: ``mcap`` or ``sqlite3``.
        :param map_frame: frame of the map, path and poses.
        :param camera_frame: child frame of the published camera TF.
        :param namespace: topic prefix (the node's fully qualified name).
        :param overwrite: replace an existing rosbag2 directory at ``path`` (refused if it holds
            anything but bag files).
        :raises ExportError: for an unknown storage.
        """
        plugins = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise ExportError(f'unknown rosbag2 storage {storage!r}; use mcap or sqlite3')
        self.path = Path(path)
        self._plugin = plugins[storage]
        self._map_frame = map_frame
        self._camera_frame = camera_frame
        self._namespace = namespace.rstrip('/')
        self._overwrite = overwrite
        self._typestore = get_typestore(Stores.ROS2_JAZZY)
        self._types = conv.rosbags_message_types(self._typestore)
        self._writer: Writer | None = None
        self._connections: dict[str, Connection] = {}
        self.windows_written = 0

    def __enter__(self) -> OutputBagWriter:
        """Create the bag directory and its topics; :return: self."""
        self._open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Finalise the bag (also after an error, so what was written stays readable)."""
        self.close()

    def _open(self) -> None:
        """
        Create the bag directory and its topics (``__enter__``).

        :raises ExportError: if ``path`` exists (and may not be replaced) or cannot be created.
        """
        if self.path.exists() and self._overwrite:
            self._remove_old_bag()
        try:
            writer = Writer(self.path, version=8, storage_plugin=self._plugin)
            writer.open()
        except (WriterError, OSError) as err:
            raise ExportError(f'cannot create rosbag2 {str(self.path)!r}: {err}; choose a new '
                              f'path' + ('' if self._overwrite else ' or allow overwriting')) \
                from err
        latched = [_qos(QosDurability.TRANSIENT_LOCAL)]
        topics: list[tuple[str, str, list[Qos]]] = [
            ('tf', '/tf', []),
            ('map', f'{self._namespace}/map', latched),
            ('window_cloud', f'{self._namespace}/window_cloud', []),
            ('path', f'{self._namespace}/path', latched),
            ('pose', f'{self._namespace}/pose', []),
        ]
        msgtypes = {'tf': 'tf2_msgs/msg/TFMessage', 'map': 'sensor_msgs/msg/PointCloud2',
                    'window_cloud': 'sensor_msgs/msg/PointCloud2', 'path': 'nav_msgs/msg/Path',
                    'pose': 'geometry_msgs/msg/PoseStamped'}
        for key, topic, qos in topics:
            self._connections[key] = writer.add_connection(
                topic, msgtypes[key], typestore=self._typestore, offered_qos_profiles=qos)
        self._writer = writer

    def _remove_old_bag(self) -> None:
        bag_files = {'.mcap', '.db3', '.yaml'}
        entries = list(self.path.iterdir()) if self.path.is_dir() else []
        if not (self.path / 'metadata.yaml').is_file() or any(
                entry.is_dir() or entry.suffix not in bag_files for entry in entries):
            raise ExportError(f'{str(self.path)!r} exists and is not a rosbag2 directory; '
                              f'refusing to replace it')
        shutil.rmtree(self.path)

    def close(self) -> None:
        """Finalise the bag; calling it again does nothing."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, key: str, msg: Any, timestamp_ns: int) -> None:
        assert self._writer is not None
        connection = self._connections[key]
        self._writer.write(connection, timestamp_ns,
                           self._typestore.serialize_cdr(msg, connection.msgtype))

    def write_window(self, result: WindowResult, snapshot: MapSnapshot,
                     trajectory: list[KeyframePose]) -> bool:
        """
        Write one window's outputs (call after each ``Mapper`` window, in order).

        :param result: the window.
        :param snapshot: the map after it.
        :param trajectory: the keyframe poses after it.
        :return: True if something was written (False for a rejected window or an empty
            trajectory).
        :raises ExportError: if the bag is not open.
        """
        if self._writer is None:
            raise ExportError(f'rosbag2 {str(self.path)!r} is not open; use OutputBagWriter as '
                              f'a context manager')
        if not result.accepted or not trajectory:
            return False
        types = self._types
        latest = max(trajectory, key=lambda pose: pose.index)
        stamp_ns = latest.stamp_ns
        map_from_cam = conv.map_from_world_pose(latest.world_from_cam)
        tf = conv.matrix_to_transform(map_from_cam, stamp_ns, self._map_frame,
                                      self._camera_frame, types)
        self._write('tf', types.tf_message(transforms=[tf]), stamp_ns)
        self._write('map', conv.points_to_cloud(
            conv.map_from_world_points(snapshot.points_world), snapshot.colors_rgb, stamp_ns,
            self._map_frame, types), stamp_ns)
        self._write('window_cloud', conv.points_to_cloud(
            conv.map_from_world_points(result.points_world), result.colors_rgb, stamp_ns,
            self._map_frame, types), stamp_ns)
        map_from_cams = conv.map_from_world_pose(
            np.stack([pose.world_from_cam for pose in trajectory]))
        self._write('path', conv.poses_to_path(map_from_cams, [p.stamp_ns for p in trajectory],
                                               stamp_ns, self._map_frame, types), stamp_ns)
        self._write('pose', conv.matrix_to_pose(map_from_cam, stamp_ns, self._map_frame, types),
                    stamp_ns)
        self.windows_written += 1
        return True
