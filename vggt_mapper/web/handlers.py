"""
The app's event handlers: Gradio values in, ``ServerState`` calls, Gradio values out.

Parameter names are the API's parameter names (Gradio reads them from the signatures): the
official demo's handlers keep the official names, order and defaults. Every handler goes through
``user_facing``: a ``WebError`` (a user's mistake) becomes a ``gr.Error`` with its message and
one warning line in the server log; anything else is a bug: its traceback goes to the log and
the user gets a generic message that reveals nothing of the server (no paths, no internals).
"""

from __future__ import annotations

from collections.abc import Callable
import functools
import logging
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import gradio as gr
import numpy as np

from vggt_mapper.web.errors import UploadError, WebError
from vggt_mapper.web.scene import (
    BRANCH_DEPTH,
    FRAME_FILTER_ALL,
    frame_filter_choices,
    Scene,
    ViewOptions,
)
from vggt_mapper.web.state import ServerState

__all__ = ['Handlers', 'NO_RECONSTRUCTION', 'user_facing']

_LOG = logging.getLogger(__name__)
_P = ParamSpec('_P')
_R = TypeVar('_R')

NO_RECONSTRUCTION = 'No reconstruction available. Please click the Reconstruct button first.'
NO_TARGET_DIR = 'No valid target directory found. Please upload first.'
INTERNAL_ERROR = 'Internal error: the request failed on the server (the server log has details).'
_VIDEO_SUFFIXES = {'.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg'}


