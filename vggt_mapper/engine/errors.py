"""Exceptions of the mapping engine."""

from __future__ import annotations

__all__ = ['AlignmentError', 'ConfigError', 'EngineError', 'FrameError', 'PlaceError']


class EngineError(Exception):
    """Base class of the engine's errors."""


class ConfigError(EngineError, ValueError):
    """A configuration value is out of range; raised when the config is built."""


class FrameError(EngineError, ValueError):
    """A frame cannot be used (wrong dtype, shape, empty); the caller counts and skips it."""


class AlignmentError(EngineError):
    """A window's Sim(3) alignment is ill-conditioned; the window is refused, the map kept."""


class PlaceError(EngineError, ValueError):
    """A place descriptor is malformed, duplicated or from another describer than the index's."""
