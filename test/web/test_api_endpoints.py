"""Our own endpoints: ``/reconstruct`` (one call) and ``/predict_window`` (remote predictor)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import time
from typing import Any

from app_helpers import glb_points, LiveServer, NUM_FRAMES
import numpy as np
import pytest

from vggt_mapper.predictor.remote import load_window_prediction

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
    with pytest.raises(gradio_client.exceptions.AppError, match='not a readable image'):
        client.predict(files=[handle_file(str(bad))], api_name='/reconstruct')


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
    from gradio_client import Client

    paths = live_server.image_paths

    def one_call(index: int) -> tuple[int, int]:
        client = Client(live_server.url, verbose=False)
        try:
            window = [paths[index % NUM_FRAMES], paths[(index + 1) % NUM_FRAMES]]
            job = client.submit([handle_file(str(p)) for p in window],
                                api_name='/predict_window')
            prediction = load_window_prediction(job.result(timeout=120))
        finally:
            client.close()
        # Which frame came back first? The nearest thumbnail among the sequence's frames.
        thumb = _thumbnail(prediction.images_rgb[0])
        distances = [np.abs(thumb - _thumbnail(live_server.sequence.frame(k))).mean()
                     for k in range(NUM_FRAMES)]
        return index, int(np.argmin(distances))

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one_call, range(20)))
    elapsed = time.monotonic() - start
    assert sorted(index for index, _ in results) == list(range(20))
    assert all(frame == index % NUM_FRAMES for index, frame in results)
    assert elapsed < 120
