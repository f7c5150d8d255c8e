"""
A real browser (headless Chromium) uploads images, presses Reconstruct, sees the 3D model.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package
(its own browser download is not used). The screenshot goes to
``test-artifacts/web_reconstruct.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import shutil
from typing import Any

from app_helpers import LiveServer, NUM_FRAMES
import pytest

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--disable-component-update', '--disable-sync', '--no-first-run']
ARTIFACTS = Path(__file__).resolve().parents[2] / 'test-artifacts'

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


def test_upload_reconstruct_and_view(live_server: LiveServer, browser: Any) -> None:
    page = browser.new_page(viewport={'width': 1400, 'height': 1100})
    page.set_default_timeout(60_000)
    page.goto(live_server.url)
    page.locator('#input_images input[type=file]').set_input_files(
        [str(p) for p in live_server.image_paths])
    gallery = page.locator('#gallery img')
    gallery.first.wait_for()
    page.get_by_text('Upload complete').wait_for()
    page.locator('#reconstruct_button').click()
    page.get_by_text('Reconstruction Success').wait_for(timeout=120_000)
    assert f'({NUM_FRAMES} frames' in page.locator('#log_output').inner_text()
    canvas = page.locator('#reconstruction canvas')
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box is not None and box['width'] > 200 and box['height'] > 200
    # The viewer offers the GLB for download once a model is loaded.
    page.locator('#reconstruction').get_by_role('link').first.wait_for()
    page.wait_for_timeout(1500)  # let the viewer draw before the screenshot
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / 'web_reconstruct.png'), full_page=True)
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
