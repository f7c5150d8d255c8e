"""``RemotePredictor``: windows predicted by a live server; clear, quick errors otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
import threading
import time

from app_helpers import EXACT, free_port, LiveServer, MODEL_WIDTH, web_settings
import numpy as np
from numpy.typing import NDArray
import pytest

from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.predictor.base import ImageMapping, Predictor, WindowPrediction
from vggt_mapper.predictor.remote import (
    load_window_prediction,
    RemotePredictor,
    RemotePredictorError,
    RetryPolicy,
    save_window_prediction,
)
from vggt_mapper.synthetic.predictor import SyntheticPredictor
from vggt_mapper.web.settings import default_mapper_config

pytest.importorskip('gradio_client')


def _prediction(num: int = 2, with_points: bool = True) -> WindowPrediction:
    rng = np.random.default_rng(3)
    mapping = ImageMapping((30, 40), (14, 28), np.array([[0.7, 0, 0], [0, 0.5, 0], [0, 0, 1]]))
    cams = np.tile(np.eye(4)[:3], (num, 1, 1))
    cams[:, :, 3] = rng.normal(size=(num, 3))
    return WindowPrediction(
        cams, np.tile(np.eye(3), (num, 1, 1)),
        rng.random((num, 14, 28), dtype=np.float32), 1 + rng.random((num, 14, 28), np.float32),
        rng.integers(0, 255, (num, 14, 28, 3), dtype=np.uint8), (mapping,) * num,
        rng.random((num, 14, 28, 3), dtype=np.float32) if with_points else None,
        rng.random((num, 14, 28), dtype=np.float32) if with_points else None)


@pytest.mark.parametrize('with_points', [True, False])
def test_window_prediction_round_trips_through_npz(tmp_path: Path, with_points: bool) -> None:
    original = _prediction(with_points=with_points)
    loaded = load_window_prediction(save_window_prediction(tmp_path / 'p', original))
    for name in ('cam_from_window', 'intrinsics', 'depth', 'depth_conf', 'images_rgb',
                 'points_window', 'points_conf'):
        expected, actual = getattr(original, name), getattr(loaded, name)
        if expected is None:
            assert actual is None
        else:
            np.testing.assert_array_equal(actual, expected)
            assert actual.dtype == expected.dtype
    assert loaded.mappings[1].original_hw == (30, 40)
    np.testing.assert_array_equal(loaded.mappings[1].model_from_original,
                                  original.mappings[1].model_from_original)


def test_a_foreign_npz_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / 'other.npz', depth=np.zeros(3))
    with pytest.raises(ValueError, match='not a vggt_mapper.window_prediction'):
        load_window_prediction(tmp_path / 'other.npz')


def test_remote_prediction_equals_the_servers_local_one(live_server: LiveServer) -> None:
    frames = [live_server.sequence.frame(i) for i in (0, 1, 2)]
    remote = RemotePredictor(live_server.url, timeout_s=60)
    try:
        assert isinstance(remote, Predictor)
        answer = remote.predict(frames)
    finally:
        remote.close()
    local = SyntheticPredictor(live_server.sequence, noise=EXACT,
                               model_width=MODEL_WIDTH).predict(frames)
    np.testing.assert_array_equal(answer.images_rgb, local.images_rgb)
    np.testing.assert_allclose(answer.depth, local.depth, rtol=1e-6)
    np.testing.assert_allclose(answer.cam_from_window, local.cam_from_window, atol=1e-9)
    assert answer.mappings[0].original_hw == (120, 160)


def test_mapper_runs_on_a_remote_predictor(live_server: LiveServer) -> None:
    from dataclasses import replace

    remote = RemotePredictor(live_server.url, timeout_s=60)
    mapper = Mapper(replace(default_mapper_config(), window_size=4, overlap=2), remote)
    try:
        for index in range(6):
            mapper.add_frame(live_server.sequence.frame(index), index * 10**9, f'f{index}')
        mapper.flush()
    finally:
        remote.close()
    assert len(mapper.trajectory()) == 6


def test_dead_port_gives_a_clear_error() -> None:
    remote = RemotePredictor(f'http://127.0.0.1:{free_port()}/', timeout_s=5)
    with pytest.raises(RemotePredictorError, match='cannot reach the vggt_mapper server'):
        remote.predict([np.zeros((32, 32, 3), np.uint8)])
    remote.close()


class _SlowPredictor:
    """Answers after ``delay_s`` (a server that hangs on the model)."""

    def __init__(self, inner: Predictor, delay_s: float) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.release = threading.Event()

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        self.release.wait(self.delay_s)
        return self.inner.predict(frames_rgb)


def test_slow_server_times_out_with_a_clear_error(live_server: LiveServer,
                                                  tmp_path: Path) -> None:
    from vggt_mapper.web.app import build_app, close_app, launch_app

    slow = _SlowPredictor(SyntheticPredictor(live_server.sequence, noise=EXACT,
                                             model_width=MODEL_WIDTH), delay_s=600)
    settings = web_settings(tmp_path)
    app = build_app(slow, settings)
    launch_app(app, block=False)
    remote = RemotePredictor(f'http://127.0.0.1:{settings.port}/', timeout_s=2)
    try:
        # The server answers only once released, which happens after this: the client's own
        # timeout is what ends the call.
        with pytest.raises(RemotePredictorError, match='did not answer'):
            remote.predict([live_server.sequence.frame(0)])
    finally:
        slow.release.set()
        remote.close()
        close_app(app)


def test_server_that_goes_away_gives_a_clear_error(live_server: LiveServer,
                                                   tmp_path: Path) -> None:
    from vggt_mapper.web.app import build_app, close_app, launch_app

    settings = web_settings(tmp_path)
    app = build_app(SyntheticPredictor(live_server.sequence, noise=EXACT,
                                       model_width=MODEL_WIDTH), settings)
    launch_app(app, block=False)
    # A server that answered before is asked again (it may be restarting), a bounded time.
    remote = RemotePredictor(f'http://127.0.0.1:{settings.port}/', timeout_s=5,
                             retry=RetryPolicy(attempts=3, first_delay_s=0.1, max_delay_s=0.2))
    frames = [live_server.sequence.frame(0)]
    try:
        assert remote.predict(frames).num_frames == 1
        close_app(app)
        start = time.monotonic()
        with pytest.raises(RemotePredictorError, match='still unavailable after 3 tries'):
            remote.predict(frames)
        assert time.monotonic() - start < 60  # bounded, not endless (generous: loaded CI)
        assert remote.retries == {'unavailable': 2}
    finally:
        remote.close()


def test_not_a_vggt_mapper_url_is_refused() -> None:
    with pytest.raises(ValueError, match='http'):
        RemotePredictor('ftp://example.org')
    with pytest.raises(ValueError, match='timeout_s'):
        RemotePredictor('http://127.0.0.1:1', timeout_s=0)


def test_full_queue_refuses_at_once_and_the_rest_complete(live_server: LiveServer,
                                                          tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    from vggt_mapper.web.app import build_app, close_app, launch_app

    slow = _SlowPredictor(SyntheticPredictor(live_server.sequence, noise=EXACT,
                                             model_width=MODEL_WIDTH), delay_s=30)
    settings = web_settings(tmp_path, queue_size=2)
    app = build_app(slow, settings)
    launch_app(app, block=False)
    url = f'http://127.0.0.1:{settings.port}/'
    image = handle_file(str(live_server.image_paths[0]))

    def one_call(_: int) -> str:
        client = Client(url, verbose=False)
        try:
            job = client.submit([image], api_name='/predict_window')
            return f'ok {load_window_prediction(job.result(timeout=60)).num_frames}'
        except Exception as err:  # noqa: BLE001 (the outcome itself is under test)
            return f'refused {err}'
        finally:
            client.close()

    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            futures = [pool.submit(one_call, i) for i in range(6)]
            # One runs, two wait, three are refused at once: release only after the refusals.
            deadline = time.monotonic() + 40
            while sum(f.done() for f in futures) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            slow.release.set()
            outcomes = [f.result(timeout=60) for f in futures]
    finally:
        slow.release.set()
        close_app(app)
    refused = [o for o in outcomes if o.startswith('refused')]
    assert sum(o == 'ok 1' for o in outcomes) == 3, outcomes
    assert len(refused) == 3 and all('full' in o.lower() for o in refused), outcomes
