"""
The one image decoder of every door: encoded files or bytes, and raw pixel arrays, to RGB8.

Folder reader, web uploads and the rosbag2 door (CompressedImage, and raw ``mono16`` Image)
all decode here, so one picture gives the same pixels whichever way it came in:

* 16-bit samples become 8-bit by keeping the high byte (``value >> 8``): a fixed linear rule,
  so brightness stays consistent from frame to frame (no per-image stretch); 16-bit RGB(A)
  files decoded by Pillow already follow it;
* grey images are replicated to three channels;
* transparent pixels are composited on white, like the official VGGT image loader;
* the EXIF orientation of a photo is applied.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    import PIL.Image

__all__ = ['decode_image', 'image_size', 'rgb8_from_pixels']

# Pillow modes holding 16-bit (or wider integer) samples: their pixels go through
# rgb8_from_pixels, because Image.convert('RGB') clips them at 255 (a white frame).
_WIDE_INTEGER_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')


def rgb8_from_pixels(pixels: NDArray[np.generic]) -> NDArray[np.uint8]:
    """
    Turn a raw pixel array into (H, W, 3) uint8 RGB.

    :param pixels: (H, W) grey or (H, W, 3) RGB samples: uint8 as they are, uint16 (or wider
        integers holding 16-bit values) reduced to their high byte.
    :return: a new C-contiguous (H, W, 3) uint8 array.
    :raises ValueError: for another shape, a float or signed array with negative values, or
        samples above 16 bits.
    """
    array = np.asarray(pixels)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f'expected (H, W) grey or (H, W, 3) RGB pixels, got shape '
                         f'{array.shape}')
    if array.dtype == np.uint8:
        eight_bit = array
    elif np.issubdtype(array.dtype, np.integer):
        if array.size and (int(array.min()) < 0 or int(array.max()) > 0xFFFF):
            raise ValueError(f'{array.dtype} samples outside 0..65535 (range '
                             f'{int(array.min())}..{int(array.max())}) are not 8- or 16-bit '
                             'image data')
        eight_bit = (array.astype(np.uint16) >> 8).astype(np.uint8)
    else:
        raise ValueError(f'{array.dtype} pixels are not a camera image (a depth or float map?); '
                         'give 8- or 16-bit images')
    if eight_bit.ndim == 2:
        eight_bit = np.repeat(eight_bit[:, :, None], 3, axis=2)
    return np.ascontiguousarray(eight_bit, dtype=np.uint8)


def _to_rgb8(image: PIL.Image.Image) -> NDArray[np.uint8]:
    """Convert an opened Pillow image to RGB8 (see the module docstring for the rules)."""
    from PIL import Image

    image.load()
    if image.mode in _WIDE_INTEGER_MODES or image.mode == 'F':
        return rgb8_from_pixels(np.asarray(image))
    if image.mode in ('RGBA', 'LA', 'PA') or (image.mode == 'P' and 'transparency' in image.info):
        rgba = image.convert('RGBA')
        background = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert('RGB'), dtype=np.uint8)


def decode_image(source: Path | str | bytes) -> NDArray[np.uint8]:
    """
    Decode an image file (PNG, JPEG, TIFF, ...; 8 or 16 bits) to (H, W, 3) uint8 RGB.

    :param source: a file path, or the encoded bytes (a ``CompressedImage``'s data).
    :return: a new C-contiguous (H, W, 3) uint8 array.
    :raises OSError: if the file cannot be read or is not an image Pillow can decode (Pillow's
        ``UnidentifiedImageError`` is an ``OSError``).
    :raises ValueError: for pixels that are not 8- or 16-bit image data, an empty image, or
        one so large it looks like a decompression bomb.
    :raises SyntaxError: for some malformed files (Pillow raises it).
    """
    from PIL import Image, ImageOps

    stream = io.BytesIO(source) if isinstance(source, bytes) else Path(source)
    try:
        with Image.open(stream) as opened:
            rgb = _to_rgb8(ImageOps.exif_transpose(opened))
    except Image.DecompressionBombError as err:
        raise ValueError(str(err)) from err
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f'decoded to an unusable array of shape {rgb.shape}')
    return np.ascontiguousarray(rgb)


def image_size(path: Path | str) -> tuple[int, int]:
    """
    Read an image file's size from its header, as ``decode_image`` will return it.

    Only the header is read (fast for a whole folder); the EXIF orientation is honoured, so a
    portrait photo stored sideways reports its upright size.

    :param path: the file.
    :return: ``(height, width)`` in pixels.
    :raises OSError: if the file cannot be read or is not an image.
    :raises SyntaxError: for some malformed headers (Pillow raises it).
    """
    from PIL import Image

    with Image.open(path) as opened:
        width, height = opened.size
        orientation = opened.getexif().get(0x0112, 1)  # EXIF Orientation tag
    # Orientations 5-8 are transposed (rotated by 90 degrees): width and height swap.
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)
