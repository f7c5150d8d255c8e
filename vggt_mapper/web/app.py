"""
The Gradio app: the official VGGT demo's interface and API, backed by the mapping engine.

``build_app(predictor, settings)`` builds the Blocks and does nothing else: no model is loaded
at import, and a predictor factory is called on the first reconstruction (dust3r's
``main_demo`` injection). The official demo's endpoints keep their names, parameters (names,
order, types, defaults, choices) and outputs, so a ``gradio_client`` script written for it works
here by changing the URL: ``/clear_fields``, ``/update_log``, ``/gradio_demo``, ``/lambda``,
``/update_visualization`` … ``/update_visualization_6``, ``/update_gallery_on_upload`` (video)
and ``/update_gallery_on_upload_1`` (images). ``test/web/official_api.json`` pins that contract.
Two endpoints of our own: ``/reconstruct`` (files in, GLB + cameras JSON out, one call) and
``/predict_window`` (a window of images in, a serialised ``WindowPrediction`` out, for
``RemotePredictor``).

Unlike the official demo, ``target_dir`` is an opaque name of a working folder this server
created (``WorkdirRegistry``); paths from a client are refused. Every model run shares one queue
slot (``concurrency_id='model'``, limit 1), waiting requests are bounded by ``queue_size``.
"""

from __future__ import annotations

from collections import deque, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict
import hashlib
import json
from pathlib import Path
import threading
import time
from typing import Any

import gradio as gr
import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.predictor.base import Predictor
from vggt_mapper.predictor.remote import save_window_prediction
from vggt_mapper.web.compat import official_video
from vggt_mapper.web.errors import SkyModelError, UploadError, WebError, WorkdirError
from vggt_mapper.web.reconstruction import MapperFactory, reconstruct
from vggt_mapper.web.scene import (
    BRANCH_DEPTH,
    BRANCH_POINTMAP,
    FRAME_FILTER_ALL,
    frame_filter_choices,
    load_scene,
    render_glb,
    save_scene,
    Scene,
    SkyMaskFn,
    ViewOptions,
)
from vggt_mapper.web.settings import WebSettings
from vggt_mapper.web.sky import SkySegmenter
from vggt_mapper.web.uploads import import_upload, iter_frames, list_frames
from vggt_mapper.web.workdirs import Workdir, WorkdirRegistry

__all__ = ['PredictorSource', 'build_app', 'launch_app']

PredictorSource = Predictor | Callable[[], Predictor]
"""A ready predictor, or a zero-argument factory called on the first model run."""

