"""
Predictors for the CLI tests, loadable with ``--predictor cli_fakes:NAME``.

The synthetic predictor answers from the ground truth of a rendered orbit, so the CLI runs the
real engine on frames it can map, in a second or two, without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
from pathlib import Path
import time

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from vggt_mapper.predictor.base import WindowPrediction
from vggt_mapper.synthetic.predictor import SyntheticPredictor, SyntheticSequence

NUM_FRAMES = 16
STEP_M = 0.05


def orbit(match_thumbnails: bool = False) -> SyntheticSequence:
    """
    Make the test sequence (deterministic: same poses, same images every time).

    :param match_thumbnails: recognise frames after lossy storage (video) too.
    :return: the sequence.
    """
    return SyntheticSequence.orbit(NUM_FRAMES, step_m=STEP_M, match_thumbnails=match_thumbnails)


def write_frames(folder: Path, count: int = NUM_FRAMES) -> list[Path]:
    """
    Write the first ``count`` frames as lossless PNGs ``frame_<n>.png``.

    ``n`` is not zero-padded, so the reader's natural sort matters.

    :param folder: an existing folder.
    :param count: how many frames.
    :return: the files in frame order.
    """
    sequence = orbit()
    paths = []
    for index in range(count):
        path = folder / f'frame_{index}.png'
        Image.fromarray(sequence.frame(index)).save(path)
        paths.append(path)
    return paths


def write_video(path: Path) -> Path:
    """
    Write the sequence as a 10 fps video (lossy: use ``lossy_synthetic_predictor``).

    :param path: the video file to create.
    :return: ``path``.
    """
    import av

    sequence = orbit()
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('mpeg4', rate=10)
        stream.width, stream.height, stream.pix_fmt = sequence.width, sequence.height, 'yuv420p'
        stream.options = {'qscale': '2'}
        for index in range(NUM_FRAMES):
            frame = av.VideoFrame.from_ndarray(sequence.frame(index), format='rgb24')
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_bag(bag_dir: Path, topic: str = '/camera/image_raw',
              start_ns: int = 1_700_000_000_000_000_000, period_ns: int = 50_000_000) -> Path:
    """
    Record the sequence as ``sensor_msgs/msg/Image`` (rgb8) in a new rosbag2 (sqlite3).

    A second topic with one tiny image makes ``--topic`` necessary.

    :param bag_dir: the bag directory to create (must not exist).
    :param topic: the camera topic.
    :param start_ns: header stamp of the first frame.
    :param period_ns: stamp increment per frame.
    :return: ``bag_dir``.
    """
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import get_typestore, Stores

    store = get_typestore(Stores.ROS2_JAZZY)
    image_type = store.types['sensor_msgs/msg/Image']
    header_type = store.types['std_msgs/msg/Header']
    time_type = store.types['builtin_interfaces/msg/Time']

    def message(image: NDArray[np.uint8], stamp_ns: int) -> object:
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        header = header_type(stamp=time_type(sec=sec, nanosec=nanosec), frame_id='camera')
        height, width = image.shape[:2]
        return image_type(header=header, height=height, width=width, encoding='rgb8',
                          is_bigendian=0, step=width * 3, data=image.reshape(-1).copy())

    sequence = orbit()
    with Writer(bag_dir, version=8) as writer:
        camera = writer.add_connection(topic, image_type.__msgtype__, typestore=store)
        other = writer.add_connection('/other/image', image_type.__msgtype__, typestore=store)
        for index in range(NUM_FRAMES):
            stamp_ns = start_ns + index * period_ns
            data = store.serialize_cdr(message(sequence.frame(index), stamp_ns),
                                       image_type.__msgtype__)
            writer.write(camera, stamp_ns, data)
        tiny = np.zeros((20, 20, 3), np.uint8)
        writer.write(other, start_ns, store.serialize_cdr(message(tiny, start_ns),
                                                          image_type.__msgtype__))
    return bag_dir


def synthetic_predictor() -> SyntheticPredictor:
    """Make a predictor that knows every frame of ``orbit()``."""
    sequence = orbit()
    for index in range(NUM_FRAMES):
        sequence.frame(index)
    return SyntheticPredictor(sequence, model_width=224)


def lossy_synthetic_predictor() -> SyntheticPredictor:
    """Make a predictor that also recognises the frames of ``write_video``."""
    sequence = orbit(match_thumbnails=True)
    for index in range(NUM_FRAMES):
        sequence.frame(index)
    return SyntheticPredictor(sequence, model_width=224)


class BrokenPredictor:
    """Fails on every window, like a model with a bug: each window is refused, nothing mapped."""

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        raise RuntimeError('boom: a bug in the predictor')


class BlockingPredictor:
    """
    Answers the first window, then blocks in the second like a long inference, until a signal.

    When it starts blocking it writes the file named by ``$VGGT_TEST_READY``, so a test knows
    the run is mid-inference without guessing how long anything takes.
    """

    def __init__(self) -> None:
        self.inner = synthetic_predictor()
        self.calls = 0

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        self.calls += 1
        if self.calls == 2:
            Path(os.environ['VGGT_TEST_READY']).write_text('inference running')
            while True:
                time.sleep(0.05)  # a signal's KeyboardInterrupt ends this
        return self.inner.predict(frames_rgb)


class DyingPredictor:
    """Answers the first window, then fails on every call (a remote server gone)."""

    def __init__(self) -> None:
        self.inner = synthetic_predictor()
        self.calls = 0

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        self.calls += 1
        if self.calls > 1:
            raise ConnectionError('the inference server went away')
        return self.inner.predict(frames_rgb)


class ThumbnailDescriber:
    """A place describer plugged in with --place-describer: a 16x12 grey thumbnail."""

    name = 'thumbnail-16x12'
    dim = 192
    described = 0

    def describe(self, images_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        import cv2

        rows = []
        for image in images_rgb:
            grey = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (16, 12),
                              interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
            grey -= grey.mean()
            rows.append(grey / max(float(np.linalg.norm(grey)), 1e-6))
        ThumbnailDescriber.described += len(rows)
        return np.asarray(rows, np.float32)


def never_built() -> SyntheticPredictor:
    """Fail if the CLI builds the predictor before finding its arguments wrong."""
    raise AssertionError('the predictor was built before the arguments were checked')


ROBOT_FRAMES = 70


def robot_orbit() -> SyntheticSequence:
    """Return the robot bag's camera path: 70 frames, 4 cm apart (2.8 m of motion)."""
    return SyntheticSequence.orbit(ROBOT_FRAMES, step_m=0.04, height=60, width=80)


