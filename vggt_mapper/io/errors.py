"""Exceptions of the input readers, exporters and ROS message conversions."""

from __future__ import annotations

__all__ = ['ConversionError', 'ExportError', 'InputError', 'IOErrorBase', 'MapFolderError']


class IOErrorBase(Exception):
    """Base class of vggt_mapper.io errors."""


class InputError(IOErrorBase):
    """An input (folder, video, bag, topic) cannot be read at all; the message says why."""


class ExportError(IOErrorBase):
    """An output cannot be written (exists and overwrite not allowed, disk error, bad data)."""


class ConversionError(IOErrorBase, ValueError):
    """A ROS message cannot be converted (wrong step, truncated data, unknown encoding, empty)."""


class MapFolderError(InputError):
    """A saved map folder cannot be loaded: not a map folder, another format, damaged."""
