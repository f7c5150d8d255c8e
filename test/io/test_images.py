"""One image decoder for every door: a 16-bit frame gives the same pixels from folder or bag."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image
import pytest

from vggt_mapper.io import decode_image, iter_image_folder, rgb8_from_pixels
from vggt_mapper.io import ros_messages as conv


def _grey16() -> np.ndarray:
    """Make a 16-bit grey ramp over the whole range (a mono16 camera's frame)."""
    return (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)


def test_16_bit_png_in_a_folder_keeps_its_high_byte(tmp_path: Path) -> None:
    grey = _grey16()
    cv2.imwrite(str(tmp_path / 'frame_0.png'), grey)

    frame = next(iter_image_folder(tmp_path))

    # Not white: 16-bit samples keep their high byte, the bag door's mono16 rule.
    assert frame.image_rgb.dtype == np.uint8 and frame.image_rgb.shape == (48, 64, 3)
    np.testing.assert_array_equal(frame.image_rgb[..., 0], grey >> 8)
    assert frame.image_rgb.std() > 20


def test_16_bit_rgb_png_keeps_its_high_byte(tmp_path: Path) -> None:
    grey = _grey16()
    rgb16 = np.stack([grey, grey // 2, 65535 - grey], axis=-1)
    cv2.imwrite(str(tmp_path / 'rgb16.png'), rgb16[..., ::-1])

    np.testing.assert_array_equal(decode_image(tmp_path / 'rgb16.png'), rgb16 >> 8)


def test_folder_and_bag_doors_decode_a_16_bit_frame_alike(tmp_path: Path) -> None:
    grey = _grey16()
    ok, png = cv2.imencode('.png', grey)
    assert ok
    (tmp_path / 'f.png').write_bytes(png.tobytes())
    types = conv.rosbags_message_types()
    raw = conv.rgb_to_image(np.zeros((48, 64, 3), np.uint8), 0, 'camera', types, 'mono16')
    raw.data = np.frombuffer(grey.astype('<u2').tobytes(), np.uint8)
    compressed = types.compressed_image(header=raw.header, format='png', data=png.reshape(-1))

    from_folder = decode_image(tmp_path / 'f.png')
    from_raw_bag = conv.image_to_rgb(raw)
    from_compressed_bag = conv.compressed_to_rgb(compressed)

    np.testing.assert_array_equal(from_folder, from_raw_bag)
    np.testing.assert_array_equal(from_folder, from_compressed_bag)


def test_transparent_pixels_become_white_and_grey_is_replicated(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4, :, 3] = 255
    Image.fromarray(rgba, mode='RGBA').save(tmp_path / 'a.png')
    Image.fromarray(np.full((8, 8), 77, np.uint8), mode='L').save(tmp_path / 'l.png')

    assert (decode_image(tmp_path / 'a.png')[4:] == 255).all()
    assert (decode_image(tmp_path / 'a.png')[:4] == 0).all()
    assert (decode_image((tmp_path / 'l.png').read_bytes()) == 77).all()


@pytest.mark.parametrize('pixels', [np.ones((4, 4), np.float32), np.full((4, 4), -1, np.int32),
                                    np.zeros((4, 4, 2), np.uint8)])
def test_pixels_that_are_not_an_image_are_refused(pixels: np.ndarray) -> None:
    with pytest.raises(ValueError):
        rgb8_from_pixels(pixels)
