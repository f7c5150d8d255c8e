"""
VGGT's camera encoding ``absT_quaR_FoV`` and its conversion to extrinsics and intrinsics.

Encoding, 9 numbers per camera: ``[t_x, t_y, t_z, q_x, q_y, q_z, q_w, fov_h, fov_w]`` where
``t`` is the translation of the **camera-from-world** extrinsic ``[R | t]`` (not the camera
centre), ``q`` is ``R`` as a quaternion in x, y, z, w order (the network's are not unit; only
the direction matters) and ``fov_h``/``fov_w`` are the full vertical/horizontal fields of view in
radians of an image of ``image_hw = (H, W)`` pixels. OpenCV axes (x right, y down, z forward).

Intrinsics are pinhole ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels of that image with
``fy = (H/2) / tan(fov_h/2)``, ``fx = (W/2) / tan(fov_w/2)`` and the principal point at the
image centre ``(cx, cy) = (W/2, H/2)``. Only decoding is needed: the model predicts
encodings, nothing here writes one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vggt_mapper.geometry._arrays import as_float_array, check_trailing_shape
from vggt_mapper.geometry.errors import GeometryError
from vggt_mapper.geometry.rotation import quat_xyzw_to_matrix

__all__ = ['pose_encoding_to_extrinsics_intrinsics']

POSE_ENCODING_SIZE = 9


def _check_image_hw(image_hw: tuple[int, int]) -> tuple[int, int]:
    if len(image_hw) != 2 or min(image_hw) <= 0:
        raise GeometryError(f'image_hw must be (height, width) in pixels, both > 0, '
                            f'got {image_hw!r}')
    return int(image_hw[0]), int(image_hw[1])


def pose_encoding_to_extrinsics_intrinsics(
    pose_encoding: ArrayLike,
    image_hw: tuple[int, int],
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]:
    """
    Decode ``absT_quaR_FoV`` encodings into camera-from-world extrinsics and intrinsics.

    :param pose_encoding: (..., 9) encodings (any leading shape, e.g. (S, 9) or (B, S, 9)).
    :param image_hw: (H, W) in pixels of the image the fields of view refer to.
    :return: ``(cam_from_world, intrinsics)``: (..., 3, 4) ``[R | t]`` and (..., 3, 3) K in
        pixels, both in the input's float precision.
    :raises GeometryError: on a wrong trailing shape or image size.
    """
    height, width = _check_image_hw(image_hw)
    encoding = as_float_array(pose_encoding, 'pose_encoding')
    check_trailing_shape(encoding, (POSE_ENCODING_SIZE,), 'pose_encoding')
    rotation = quat_xyzw_to_matrix(encoding[..., 3:7])
    cam_from_world = np.concatenate([rotation, encoding[..., 0:3, None]], axis=-1)
    half = encoding.dtype.type(0.5)
    focal_y = (height * half) / np.tan(encoding[..., 7] * half)
    focal_x = (width * half) / np.tan(encoding[..., 8] * half)
    intrinsics = np.zeros(encoding.shape[:-1] + (3, 3), dtype=encoding.dtype)
    intrinsics[..., 0, 0] = focal_x
    intrinsics[..., 1, 1] = focal_y
    intrinsics[..., 0, 2] = width * half
    intrinsics[..., 1, 2] = height * half
    intrinsics[..., 2, 2] = 1.0
    return cam_from_world, intrinsics
