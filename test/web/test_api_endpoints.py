"""Our own endpoints: ``/reconstruct`` (one call) and ``/predict_window`` (remote predictor)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from app_helpers import (
    EXACT,
    GatedPredictor,
    glb_points,
    LiveServer,
    make_client,
    MODEL_WIDTH,
    NUM_FRAMES,
    web_settings,
)
import numpy as np
import pytest

from vggt_mapper.predictor.remote import load_window_prediction
from vggt_mapper.synthetic.predictor import SyntheticPredictor

gradio_client = pytest.importorskip('gradio_client')
handle_file = gradio_client.handle_file


def test_reconstruct_returns_glb_and_cameras_in_one_call(live_server: LiveServer,
                                                         client: Any) -> None:
    glb, cameras = client.predict(
        files=[handle_file(str(p)) for p in live_server.image_paths], conf_thres=0,
        api_name='/reconstruct')
    assert len(glb_points(glb)) > 1000
    keyframes = cameras['keyframes']
    assert [k['name'] for k in keyframes] == [p.name for p in live_server.image_paths]
    poses = np.array([k['world_from_cam'] for k in keyframes])
    assert poses.shape == (NUM_FRAMES, 4, 4)
    np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-6)  # world = first camera
    # The trajectory is the ground truth's up to one scale: compare step lengths.
    truth = live_server.sequence.poses_world_from_cam[:, :3, 3]
    steps_truth = np.linalg.norm(np.diff(truth, axis=0), axis=1)
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    ratio = steps / steps_truth
    np.testing.assert_allclose(ratio, np.median(ratio), rtol=0.02)
    assert keyframes[0]['original_hw'] == [120, 160]
    assert 'Reconstruction Success' in cameras['log']


def test_reconstruct_refuses_an_unreadable_image(live_server: LiveServer, client: Any,
                                                 tmp_path: Path) -> None:
    bad = tmp_path / 'not_an_image.png'
    bad.write_bytes(b'no image here')
    with pytest.raises(gradio_client.exceptions.AppError, match='not a readable image') as err:
        client.predict(files=[handle_file(str(bad))], api_name='/reconstruct')
    assert "'not_an_image.png'" in str(err.value) and '/' not in str(err.value)  # no paths


def test_predict_window_returns_a_serialised_prediction(live_server: LiveServer,
                                                        client: Any) -> None:
    path = client.predict(
        images=[handle_file(str(p)) for p in live_server.image_paths[:3]],
        api_name='/predict_window')
    prediction = load_window_prediction(path)
    assert prediction.num_frames == 3
    assert prediction.mappings[0].original_hw == (120, 160)
    np.testing.assert_allclose(prediction.cam_from_window[0][:, :3], np.eye(3), atol=1e-9)


def _thumbnail(image_rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(image_rgb, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)


def test_twenty_concurrent_clients_all_get_their_own_answer(live_server: LiveServer) -> None:
    """20 clients at once: the model queue serialises them, every answer is the right one."""
    paths = live_server.image_paths

    def one_call(index: int) -> tuple[int, int]:
        client: Any = make_client(live_server.url)
        try:
            window = [paths[index % NUM_FRAMES], paths[(index + 1) % NUM_FRAMES]]
            job = client.submit([handle_file(str(p)) for p in window],
                                api_name='/predict_window')
            prediction = load_window_prediction(job.result(timeout=600))
        finally:
            client.close()
        # Which frame came back first? The nearest thumbnail among the sequence's frames.
        thumb = _thumbnail(prediction.images_rgb[0])
        distances = [np.abs(thumb - _thumbnail(live_server.sequence.frame(k))).mean()
                     for k in range(NUM_FRAMES)]
        return index, int(np.argmin(distances))

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one_call, range(20)))
    assert sorted(index for index, _ in results) == list(range(20))
    assert all(frame == index % NUM_FRAMES for index, frame in results)


@pytest.fixture()
def gated_server(live_server: LiveServer, tmp_path: Path) -> Iterator[tuple[str, Any, Any]]:
    """Serve a model whose passes wait for the test's go; yield URL, gate and Blocks."""
    from vggt_mapper.web.app import build_app, close_app, launch_app

    gate = GatedPredictor(SyntheticPredictor(live_server.sequence, noise=EXACT,
                                             model_width=MODEL_WIDTH))
    settings = web_settings(tmp_path, window_answers_kept=3, session_capacity=3)
    app = build_app(gate, settings)
    launch_app(app, block=False)
    try:
        yield f'http://127.0.0.1:{settings.port}/', gate, app
    finally:
        gate.release.set()
        close_app(app)


def test_uploads_and_pages_are_served_while_a_model_pass_runs(
        gated_server: tuple[str, Any, Any], live_server: LiveServer) -> None:
    import httpx

    url, gate, _ = gated_server
    runner: Any = make_client(url)
    uploader: Any = make_client(url)
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        job = runner.submit([handle_file(str(live_server.image_paths[0]))],
                            api_name='/predict_window')
        assert gate.entered.wait(300), 'the model pass never started'
        # The pass holds the model until released below: these must not wait for it (the
        # guard only turns a hang into a failure; no speed is asserted).
        upload = pool.submit(uploader.predict, None,
                             [handle_file(str(p)) for p in live_server.image_paths[:3]],
                             api_name='/update_gallery_on_upload_1')
        page_load = pool.submit(httpx.get, url, timeout=300)
        _, target_dir, gallery, log = upload.result(timeout=240)
        page = page_load.result(timeout=240)
        assert not job.done() and not gate.release.is_set()
        assert target_dir.startswith('upload_') and len(gallery) == 3 and 'complete' in log
        assert page.status_code == 200
        gate.release.set()
        assert load_window_prediction(job.result(timeout=600)).num_frames == 1
    finally:
        gate.release.set()
        pool.shutdown(wait=True)
        runner.close()
        uploader.close()


def test_window_answers_are_bounded_and_not_copied_into_gradios_cache(
        gated_server: tuple[str, Any, Any], live_server: LiveServer) -> None:
    from gradio_client import Client

    from vggt_mapper.web.app import app_state

    url, gate, app = gated_server
    gate.release.set()
    root = app_state(app).root
    # download_files=False: the client gets the server's own path of each answer.
    client = Client(url, verbose=False, download_files=False, httpx_kwargs={'timeout': 300})
    try:
        answers = [client.predict([handle_file(str(live_server.image_paths[index]))],
                                  api_name='/predict_window') for index in range(6)]
    finally:
        client.close()
    served = [Path(answer['path']) for answer in answers]
    assert all(path.is_relative_to(root) for path in served), served  # no copy elsewhere
    assert [path.exists() for path in served] == [False] * 3 + [True] * 3  # the last 3 kept
    assert len(list(root.rglob('prediction.npz'))) == 3


def test_gradio_keeps_the_state_of_a_bounded_number_of_sessions(
        gated_server: tuple[str, Any, Any]) -> None:
    url, _, app = gated_server
    for _ in range(6):  # six scripts, six sessions
        client: Any = make_client(url)
        try:
            assert client.predict(api_name='/update_log').startswith('Loading')
        finally:
            client.close()
    assert 0 < len(app.state_holder.session_data) <= 3  # session_capacity
