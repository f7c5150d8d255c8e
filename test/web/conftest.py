"""
Fixtures of the web tests: a real server on localhost, fed by the synthetic predictor.

The synthetic predictor answers from a rendered room's ground truth (meaningful geometry, no
model weights, fast). The server runs the real mapping engine in windows of 4 keyframes, so a
12-frame upload goes through several windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app_helpers import EXACT, LiveServer, MODEL_WIDTH, NUM_FRAMES, web_settings
from PIL import Image
import pytest

from vggt_mapper.synthetic.predictor import SyntheticPredictor, SyntheticSequence


@pytest.fixture(scope='session')
def sequence() -> SyntheticSequence:
    """Twelve 120×160 frames orbiting in the synthetic room."""
    return SyntheticSequence.orbit(NUM_FRAMES, step_m=0.05)


@pytest.fixture(scope='session')
def image_paths(sequence: SyntheticSequence,
                tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Write the sequence's frames as PNG files (lossless, so the predictor recognises them)."""
    folder = tmp_path_factory.mktemp('frames')
    paths = []
    for index in range(len(sequence)):
        path = folder / f'frame_{index:03d}.png'
        Image.fromarray(sequence.frame(index)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope='session')
def live_server(sequence: SyntheticSequence, image_paths: list[Path],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Run a real vggt_mapper server on localhost with the synthetic predictor."""
    pytest.importorskip('gradio')
    from vggt_mapper.web.app import build_app, close_app, launch_app

    settings = web_settings(tmp_path_factory.mktemp('workdirs'))
    predictor = SyntheticPredictor(sequence, noise=EXACT, model_width=MODEL_WIDTH)
    app = build_app(predictor, settings)
    launch_app(app, block=False)
    try:
        yield LiveServer(f'http://127.0.0.1:{settings.port}/', settings, sequence,
                         image_paths, app)
    finally:
        close_app(app)


@pytest.fixture()
def client(live_server: LiveServer) -> Iterator[Any]:
    """Open a fresh gradio_client session on the live server."""
    from gradio_client import Client

    session = Client(live_server.url, verbose=False)
    try:
        yield session
    finally:
        session.close()
