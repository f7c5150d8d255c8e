"""
The Gradio app: the official VGGT demo's interface and API, backed by the mapping engine.

``build_app(predictor, settings)`` builds the Blocks and does nothing else: no model is loaded at
import, and a predictor factory is called on the first reconstruction (dust3r's ``main_demo``
injection). Three parts: ``state.py`` (what the server keeps: model, working folders, caches),
``handlers.py`` (requests ↔ state, errors a user may see) and ``layout.py`` (components and
events, the official API contract). ``launch_app`` serves it; ``close_app`` stops it cleanly.

Unlike the official demo, ``target_dir`` is an opaque name of a working folder this server
created; paths from a client are refused. Everything the server writes lives in one private
folder (``make_private_root``), served directly (``gr.set_static_paths``) so that Gradio keeps no
second copy of any GLB or window answer.
"""

from __future__ import annotations

from typing import Any
import weakref

import gradio as gr

from vggt_mapper.web.handlers import Handlers
from vggt_mapper.web.layout import build_blocks, CSS
from vggt_mapper.web.ordering import ImageDescriber
from vggt_mapper.web.reconstruction import MapperFactory
from vggt_mapper.web.settings import WebSettings
from vggt_mapper.web.state import PredictorSource, ServerState

__all__ = ['PredictorSource', 'app_state', 'build_app', 'close_app', 'launch_app']

_STATES: weakref.WeakKeyDictionary[gr.Blocks, ServerState] = weakref.WeakKeyDictionary()


def build_app(predictor: PredictorSource, settings: WebSettings | None = None, *,
              mapper_factory: MapperFactory | None = None,
              describer: ImageDescriber | None = None) -> gr.Blocks:
    """
    Build the web app; nothing runs until it is launched.

    :param predictor: a ``Predictor``, or a zero-argument factory returning one (called on the
        first model run, so the server starts at once).
    :param settings: limits and defaults (``WebSettings()`` if omitted).
    :param mapper_factory: builds the mapping engine (``Mapper`` if omitted; tests may pass
        another).
    :param describer: image descriptors that order photo sets larger than one pass
        (``GridHistogramDescriber`` if omitted; the engine's place describer fits).
    :return: the Blocks, with its queue configured (``launch_app`` launches it).
    :raises UnsafeFolderError: when ``settings.workdir_root`` is a symlink or not this user's.
    """
    settings = settings if settings is not None else WebSettings()
    state = ServerState(predictor, settings, mapper_factory=mapper_factory, describer=describer)
    blocks = build_blocks(Handlers(state), settings)
    _STATES[blocks] = state
    return blocks


def app_state(app: gr.Blocks) -> ServerState:
    """
    Return the state of an app from ``build_app``.

    :param app: the Blocks.
    :return: its server state.
    :raises KeyError: when the Blocks were not made by ``build_app``.
    """
    return _STATES[app]


def launch_app(app: gr.Blocks, *, block: bool = True) -> tuple[Any, str, Any]:
    """
    Serve an app from ``build_app`` with its settings' address and limits.

    With ``block``, returns when the server is interrupted (``KeyboardInterrupt``); call
    ``close_app`` then (and after a non-blocking launch) to stop model work and delete files.

    :param app: the Blocks.
    :param block: serve until interrupted (False: return at once).
    :return: Gradio's ``(app, local_url, share_url)``.
    """
    state = app_state(app)
    settings = state.settings
    # Files under the private root are served from there: no copy into Gradio's cache, whose
    # entries would outlive our rotation of /predict_window answers by `delete_cache`'s age.
    gr.set_static_paths([state.root])
    state.start()
    return app.launch(
        server_name=settings.host, server_port=settings.port or None,
        max_file_size=settings.max_upload_bytes, allowed_paths=[str(state.root)],
        state_session_capacity=settings.session_capacity, show_error=True, ssr_mode=False,
        share=False, quiet=True, prevent_thread_lock=not block, css=CSS,
        footer_links=['api'])


def close_app(app: gr.Blocks) -> bool:
    """
    Stop serving, stop model work between windows, and delete the server's private folder.

    :param app: an app from ``build_app``.
    :return: True if no model pass was still running after ``shutdown_grace_s``.
    """
    app.close()
    return app_state(app).close()
