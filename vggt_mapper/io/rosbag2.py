"""
rosbag2 in and out, without ROS: camera frames from a bag, and the mapper's outputs into one.

``iter_bag_frames`` reads sensor_msgs/Image or CompressedImage from a rosbag2 directory (sqlite3
or mcap storage) with the ``rosbags`` library, with what the bag knows about the camera
(``io.bag_sensors``): the CameraInfo next to the image topic undistorts each image and gives its
K, and TF gives each image's metric ``odom_from_camera``. ``OutputBagWriter`` writes what the live
``mapper_node`` publishes — ``/tf``, ``/vggt_mapper/map``, ``/vggt_mapper/window_cloud``,
``/vggt_mapper/path`` and ``/vggt_mapper/pose`` — built by the same
``vggt_mapper.io.ros_messages`` functions on rosbags message classes, so ``ros2 bag play`` with
RViz or Foxglove replays an offline run as if the node had mapped it live. Frames and stamps
follow ``vggt_mapper.io.ros_messages`` (REP 103 ``map``, ``*_optical`` camera, integer ns).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import replace
import logging
from pathlib import Path
import posixpath
import re
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
from rosbags.rosbag2 import ReaderError, StoragePlugin, Writer, WriterError
from rosbags.serde import SerdeError
from rosbags.typesys import get_typestore, Stores

from vggt_mapper.engine.types import InputFrame, KeyframePose, MapSnapshot, WindowResult
from vggt_mapper.io import ros_messages as conv
from vggt_mapper.io.bag_sensors import (
    CAMERA_INFO_MSGTYPE,
    camera_info_topic,
    CameraInfoTrack,
    read_camera_infos,
    read_tf,
    SensorLog,
    TF_MSGTYPE,
)
from vggt_mapper.io.calibration import undistort_frame, UndistorterCache
from vggt_mapper.io.errors import ConversionError, ExportError, InputError
from vggt_mapper.io.readers import ReadStats
from vggt_mapper.io.tf_buffer import TransformBuffer

__all__ = ['IMAGE_MSGTYPES', 'BagFrames', 'OutputBagWriter', 'iter_bag_frames', 'skip_reason']

_LOGGER = logging.getLogger(__name__)

IMAGE_MSGTYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
#: Skipped messages logged one by one before only the counts by reason are logged.
_WARN_FIRST = 5


def skip_reason(err: BaseException) -> str:
    """
    Group a message's conversion error with others of its kind (for counted summaries).

    :param err: the error.
    :return: its first clause with the numbers left out, e.g. ``'image data is truncated'``.
    """
    text = str(err).strip() or type(err).__name__
    clause = re.split(r': |; ', text, maxsplit=1)[0]
    return re.sub(r'\b\d+(\.\d+)?\b', 'N', clause)


class _SalvagedMcap:
    """
    The complete records of mcap files that rosbags cannot open (no footer: cut off).

    A recording killed mid-way leaves an mcap file without its summary and footer (and often no
    metadata.yaml); the mcap library's stream reader still reads it record by record up to the
    cut. Two passes: this scan (topics, counts, where each file ends), then ``messages``.

    :param files: the mcap files, in recording order.
    """

    def __init__(self, files: list[Path]) -> None:
        from mcap.exceptions import EndOfFile, McapError
        from mcap.stream_reader import StreamReader

        self.files = files
        self.msgtypes: dict[str, str] = {}
        self.counts: Counter[str] = Counter()
        self.cut_files: list[str] = []
        self._error = McapError
        self._reader = StreamReader
        for path in files:
            channels: dict[int, str] = {}
            try:
                for record in self._records(path):
                    self._scan_record(record, channels)
            except EndOfFile:
                self.cut_files.append(f'{path.name} ends inside a record')
            except McapError as err:
                self.cut_files.append(f'{path.name}: {err or type(err).__name__}')

    def _records(self, path: Path) -> Iterator[Any]:
        """Yield the records of one file (chunks opened) until its end or cut."""
        with path.open('rb') as stream:
            yield from self._reader(stream).records

    def _scan_record(self, record: Any, channels: dict[int, str]) -> None:
        from mcap.records import Channel, Message, Schema

        if isinstance(record, Schema):
            self.msgtypes.setdefault(f'schema:{record.id}', record.name)
        elif isinstance(record, Channel):
            channels[record.id] = record.topic
            self.msgtypes[record.topic] = self.msgtypes.get(f'schema:{record.schema_id}', '')
        elif isinstance(record, Message) and record.channel_id in channels:
            self.counts[channels[record.channel_id]] += 1

    @property
    def topics(self) -> dict[str, str]:
        """Topic → message type of every channel found."""
        return {topic: msgtype for topic, msgtype in self.msgtypes.items()
                if not topic.startswith('schema:')}

    def messages(self, topic: str) -> Iterator[tuple[int, bytes]]:
        """
        Yield ``(log_time_ns, rawdata)`` of one topic's complete messages, file by file.

        :param topic: the topic.
        :return: an iterator that stops at each file's cut.
        """
        from mcap.records import Channel, Message

        for path in self.files:
            wanted: set[int] = set()
            try:
                for record in self._records(path):
                    if isinstance(record, Channel) and record.topic == topic:
                        wanted.add(record.id)
                    elif isinstance(record, Message) and record.channel_id in wanted:
                        yield record.log_time, record.data
            except self._error:
                continue  # the cut: counted by the scan


def _announced_counts(bag_dir: Path) -> dict[str, int]:
    """Messages per topic that a bag's metadata.yaml announces ({} if it has none)."""
    import yaml

    try:
        document = yaml.safe_load((bag_dir / 'metadata.yaml').read_text(encoding='utf-8'))
        topics = document['rosbag2_bagfile_information']['topics_with_message_count']
        return {str(entry['topic_metadata']['name']): int(entry['message_count'])
                for entry in topics}
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return {}


