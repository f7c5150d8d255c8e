"""
The web door: a Gradio app and API compatible with the official VGGT demo.

``build_app`` imports gradio; importing this package does not (the app module is loaded on
first use of ``build_app``, ``launch_app`` or ``close_app``).
"""

from __future__ import annotations

from typing import Any

from vggt_mapper.web.errors import (
    ServerClosingError,
    SkyModelError,
    UnsafeFolderError,
    UploadError,
    WebError,
    WorkdirError,
)
from vggt_mapper.web.settings import WebSettings

__all__ = [
    'ServerClosingError',
    'SkyModelError',
    'UnsafeFolderError',
    'UploadError',
    'WebError',
    'WebSettings',
    'WorkdirError',
    'build_app',
    'close_app',
    'launch_app',
]


def build_app(*args: Any, **kwargs: Any) -> Any:
    """Build the Gradio app (see ``vggt_mapper.web.app.build_app``)."""
    from vggt_mapper.web.app import build_app as _build_app
    return _build_app(*args, **kwargs)


def launch_app(*args: Any, **kwargs: Any) -> Any:
    """Launch an app (see ``vggt_mapper.web.app.launch_app``)."""
    from vggt_mapper.web.app import launch_app as _launch_app
    return _launch_app(*args, **kwargs)


def close_app(*args: Any, **kwargs: Any) -> Any:
    """Stop an app and delete its files (see ``vggt_mapper.web.app.close_app``)."""
    from vggt_mapper.web.app import close_app as _close_app
    return _close_app(*args, **kwargs)
