"""Exceptions of the web door."""

from __future__ import annotations

__all__ = ['SkyModelError', 'UploadError', 'WebError', 'WorkdirError']


class WebError(Exception):
    """Base class of the web door's errors; their messages are shown to the user as they are."""


class UploadError(WebError, ValueError):
    """An upload breaks a limit (file count, size, frame count) or holds no usable image."""


class WorkdirError(WebError, ValueError):
    """A ``target_dir`` from a client is not a working folder this server created."""


class SkyModelError(WebError):
    """The sky-segmentation model is missing or cannot be run."""
