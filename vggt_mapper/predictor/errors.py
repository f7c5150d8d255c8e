"""Exceptions of the predictor package (``RemotePredictorError`` lives in ``remote.py``)."""

from __future__ import annotations

__all__ = [
    'FrameFormatError',
    'LoadObjectError',
    'PredictorError',
    'PredictorOutOfMemoryError',
    'PredictorSpecError',
]


class PredictorError(Exception):
    """Base class of the predictor package's errors."""


class FrameFormatError(PredictorError, ValueError):
    """An input image cannot be preprocessed (wrong dtype, shape or mode, empty window)."""


class PredictorSpecError(PredictorError, ValueError):
    """A ``PredictorSpec`` field is invalid; raised when the spec is built."""


class LoadObjectError(PredictorError, ImportError):
    """A ``module:attr`` reference cannot be imported or is not a usable predictor."""


class PredictorOutOfMemoryError(PredictorError):
    """
    The device ran out of memory on a window, after the predictor's own retry.

    ``VGGTPredictor`` retries a window once with its heads run in smaller frame chunks before
    raising this; the caller should retry the window with fewer frames rather than drop it.

    :param num_frames: frames in the refused window.
    :param detail: the device's own message (first line).
    :param retry_chunk_size: frames per head chunk of the retry that also failed, or None when
        no retry could help (a one-frame window, a model without ``frames_chunk_size``).
    """

    def __init__(self, num_frames: int, detail: str, retry_chunk_size: int | None) -> None:
        retried = ('' if retry_chunk_size is None else
                   f', also with the heads run {retry_chunk_size} frame(s) at a time')
        super().__init__(f'out of device memory on a window of {num_frames} frames{retried} '
                         f'({detail}); retry with fewer frames per window')
        self.num_frames = num_frames
        self.detail = detail
        self.retry_chunk_size = retry_chunk_size
