"""
rosbag2 round trip: synthetic frames → input bag → engine → output bag → read back.

Bags are written and read with the ``rosbags`` library in ``tmp_path`` (sqlite3 and mcap), the
engine is the real ``Mapper`` with the synthetic ground-truth predictor.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

from vggt_mapper.engine.config import KeyframeConfig, MapConfig, MapperConfig
from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.engine.types import WindowResult
from vggt_mapper.io import ros_messages as conv
from vggt_mapper.io.errors import ExportError, InputError
from vggt_mapper.io.readers import iter_input, ReadStats
from vggt_mapper.io.rosbag2 import iter_bag_frames, OutputBagWriter
from vggt_mapper.synthetic import SyntheticPredictor, SyntheticSequence

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
TYPES = conv.rosbags_message_types(TYPESTORE)
STAMP0_NS = 1_700_000_000_000_000_000
STEP_NS = 100_000_000
PLUGINS = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}


@pytest.fixture(scope='module')
def sequence() -> tuple[SyntheticSequence, list[np.ndarray]]:
    seq = SyntheticSequence.orbit(16, step_m=0.05, height=60, width=80)
    return seq, [seq.frame(index) for index in range(len(seq))]


def write_bag(path: Path, storage: str, topics: dict[str, tuple[str, list[Any]]],
              raw: dict[str, list[bytes]] | None = None) -> None:
    """Write messages per topic (bag time = header stamp + 1 ms); ``raw`` adds undecodable ones."""
    with Writer(path, version=8, storage_plugin=PLUGINS[storage]) as writer:
        for topic, (msgtype, messages) in topics.items():
            connection = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            for msg in messages:
                writer.write(connection, conv.stamp_to_ns(msg.header.stamp) + 1_000_000,
                             TYPESTORE.serialize_cdr(msg, msgtype))
            for index, data in enumerate((raw or {}).get(topic, [])):
                writer.write(connection, STAMP0_NS + 10**12 + index, data)


def image_msgs(images: list[np.ndarray], encoding: str = 'rgb8') -> list[Any]:
    return [conv.rgb_to_image(image, STAMP0_NS + i * STEP_NS, 'camera_optical', TYPES, encoding)
            for i, image in enumerate(images)]


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
@pytest.mark.parametrize('transport', ['raw', 'compressed'])
def test_read_frames_from_bag(tmp_path: Path, storage: str, transport: str,
                              sequence: tuple[Any, list[np.ndarray]]) -> None:
    images = sequence[1][:5]
    if transport == 'raw':
        msgtype, messages = 'sensor_msgs/msg/Image', image_msgs(images, 'bgr8')
    else:
        msgtype = 'sensor_msgs/msg/CompressedImage'
        messages = [conv.rgb_to_compressed(image, STAMP0_NS + i * STEP_NS, 'camera_optical',
                                           TYPES) for i, image in enumerate(images)]
    write_bag(tmp_path / 'in', storage, {'/camera/image': (msgtype, messages),
                                         '/other': ('std_msgs/msg/String', [])})
    frames = iter_bag_frames(tmp_path / 'in', None)
    assert (frames.topic, frames.num_messages) == ('/camera/image', 5)
    read = list(frames)
    assert [frame.stamp_ns for frame in read] == [STAMP0_NS + i * STEP_NS for i in range(5)]
    assert [frame.name for frame in read] == [f'frame_{i:06d}' for i in range(5)]
    for frame, image in zip(read, images, strict=True):
        np.testing.assert_array_equal(frame.image_rgb, image)  # bgr8 and png are lossless
    assert frames.skipped == 0


def test_topic_choice_errors_list_the_image_topics(tmp_path: Path,
                                                   sequence: tuple[Any, list[Any]]) -> None:
    messages = image_msgs(sequence[1][:2])
    write_bag(tmp_path / 'two', 'mcap', {'/cam_left': ('sensor_msgs/msg/Image', messages),
                                         '/cam_right': ('sensor_msgs/msg/Image', messages)})
    with pytest.raises(InputError, match='2 image topics.*/cam_left, /cam_right.*--topic'):
        iter_bag_frames(tmp_path / 'two', None)
    with pytest.raises(InputError, match="'/nope' is not an image topic.*/cam_left, /cam_right"):
        iter_bag_frames(tmp_path / 'two', '/nope')
    assert len(list(iter_bag_frames(tmp_path / 'two', '/cam_right'))) == 2
    write_bag(tmp_path / 'none', 'sqlite3', {'/chatter': ('std_msgs/msg/String', [])})
    with pytest.raises(InputError, match='no sensor_msgs/Image.*/chatter'):
        iter_bag_frames(tmp_path / 'none', None)
    with pytest.raises(InputError, match='cannot open rosbag2'):
        iter_bag_frames(tmp_path / 'missing', None)


def test_malformed_messages_are_skipped_and_counted_by_reason(
        tmp_path: Path, sequence: tuple[Any, list[Any]], caplog: pytest.LogCaptureFixture) -> None:
    messages = image_msgs(sequence[1][:12])
    for index in (1, 4, 6, 9):
        messages[index].encoding = 'yuv422'
    for index in (2, 5, 10):
        messages[index].data = messages[index].data[:-10 * index]
    write_bag(tmp_path / 'bad', 'mcap', {'/image': ('sensor_msgs/msg/Image', messages)},
              raw={'/image': [b'\x00\x01\x00\x00garbage']})
    stats = ReadStats()
    frames = iter_bag_frames(tmp_path / 'bad', '/image', stats=stats)
    # Attached directly: ROS 2's launch package, if imported earlier in the session, stops
    # new loggers from propagating to caplog's root handler.
    logger = logging.getLogger('vggt_mapper.io.rosbag2')
    logger.addHandler(caplog.handler)
    try:
        read = list(frames)
    finally:
        logger.removeHandler(caplog.handler)
    assert [frame.stamp_ns for frame in read] == [
        STAMP0_NS + index * STEP_NS for index in (0, 3, 7, 8, 11)]
    assert frames.skipped == stats.frames_skipped == 8
    # Past the first five warnings, every skip is still counted under its reason.
    assert stats.reasons == {"unsupported image encoding 'yuv422'": 4,
                             'image data is truncated': 3,
                             "Could not deserialize 'sensor_msgs/msg/Image'": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == 'WARNING']
    assert len({w for w in warnings if w.startswith('skipping malformed')}) == 5
    assert any('skipped 8 of 13 messages on /image (4 unsupported image encoding' in w
               for w in warnings)


def map_bag(frames: Any, predictor: SyntheticPredictor, out: Path, storage: str
            ) -> tuple[Mapper, list[tuple[WindowResult, Any, list[Any]]]]:
    """Do what the CLI does for ``map BAG --bag-out``: engine per frame, a bag write per window."""
    config = MapperConfig(window_size=4, overlap=2, map=MapConfig(voxel_size=0.05),
                          keyframes=KeyframeConfig(min_parallax_px=2.0))
    mapper = Mapper(config, predictor)
    written = []
    with OutputBagWriter(out, storage=storage) as bag:
        for frame in frames:
            for result in mapper.add_frame(frame.image_rgb, frame.stamp_ns, frame.name):
                snapshot, trajectory = mapper.map_snapshot(), mapper.trajectory()
                if bag.write_window(result, snapshot, trajectory):
                    written.append((result, snapshot, trajectory))
    return mapper, written


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_round_trip_through_the_engine(tmp_path: Path, storage: str,
                                           sequence: tuple[SyntheticSequence, list[Any]]) -> None:
    write_bag(tmp_path / 'in', storage,
              {'/camera/image_raw': ('sensor_msgs/msg/Image', image_msgs(sequence[1]))})
    predictor = SyntheticPredictor(sequence[0], model_width=84)
    mapper, written = map_bag(iter_bag_frames(tmp_path / 'in', None), predictor,
                              tmp_path / 'out', storage)
    assert len(written) >= 2

    with AnyReader([tmp_path / 'out'], default_typestore=TYPESTORE) as reader:
        topics = {c.topic: c for c in reader.connections}
        assert {t: c.msgtype for t, c in topics.items()} == {
            '/tf': 'tf2_msgs/msg/TFMessage',
            '/vggt_mapper/map': 'sensor_msgs/msg/PointCloud2',
            '/vggt_mapper/window_cloud': 'sensor_msgs/msg/PointCloud2',
            '/vggt_mapper/path': 'nav_msgs/msg/Path',
            '/vggt_mapper/pose': 'geometry_msgs/msg/PoseStamped'}
        latched = topics['/vggt_mapper/map'].ext.offered_qos_profiles  # type: ignore[union-attr]
        assert latched[0].durability == QosDurability.TRANSIENT_LOCAL
        messages: dict[str, list[tuple[int, Any]]] = {topic: [] for topic in topics}
        for connection, timestamp, raw in reader.messages():
            messages[connection.topic].append(
                (timestamp, reader.deserialize(raw, connection.msgtype)))

    assert all(len(m) == len(written) for m in messages.values())
    for index, (result, snapshot, trajectory) in enumerate(written):
        latest = max(trajectory, key=lambda pose: pose.index)
        input_stamps = [STAMP0_NS + i * STEP_NS for i in range(len(sequence[1]))]
        assert latest.stamp_ns in input_stamps
        for topic, entries in messages.items():
            timestamp, msg = entries[index]
            header = msg.transforms[0].header if topic == '/tf' else msg.header
            assert timestamp == conv.stamp_to_ns(header.stamp) == latest.stamp_ns, topic
            assert header.frame_id == 'map', topic

        _, cloud = messages['/vggt_mapper/map'][index]
        assert (cloud.height, cloud.width, cloud.point_step) == (1, snapshot.num_points, 16)
        assert cloud.row_step == 16 * snapshot.num_points and cloud.is_dense
        assert not cloud.is_bigendian
        assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
            ('x', 0, 7, 1), ('y', 4, 7, 1), ('z', 8, 7, 1), ('rgb', 12, 7, 1)]
        points, colors = conv.cloud_to_points(cloud)
        np.testing.assert_allclose(points, snapshot.points_world
                                   @ conv.MAP_FROM_WORLD[:3, :3].T, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(colors, snapshot.colors_rgb)
        window_points, _ = conv.cloud_to_points(messages['/vggt_mapper/window_cloud'][index][1])
        assert window_points.shape[0] == result.points_world.shape[0]

        _, path = messages['/vggt_mapper/path'][index]
        assert [conv.stamp_to_ns(p.header.stamp) for p in path.poses] == [
            pose.stamp_ns for pose in trajectory]
        for stamped, pose in zip(path.poses, trajectory, strict=True):
            expected = conv.MAP_FROM_WORLD @ pose.world_from_cam
            position = stamped.pose.position
            np.testing.assert_allclose([position.x, position.y, position.z], expected[:3, 3],
                                       atol=1e-9)

        _, tf_message = messages['/tf'][index]
        transform = tf_message.transforms[0]
        assert transform.child_frame_id == 'camera_optical'
        np.testing.assert_allclose(conv.transform_to_matrix(transform),
                                   conv.MAP_FROM_WORLD @ latest.world_from_cam, atol=1e-9)

    # The last map message is the engine's final map.
    final, _ = conv.cloud_to_points(messages['/vggt_mapper/map'][-1][1])
    assert final.shape[0] == mapper.map_snapshot().num_points


def test_output_bag_refuses_existing_paths(tmp_path: Path) -> None:
    (tmp_path / 'taken').mkdir()
    (tmp_path / 'taken' / 'notes.txt').write_text('keep me')
    with pytest.raises(ExportError, match='exists'):
        with OutputBagWriter(tmp_path / 'taken'):
            pass
    with pytest.raises(ExportError, match='not a rosbag2 directory'):
        with OutputBagWriter(tmp_path / 'taken', overwrite=True):
            pass
    assert (tmp_path / 'taken' / 'notes.txt').read_text() == 'keep me'
    with OutputBagWriter(tmp_path / 'bag'):
        pass
    with OutputBagWriter(tmp_path / 'bag', overwrite=True) as bag:
        assert bag.windows_written == 0
    with pytest.raises(ExportError, match='unknown rosbag2 storage'):
        OutputBagWriter(tmp_path / 'x', storage='zip')


def _record_cut_bag(bag: Path, num_frames: int, keep: float, metadata: bool = True) -> None:
    """Record an mcap bag with rosbags, then cut its file like a killed recorder would."""
    frames = [np.full((240, 320, 3), 10 * index, np.uint8) for index in range(num_frames)]
    write_bag(bag, 'mcap', {'/camera': ('sensor_msgs/msg/Image', image_msgs(frames))})
    (storage,) = bag.glob('*.mcap')
    data = storage.read_bytes()
    storage.write_bytes(data[:int(len(data) * keep)])  # no summary, no footer
    if not metadata:
        (bag / 'metadata.yaml').unlink()


def test_truncated_mcap_is_read_up_to_the_cut(tmp_path: Path) -> None:
    # 230 kB frames: rosbags closes a chunk every ~1 MiB, so a cut leaves whole chunks.
    _record_cut_bag(tmp_path / 'cut', num_frames=20, keep=0.6)
    stats = ReadStats()

    frames = list(iter_bag_frames(tmp_path / 'cut', stats=stats))

    assert 0 < len(frames) < 20
    assert [int(frame.image_rgb[0, 0, 0]) for frame in frames] == [
        10 * index for index in range(len(frames))]
    assert [frame.stamp_ns for frame in frames] == [
        STAMP0_NS + index * STEP_NS for index in range(len(frames))]
    assert len(stats.notes) == 1
    assert f'{20 - len(frames)} of the 20 messages metadata.yaml announces are lost' \
        in stats.notes[0]


def test_killed_recording_without_metadata_is_read_too(tmp_path: Path) -> None:
    _record_cut_bag(tmp_path / 'killed', num_frames=12, keep=0.7, metadata=False)
    stats = ReadStats()

    frames = list(iter_input(tmp_path / 'killed', stats=stats))

    assert 0 < len(frames) < 12 and stats.frames_expected == len(frames)
    assert 'how many messages were lost is unknown' in stats.notes[0]


def test_unreadable_bag_is_still_an_input_error(tmp_path: Path) -> None:
    bag = tmp_path / 'junk'
    bag.mkdir()
    (bag / 'junk_0.mcap').write_bytes(b'not an mcap file at all')
    with pytest.raises(InputError, match='cannot open rosbag2'):
        iter_bag_frames(bag)
