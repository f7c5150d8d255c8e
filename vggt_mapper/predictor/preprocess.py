"""
VGGT's image preprocessing, reproduced exactly, plus the map from model pixels to original pixels.

Pipeline of the reference ``load_and_preprocess_images`` (facebookresearch/vggt ``utils/load_fn``):

1. RGBA is alpha-composited over white; any other mode is converted to RGB. No EXIF rotation.
2. Resize with PIL's antialiased BICUBIC on 8-bit data. ``crop``: width → 518, height →
   ``round(H·518/W / 14)·14``. ``pad``: the longer side → 518, the other side rounded the same way
   (Python ``round``: halves to even).
3. ``crop``: rows beyond 518 are centre-cropped (first row ``(H'-518)//2``); images are never
   padded. ``pad``: pad to 518×518 with white, top/left getting ``d//2`` and bottom/right the rest.
4. A window whose frames came out with different sizes is padded to the largest height and width
   with white, centred the same way (a warning is logged once per process).

The model input tensor is exactly ``images_rgb / 255`` (float32, channels first).

Pixel mapping: PIL resizes with pixel *areas*, so a pixel centre ``u_o`` (integer coordinates, as
everywhere in this project) lands at ``u_m = (u_o + 0.5)·W'/W - 0.5`` before the crop/pad offsets
are added. ``ImageMapping.model_from_original`` holds that affine map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import logging
import os
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from vggt_mapper.predictor.base import ImageMapping
from vggt_mapper.predictor.errors import FrameFormatError

__all__ = [
    'PATCH_SIZE',
    'PREPROCESS_MODES',
    'TARGET_SIZE',
    'PreprocessMode',
    'PreprocessedWindow',
    'load_and_preprocess_images',
    'load_and_preprocess_images_square',
    'preprocess_frames',
    'resized_hw',
]

_LOGGER = logging.getLogger(__name__)

PreprocessMode = Literal['crop', 'pad']
PREPROCESS_MODES: tuple[str, ...] = ('crop', 'pad')
TARGET_SIZE = 518
"""Model input width (crop) or longer side (pad) in pixels, as VGGT was trained."""
PATCH_SIZE = 14
"""Both model image sides are multiples of the ViT patch size."""
WHITE = 255

_warned_mixed_sizes = False


@dataclass(frozen=True)
class PreprocessedWindow:
    """
    The frames of one window as the model sees them.

    :param images_rgb: (S, H, W, 3) uint8 RGB model images; the model input is ``k / 255``.
    :param mappings: one ``ImageMapping`` per frame, model pixels ↔ original pixels.
    """

    images_rgb: NDArray[np.uint8]
    mappings: tuple[ImageMapping, ...]

    @property
    def model_hw(self) -> tuple[int, int]:
        """(height, width) of the model images."""
        return int(self.images_rgb.shape[1]), int(self.images_rgb.shape[2])

    def images_chw_float32(self) -> NDArray[np.float32]:
        """
        Return the model input as VGGT expects it.

        :return: (S, 3, H, W) float32 RGB in [0, 1], exactly ``k / 255``.
        """
        chw = np.ascontiguousarray(self.images_rgb.transpose(0, 3, 1, 2))
        return chw.astype(np.float32) / np.float32(255.0)


def _check_mode(mode: str) -> None:
    if mode not in PREPROCESS_MODES:
        raise FrameFormatError(f'preprocess mode must be one of {PREPROCESS_MODES}, got {mode!r}')


def _check_target_size(target_size: int) -> None:
    if target_size <= 0 or target_size % PATCH_SIZE != 0:
        raise FrameFormatError(f'target_size must be a positive multiple of {PATCH_SIZE}, '
                               f'got {target_size}')


def _round_to_patch(side: float) -> int:
    # Python's round (halves to even), as the reference.
    return round(side / PATCH_SIZE) * PATCH_SIZE


def resized_hw(original_hw: tuple[int, int], mode: str = 'crop',
               target_size: int = TARGET_SIZE) -> tuple[int, int]:
    """
    Return the size an image is resized to, before cropping or padding.

    :param original_hw: (height, width) of the original image.
    :param mode: ``'crop'`` (width → target) or ``'pad'`` (longer side → target).
    :param target_size: the model size, a multiple of 14 (518).
    :return: (height, width) after the bicubic resize.
    :raises FrameFormatError: for an unknown mode or an empty image.
    """
    _check_mode(mode)
    height, width = original_hw
    if height <= 0 or width <= 0:
        raise FrameFormatError(f'image must be non-empty, got (height, width) {original_hw}')
    # Same float expressions as the reference, so round() sees the same value.
    if mode == 'pad' and height > width:
        return target_size, _round_to_patch(width * (target_size / height))
    return _round_to_patch(height * (target_size / width)), target_size


def _to_rgb_image(image: Image.Image) -> Image.Image:
    if image.mode == 'RGBA':
        background = Image.new('RGBA', image.size, (WHITE, WHITE, WHITE, WHITE))
        image = Image.alpha_composite(background, image)
    return image.convert('RGB')


def _array_to_image(frame: NDArray[np.uint8], index: int) -> Image.Image:
    array = np.asarray(frame)
    if array.dtype != np.uint8:
        raise FrameFormatError(f'frame {index} must be uint8 RGB, got dtype {array.dtype}; '
                               f'convert with np.clip(x, 0, 255).astype(np.uint8)')
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array), 'L')
    if array.ndim == 3 and array.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(array), 'RGB')
    if array.ndim == 3 and array.shape[2] == 4:
        return Image.fromarray(np.ascontiguousarray(array), 'RGBA')
    raise FrameFormatError(f'frame {index} must be (H, W, 3) RGB, (H, W, 4) RGBA or (H, W) gray, '
                           f'got shape {np.shape(frame)}')


def _affine(scale_x: float, scale_y: float, offset_x: float,
            offset_y: float) -> NDArray[np.float64]:
    return np.array([[scale_x, 0.0, offset_x], [0.0, scale_y, offset_y], [0.0, 0.0, 1.0]])


def _preprocess_one(image: Image.Image, mode: str,
                    target_size: int) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """Resize, crop or pad one RGB image; return the pixels and the model-from-original map."""
    width, height = image.size
    new_height, new_width = resized_hw((height, width), mode, target_size)
    resized = np.asarray(image.resize((new_width, new_height), Image.Resampling.BICUBIC))
    scale_x, scale_y = new_width / width, new_height / height
    # Pixel-area resampling: centre u_o maps to (u_o + 0.5)·s - 0.5.
    offset_x, offset_y = 0.5 * scale_x - 0.5, 0.5 * scale_y - 0.5
    if mode == 'crop' and new_height > target_size:
        start = (new_height - target_size) // 2
        resized = resized[start:start + target_size]
        offset_y -= start
    if mode == 'pad':
        resized, (top, left) = _pad_white(resized, target_size, target_size)
        offset_x += left
        offset_y += top
    return resized, _affine(scale_x, scale_y, offset_x, offset_y)


def _pad_white(image: NDArray[np.uint8], height: int,
               width: int) -> tuple[NDArray[np.uint8], tuple[int, int]]:
    """Centre ``image`` on a white canvas of (height, width); return it and (top, left)."""
    pad_h, pad_w = height - image.shape[0], width - image.shape[1]
    if pad_h <= 0 and pad_w <= 0:
        return image, (0, 0)
    top, left = max(pad_h, 0) // 2, max(pad_w, 0) // 2
    canvas = np.full((max(height, image.shape[0]), max(width, image.shape[1]), 3), WHITE,
                     dtype=np.uint8)
    canvas[top:top + image.shape[0], left:left + image.shape[1]] = image
    return canvas, (top, left)


def _assemble(images: list[Image.Image], mode: str, target_size: int) -> PreprocessedWindow:
    if not images:
        raise FrameFormatError('a window needs at least one frame, got none')
    _check_mode(mode)
    _check_target_size(target_size)
    pixels: list[NDArray[np.uint8]] = []
    matrices: list[NDArray[np.float64]] = []
    originals: list[tuple[int, int]] = []
    for image in images:
        rgb = _to_rgb_image(image)
        model_rgb, matrix = _preprocess_one(rgb, mode, target_size)
        pixels.append(model_rgb)
        matrices.append(matrix)
        originals.append((rgb.size[1], rgb.size[0]))
    shapes = {pixel.shape[:2] for pixel in pixels}
    if len(shapes) > 1:
        global _warned_mixed_sizes
        if not _warned_mixed_sizes:
            _LOGGER.warning('frames of one window have different preprocessed sizes %s; padding '
                            'them with white to the largest (as VGGT does)', sorted(shapes))
            _warned_mixed_sizes = True
        max_h = max(shape[0] for shape in shapes)
        max_w = max(shape[1] for shape in shapes)
        for index, pixel in enumerate(pixels):
            pixels[index], (top, left) = _pad_white(pixel, max_h, max_w)
            matrices[index] = _affine(1.0, 1.0, left, top) @ matrices[index]
    stacked = np.stack(pixels)
    model_hw = (int(stacked.shape[1]), int(stacked.shape[2]))
    mappings = tuple(ImageMapping(original_hw=original, model_hw=model_hw,
                                  model_from_original=matrix)
                     for original, matrix in zip(originals, matrices, strict=True))
    return PreprocessedWindow(images_rgb=stacked, mappings=mappings)


def preprocess_frames(frames_rgb: Sequence[NDArray[np.uint8]], mode: str = 'crop',
                      target_size: int = TARGET_SIZE) -> PreprocessedWindow:
    """
    Preprocess in-memory frames exactly like VGGT's ``load_and_preprocess_images``.

    :param frames_rgb: S ≥ 1 uint8 images: (H, W, 3) RGB, (H, W, 4) RGBA (composited over white)
        or (H, W) / (H, W, 1) gray; sizes may differ.
    :param mode: ``'crop'`` (default, width 518, height ≤ 518) or ``'pad'`` (518×518, white).
    :param target_size: model size, a multiple of 14 (VGGT: 518).
    :return: the model images and their mappings to the original frames.
    :raises FrameFormatError: on an empty window, a non-uint8 frame or a bad shape or mode.
    """
    images = [_array_to_image(frame, index) for index, frame in enumerate(frames_rgb)]
    return _assemble(images, mode, target_size)


def load_and_preprocess_images(paths: Sequence[str | os.PathLike[str]], mode: str = 'crop',
                               target_size: int = TARGET_SIZE) -> PreprocessedWindow:
    """
    Load image files and preprocess them like VGGT's ``load_and_preprocess_images``.

    :param paths: S ≥ 1 image files PIL can read.
    :param mode: ``'crop'`` or ``'pad'`` (see ``preprocess_frames``).
    :param target_size: model size, a multiple of 14 (VGGT: 518).
    :return: the model images and their mappings to the original images.
    :raises FrameFormatError: on an empty list or a bad mode.
    :raises OSError: when a file cannot be read as an image.
    """
    images = []
    for path in paths:
        with Image.open(path) as opened:
            opened.load()
            images.append(opened.copy())
    return _assemble(images, mode, target_size)


def load_and_preprocess_images_square(
    paths: Sequence[str | os.PathLike[str]],
    target_size: int = 1024,
) -> tuple[NDArray[np.uint8], NDArray[np.float32], tuple[ImageMapping, ...]]:
    """
    Load images, pad each to a square with black, resize to ``target_size`` (VGGT's COLMAP demo).

    :param paths: N ≥ 1 image files.
    :param target_size: side of the square output in pixels.
    :return: ``(images_rgb, original_coords, mappings)``: (N, T, T, 3) uint8 images; (N, 6)
        float32 ``x1, y1, x2, y2`` (the original image's box in target pixels), original width,
        original height; and one ``ImageMapping`` per image.
    :raises FrameFormatError: on an empty list or a non-positive size.
    :raises OSError: when a file cannot be read as an image.
    """
    if not paths:
        raise FrameFormatError('load_and_preprocess_images_square needs at least one path')
    if target_size <= 0:
        raise FrameFormatError(f'target_size must be > 0, got {target_size}')
    pixels: list[NDArray[np.uint8]] = []
    coords: list[list[float]] = []
    mappings: list[ImageMapping] = []
    for path in paths:
        with Image.open(path) as opened:
            rgb = _to_rgb_image(opened)
        width, height = rgb.size
        side = max(width, height)
        left, top = (side - width) // 2, (side - height) // 2
        scale = target_size / side
        coords.append([left * scale, top * scale, (left + width) * scale, (top + height) * scale,
                       width, height])
        square = Image.new('RGB', (side, side), (0, 0, 0))
        square.paste(rgb, (left, top))
        pixels.append(np.asarray(square.resize((target_size, target_size),
                                               Image.Resampling.BICUBIC)))
        # Paste shifts by (left, top), then the area resize scales about pixel edges.
        matrix = _affine(scale, scale, (left + 0.5) * scale - 0.5, (top + 0.5) * scale - 0.5)
        mappings.append(ImageMapping(original_hw=(height, width),
                                     model_hw=(target_size, target_size),
                                     model_from_original=matrix))
    return np.stack(pixels), np.asarray(coords, dtype=np.float32), tuple(mappings)
