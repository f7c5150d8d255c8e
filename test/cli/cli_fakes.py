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
