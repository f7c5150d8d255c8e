"""
Derive the official VGGT demo's API (``test/web/official_api.json``) under gradio 5.17.1.

Provenance: facebookresearch/vggt ``demo_gradio.py`` as held by the fork xianglic/vggt at commit
44b3afbd1869d8bde4894dd8ea1e293112dd5eba (upstream state; no "Reload" button), whose
``requirements_demo.txt`` pins gradio==5.17.1. This script re-declares only the interface of
that demo — the components with their labels, values and choices, and the listeners with
their functions' parameter names, in the same order — with empty function bodies and no model,
then prints ``gradio_client.Client.view_api(return_format='dict')`` of it.

Run it in a separate environment (it is not part of the test suite)::

    python3 -m venv /tmp/g5 && /tmp/g5/bin/pip install gradio==5.17.1 pydantic==2.10.6
    /tmp/g5/bin/python test/web/tools/derive_official_api.py > test/web/official_api.json
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys

import gradio as gr
from gradio_client import Client

BRANCHES = ['Depthmap and Camera Branch', 'Pointmap Branch']


def update_gallery_on_upload(input_video, input_images):
    return None, None, None, None


def gradio_demo(target_dir, conf_thres=3.0, frame_filter='All', mask_black_bg=False,
                mask_white_bg=False, show_cam=True, mask_sky=False,
                prediction_mode='Pointmap Regression'):
    return None, '', None


def clear_fields():
    return None


def update_log():
    return ''


def update_visualization(target_dir, conf_thres, frame_filter, mask_black_bg, mask_white_bg,
                         show_cam, mask_sky, prediction_mode, is_example):
    return None, ''


def example_pipeline(input_video, num_images_str, input_images, conf_thres, mask_black_bg,
                     mask_white_bg, show_cam, mask_sky, prediction_mode, is_example_str):
    return None, '', None, None, None


PROVENANCE = (
    'Derived by test/web/tools/derive_official_api.py under gradio 5.17.1 from the interface '
    'of facebookresearch/vggt demo_gradio.py as held by github.com/xianglic/vggt at commit '
    '44b3afbd1869d8bde4894dd8ea1e293112dd5eba (requirements_demo.txt pins gradio==5.17.1).')


def compact(endpoints: dict) -> dict:
    """Keep what a client script depends on: names, order, types, defaults, components."""
    return {
        name: {
            'parameters': [
                {'parameter_name': p['parameter_name'],
                 'parameter_has_default': p['parameter_has_default'],
                 'parameter_default': p.get('parameter_default'),
                 'type': p['python_type']['type'], 'component': p['component'],
                 'label': p['label']}
                for p in info['parameters']],
            'returns': [{'type': r['python_type']['type'], 'component': r['component'],
                         'label': r['label']} for r in info['returns']],
        }
        for name, info in endpoints.items()
    }


def main() -> None:
    with gr.Blocks() as demo:
        is_example = gr.Textbox(label='is_example', visible=False, value='None')
        num_images = gr.Textbox(label='num_images', visible=False, value='None')
        target_dir_output = gr.Textbox(label='Target Dir', visible=False, value='None')
        input_video = gr.Video(label='Upload Video', interactive=True)
        input_images = gr.File(file_count='multiple', label='Upload Images', interactive=True)
        image_gallery = gr.Gallery(label='Preview', columns=4, height='300px',
                                   show_download_button=True, object_fit='contain',
                                   preview=True)
        log_output = gr.Markdown('Please upload a video or images, then click Reconstruct.')
        reconstruction_output = gr.Model3D(height=520, zoom_speed=0.5, pan_speed=0.5)
        submit_btn = gr.Button('Reconstruct', scale=1, variant='primary')
        gr.ClearButton([input_video, input_images, reconstruction_output, log_output,
                        target_dir_output, image_gallery], scale=1)
        prediction_mode = gr.Radio(BRANCHES, label='Select a Prediction Mode',
                                   value='Depthmap and Camera Branch', scale=1)
        conf_thres = gr.Slider(minimum=0, maximum=100, value=50, step=0.1,
                               label='Confidence Threshold (%)')
        frame_filter = gr.Dropdown(choices=['All'], value='All', label='Show Points from Frame')
        show_cam = gr.Checkbox(label='Show Camera', value=True)
        mask_sky = gr.Checkbox(label='Filter Sky', value=False)
        mask_black_bg = gr.Checkbox(label='Filter Black Background', value=False)
        mask_white_bg = gr.Checkbox(label='Filter White Background', value=False)
        gr.Examples(examples=[[None, '1', None, 20.0, False, False, True, False, BRANCHES[0],
                               'True']],
                    inputs=[input_video, num_images, input_images, conf_thres, mask_black_bg,
                            mask_white_bg, show_cam, mask_sky, prediction_mode, is_example],
                    outputs=[reconstruction_output, log_output, target_dir_output,
                             frame_filter, image_gallery],
                    fn=example_pipeline, cache_examples=False, examples_per_page=50)
        view = [target_dir_output, conf_thres, frame_filter, mask_black_bg, mask_white_bg,
                show_cam, mask_sky, prediction_mode]
        submit_btn.click(fn=clear_fields, inputs=[], outputs=[reconstruction_output]).then(
            fn=update_log, inputs=[], outputs=[log_output]).then(
            fn=gradio_demo, inputs=view,
            outputs=[reconstruction_output, log_output, frame_filter]).then(
            fn=lambda: 'False', inputs=[], outputs=[is_example])
        for control in (conf_thres, frame_filter, mask_black_bg, mask_white_bg, show_cam,
                        mask_sky, prediction_mode):
            control.change(update_visualization, view + [is_example],
                           [reconstruction_output, log_output])
        for upload in (input_video, input_images):
            upload.change(fn=update_gallery_on_upload, inputs=[input_video, input_images],
                          outputs=[reconstruction_output, target_dir_output, image_gallery,
                                   log_output])
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    demo.queue(max_size=20).launch(server_name='127.0.0.1', server_port=port,
                                   prevent_thread_lock=True, quiet=True)
    api = Client(f'http://127.0.0.1:{port}/', verbose=False).view_api(
        print_info=False, return_format='dict')
    with contextlib.redirect_stdout(sys.stderr):
        demo.close()
    print(json.dumps({'provenance': PROVENANCE, 'gradio': gr.__version__,
                      'named_endpoints': compact(api['named_endpoints'])}, indent=1))


if __name__ == '__main__':
    main()
