"""``vggt-mapper serve``: parser, start-up errors, and a real server process."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import subprocess
import sys
import time

from app_helpers import free_port, NUM_FRAMES
import pytest

from vggt_mapper.cli import serve
from vggt_mapper.web.errors import SkyModelError


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers(dest='command'))
    return parser.parse_args(['serve', *argv])


def test_defaults_bind_localhost_with_the_official_port() -> None:
    args = _parse()
    assert (args.host, args.port, args.model, args.device) == ('127.0.0.1', 7860, 'vggt-1b',
                                                               'auto')
    assert (args.max_files, args.queue_size, args.video_fps) == (500, 20, 1.0)


def test_bad_limits_are_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        _parse('--max-files', '0')


def test_missing_sky_model_fails_before_the_model_loads(tmp_path: Path) -> None:
    args = _parse('--sky-model', str(tmp_path / 'skyseg.onnx'), '--model', 'tiny')
    with pytest.raises(SkyModelError, match='does not exist'):
        serve.run(args)


def test_serve_process_answers_a_client(tmp_path: Path) -> None:
    pytest.importorskip('gradio_client')
    from gradio_client import Client, handle_file
    import httpx
    from PIL import Image

    from vggt_mapper.predictor.remote import load_window_prediction
    from vggt_mapper.synthetic.predictor import SyntheticSequence

    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get('PYTHONPATH', '')]))
    process = subprocess.Popen(
        [sys.executable, '-m', 'vggt_mapper.cli.entry_points', 'serve', '--port', str(port),
         '--predictor', 'app_helpers:make_synthetic_predictor', '--workdir',
         str(tmp_path / 'work')],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f'http://127.0.0.1:{port}/'
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, 'server did not start within 60 s'
                time.sleep(0.5)
        client = Client(url, verbose=False)
        frame = SyntheticSequence.orbit(NUM_FRAMES, step_m=0.05).frame(0)
        Image.fromarray(frame).save(tmp_path / 'f.png')
        path = client.predict([handle_file(str(tmp_path / 'f.png'))],
                              api_name='/predict_window')
        assert load_window_prediction(path).num_frames == 1
        client.close()
        assert list((tmp_path / 'work').iterdir())  # the answer's working folder
        process.terminate()  # SIGTERM, as `docker stop` sends: a clean stop
        assert process.wait(timeout=30) == 0
        assert not list((tmp_path / 'work').iterdir())  # working folders deleted on the way out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
