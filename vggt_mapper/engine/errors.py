"""Exceptions of the mapping engine."""

from __future__ import annotations

__all__ = ['AlignmentError', 'ConfigError', 'EngineError', 'FrameError', 'MapStateError',
           'OccupancyError', 'PlaceError', 'PredictorFailedError']


class EngineError(Exception):
    """Base class of the engine's errors."""


class ConfigError(EngineError, ValueError):
    """A configuration value is out of range; raised when the config is built."""


class FrameError(EngineError, ValueError):
    """A frame cannot be used (wrong dtype, shape, empty); the caller counts and skips it."""


class AlignmentError(EngineError):
    """
    A window's Sim(3) alignment is ill-conditioned; the window is refused, the map kept.

    :param message: what failed, with the values.
    :param kind: a short, stable name of the check that failed (``residual``, ``inliers``,
        ``rotation``, ``centre``, ``pairs``, ``degenerate``, ``depth``, ``intrinsics``,
        ``poses``, ``consistency``...), used to count refusals by kind.
    """

    def __init__(self, message: str, kind: str = 'alignment') -> None:
        super().__init__(message)
        self.kind = kind


class PredictorFailedError(EngineError):
    """The predictor failed on too many windows in a row: the model is gone, not one window."""


class PlaceError(EngineError, ValueError):
    """A place descriptor is malformed, duplicated or from another describer than the index's."""


class MapStateError(EngineError, ValueError):
    """A saved map cannot be loaded (inconsistent, damaged, another descriptor space)."""


class OccupancyError(EngineError, ValueError):
    """No occupancy grid can be built from this map (no floor found, too few points, too big)."""
