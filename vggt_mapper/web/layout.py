"""
The app's layout and events: the official VGGT demo's components, wired to ``Handlers``.

The official demo's endpoints keep their names, parameters (names, order, types, defaults,
choices) and outputs, so a ``gradio_client`` script written for it works here by changing the URL:
``/clear_fields``, ``/update_log``, ``/gradio_demo``, ``/lambda``, ``/update_visualization`` …
``/update_visualization_6``, ``/update_gallery_on_upload`` (video) and
``/update_gallery_on_upload_1`` (images). ``test/web/official_api.json`` pins that contract. Our
own: ``/reconstruct``, ``/predict_window``, ``/set_video_fps``. Every model run shares one queue
slot (``concurrency_id='model'``, limit 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from vggt_mapper.web.compat import official_video
from vggt_mapper.web.handlers import Handlers
from vggt_mapper.web.scene import BRANCH_DEPTH, BRANCH_POINTMAP, FRAME_FILTER_ALL
from vggt_mapper.web.settings import WebSettings

__all__ = ['MODEL_QUEUE', 'build_blocks']

MODEL_QUEUE = 'model'
CSS = ('.vm-log * { font-size: 18px !important; font-weight: bold !important; } '
       '#model_warning { border: 2px solid #d97706; border-radius: 6px; padding: 4px 12px; }')
_INTRO = """
# vggt_mapper: dense 3D mapping with VGGT

Upload a video (sampled at the rate below) or images, check the preview, press **Reconstruct**.
A photo set is reconstructed in one pass when it fits the model's memory, otherwise in
overlapping windows of similar views; a video in overlapping windows, in time order. The controls
under the viewer re-render the result without running the model again.
"""


@dataclass
class _Inputs:
    """The upload column."""

    video: gr.Video
    fps: gr.Slider
    images: gr.File
    gallery: gr.Gallery


@dataclass
class _Viewer:
    """The viewer column: log, 3D model, buttons and the official visual controls."""

    log: gr.Markdown
    model3d: gr.Model3D
    submit: gr.Button
    clear: gr.ClearButton
    prediction_mode: gr.Radio
    conf_thres: gr.Slider
    frame_filter: gr.Dropdown
    show_cam: gr.Checkbox
    mask_sky: gr.Checkbox
    mask_black_bg: gr.Checkbox
    mask_white_bg: gr.Checkbox

    @property
    def controls(self) -> list[Any]:
        """Return the controls in the official order of their ``/update_visualization*``."""
        return [self.conf_thres, self.frame_filter, self.mask_black_bg, self.mask_white_bg,
                self.show_cam, self.mask_sky, self.prediction_mode]


def _inputs(settings: WebSettings) -> _Inputs:
    video = official_video(label='Upload Video', interactive=True)
    fps = gr.Slider(minimum=0.1, maximum=10, value=settings.video_fps, step=0.1,
                    label='Video frames per second')
    images = gr.File(file_count='multiple', label='Upload Images', interactive=True,
                     elem_id='input_images')
    gallery = gr.Gallery(label='Preview', columns=4, height='300px', object_fit='contain',
                         preview=True, buttons=['download'], elem_id='gallery')
    return _Inputs(video, fps, images, gallery)


def _viewer() -> _Viewer:
    gr.Markdown('**3D Reconstruction (Point Cloud and Camera Poses)**')
    log = gr.Markdown('Please upload a video or images, then click Reconstruct.',
                      elem_classes=['vm-log'], elem_id='log_output')
    model3d = gr.Model3D(height=520, zoom_speed=0.5, pan_speed=0.5, elem_id='reconstruction')
    with gr.Row():
        submit = gr.Button('Reconstruct', scale=1, variant='primary', elem_id='reconstruct_button')
        clear = gr.ClearButton(scale=1)
    with gr.Row():
        prediction_mode = gr.Radio([BRANCH_DEPTH, BRANCH_POINTMAP],
                                   label='Select a Prediction Mode', value=BRANCH_DEPTH, scale=1,
                                   elem_id='prediction_mode')
    with gr.Row():
        conf_thres = gr.Slider(minimum=0, maximum=100, value=50, step=0.1,
                               label='Confidence Threshold (%)', elem_id='conf_thres')
        frame_filter = gr.Dropdown(choices=[FRAME_FILTER_ALL], value=FRAME_FILTER_ALL,
                                   label='Show Points from Frame', elem_id='frame_filter')
        with gr.Column():
            show_cam = gr.Checkbox(label='Show Camera', value=True, elem_id='show_cam')
            mask_sky = gr.Checkbox(label='Filter Sky', value=False, elem_id='mask_sky')
            mask_black_bg = gr.Checkbox(label='Filter Black Background', value=False,
                                        elem_id='mask_black_bg')
            mask_white_bg = gr.Checkbox(label='Filter White Background', value=False,
                                        elem_id='mask_white_bg')
    return _Viewer(log, model3d, submit, clear, prediction_mode, conf_thres, frame_filter,
                   show_cam, mask_sky, mask_black_bg, mask_white_bg)


def _wire_official(handlers: Handlers, inputs: _Inputs, viewer: _Viewer, target_dir: gr.Textbox,
                   is_example: gr.Textbox, fps_state: gr.State) -> None:
    """Wire the official demo's events, in its order (so the generated API names match)."""
    view_inputs = [target_dir, viewer.conf_thres, viewer.frame_filter, viewer.mask_black_bg,
                   viewer.mask_white_bg, viewer.show_cam, viewer.mask_sky, viewer.prediction_mode,
                   is_example]
    viewer.submit.click(
        handlers.clear_fields, inputs=[], outputs=[viewer.model3d], api_name='clear_fields'
    ).then(
        handlers.update_log, inputs=[], outputs=[viewer.log], api_name='update_log'
    ).then(
        handlers.gradio_demo, inputs=view_inputs[:-1],
        outputs=[viewer.model3d, viewer.log, viewer.frame_filter],
        api_name='gradio_demo', concurrency_id=MODEL_QUEUE, concurrency_limit=1,
    ).then(
        handlers.mark_not_example, inputs=[], outputs=[is_example], api_name='lambda'
    )
    for suffix, control in enumerate(viewer.controls):
        control.change(handlers.update_visualization, view_inputs, [viewer.model3d, viewer.log],
                       api_name='update_visualization' + (f'_{suffix}' if suffix else ''))
    upload_outputs = [viewer.model3d, target_dir, inputs.gallery, viewer.log]
    upload_inputs = [inputs.video, inputs.images, fps_state]
    inputs.video.change(handlers.update_gallery_on_upload, inputs=upload_inputs,
                        outputs=upload_outputs, api_name='update_gallery_on_upload')
    inputs.images.change(handlers.update_gallery_on_upload, inputs=upload_inputs,
                         outputs=upload_outputs, api_name='update_gallery_on_upload_1')
    # On release, not on change: resampling a long video on every drag step is wasteful.
    inputs.fps.release(handlers.set_video_fps, inputs=[inputs.fps, inputs.video, inputs.images],
                       outputs=[fps_state, *upload_outputs], api_name='set_video_fps')