class BagFrames(Iterator[InputFrame]):
    """
    Frames of one image topic of a rosbag2, in bag order (an iterator with counters).

    Stamps are the messages' header stamps in integer nanoseconds (the bag's receive time when a
    header stamp is zero). Malformed messages (undecodable, wrong step, truncated, unknown
    encoding) are skipped, counted by reason in ``stats`` and the first few logged as warnings.
    A bag that ends early is read up to the cut: an mcap file without its footer (a recording
    that was killed) is read record by record, and a read error in the middle stops the reading;
    ``stats.notes`` says what was cut.

    :ivar topic: the topic read.
    :ivar msgtype: its message type.
    :ivar num_messages: messages on the topic (for progress bars).
    :ivar stats: counters (frames read, skipped by reason, notes).
    :ivar camera_info: the CameraInfo calibrations used (None: none).
    :ivar sensors: frames given a K and an odometry pose, and why not.
    """

    def __init__(self, bag_dir: Path, topic: str | None = None,
                 stats: ReadStats | None = None, *, camera_info: bool | str = True,
                 odometry: bool = True, odom_frame: str = 'odom') -> None:
        """
        Open the bag and pick the image topic (and its CameraInfo and TF).

        :param bag_dir: the rosbag2 directory (with metadata.yaml) or a bag file.
        :param topic: image topic; None picks the bag's only image topic.
        :param stats: counters to fill (a new ``ReadStats`` if None); ``frames_expected`` is set
            at once.
        :param camera_info: True: undistort with the CameraInfo next to the image topic when
            the bag has one; a topic name: that one (it must exist); False: none.
        :param odometry: give each frame ``odom_from_camera`` from the bag's TF when it has
            ``odom_frame`` (``odom → base_link → camera``); False: none.
        :param odom_frame: the odometry frame of TF.
        :raises InputError: if the bag cannot be opened, has no image topic, or ``topic`` is
            missing, not an image topic, or None while several image topics exist (the message
            lists the image topics), or a named CameraInfo topic is missing.
        """
        path = Path(bag_dir)
        if not path.exists():
            raise InputError(f'cannot open rosbag2 {str(bag_dir)!r}: no such file or folder')
        self.stats = stats if stats is not None else ReadStats()
        self._typestore = get_typestore(Stores.ROS2_JAZZY)
        self._reader: AnyReader | None = None
        self._salvage: _SalvagedMcap | None = None
        self._messages: Iterator[tuple[int, bytes]] = iter(())
        self._index = 0
        self._closed = False
        self.topic = ''
        self.camera_info: CameraInfoTrack | None = None
        self._tf: TransformBuffer | None = None
        self.sensors = SensorLog()
        try:
            self._reader = AnyReader([path], default_typestore=self._typestore)
            self._reader.open()
        except (AnyReaderError, FileNotFoundError) as err:
            # FileNotFoundError: no metadata.yaml, as a recorder that was killed leaves it.
            self._reader = None
            self._salvage = self._open_salvage(path, err)
        if self._salvage is not None:
            topics = self._salvage.topics
        else:
            assert self._reader is not None
            topics = {c.topic: c.msgtype for c in self._reader.connections}
        try:
            self.topic = self._select(topics, str(bag_dir), topic)
        except InputError:
            self.close()
            raise
        self.msgtype = topics[self.topic]
        if self._salvage is not None:
            self.num_messages = self._salvage.counts[self.topic]
            self._messages = self._salvage.messages(self.topic)
            self._note_cut(path)
        else:
            assert self._reader is not None
            connections = [c for c in self._reader.connections if c.topic == self.topic]
            self.num_messages = sum(connection.msgcount for connection in connections)
            self._messages = ((timestamp, rawdata) for _, timestamp, rawdata in
                              self._reader.messages(connections=connections))
        self.stats.frames_expected = self.num_messages
        self._odom_frame = odom_frame
        self._undistorters = UndistorterCache()
        try:
            self.camera_info = self._open_camera_info(topics, camera_info)
            self._tf = self._open_tf(topics) if odometry else None
        except InputError:
            self.close()
            raise
        if self.camera_info is not None:
            first = self.camera_info.calibrations[0]
            self.stats.camera = {'calibration': first.to_json_dict(),
                                 'undistorted': first.distorted,
                                 'topic': self.camera_info.topic,
                                 'calibrations_in_bag': len(self.camera_info.calibrations)}

    def _topic_messages(self, topic: str) -> Iterator[tuple[int, bytes]]:
        """``(receive_ns, rawdata)`` of one topic, from the start."""
        if self._salvage is not None:
            return self._salvage.messages(topic)
        assert self._reader is not None
        connections = [c for c in self._reader.connections if c.topic == topic]
        return ((timestamp, rawdata) for _, timestamp, rawdata in
                self._reader.messages(connections=connections))

    def _open_camera_info(self, topics: dict[str, str], wanted: bool | str
                          ) -> CameraInfoTrack | None:
        if wanted is False:
            return None
        if isinstance(wanted, str):
            if topics.get(wanted) != CAMERA_INFO_MSGTYPE:
                raise InputError(f'{wanted!r} is not a {CAMERA_INFO_MSGTYPE} topic of the bag; '
                                 'CameraInfo topics: ' + (', '.join(sorted(
                                     t for t, m in topics.items() if m == CAMERA_INFO_MSGTYPE))
                                     or 'none'))
            info_topic: str | None = wanted
        else:
            info_topic = camera_info_topic(self.topic, topics)
        if info_topic is None:
            _LOGGER.info('rosbag2: no CameraInfo next to %s; the model guesses the intrinsics',
                         self.topic)
            return None
        rectified = posixpath.basename(self.topic.removesuffix('/compressed')).startswith(
            'image_rect')
        track = read_camera_infos(info_topic, self._topic_messages(info_topic),
                                  lambda raw: self._deserialize(raw, CAMERA_INFO_MSGTYPE),
                                  rectified=rectified)
        if not track.calibrations:
            _LOGGER.warning('rosbag2: no usable CameraInfo on %s; the model guesses the '
                            'intrinsics', info_topic)
            return None
        _LOGGER.info('rosbag2: images of %s %s with the CameraInfo of %s (%s)', self.topic,
                     'taken as rectified' if rectified else 'undistorted', info_topic,
                     track.calibrations[0].distortion_model)
        return track

    def _open_tf(self, topics: dict[str, str]) -> TransformBuffer | None:
        present = [name for name in ('/tf', '/tf_static') if topics.get(name) == TF_MSGTYPE]
        if '/tf' not in present:
            _LOGGER.info('rosbag2: no /tf; the map is not metric unless a scale is given')
            return None
        buffer = read_tf(self._topic_messages('/tf'),
                         self._topic_messages('/tf_static') if '/tf_static' in present else (),
                         self._deserialize)
        if self._odom_frame not in buffer.frames:
            _LOGGER.warning('rosbag2: TF has no %r frame (frames: %s); the map is not metric '
                            'unless a scale is given', self._odom_frame,
                            ', '.join(sorted(buffer.frames)) or 'none')
            return None
        return buffer

    @staticmethod
    def _open_salvage(path: Path, err: Exception) -> _SalvagedMcap:
        """Read the mcap files of a bag rosbags refused; re-raise its error if there are none."""
        files = [path] if path.suffix == '.mcap' else sorted(path.glob('*.mcap'))
        if not files:
            raise InputError(f'cannot open rosbag2 {str(path)!r}: {err}') from err
        salvage = _SalvagedMcap(files)
        if not salvage.topics:
            raise InputError(f'cannot open rosbag2 {str(path)!r}: {err}; reading its mcap '
                             f'files record by record found no topic either') from err
        _LOGGER.info('rosbag2 %s: %s; reading its mcap files record by record', path, err)
        return salvage

    def _note_cut(self, path: Path) -> None:
        """Say what a record-by-record read of a damaged bag lost."""
        assert self._salvage is not None
        if not self._salvage.cut_files and (path / 'metadata.yaml').is_file():
            return
        announced = _announced_counts(path if path.is_dir() else path.parent).get(self.topic)
        cut = ', '.join(self._salvage.cut_files) or 'none'
        lost = (f'{announced - self.num_messages} of the {announced} messages metadata.yaml '
                'announces are lost' if announced is not None and announced > self.num_messages
                else 'how many messages were lost is unknown (no count in metadata.yaml)')
        self.stats.note(f'rosbag2 {str(path)!r} is cut short ({cut}); read the '
                        f'{self.num_messages} complete messages on {self.topic}, {lost}')

    @staticmethod
    def _select(topics: dict[str, str], bag: str, topic: str | None) -> str:
        images = sorted(name for name, msgtype in topics.items() if msgtype in IMAGE_MSGTYPES)
        listing = ', '.join(images) if images else 'none'
        if topic is None:
            if len(images) != 1:
                everything = ', '.join(sorted(f'{name} ({msgtype})'
                                              for name, msgtype in topics.items()))
                raise InputError(
                    f'rosbag2 {bag!r} has {len(images)} image topics ({listing}); choose one '
                    f'with --topic' if images else
                    f'rosbag2 {bag!r} has no sensor_msgs/Image or CompressedImage topic; its '
                    f'topics are: {everything or "none"}')
            topic = images[0]
        if topic not in images:
            raise InputError(f'topic {topic!r} is not an image topic of rosbag2 {bag!r}; image '
                             f'topics: {listing}')
        return topic

    def __iter__(self) -> BagFrames:
        """:return: self."""
        return self

    def _next_message(self) -> tuple[int, bytes] | None:
        """Return the next raw message, or None at the end (or at a read error, noted)."""
        try:
            return next(self._messages)
        except StopIteration:
            return None
        except (AnyReaderError, ReaderError) as err:
            self.stats.note(f'rosbag2 reading of {self.topic} stopped after message '
                            f'{self._index} of {self.num_messages}: {err}; only the part before '
                            'it is mapped')
            return None

    def _deserialize(self, rawdata: bytes, msgtype: str | None = None) -> Any:
        msgtype = msgtype or self.msgtype
        if self._reader is not None:
            return self._reader.deserialize(rawdata, msgtype)
        return self._typestore.deserialize_cdr(rawdata, msgtype)

    def __next__(self) -> InputFrame:
        """
        Decode the next good frame.

        :return: the frame.
        :raises StopIteration: at the end of the topic (the bag is closed then).
        """
        while (message := self._next_message()) is not None:
            timestamp, rawdata = message
            self._index += 1
            try:
                msg: Any = self._deserialize(rawdata)
                if self.msgtype.endswith('/CompressedImage'):
                    image_rgb = conv.compressed_to_rgb(msg)
                else:
                    image_rgb = conv.image_to_rgb(msg)
            except (ConversionError, AnyReaderError, SerdeError) as err:
                self.stats.skip(f'message_{self._index - 1:06d}', skip_reason(err))
                if self.stats.frames_skipped <= _WARN_FIRST:
                    _LOGGER.warning('skipping malformed message %d on %s: %s', self._index,
                                    self.topic, err)
                continue
            stamp_ns = conv.stamp_to_ns(msg.header.stamp) or int(timestamp)
            self.stats.frames_read += 1
            frame = InputFrame(image_rgb=image_rgb, stamp_ns=stamp_ns,
                               name=f'frame_{self._index - 1:06d}')
            return self._with_sensors(frame, str(msg.header.frame_id))
        self.close()
        raise StopIteration

    def _with_sensors(self, frame: InputFrame, camera_frame: str) -> InputFrame:
        """Undistort with the CameraInfo and attach the odometry pose, where the bag has them."""
        calibration = self.camera_info.at(frame.stamp_ns) if self.camera_info else None
        if calibration is not None:
            frame = undistort_frame(frame, calibration, self._undistorters)
            self.sensors.with_intrinsics += 1
        pose = self.sensors.odometry_at(self._tf, self._odom_frame, camera_frame,
                                        frame.stamp_ns)
        return frame if pose is None else replace(frame, odom_from_camera=pose)

    @property
    def skipped(self) -> int:
        """Malformed messages skipped so far."""
        return self.stats.frames_skipped

    def close(self) -> None:
        """Close the bag (also done at the end of the topic); logs the skips by reason."""
        if self._closed:
            return
        self._closed = True
        if isinstance(self._messages, Generator):
            self._messages.close()
        if self._reader is not None:
            self._reader.close()
        if self.stats.frames_skipped:
            _LOGGER.warning('skipped %d of %d messages on %s (%s)', self.skipped, self._index,
                            self.topic, self.stats.describe_reasons())
        if self.camera_info is not None or self._tf is not None:
            _LOGGER.info('rosbag2 %s: %s', self.topic, self.sensors.describe())


def iter_bag_frames(bag_dir: Path, topic: str | None = None,
                    stats: ReadStats | None = None, *, camera_info: bool | str = True,
                    odometry: bool = True, odom_frame: str = 'odom') -> BagFrames:
    """
    Iterate over the camera frames of a rosbag2 (sqlite3 or mcap; Image or CompressedImage).

    Frames come undistorted with their K when the bag has a CameraInfo next to the image topic,
    and with ``odom_from_camera`` when its TF has ``odom_frame`` (see ``BagFrames``).

    :param bag_dir: the rosbag2 directory.
    :param topic: the image topic; None picks the only image topic of the bag.
    :param stats: counters to fill (frames read, skipped by reason, notes on a cut bag).
    :param camera_info: True (automatic), a CameraInfo topic, or False (none).
    :param odometry: attach TF odometry poses (when the bag has them).
    :param odom_frame: the odometry frame of TF.
    :return: an iterator of ``InputFrame`` with ``topic``, ``num_messages`` and ``stats``.
    :raises InputError: see ``BagFrames``.
    """
    return BagFrames(bag_dir, topic, stats, camera_info=camera_info, odometry=odometry,
                     odom_frame=odom_frame)


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
