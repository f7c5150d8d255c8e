"""
A real browser (headless Chromium) uploads images, presses Reconstruct and sees the map drawn.

Chromium runs with a software WebGL (SwiftShader through ANGLE), so the 3D viewer really draws:
the test reads the viewer canvas's pixels and requires a share of them to differ from the
viewer's background, after Reconstruct and again after a control change. (With the GPU disabled
there is no WebGL and the canvas stays empty under "Reconstruction Success".)

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package
(its own browser download is not used). Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
import io
from pathlib import Path
import shutil
import time
from typing import Any

from app_helpers import LiveServer, NUM_FRAMES
import numpy as np
import pytest

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
# Software WebGL: the viewer draws without a GPU (Debian's chromium ships SwiftShader).
FLAGS = ['--headless', '--no-sandbox', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--no-first-run']
ARTIFACTS = Path(__file__).resolve().parents[2] / 'test-artifacts'
MIN_DRAWN = 0.02
"""Share of the canvas that must differ from the background (an empty viewer: 0.3 %; the
test scene: 5-8 %)."""

pytestmark = pytest.mark.browser


@pytest.fixture(scope='module')
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip(
        'playwright.sync_api', reason='browser test needs the playwright package')
    if not Path(CHROMIUM).exists():
        pytest.skip(f'browser test needs Chromium at {CHROMIUM} (apt-get install chromium)')
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS,
                                              headless=True)
        try:
            yield instance
        finally:
            instance.close()


def drawn_share(png: bytes) -> float:
    """
    Return the share of an image's pixels that differ from its background.

    The background is the most frequent colour (the viewer's clear colour); a pixel differs when
    its channels differ from it by more than 24 in total.
    """
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert('RGB'), dtype=np.int32)
    flat = pixels.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    background = colours[np.argmax(counts)]
    return float((np.abs(flat - background).sum(axis=1) > 24).mean())


def _wait_for_drawing(canvas: Any, previous: bytes | None = None) -> bytes:
    """Screenshot the canvas until the map is drawn (and differs from ``previous``)."""
    deadline = time.monotonic() + 300  # only a guard against hanging; no speed is asserted
    while True:
        png: bytes = canvas.screenshot()
        if drawn_share(png) >= MIN_DRAWN and png != previous:
            return png
        assert time.monotonic() < deadline, (
            f'the viewer never drew the map: {drawn_share(png):.1%} of the canvas differs from '
            f'its background (needs {MIN_DRAWN:.0%})')
        time.sleep(0.5)


def test_upload_reconstruct_and_view(live_server: LiveServer, browser: Any) -> None:
    page = browser.new_page(viewport={'width': 1400, 'height': 1100})
    page.set_default_timeout(300_000)
    page.goto(live_server.url)
    assert page.evaluate("() => !!document.createElement('canvas').getContext('webgl2')"), \
        'this Chromium has no WebGL: the viewer cannot draw'
    page.locator('#input_images input[type=file]').set_input_files(
        [str(p) for p in live_server.image_paths])
    page.locator('#gallery img').first.wait_for()
    page.get_by_text('Upload complete').wait_for()
    page.locator('#reconstruct_button').click()
    page.get_by_text('Reconstruction Success').wait_for()
    assert f'({NUM_FRAMES} frames' in page.locator('#log_output').inner_text()
    canvas = page.locator('#reconstruction canvas')
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box is not None and box['width'] > 200 and box['height'] > 200
    first = _wait_for_drawing(canvas)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / 'web_reconstruct.png'), full_page=True)

    # A control change re-renders: one frame's points, drawn again.
    page.locator('#frame_filter input').click()
    page.get_by_role('option', name='0: frame_000.png').click()
    page.get_by_text('Updating Visualization').wait_for()
    _wait_for_drawing(canvas, previous=first)
    page.screenshot(path=str(ARTIFACTS / 'web_one_frame.png'), full_page=True)
    page.close()


def test_video_upload_fills_the_gallery(live_server: LiveServer, browser: Any,
                                        tmp_path: Path) -> None:
    import cv2

    video = tmp_path / 'clip.mp4'
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'mp4v'), 10.0, (160, 120))
    for index in range(25):  # 2.5 s → frames at 0, 1, 2 s
        writer.write(cv2.cvtColor(live_server.sequence.frame(index % NUM_FRAMES),
                                  cv2.COLOR_RGB2BGR))
    writer.release()
    page = browser.new_page(viewport={'width': 1400, 'height': 1100})
    page.set_default_timeout(60_000)
    page.goto(live_server.url)
    page.locator('input[type=file][accept*="video"]').set_input_files(str(video))
    page.get_by_text('Upload complete').wait_for()
    assert page.locator('#gallery img').count() == 3
    page.close()
