"""VGGT preprocessing: exact reproduction of the reference vectors and the pixel mapping."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
import pytest

from vggt_mapper.predictor import preprocess
from vggt_mapper.predictor.errors import FrameFormatError
from vggt_mapper.predictor.preprocess import (
    load_and_preprocess_images,
    load_and_preprocess_images_square,
    preprocess_frames,
    resized_hw,
)

REFERENCE_DIR = Path(__file__).resolve().parents[1] / 'data' / 'reference'
IMAGE_DIR = REFERENCE_DIR / 'preprocess_images'
META = json.loads((REFERENCE_DIR / 'preprocess_vectors.json').read_text(encoding='utf-8'))


@pytest.fixture(scope='module')
def vectors() -> dict[str, NDArray[Any]]:
    with np.load(REFERENCE_DIR / 'preprocess_vectors.npz') as data:
        return {key: data[key] for key in data.files}


def reference_hwc(vectors: dict[str, NDArray[Any]], key: str) -> NDArray[np.uint8]:
    """Return the (N, H, W, 3) view of a reference stored as uint8 (N, 3, H, W), exactly k/255."""
    return vectors[key].transpose(0, 2, 3, 1)


def decoded_rgb(name: str) -> NDArray[np.uint8]:
    """Decode a fixture image the way a caller hands frames to a predictor: uint8 RGB(A)."""
    with Image.open(IMAGE_DIR / name) as image:
        if image.mode == 'RGBA':
            return np.asarray(image)
        return np.asarray(image.convert('RGB'))


@pytest.mark.parametrize('key', sorted(META['single']))
def test_single_image_matches_reference_from_path_and_array(vectors, key) -> None:
    _, mode, name = key.split('.', 2)
    expected = reference_hwc(vectors, key)
    from_path = load_and_preprocess_images([IMAGE_DIR / name], mode=mode)
    np.testing.assert_array_equal(from_path.images_rgb, expected)
    from_array = preprocess_frames([decoded_rgb(name)], mode=mode)
    np.testing.assert_array_equal(from_array.images_rgb, expected)
    assert from_array.mappings[0].model_hw == expected.shape[1:3]


@pytest.mark.parametrize('key', sorted(META['batches']))
def test_batch_matches_reference(vectors, key) -> None:
    mode = key.split('.')[1]
    names = META['batches'][key]['inputs_in_order']
    expected = reference_hwc(vectors, key)
    window = load_and_preprocess_images([IMAGE_DIR / name for name in names], mode=mode)
    np.testing.assert_array_equal(window.images_rgb, expected)
    window = preprocess_frames([decoded_rgb(name) for name in names], mode=mode)
    np.testing.assert_array_equal(window.images_rgb, expected)
    # The float model input is exactly k/255, as the reference's ToTensor gives.
    chw = window.images_chw_float32()
    assert chw.dtype == np.float32 and chw.shape == (len(names), 3) + expected.shape[1:3]
    np.testing.assert_array_equal(chw, vectors[key].astype(np.float32) / np.float32(255))


@pytest.mark.parametrize('key', sorted(META['square']))
def test_square_variant_matches_reference(vectors, key) -> None:
    names = META['square'][key]['inputs_in_order']
    target = int(key.removeprefix('square'))
    images, coords, mappings = load_and_preprocess_images_square(
        [IMAGE_DIR / name for name in names], target_size=target)
    np.testing.assert_array_equal(images, reference_hwc(vectors, f'{key}.images'))
    np.testing.assert_array_equal(coords, vectors[f'{key}.original_coords'])
    for mapping, box in zip(mappings, coords, strict=True):
        # The original image's outer corners (pixel edges at -0.5 and size - 0.5) land on the box.
        width, height = box[4], box[5]
        corners = mapping.to_original(np.array([[box[0] - 0.5, box[1] - 0.5],
                                                [box[2] - 0.5, box[3] - 0.5]]))
        np.testing.assert_allclose(corners, [[-0.5, -0.5], [width - 0.5, height - 0.5]],
                                   atol=1e-4)


@pytest.mark.parametrize('mode', ['crop', 'pad'])
def test_gray_arrays_match_the_reference(vectors, mode) -> None:
    with Image.open(IMAGE_DIR / 'gray_333x251.png') as image:
        assert image.mode == 'L'
        gray = np.asarray(image)
    expected = reference_hwc(vectors, f'single.{mode}.gray_333x251.png')
    for frame in (gray, gray[..., None]):
        np.testing.assert_array_equal(preprocess_frames([frame], mode=mode).images_rgb, expected)


def test_resized_sizes_match_the_documented_examples() -> None:
    assert resized_hw((480, 640), 'crop') == (392, 518)
    assert resized_hw((720, 1280), 'crop') == (294, 518)
    assert resized_hw((300, 1000), 'crop') == (154, 518)
    assert resized_hw((640, 480), 'crop') == (686, 518)  # then centre-cropped to 518
    assert resized_hw((640, 480), 'pad') == (518, 392)


def test_rgba_is_composited_over_white() -> None:
    rgba = np.zeros((40, 60, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:, 30:, 3] = 255  # left half fully transparent, right half opaque red-ish
    window = preprocess_frames([rgba], mode='crop')
    image = window.images_rgb[0]
    assert image.shape[1] == 518
    np.testing.assert_array_equal(image[:, :200], 255)
    np.testing.assert_array_equal(image[:, 320:].reshape(-1, 3),
                                  np.broadcast_to([200, 0, 0], (350 * 198, 3)))


def blob_image(height: int, width: int, centre_uv: tuple[int, int],
               half: int = 4) -> NDArray[np.uint8]:
    """Mid-grey image with a bright square centred on an integer pixel."""
    image = np.full((height, width, 3), 100, dtype=np.uint8)
    u, v = centre_uv
    image[v - half:v + half + 1, u - half:u + half + 1] = 200  # ringing stays below 255
    return image


def blob_centroid(image: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Intensity centroid (u, v) of the blob above the grey background (ringing cancels)."""
    weight = image[..., 1].astype(np.float64) - 100.0
    # White padding is not part of the blob.
    weight[np.all(image == 255, axis=-1)] = 0.0
    rows, cols = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    return np.array([(weight * cols).sum(), (weight * rows).sum()]) / weight.sum()


