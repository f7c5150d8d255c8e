"""
Predictors for the CLI tests, loadable with ``--predictor cli_fakes:NAME``.

The synthetic predictor answers from the ground truth of a rendered orbit, so the CLI runs the
real engine on frames it can map, in a second or two, without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
    """Fails like a bug would: the CLI must show the traceback, not hide it."""

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        raise RuntimeError('boom: a bug in the predictor')
