"""
The official visual controls do what they say, through the official endpoints.

A server whose model images have a black left quarter and a white right quarter: each
background filter must remove exactly its colour, through ``/gradio_demo`` (the first render) and
through ``/update_visualization*`` (re-renders of the cached result).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app_helpers import (
    EXACT,
    glb_camera_count,
    glb_colors,
    LiveServer,
    make_client,
    MODEL_WIDTH,
    NUM_FRAMES,
    PaintedPredictor,
    web_settings,
)
import numpy as np
import pytest

from vggt_mapper.synthetic.predictor import SyntheticPredictor, SyntheticSequence

pytest.importorskip('gradio_client')
DEPTH = 'Depthmap and Camera Branch'
POINTMAP = 'Pointmap Branch'


@pytest.fixture(scope='module')
def painted(sequence: SyntheticSequence, image_paths: list,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Any, str]]:
    """Serve painted backgrounds; yield the server, a client and an uploaded set."""
    from vggt_mapper.web.app import build_app, close_app, launch_app

    settings = web_settings(tmp_path_factory.mktemp('painted'))
    app = build_app(PaintedPredictor(SyntheticPredictor(sequence, noise=EXACT,
                                                        model_width=MODEL_WIDTH)), settings)
    launch_app(app, block=False)
    server = LiveServer(f'http://127.0.0.1:{settings.port}/', settings, sequence, image_paths,
                        app)
    client = make_client(server.url)
    try:
        from gradio_client import handle_file

        _, target_dir, _, _ = client.predict(  # type: ignore[attr-defined]
            None, [handle_file(str(p)) for p in image_paths],
            api_name='/update_gallery_on_upload_1')
        yield server, client, target_dir
    finally:
        client.close()  # type: ignore[attr-defined]
        close_app(app)


def _black(colors: np.ndarray) -> np.ndarray:
    return colors.astype(np.int32).sum(axis=1) < 16


def _white(colors: np.ndarray) -> np.ndarray:
    return (colors > 240).all(axis=1)


def _view(client: Any, target_dir: str, endpoint: str = '/update_visualization', *,
          conf: float = 0, frame: str = 'All', black: bool = False, white: bool = False,
          cam: bool = False, sky: bool = False, mode: str = DEPTH) -> tuple[str, str]:
    glb, log = client.predict(target_dir, conf, frame, black, white, cam, sky, mode, 'None',
                              api_name=endpoint)
    return glb, log


def test_gradio_demo_applies_the_background_flags_to_its_first_render(
        painted: tuple[LiveServer, Any, str]) -> None:
    _, client, target_dir = painted
    glb, log, _ = client.predict(target_dir, 0, 'All', True, False, False, False, DEPTH,
                                 api_name='/gradio_demo')
    colors = glb_colors(glb)
    assert log.startswith(f'Reconstruction Success ({NUM_FRAMES} frames')
    assert not _black(colors).any() and _white(colors).mean() > 0.2
    glb, _, _ = client.predict(target_dir, 0, 'All', False, True, False, False, DEPTH,
                               api_name='/gradio_demo')
    colors = glb_colors(glb)
    assert not _white(colors).any() and _black(colors).mean() > 0.2


def test_each_background_filter_removes_exactly_its_colour(
        painted: tuple[LiveServer, Any, str]) -> None:
    _, client, target_dir = painted
    client.predict(target_dir, 0, 'All', False, False, False, False, DEPTH,
                   api_name='/gradio_demo')
    everything = glb_colors(_view(client, target_dir)[0])
    no_black = glb_colors(_view(client, target_dir, '/update_visualization_2', black=True)[0])
    no_white = glb_colors(_view(client, target_dir, '/update_visualization_3', white=True)[0])
    neither = glb_colors(_view(client, target_dir, black=True, white=True)[0])
    assert 0.2 < _black(everything).mean() < 0.3 and 0.2 < _white(everything).mean() < 0.3
    assert not _black(no_black).any() and len(no_black) == (~_black(everything)).sum()
    assert not _white(no_white).any() and len(no_white) == (~_white(everything)).sum()
    assert len(neither) == (~_black(everything) & ~_white(everything)).sum()


def test_cameras_frames_confidence_and_branches(painted: tuple[LiveServer, Any, str]) -> None:
    _, client, target_dir = painted
    client.predict(target_dir, 0, 'All', False, False, True, False, DEPTH,
                   api_name='/gradio_demo')
    with_cams, _ = _view(client, target_dir, '/update_visualization_4', cam=True)
    assert glb_camera_count(with_cams) == NUM_FRAMES
    assert glb_camera_count(_view(client, target_dir)[0]) == 0
    all_points = len(glb_colors(_view(client, target_dir, conf=0)[0]))
    top_quarter = len(glb_colors(_view(client, target_dir, conf=75)[0]))
    assert 0.2 < top_quarter / all_points < 0.3
    one = len(glb_colors(_view(client, target_dir, '/update_visualization_1',
                               frame='3: frame_003.png')[0]))
    assert 0 < one < all_points / (NUM_FRAMES - 2)
    _, log = _view(client, target_dir, '/update_visualization_6', mode=POINTMAP)
    assert 'no point-map branch' in log  # this predictor has none: said, not hidden
    _, log = _view(client, target_dir, '/update_visualization_5', sky=True)
    assert 'Filter Sky is unavailable' in log and '--sky-model' in log


def test_an_example_or_no_upload_shows_no_reconstruction(
        painted: tuple[LiveServer, Any, str]) -> None:
    _, client, target_dir = painted
    glb, log = client.predict(target_dir, 0, 'All', False, False, False, False, DEPTH, 'True',
                              api_name='/update_visualization')
    assert glb is None and 'Reconstruct' in log