@pytest.mark.parametrize(('original_hw', 'blob_uv', 'mode'), [
    ((480, 640), (101, 333), 'crop'),   # downscale
    ((640, 480), (240, 200), 'crop'),   # upscale rows and centre crop (84 rows cut)
    ((640, 480), (130, 400), 'pad'),    # downscale and pad left/right
    ((200, 300), (57, 141), 'crop'),    # upscale
    ((300, 1000), (812, 150), 'pad'),   # pad top/bottom
])
def test_marked_pixel_lands_where_the_mapping_says(original_hw, blob_uv, mode) -> None:
    height, width = original_hw
    window = preprocess_frames([blob_image(height, width, blob_uv)], mode=mode)
    mapping = window.mappings[0]
    assert mapping.original_hw == original_hw
    expected_uv = mapping.model_from_original @ np.array([blob_uv[0], blob_uv[1], 1.0])
    np.testing.assert_allclose(blob_centroid(window.images_rgb[0]), expected_uv[:2], atol=0.05)
    np.testing.assert_allclose(mapping.to_original(expected_uv[:2]), blob_uv, atol=1e-9)


def test_mixed_sizes_are_padded_and_mapped(caplog) -> None:
    preprocess._warned_mixed_sizes = False
    frames = [blob_image(480, 640, (320, 240)), blob_image(300, 1000, (500, 150)),
              blob_image(640, 480, (240, 320))]
    with caplog.at_level(logging.WARNING, logger='vggt_mapper.predictor.preprocess'):
        window = preprocess_frames(frames, mode='crop')
        preprocess_frames(frames, mode='crop')
    assert window.images_rgb.shape == (3, 518, 518, 3)
    assert sum('different preprocessed sizes' in record.message
               for record in caplog.records) == 1
    for frame, mapping, image in zip(frames, window.mappings, window.images_rgb, strict=True):
        assert mapping.model_hw == (518, 518)
        assert mapping.original_hw == frame.shape[:2]
        # Each blob sits at its original image's centre pixel.
        centre = ((frame.shape[1]) // 2, (frame.shape[0]) // 2)
        expected = mapping.model_from_original @ np.array([centre[0], centre[1], 1.0])
        np.testing.assert_allclose(blob_centroid(image), expected[:2], atol=0.05)
    # The 154-row panorama is padded with white above and below (182 rows each).
    np.testing.assert_array_equal(window.images_rgb[1, :182], 255)
    np.testing.assert_array_equal(window.images_rgb[1, 182 + 154:], 255)


def test_intrinsics_to_original_agrees_with_projection() -> None:
    window = preprocess_frames([np.zeros((480, 640, 3), dtype=np.uint8)], mode='pad')
    mapping = window.mappings[0]
    k_model = np.array([[400.0, 0.0, 259.0], [0.0, 410.0, 259.0], [0.0, 0.0, 1.0]])
    k_original = mapping.intrinsics_to_original(k_model)
    points_cam = np.random.default_rng(0).uniform([-1, -1, 2], [1, 1, 5], (20, 3))
    uv_model = (points_cam / points_cam[:, 2:]) @ k_model.T
    uv_original = (points_cam / points_cam[:, 2:]) @ k_original.T
    np.testing.assert_allclose(uv_original[:, :2], mapping.to_original(uv_model[:, :2]),
                               atol=1e-9)
    # A 640-wide frame scaled to 518: focal lengths grow by 640/518 in original pixels.
    np.testing.assert_allclose(k_original[0, 0], 400.0 * 640 / 518)
    assert k_original[2, 2] == 1.0


@pytest.mark.parametrize(('frames', 'message'), [
    ([], 'at least one frame'),
    ([np.zeros((10, 10, 3), dtype=np.float32)], 'must be uint8'),
    ([np.zeros((10, 10, 2), dtype=np.uint8)], 'must be'),
    ([np.zeros((0, 10, 3), dtype=np.uint8)], 'non-empty'),
])
def test_bad_frames_are_refused(frames, message) -> None:
    with pytest.raises(FrameFormatError, match=message):
        preprocess_frames(frames)


def test_bad_mode_is_refused() -> None:
    with pytest.raises(FrameFormatError, match="'crop', 'pad'"):
        preprocess_frames([np.zeros((10, 10, 3), dtype=np.uint8)], mode='resize')
