"""Exceptions of the web door."""

from __future__ import annotations

__all__ = [
    'ServerClosingError',
    'SkyModelError',
    'UnsafeFolderError',
    'UploadError',
    'WebError',
    'WorkdirError',
]


class WebError(Exception):
    """
    Base class of the web door's errors: a user's or operator's mistake, not a bug.

    Their messages are shown to the user as they are, so they name uploaded files by their file
    names and never by a server path.
    """


class UploadError(WebError, ValueError):
    """An upload breaks a limit (file count, size, frame count) or holds no usable image."""


class WorkdirError(WebError, ValueError):
    """A ``target_dir`` from a client is not a working folder this server created."""


class UnsafeFolderError(WebError):
    """The folder for the server's working root is a symlink, not a folder, or not ours."""


class SkyModelError(WebError):
    """The sky-segmentation model is missing or cannot be run."""


class ServerClosingError(WebError):
    """The server is shutting down: the request was cancelled or not started."""