def _wire_own(handlers: Handlers, settings: WebSettings) -> None:
    """Hidden components and events of our own endpoints (used through the API only)."""
    with gr.Group(visible=False):
        files = gr.File(file_count='multiple', label='files')
        conf = gr.Number(value=50.0, label='conf_thres')
        black = gr.Checkbox(value=False, label='mask_black_bg')
        white = gr.Checkbox(value=False, label='mask_white_bg')
        cam = gr.Checkbox(value=True, label='show_cam')
        sky = gr.Checkbox(value=False, label='mask_sky')
        mode = gr.Radio([BRANCH_DEPTH, BRANCH_POINTMAP], value=BRANCH_DEPTH,
                        label='prediction_mode')
        fps = gr.Number(value=settings.video_fps, label='video_fps')
        glb = gr.File(label='GLB')
        cameras = gr.JSON(label='cameras')
        window = gr.File(file_count='multiple', label='images')
        prediction = gr.File(label='prediction')
        reconstruct_button = gr.Button(visible=False)
        window_button = gr.Button(visible=False)
    reconstruct_button.click(
        handlers.reconstruct_files,
        inputs=[files, conf, black, white, cam, sky, mode, fps], outputs=[glb, cameras],
        api_name='reconstruct', concurrency_id=MODEL_QUEUE, concurrency_limit=1)
    window_button.click(handlers.predict_window, inputs=[window], outputs=[prediction],
                        api_name='predict_window', concurrency_id=MODEL_QUEUE,
                        concurrency_limit=1)


def build_blocks(handlers: Handlers, settings: WebSettings) -> gr.Blocks:
    """
    Lay out the app and wire its events.

    :param handlers: the handlers (bound to the server state).
    :param settings: defaults shown in the controls, the model warning, queue and cache limits.
    :return: the Blocks with its queue configured.
    """
    max_age = int(settings.workdir_max_age_s)
    with gr.Blocks(title='vggt_mapper', analytics_enabled=False,
                   delete_cache=(max_age, max_age)) as demo:
        is_example = gr.Textbox(label='is_example', visible=False, value='None')
        fps_state = gr.State(settings.video_fps)
        gr.Markdown(_INTRO)
        if settings.model_warning:
            gr.Markdown(f'⚠ **{settings.model_warning}**', elem_id='model_warning')
        target_dir = gr.Textbox(label='Target Dir', visible=False, value='None')
        with gr.Row():
            with gr.Column(scale=2):
                inputs = _inputs(settings)
            with gr.Column(scale=4):
                viewer = _viewer()
        viewer.clear.add([inputs.video, inputs.images, viewer.model3d, viewer.log, target_dir,
                          inputs.gallery])
        _wire_official(handlers, inputs, viewer, target_dir, is_example, fps_state)
        _wire_own(handlers, settings)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=4)
    built: gr.Blocks = demo
    return built