MODEL_QUEUE = 'model'
NO_RECONSTRUCTION = 'No reconstruction available. Please click the Reconstruct button first.'
UPLOAD_DONE = "Upload complete. Click 'Reconstruct' to begin 3D processing."
_KEEP_WINDOW_FILES = 8
_VIDEO_SUFFIXES = {'.mp4', '.mov', '.avi', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg'}
_CSS = '.vm-log * { font-size: 18px !important; font-weight: bold !important; }'
_INTRO = """
# vggt_mapper: dense 3D mapping with VGGT

Upload a video (sampled at the rate below) or images, check the preview, press **Reconstruct**.
Long sequences are mapped in overlapping windows, so they fit a small GPU or a CPU. The
controls under the viewer re-render the result without running the model again.
"""


class _Server:
    """The app's state shared by all users: settings, model, working folders, scene cache."""

    def __init__(self, predictor: PredictorSource, settings: WebSettings,
                 mapper_factory: MapperFactory) -> None:
        self.settings = settings
        self.mapper_factory = mapper_factory
        self.registry = WorkdirRegistry(settings.workdir_path, settings.workdir_max_age_s)
        self._predictor_source = predictor
        self._predictor: Predictor | None = (
            predictor if isinstance(predictor, Predictor) else None)
        self._model_lock = threading.Lock()
        self._scenes: OrderedDict[str, Scene] = OrderedDict()
        self._scenes_lock = threading.Lock()
        self._sky: SkySegmenter | None = None
        self._sky_error = ''
        # /predict_window answers are copied into Gradio's cache when returned; only the last
        # few of our own copies are kept (a long remote run sends hundreds of windows).
        self._window_dirs: deque[Workdir] = deque()

    # -- model -------------------------------------------------------------------------------

    def predictor(self) -> Predictor:
        """Return the predictor, built on first use when a factory was given."""
        if self._predictor is None:
            factory = self._predictor_source
            assert callable(factory)
            self._predictor = factory()
        return self._predictor

    # -- scenes ------------------------------------------------------------------------------

    def remember(self, workdir: Workdir, scene: Scene) -> None:
        save_scene(scene, workdir.scene_path)
        with self._scenes_lock:
            self._scenes[workdir.name] = scene
            self._scenes.move_to_end(workdir.name)
            while len(self._scenes) > 4:
                self._scenes.popitem(last=False)

    def scene(self, workdir: Workdir) -> Scene | None:
        with self._scenes_lock:
            if workdir.name in self._scenes:
                self._scenes.move_to_end(workdir.name)
                return self._scenes[workdir.name]
        if not workdir.scene_path.is_file():
            return None
        scene = load_scene(workdir.scene_path)
        with self._scenes_lock:
            self._scenes[workdir.name] = scene
        return scene

    def sky_mask(self, wanted: bool) -> SkyMaskFn | None:
        if not wanted or self.settings.sky_model_path is None:
            return None
        if self._sky is None and not self._sky_error:
            try:
                self._sky = SkySegmenter(self.settings.sky_model_path)
            except SkyModelError as err:
                self._sky_error = str(err)
        return self._sky

    # -- steps -------------------------------------------------------------------------------

    def upload(self, video: str | None, images: Sequence[str] | None,
               fps: float) -> tuple[Workdir, list[str], str]:
        workdir = self.registry.create()
        summary = import_upload(workdir, video, images, fps, self.settings)
        log = UPLOAD_DONE if not summary.note else f'{UPLOAD_DONE} Note: {summary.note}.'
        return workdir, [str(p) for p in summary.image_paths], log

    def run_model(self, workdir: Workdir, progress: gr.Progress | None) -> Scene:
        frames = list_frames(workdir)
        if not frames:
            raise UploadError('No images found. Check your upload.')

        def report(done: int, expected: int) -> None:
            if progress is not None:
                progress((done, expected), desc=f'window {done}/{expected}', unit='windows')

        with self._model_lock:
            scene = reconstruct(iter_frames(workdir), len(frames), self.predictor(),
                                self.settings.mapper, self.mapper_factory, progress=report)
        self.remember(workdir, scene)
        return scene

    def render(self, workdir: Workdir, scene: Scene, options: ViewOptions) -> tuple[str, str]:
        start = time.perf_counter()
        key = hashlib.sha1(json.dumps(asdict(options), sort_keys=True).encode()).hexdigest()
        path = workdir.path / f'glbscene_{key[:16]}.glb'
        sky = self.sky_mask(options.mask_sky)
        result = render_glb(scene, options, path, self.settings.max_glb_points, sky)
        notes = list(result.notes)
        if options.mask_sky and self._sky_error:
            notes = [self._sky_error if 'Filter Sky' in n else n for n in notes]
        text = f'{result.num_points} points, rendered in {time.perf_counter() - start:.2f} s'
        if notes:
            text += '. ' + '; '.join(notes)
        return str(result.path), text


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


def _read_rgb(path: str) -> NDArray[np.uint8]:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert('RGB'), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise gr.Error(f'{Path(path).name!r} is not a readable image ({err})') from err


def _cameras_json(scene: Scene) -> dict[str, Any]:
    return {
        'convention': 'world = first keyframe camera, OpenCV axes (x right, y down, z forward); '
                      'world_from_cam 4x4 row-major; intrinsics in pixels of the image named',
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


def build_app(predictor: PredictorSource, settings: WebSettings | None = None, *,
              mapper_factory: MapperFactory | None = None) -> gr.Blocks:
    """
    Build the web app; nothing runs until it is launched.

    :param predictor: a ``Predictor``, or a zero-argument factory returning one (called on the
        first model run, so the server starts at once).
    :param settings: limits and defaults (``WebSettings()`` if omitted).
    :param mapper_factory: builds the mapping engine (``Mapper`` if omitted; tests may pass
        another).
    :return: the Blocks, with its queue configured (``launch_app`` launches it).
    """
    settings = settings if settings is not None else WebSettings()
    server = _Server(predictor, settings,
                     mapper_factory if mapper_factory is not None else Mapper)

    # ---- handlers (parameter names are the API's parameter names: keep the official ones) --

    def clear_fields() -> None:
        """Clear the 3D viewer."""
        return None

    def update_log() -> str:
        """Show a message while the reconstruction runs."""
        return 'Loading and Reconstructing...'

    def update_gallery_on_upload(input_video: str | None, input_images: list[str] | None,
                                 video_fps: float | None = None) -> tuple[Any, ...]:
        """Store an upload in a new folder; return (viewer clear, target_dir, gallery, log)."""
        if not input_video and not input_images:
            return None, None, None, None
        fps = settings.video_fps if video_fps is None else float(video_fps)
        try:
            workdir, paths, log = server.upload(
                _file_path(input_video) if input_video else None,
                [_file_path(p) for p in input_images] if input_images else None, fps)
        except UploadError as err:
            raise gr.Error(str(err)) from err
        return None, workdir.name, paths, log

    def gradio_demo(target_dir: str, conf_thres: float = 50.0, frame_filter: str = 'All',
                    mask_black_bg: bool = False, mask_white_bg: bool = False,
                    show_cam: bool = True, mask_sky: bool = False,
                    prediction_mode: str = BRANCH_DEPTH,
                    progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
        """Map the uploaded frames window by window; return (GLB, log, frame-filter choices)."""
        if not target_dir or target_dir == 'None':
            return (None, 'No valid target directory found. Please upload first.',
                    gr.Dropdown(choices=[FRAME_FILTER_ALL], value=FRAME_FILTER_ALL))
        try:
            workdir = server.registry.resolve(target_dir)
            scene = server.run_model(workdir, progress)
        except WebError as err:
            raise gr.Error(str(err)) from err
        choices = frame_filter_choices(scene)
        options = _options(conf_thres, frame_filter if frame_filter in choices else None,
                           mask_black_bg, mask_white_bg, show_cam, mask_sky, prediction_mode)
        glb, render_log = server.render(workdir, scene, options)
        return (glb, f'{scene.log} {render_log}.',
                gr.Dropdown(choices=choices, value=options.frame_filter, interactive=True))

    def update_visualization(target_dir: str, conf_thres: float, frame_filter: str,
                             mask_black_bg: bool, mask_white_bg: bool, show_cam: bool,
                             mask_sky: bool, prediction_mode: str,
                             is_example: str) -> tuple[Any, str]:
        """Re-render the cached reconstruction with new controls; return (GLB, log)."""
        if is_example == 'True' or not target_dir or target_dir == 'None':
            return None, NO_RECONSTRUCTION
        try:
            workdir = server.registry.resolve(target_dir)
        except WorkdirError as err:
            raise gr.Error(str(err)) from err
        scene = server.scene(workdir)
        if scene is None:
            return None, NO_RECONSTRUCTION
        options = _options(conf_thres, frame_filter, mask_black_bg, mask_white_bg, show_cam,
                           mask_sky, prediction_mode)
        glb, render_log = server.render(workdir, scene, options)
        return glb, f'Updating Visualization: {render_log}.'

    def set_video_fps(video_fps: float, input_video: str | None,
                      input_images: list[str] | None) -> tuple[Any, ...]:
        """Remember this user's video sampling rate; resample the loaded video, if any."""
        fps = float(video_fps)
        if not input_video:
            return (fps, gr.skip(), gr.skip(), gr.skip(), gr.skip())
        return (fps, *update_gallery_on_upload(input_video, input_images, fps))

    def reconstruct_files(files: list[str], conf_thres: float = 50.0,
                          mask_black_bg: bool = False, mask_white_bg: bool = False,
                          show_cam: bool = True, mask_sky: bool = False,
                          prediction_mode: str = BRANCH_DEPTH, video_fps: float = 1.0,
                          progress: gr.Progress = gr.Progress()  # noqa: B008
                          ) -> tuple[str, dict[str, Any]]:
        """Reconstruct images (or one video) in one call; return the GLB and cameras JSON."""
        paths = [_file_path(f) for f in files or []]
        videos = [p for p in paths if Path(p).suffix.lower() in _VIDEO_SUFFIXES]
        if len(videos) > 1:
            raise gr.Error(f'send one video at most, got {len(videos)}')
        images = [p for p in paths if p not in videos]
        try:
            workdir, _, _ = server.upload(videos[0] if videos else None, images or None,
                                          float(video_fps))
            scene = server.run_model(workdir, progress)
        except WebError as err:
            raise gr.Error(str(err)) from err
        options = _options(conf_thres, FRAME_FILTER_ALL, mask_black_bg, mask_white_bg,
                           show_cam, mask_sky, prediction_mode)
        glb, render_log = server.render(workdir, scene, options)
        cameras = _cameras_json(scene)
        cameras['target_dir'] = workdir.name
        cameras['log'] = f'{scene.log} {render_log}.'
        return glb, cameras

    def predict_window(images: list[str]) -> str:
        """Predict one window of images; return its WindowPrediction as an .npz file."""
        paths = [_file_path(f) for f in images or []]
        if not paths:
            raise gr.Error('predict_window needs at least one image')
        if len(paths) > settings.max_files:
            raise gr.Error(f'{len(paths)} images in one window, more than the server limit '
                           f'of {settings.max_files}')
        frames = [_read_rgb(p) for p in paths]
        with server._model_lock:
            prediction = server.predictor().predict(frames)
            workdir = server.registry.create()
            path = save_window_prediction(workdir.path / 'prediction.npz', prediction)
            server._window_dirs.append(workdir)
            while len(server._window_dirs) > _KEEP_WINDOW_FILES:
                server.registry.remove(server._window_dirs.popleft())
        return str(path)

    # ---- layout (components in the official demo's order) -----------------------------------

    with gr.Blocks(title='vggt_mapper', analytics_enabled=False, delete_cache=(
            int(settings.workdir_max_age_s), int(settings.workdir_max_age_s))) as demo:
        is_example = gr.Textbox(label='is_example', visible=False, value='None')
        video_fps_state = gr.State(settings.video_fps)
        gr.Markdown(_INTRO)
        target_dir_output = gr.Textbox(label='Target Dir', visible=False, value='None')
        with gr.Row():
            with gr.Column(scale=2):
                input_video = official_video(label='Upload Video', interactive=True)
                video_fps = gr.Slider(minimum=0.1, maximum=10, value=settings.video_fps,
                                      step=0.1, label='Video frames per second')
                input_images = gr.File(file_count='multiple', label='Upload Images',
                                       interactive=True, elem_id='input_images')
                image_gallery = gr.Gallery(label='Preview', columns=4, height='300px',
                                           object_fit='contain', preview=True,
                                           buttons=['download'], elem_id='gallery')
            with gr.Column(scale=4):
                gr.Markdown('**3D Reconstruction (Point Cloud and Camera Poses)**')
                log_output = gr.Markdown('Please upload a video or images, then click '
                                         'Reconstruct.', elem_classes=['vm-log'],
                                         elem_id='log_output')
                reconstruction_output = gr.Model3D(height=520, zoom_speed=0.5, pan_speed=0.5,
                                                   elem_id='reconstruction')
                with gr.Row():
                    submit_btn = gr.Button('Reconstruct', scale=1, variant='primary',
                                           elem_id='reconstruct_button')
                    clear_btn = gr.ClearButton(scale=1)
                with gr.Row():
                    prediction_mode = gr.Radio([BRANCH_DEPTH, BRANCH_POINTMAP],
                                               label='Select a Prediction Mode',
                                               value=BRANCH_DEPTH, scale=1)
                with gr.Row():
                    conf_thres = gr.Slider(minimum=0, maximum=100, value=50, step=0.1,
                                           label='Confidence Threshold (%)')
                    frame_filter = gr.Dropdown(choices=[FRAME_FILTER_ALL],
                                               value=FRAME_FILTER_ALL,
                                               label='Show Points from Frame')
                    with gr.Column():
                        show_cam = gr.Checkbox(label='Show Camera', value=True)
                        mask_sky = gr.Checkbox(label='Filter Sky', value=False)
                        mask_black_bg = gr.Checkbox(label='Filter Black Background',
                                                    value=False)
                        mask_white_bg = gr.Checkbox(label='Filter White Background',
                                                    value=False)
        clear_btn.add([input_video, input_images, reconstruction_output, log_output,
                       target_dir_output, image_gallery])

        # Inputs and outputs of our own endpoints, used through the API only.
        with gr.Group(visible=False):
            api_files = gr.File(file_count='multiple', label='files')
            api_conf = gr.Number(value=50.0, label='conf_thres')
            api_black = gr.Checkbox(value=False, label='mask_black_bg')
            api_white = gr.Checkbox(value=False, label='mask_white_bg')
            api_cam = gr.Checkbox(value=True, label='show_cam')
            api_sky = gr.Checkbox(value=False, label='mask_sky')
            api_mode = gr.Radio([BRANCH_DEPTH, BRANCH_POINTMAP], value=BRANCH_DEPTH,
                                label='prediction_mode')
            api_fps = gr.Number(value=settings.video_fps, label='video_fps')
            api_glb = gr.File(label='GLB')
            api_cameras = gr.JSON(label='cameras')
            api_window = gr.File(file_count='multiple', label='images')
            api_prediction = gr.File(label='prediction')
            api_reconstruct_btn = gr.Button(visible=False)
            api_window_btn = gr.Button(visible=False)

        # ---- events (official order, so the generated names match) --------------------------

        view_inputs = [target_dir_output, conf_thres, frame_filter, mask_black_bg,
                       mask_white_bg, show_cam, mask_sky, prediction_mode, is_example]
        submit_btn.click(
            clear_fields, inputs=[], outputs=[reconstruction_output], api_name='clear_fields'
        ).then(
            update_log, inputs=[], outputs=[log_output], api_name='update_log'
        ).then(
            gradio_demo, inputs=view_inputs[:-1],
            outputs=[reconstruction_output, log_output, frame_filter],
            api_name='gradio_demo', concurrency_id=MODEL_QUEUE, concurrency_limit=1,
        ).then(
            lambda: 'False', inputs=[], outputs=[is_example], api_name='lambda'
        )
        controls: list[Any] = [conf_thres, frame_filter, mask_black_bg, mask_white_bg, show_cam,
                               mask_sky, prediction_mode]
        for suffix, control in enumerate(controls):
            control.change(update_visualization, view_inputs,
                           [reconstruction_output, log_output],
                           api_name='update_visualization' + (f'_{suffix}' if suffix else ''))
        upload_outputs = [reconstruction_output, target_dir_output, image_gallery, log_output]
        input_video.change(update_gallery_on_upload,
                           inputs=[input_video, input_images, video_fps_state],
                           outputs=upload_outputs, api_name='update_gallery_on_upload')
        input_images.change(update_gallery_on_upload,
                            inputs=[input_video, input_images, video_fps_state],
                            outputs=upload_outputs, api_name='update_gallery_on_upload_1')
        # On release, not on change: resampling a long video on every drag step is wasteful.
        video_fps.release(set_video_fps, inputs=[video_fps, input_video, input_images],
                          outputs=[video_fps_state, *upload_outputs], api_name='set_video_fps')

        api_reconstruct_btn.click(
            reconstruct_files,
            inputs=[api_files, api_conf, api_black, api_white, api_cam, api_sky, api_mode,
                    api_fps],
            outputs=[api_glb, api_cameras], api_name='reconstruct',
            concurrency_id=MODEL_QUEUE, concurrency_limit=1)
        api_window_btn.click(predict_window, inputs=[api_window], outputs=[api_prediction],
                             api_name='predict_window', concurrency_id=MODEL_QUEUE,
                             concurrency_limit=1)

    demo.queue(max_size=settings.queue_size, default_concurrency_limit=4)
    demo.vggt_mapper_server = server
    built: gr.Blocks = demo
    return built


def launch_app(app: gr.Blocks, settings: WebSettings, *,
               block: bool = True) -> tuple[Any, str, Any]:
    """
    Launch an app from ``build_app`` with the settings' address and upload limits.

    :param app: the Blocks.
    :param settings: host, port, upload limits, working-folder root.
    :param block: serve until interrupted (False: return at once, for tests).
    :return: Gradio's ``(app, local_url, share_url)``.
    """
    settings.workdir_path.mkdir(parents=True, exist_ok=True)
    return app.launch(
        server_name=settings.host, server_port=settings.port or None,
        max_file_size=settings.max_upload_bytes, allowed_paths=[str(settings.workdir_path)],
        show_error=True, ssr_mode=False, share=False, quiet=True, prevent_thread_lock=not block,
        css=_CSS, footer_links=['api'])