def user_facing(handler: Callable[_P, _R]) -> Callable[_P, _R]:
    """
    Turn a handler's errors into what a user may see (see the module docstring).

    :param handler: the handler.
    :return: the wrapped handler (same signature, so the API is unchanged).
    """
    @functools.wraps(handler)
    def wrapped(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return handler(*args, **kwargs)
        except WebError as err:
            _LOG.warning('%s refused: %s', handler.__name__, err)
            raise gr.Error(str(err), print_exception=False) from err
        except gr.Error:
            raise
        except Exception as err:  # a bug: logged with its traceback, the user told nothing more
            _LOG.exception('%s failed', handler.__name__)
            raise gr.Error(INTERNAL_ERROR, print_exception=False) from err

    return wrapped


def _options(conf_thres: float | None, frame_filter: str | None, mask_black_bg: bool,
             mask_white_bg: bool, show_cam: bool, mask_sky: bool,
             prediction_mode: str | None) -> ViewOptions:
    return ViewOptions(
        conf_thres=50.0 if conf_thres is None else float(conf_thres),
        frame_filter=frame_filter or FRAME_FILTER_ALL,
        mask_black_bg=bool(mask_black_bg), mask_white_bg=bool(mask_white_bg),
        show_cam=bool(show_cam), mask_sky=bool(mask_sky),
        prediction_mode=prediction_mode or BRANCH_DEPTH)


def _file_path(item: Any) -> str:
    """Turn a gradio file value (path, or a dict/FileData from older clients) into a path."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        return str(item.get('path') or item.get('name'))
    return str(getattr(item, 'path', item))


def _cameras_json(scene: Scene) -> dict[str, Any]:
    return {
        'convention': 'world = first mapped keyframe camera, OpenCV axes (x right, y down, '
                      'z forward); world_from_cam 4x4 row-major; intrinsics in pixels of the '
                      'image named; keyframes in mapping order',
        'log': scene.log,
        'keyframes': [
            {'index': p.index, 'name': p.name, 'stamp_ns': p.stamp_ns,
             'world_from_cam': np.asarray(p.world_from_cam).tolist(),
             'intrinsics_original': np.asarray(p.intrinsics_original).tolist(),
             'original_hw': list(p.original_hw),
             'intrinsics_model': np.asarray(p.intrinsics).tolist(),
             'model_hw': list(p.model_hw)}
            for p in scene.poses],
    }


def _progress_reporter(progress: gr.Progress | None) -> Callable[[int, int], None]:
    def report(done: int, expected: int) -> None:
        if progress is not None:
            progress((done, expected), desc=f'window {done}/{expected}', unit='windows')

    return report


class Handlers:
    """
    The handlers of one app, bound to its ``ServerState``.

    :param state: the server state.
    """

    def __init__(self, state: ServerState) -> None:
        self.state = state
        # Wrapped per instance: Gradio reads the parameter names through functools.wraps.
        for name in ('update_gallery_on_upload', 'gradio_demo', 'update_visualization',
                     'set_video_fps', 'reconstruct_files', 'predict_window'):
            setattr(self, name, user_facing(getattr(self, name)))

    @staticmethod
    def clear_fields() -> None:
        """Clear the 3D viewer."""
        return None

    @staticmethod
    def update_log() -> str:
        """Show a message while the reconstruction runs."""
        return 'Loading and Reconstructing...'

    @staticmethod
    def mark_not_example() -> str:
        """Record that the viewer shows a reconstruction, not an example (official ``lambda``)."""
        return 'False'

    def update_gallery_on_upload(self, input_video: str | None, input_images: list[str] | None,
                                 video_fps: float | None = None) -> tuple[Any, ...]:
        """Store an upload in a new folder; return (viewer clear, target_dir, gallery, log)."""
        if not input_video and not input_images:
            return None, None, None, None
        fps = self.state.settings.video_fps if video_fps is None else float(video_fps)
        result = self.state.upload(
            _file_path(input_video) if input_video else None,
            [_file_path(p) for p in input_images] if input_images else None, fps)
        return None, result.workdir.name, [str(p) for p in result.image_paths], result.log

    def gradio_demo(self, target_dir: str, conf_thres: float = 50.0, frame_filter: str = 'All',
                    mask_black_bg: bool = False, mask_white_bg: bool = False,
                    show_cam: bool = True, mask_sky: bool = False,
                    prediction_mode: str = BRANCH_DEPTH,
                    progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        """Map the uploaded frames; return (GLB, log, frame-filter choices)."""
        if not target_dir or target_dir == 'None':
            return (None, NO_TARGET_DIR,
                    gr.Dropdown(choices=[FRAME_FILTER_ALL], value=FRAME_FILTER_ALL))
        workdir = self.state.resolve(target_dir)
        scene = self.state.reconstruct(workdir, _progress_reporter(progress))
        choices = frame_filter_choices(scene)
        options = _options(conf_thres, frame_filter if frame_filter in choices else None,
                           mask_black_bg, mask_white_bg, show_cam, mask_sky, prediction_mode)
        view = self.state.render(workdir, scene, options)
        return (str(view.glb_path), f'{scene.log} {view.log}.',
                gr.Dropdown(choices=choices, value=options.frame_filter, interactive=True))

    def update_visualization(self, target_dir: str, conf_thres: float, frame_filter: str,
                             mask_black_bg: bool, mask_white_bg: bool, show_cam: bool,
                             mask_sky: bool, prediction_mode: str,
                             is_example: str) -> tuple[Any, str]:
        """Re-render the cached reconstruction with new controls; return (GLB, log)."""
        if is_example == 'True' or not target_dir or target_dir == 'None':
            return None, NO_RECONSTRUCTION
        workdir = self.state.resolve(target_dir)
        scene = self.state.scene(workdir)
        if scene is None:
            return None, NO_RECONSTRUCTION
        options = _options(conf_thres, frame_filter, mask_black_bg, mask_white_bg, show_cam,
                           mask_sky, prediction_mode)
        view = self.state.render(workdir, scene, options)
        return str(view.glb_path), f'Updating Visualization: {view.log}.'

    def set_video_fps(self, video_fps: float, input_video: str | None,
                      input_images: list[str] | None) -> tuple[Any, ...]:
        """Remember this user's video sampling rate; resample the loaded video, if any."""
        fps = float(video_fps)
        if not input_video:
            return (fps, gr.skip(), gr.skip(), gr.skip(), gr.skip())
        return (fps, *self.update_gallery_on_upload(input_video, input_images, fps))

    def reconstruct_files(self, files: list[str], conf_thres: float = 50.0,
                          mask_black_bg: bool = False, mask_white_bg: bool = False,
                          show_cam: bool = True, mask_sky: bool = False,
                          prediction_mode: str = BRANCH_DEPTH, video_fps: float = 1.0,
                          progress: gr.Progress = gr.Progress()  # noqa: B008
                          ) -> tuple[str, dict[str, Any]]:
        """Reconstruct images (or one video) in one call; return the GLB and cameras JSON."""
        paths = [_file_path(f) for f in files or []]
        videos = [p for p in paths if Path(p).suffix.lower() in _VIDEO_SUFFIXES]
        if len(videos) > 1:
            raise UploadError(f'send one video at most, got {len(videos)}')
        images = [p for p in paths if p not in videos]
        upload = self.state.upload(videos[0] if videos else None, images or None,
                                   float(video_fps))
        scene = self.state.reconstruct(upload.workdir, _progress_reporter(progress))
        options = _options(conf_thres, FRAME_FILTER_ALL, mask_black_bg, mask_white_bg,
                           show_cam, mask_sky, prediction_mode)
        view = self.state.render(upload.workdir, scene, options)
        cameras = _cameras_json(scene)
        cameras['target_dir'] = upload.workdir.name
        cameras['log'] = f'{scene.log} {view.log}.'
        return str(view.glb_path), cameras

    def predict_window(self, images: list[str]) -> str:
        """Predict one window of images; return its WindowPrediction as an .npz file."""
        return str(self.state.predict_window([Path(_file_path(f)) for f in images or []]))
