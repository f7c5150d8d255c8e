"""Exceptions of the predictor package (``RemotePredictorError`` lives in ``remote.py``)."""

from __future__ import annotations

__all__ = ['FrameFormatError', 'LoadObjectError', 'PredictorError', 'PredictorSpecError']


class PredictorError(Exception):
    """Base class of the predictor package's errors."""


class FrameFormatError(PredictorError, ValueError):
    """An input image cannot be preprocessed (wrong dtype, shape or mode, empty window)."""


class PredictorSpecError(PredictorError, ValueError):
    """A ``PredictorSpec`` field is invalid; raised when the spec is built."""


class LoadObjectError(PredictorError, ImportError):
    """A ``module:attr`` reference cannot be imported or is not a usable predictor."""
