"""
Photo sets like the official demo's: one pass when they fit, similar views together when not.

The server runs with a stand-in that fails like VGGT where the views of a window do not overlap
(``CovisibilityPredictor``) and a frame limit of 6 per pass, so the shipped sample's 40 frames
need several windows: uploaded in a random order under names that say nothing of it, they must
be chained by visual similarity before windowing to map as well as the ordered upload.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
import shutil
from typing import Any

from app_helpers import CovisibilityPredictor, LiveServer, MODEL_WIDTH, web_settings
import numpy as np
import pytest

from vggt_mapper.engine.types import KeyframePose
from vggt_mapper.synthetic.evaluation import frame_name, trajectory_error
from vggt_mapper.synthetic.sample import sample_predictor, sample_sequence

gradio_client = pytest.importorskip('gradio_client')
handle_file = gradio_client.handle_file

SAMPLE = Path(__file__).resolve().parents[2] / 'vggt_mapper' / 'data' / 'sample'
FRAMES_PER_PASS = 6


@pytest.fixture(scope='module')
def photo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Serve a model that fails on windows of views that do not overlap."""
    from vggt_mapper.web.app import build_app, close_app, launch_app

    predictor = CovisibilityPredictor(sample_predictor(model_width=MODEL_WIDTH))
    settings = web_settings(tmp_path_factory.mktemp('photo_work'),
                            frames_per_pass=FRAMES_PER_PASS)
    app = build_app(predictor, settings)
    launch_app(app, block=False)
    try:
        yield LiveServer(f'http://127.0.0.1:{settings.port}/', settings,
                         predictor.sequence, [], app)
    finally:
        close_app(app)


def _upload_as(tmp_path: Path, order: list[int], prefix: str) -> tuple[list[Path], dict[str, int]]:
    """Copy the sample frames in ``order`` under names that keep that order."""
    paths, truth = [], {}
    for position, index in enumerate(order):
        path = tmp_path / f'{prefix}_{position:02d}.jpg'
        shutil.copyfile(SAMPLE / f'frame_{index:03d}.jpg', path)
        paths.append(path)
        truth[path.name] = index
    return paths, truth


def _ate(cameras: dict[str, Any], truth: dict[str, int]) -> float:
    poses = [KeyframePose(
        index=k['index'], name=frame_name(truth[k['name']]), stamp_ns=k['stamp_ns'],
        world_from_cam=np.array(k['world_from_cam']), intrinsics=np.eye(3),
        model_hw=tuple(k['model_hw']), intrinsics_original=np.eye(3),
        original_hw=tuple(k['original_hw'])) for k in cameras['keyframes']]
    poses.sort(key=lambda pose: pose.name)
    poses = [replace(pose, stamp_ns=i * 10**9) for i, pose in enumerate(poses)]
    return trajectory_error(poses, sample_sequence()).rmse


def _reconstruct(server: LiveServer, paths: list[Path]) -> dict[str, Any]:
    client = gradio_client.Client(server.url, verbose=False, httpx_kwargs={'timeout': 300})
    try:
        _, cameras = client.predict(files=[handle_file(str(p)) for p in paths], conf_thres=0,
                                    api_name='/reconstruct')
    finally:
        client.close()
    return cameras  # type: ignore[no-any-return]


def test_shuffled_photos_map_as_well_as_the_ordered_upload(photo_server: LiveServer,
                                                           tmp_path: Path) -> None:
    count = 40
    ordered_paths, ordered_truth = _upload_as(tmp_path, list(range(count)), 'ordered')
    shuffled = [int(i) for i in np.random.default_rng(3).permutation(count)]
    shuffled_paths, shuffled_truth = _upload_as(tmp_path, shuffled, 'photo')

    ordered = _reconstruct(photo_server, ordered_paths)
    assert 'upload order kept' in ordered['log']
    assert len(ordered['keyframes']) == count
    mixed = _reconstruct(photo_server, shuffled_paths)
    assert 'ordered by visual similarity' in mixed['log']
    assert len(mixed['keyframes']) == count, mixed['log']  # no frame dropped
    ate_ordered, ate_shuffled = _ate(ordered, ordered_truth), _ate(mixed, shuffled_truth)
    print(f'ATE ordered {ate_ordered:.4f} m, shuffled {ate_shuffled:.4f} m')
    assert ate_shuffled <= 1.5 * ate_ordered, (ate_shuffled, ate_ordered)


def test_a_set_that_fits_is_one_pass(photo_server: LiveServer, tmp_path: Path) -> None:
    # Unordered; frames 0-12 of the sample see each other (a frame that shares nothing with the
    # set is refused by the frame check, as it should be: nothing confirms its pose).
    paths, _ = _upload_as(tmp_path, [5, 12, 0, 9, 2, 7], 'set')  # 6 = the limit
    from vggt_mapper.web.app import app_state

    predictor = app_state(photo_server.app).predictor()  # type: ignore[arg-type]
    calls_before = predictor.inner.calls  # type: ignore[attr-defined]
    cameras = _reconstruct(photo_server, paths)
    assert predictor.inner.calls == calls_before + 1  # type: ignore[attr-defined]
    assert 'One pass (limit 6 frames per pass)' in cameras['log']
    assert '1 windows' in cameras['log']
