"""
A gradio_client script written for the official demo, run against our server.

Only the URL differs from a script for the official demo: upload → target_dir →
``/gradio_demo`` → GLB saved locally → ``/update_visualization*`` re-renders from the cache.
"""

from __future__ import annotations

from pathlib import Path
import shutil
from typing import Any

from app_helpers import glb_camera_count, glb_points, LiveServer, NUM_FRAMES
import cv2
import numpy as np
import pytest

gradio_client = pytest.importorskip('gradio_client')
handle_file = gradio_client.handle_file
AppError = gradio_client.exceptions.AppError


def _upload_images(client: Any, paths: list[Path]) -> tuple[object, str, list, str]:
    return client.predict(
        input_video=None, input_images=[handle_file(str(p)) for p in paths],
        api_name='/update_gallery_on_upload_1')


def test_upload_then_reconstruct_then_revisualise(live_server: LiveServer, client: Any,
                                                  tmp_path: Path) -> None:
    viewer, target_dir, gallery, log = _upload_images(client, live_server.image_paths)
    assert viewer is None
    assert target_dir.startswith('upload_') and '/' not in target_dir
    assert len(gallery) == NUM_FRAMES
    assert 'Upload complete' in log

    glb, log, frame_filter = client.predict(
        target_dir=target_dir, conf_thres=50, frame_filter='All', mask_black_bg=False,
        mask_white_bg=False, show_cam=True, mask_sky=False,
        prediction_mode='Depthmap and Camera Branch', api_name='/gradio_demo')
    saved = Path(shutil.copy(glb, tmp_path / 'scene.glb'))
    assert saved.read_bytes()[:4] == b'glTF'
    assert log.startswith(f'Reconstruction Success ({NUM_FRAMES} frames')
    assert 'windows' in log and ' s' in log  # timings
    choices = [choice[0] for choice in frame_filter['choices']]
    assert choices[0] == 'All' and len(choices) == NUM_FRAMES + 1
    points_half = glb_points(saved)
    assert len(points_half) > 1000
    assert glb_camera_count(saved) == NUM_FRAMES

    # Control changes re-render from the cache: all points, then one frame without cameras.
    glb_all, log_all = client.predict(
        target_dir, 0, 'All', False, False, True, False, 'Depthmap and Camera Branch', 'None',
        api_name='/update_visualization')
    assert log_all.startswith('Updating Visualization')
    points_all = glb_points(glb_all)
    # 50th percentile keeps about half of the pixels.
    assert 0.4 < len(points_half) / len(points_all) < 0.6
    glb_one, _ = client.predict(
        target_dir, 0, choices[3], False, False, False, False, 'Depthmap and Camera Branch',
        'None', api_name='/update_visualization_1')
    points_one = glb_points(glb_one)
    assert 0 < len(points_one) < len(points_all) / (NUM_FRAMES - 2)
    assert glb_camera_count(glb_one) == 0


def test_scene_geometry_matches_the_synthetic_room(live_server: LiveServer, client: Any
                                                   ) -> None:
    _, target_dir, _, _ = _upload_images(client, live_server.image_paths)
    glb, _, _ = client.predict(
        target_dir, 0, 'All', False, False, False, False, 'Depthmap and Camera Branch',
        api_name='/gradio_demo')
    points = glb_points(glb)
    # Each frame's first-window depth, carried into the world by the engine's poses, must
    # land on the same surfaces: the cloud of frame 0 and of the last frame overlap.
    first, _ = client.predict(
        target_dir, 0, '0: frame_000.png', False, False, False, False,
        'Depthmap and Camera Branch', 'None', api_name='/update_visualization_1')
    last, _ = client.predict(
        target_dir, 0, f'{NUM_FRAMES - 1}: frame_{NUM_FRAMES - 1:03d}.png', False, False, False,
        False, 'Depthmap and Camera Branch', 'None', api_name='/update_visualization_1')
    from scipy.spatial import cKDTree

    cloud_first, cloud_last = glb_points(first), glb_points(last)
    extent = np.linalg.norm(np.percentile(points, 95, axis=0) - np.percentile(points, 5, axis=0))
    distances, _ = cKDTree(cloud_first).query(cloud_last)
    assert np.median(distances) < 0.02 * extent


def _video(live_server: LiveServer, path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), 10.0, (160, 120))
    for index in range(35):  # 3.5 s at 10 fps → frames at 0, 1, 2, 3 s
        frame = live_server.sequence.frame(index % NUM_FRAMES)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_legacy_video_payload_is_sampled_at_one_fps(live_server: LiveServer, client: Any,
                                                    tmp_path: Path) -> None:
    video = _video(live_server, tmp_path / 'clip.mp4')
    # The official demo's clients send {'video': file} (Gradio 5); both forms are accepted.
    _, target_dir, gallery, _ = client.predict(
        input_video={'video': handle_file(str(video)), 'subtitles': None}, input_images=None,
        api_name='/update_gallery_on_upload')
    assert target_dir.startswith('upload_') and len(gallery) == 4
    _, _, gallery_bare, _ = client.predict(
        input_video=handle_file(str(video)), input_images=None,
        api_name='/update_gallery_on_upload')
    assert len(gallery_bare) == 4


def test_sampling_rate_is_per_session(live_server: LiveServer, client: Any,
                                      tmp_path: Path) -> None:
    video = _video(live_server, tmp_path / 'clip.mp4')
    # The rate itself goes to a gr.State output, which clients do not see.
    _, target_dir, gallery, _ = client.predict(
        2.0, handle_file(str(video)), None, api_name='/set_video_fps')
    assert len(gallery) == 7 and target_dir.startswith('upload_')
    _, _, gallery, _ = client.predict(
        handle_file(str(video)), None, api_name='/update_gallery_on_upload')
    assert len(gallery) == 7  # this session's rate, kept in gr.State
    other = gradio_client.Client(live_server.url, verbose=False)
    try:
        _, _, gallery, _ = other.predict(handle_file(str(video)), None,
                                         api_name='/update_gallery_on_upload')
    finally:
        other.close()
    assert len(gallery) == 4  # another session keeps the default 1 fps


def test_empty_upload_returns_nothing_like_the_official_demo(client: Any) -> None:
    viewer, target_dir, gallery, log = client.predict(
        None, None, api_name='/update_gallery_on_upload_1')
    # Gradio 6 turns an empty gallery into [] where Gradio 5 sent None.
    assert (viewer, target_dir, gallery or None, log) == (None, None, None, None)


def test_visualization_before_reconstruction_says_so(live_server: LiveServer,
                                                     client: Any) -> None:
    _, target_dir, _, _ = _upload_images(client, live_server.image_paths[:2])
    glb, log = client.predict(
        target_dir, 50, 'All', False, False, True, False, 'Depthmap and Camera Branch', 'None',
        api_name='/update_visualization_2')
    assert glb is None and 'Reconstruct' in log


@pytest.mark.parametrize('target_dir', [
    '../../etc', '/etc', '/tmp', 'upload_20250101T000000_' + '0' * 32,
    'upload_20250101T000000_' + '0' * 31 + '/..', '.', ''])
def test_foreign_target_dir_is_refused(client: Any, target_dir: str) -> None:
    if target_dir == '':
        _, log, _ = client.predict(target_dir, api_name='/gradio_demo')
        assert 'upload first' in log
        return
    with pytest.raises(AppError, match='target_dir'):
        client.predict(target_dir, api_name='/gradio_demo')
    with pytest.raises(AppError, match='target_dir'):
        client.predict(
            target_dir, 50, 'All', False, False, True, False, 'Depthmap and Camera Branch',
            'None', api_name='/update_visualization')