def robot_predictor() -> SyntheticPredictor:
    """Return a predictor that knows every frame of ``robot_orbit`` (``--predictor``)."""
    sequence = robot_orbit()
    for index in range(ROBOT_FRAMES):
        sequence.frame(index)
    return SyntheticPredictor(sequence, model_width=126)


def write_robot_bag(bag_dir: Path) -> Path:
    """
    Write a robot's recording of ``robot_orbit``: image, CameraInfo, odometry TF, static mount.

    ``/camera/image_raw`` and ``/camera/camera_info`` at 10 Hz, ``/tf`` ``odom → base_link``
    from a synthetic odometry (2 % scale error and noise) at the image stamps and half-way
    between them, ``/tf_static`` ``base_link → camera_optical``.

    :param bag_dir: the rosbag2 folder to create.
    :return: ``bag_dir``.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores

    from vggt_mapper.io import ros_messages as conv
    from vggt_mapper.synthetic import BASE_FROM_CAMERA, simulate_odometry

    typestore = get_typestore(Stores.ROS2_JAZZY)
    types = conv.rosbags_message_types(typestore)
    sequence = robot_orbit()
    odom_from_base = simulate_odometry(sequence.poses_world_from_cam, seed=2).odom_from_base
    start, period = 1_700_000_000_000_000_000, 100_000_000
    info_type = typestore.types['sensor_msgs/msg/CameraInfo']
    roi = typestore.types['sensor_msgs/msg/RegionOfInterest'](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    with Writer(bag_dir, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
        topics = {'/camera/image_raw': 'sensor_msgs/msg/Image',
                  '/camera/camera_info': 'sensor_msgs/msg/CameraInfo',
                  '/tf': 'tf2_msgs/msg/TFMessage', '/tf_static': 'tf2_msgs/msg/TFMessage'}
        connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore)
                       for topic, msgtype in topics.items()}

        def write(topic: str, msg: object, stamp_ns: int) -> None:
            writer.write(connections[topic], stamp_ns,
                         typestore.serialize_cdr(msg, topics[topic]))

        write('/tf_static', types.tf_message(transforms=[conv.matrix_to_transform(
            BASE_FROM_CAMERA, start, 'base_link', 'camera_optical', types)]), start)
        for index in range(ROBOT_FRAMES):
            stamp_ns = start + index * period
            write('/tf', types.tf_message(transforms=[conv.matrix_to_transform(
                odom_from_base[index], stamp_ns, 'odom', 'base_link', types)]), stamp_ns)
            write('/camera/image_raw', conv.rgb_to_image(sequence.frame(index), stamp_ns,
                                                         'camera_optical', types), stamp_ns)
            k = sequence.intrinsics
            write('/camera/camera_info', info_type(
                header=conv.make_header(stamp_ns, 'camera_optical', types), height=60, width=80,
                distortion_model='plumb_bob', d=np.zeros(5), k=k.reshape(-1),
                r=np.eye(3).reshape(-1), p=np.hstack([k, np.zeros((3, 1))]).reshape(-1),
                binning_x=0, binning_y=0, roi=roi), stamp_ns)
    return bag_dir
