"""Filter Sky with a local ONNX model (a toy stand-in for skyseg.onnx), and without one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vggt_mapper.web.errors import SkyModelError
from vggt_mapper.web.sky import SkySegmenter

TOY_SKY = Path(__file__).resolve().parents[1] / 'data' / 'web' / 'toy_sky.onnx'


def _sky_over_ground() -> np.ndarray:
    image = np.zeros((40, 60, 3), np.uint8)
    image[:15] = (70, 130, 250)  # blue sky
    image[15:] = (190, 120, 60)  # brown ground
    return image


def test_sky_pixels_are_marked_as_sky() -> None:
    not_sky = SkySegmenter(TOY_SKY)(_sky_over_ground())
    assert not_sky.shape == (40, 60) and not_sky.dtype == bool
    assert not not_sky[:12].any()
    assert not_sky[18:].all()


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SkyModelError, match='--sky-model'):
        SkySegmenter(tmp_path / 'skyseg.onnx')


def test_unreadable_model_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / 'broken.onnx'
    broken.write_bytes(b'not onnx')
    with pytest.raises(SkyModelError, match='cannot load'):
        SkySegmenter(broken)
