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
    assert (args.frames_per_pass, args.shutdown_grace_s) == (None, 30.0)


def test_bad_limits_are_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        _parse('--max-files', '0')


def test_missing_sky_model_fails_before_the_model_loads(tmp_path: Path) -> None:
    args = _parse('--sky-model', str(tmp_path / 'skyseg.onnx'), '--model', 'tiny')
    with pytest.raises(SkyModelError, match='does not exist'):
        serve.run(args)


def test_model_warning_only_for_the_random_tiny_model() -> None:
    assert 'meaningless geometry' in serve.model_warning(_parse('--model', 'tiny'))
    assert serve.model_warning(_parse('--model', 'tiny', '--checkpoint', 'tiny.pt')) == ''
    assert serve.model_warning(_parse()) == ''
    assert serve.model_warning(_parse('--predictor', 'pkg:make')) == ''


def _start_serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """Start `vggt-mapper serve` on a free port; return the process once it answers."""
    import httpx

    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get('PYTHONPATH', '')]))
    process = subprocess.Popen(
        [sys.executable, '-m', 'vggt_mapper.cli.entry_points', 'serve', '--port', str(port),
         '--workdir', str(tmp_path / 'work'), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f'http://127.0.0.1:{port}/'
    deadline = time.monotonic() + 300  # a guard against hanging, not a speed requirement
    while True:
        try:
            httpx.get(url, timeout=30)
            return process, url
        except httpx.TransportError as err:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f'server did not start: {process.communicate()[0]}'
                                     ) from err
            time.sleep(0.5)


def test_serve_process_answers_a_client(tmp_path: Path) -> None:
    pytest.importorskip('gradio_client')
    from gradio_client import Client, handle_file
    from PIL import Image

    from vggt_mapper.predictor.remote import load_window_prediction
    from vggt_mapper.synthetic.predictor import SyntheticSequence

    process, url = _start_serve(tmp_path, '--predictor', 'app_helpers:make_synthetic_predictor')
    try:
        client = Client(url, verbose=False, httpx_kwargs={'timeout': 300})
        frame = SyntheticSequence.orbit(NUM_FRAMES, step_m=0.05).frame(0)
        Image.fromarray(frame).save(tmp_path / 'f.png')
        path = client.predict([handle_file(str(tmp_path / 'f.png'))],
                              api_name='/predict_window')
        assert load_window_prediction(path).num_frames == 1
        client.close()
        assert list((tmp_path / 'work').iterdir())  # the answer's working folder
        process.terminate()  # SIGTERM, as `docker stop` sends: a clean stop
        assert process.wait(timeout=300) == 0
        assert not list((tmp_path / 'work').iterdir())  # working folders deleted on the way out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_sigterm_during_a_model_run_stops_cleanly(tmp_path: Path) -> None:
    """The tiny VGGT (real torch threads) is mid-run when SIGTERM arrives: exit 0, no abort."""
    pytest.importorskip('gradio_client')
    from gradio_client import Client, handle_file
    import httpx

    from vggt_mapper.cli.serve import TINY_WARNING

    sample = Path(__file__).resolve().parents[2] / 'vggt_mapper' / 'data' / 'sample'
    # Windows of 8 frames: a pass long enough that the stop has to wait for it.
    process, url = _start_serve(tmp_path, '--model', 'tiny', '--frames-per-pass', '8',
                                '--overlap', '2')
    client = Client(url, verbose=False, httpx_kwargs={'timeout': 300})
    try:
        assert TINY_WARNING in httpx.get(url + 'config', timeout=300).text  # shown on the page
        frames = sorted(sample.glob('*.jpg'))[:20]
        job = client.submit(files=[handle_file(str(p)) for p in frames], api_name='/reconstruct')
        deadline = time.monotonic() + 600  # a guard against hanging, not a speed requirement
        while job.status().progress_data is None:  # the first window is done, the next runs
            assert not job.done(), job.exception()
            assert time.monotonic() < deadline, 'no model progress'
            time.sleep(0.1)
        process.terminate()
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
        assert 'terminate called' not in output and 'vggt-mapper serve: stopped' in output
        assert not list((tmp_path / 'work').iterdir()), list((tmp_path / 'work').rglob('*'))
    finally:
        client.close()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
