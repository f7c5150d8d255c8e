"""
VGGT's camera encoding ``absT_quaR_FoV`` and its conversion to extrinsics and intrinsics.

Encoding, 9 numbers per camera: ``[t_x, t_y, t_z, q_x, q_y, q_z, q_w, fov_h, fov_w]`` where
``t`` is the translation of the **camera-from-world** extrinsic ``[R | t]`` (not the camera
centre), ``q`` is ``R`` as a quaternion in x, y, z, w order (the network's are not unit; only
the direction matters) and ``fov_h``/``fov_w`` are the full vertical/horizontal fields of view in
radians of an image of ``image_hw = (H, W)`` pixels. OpenCV axes (x right, y down, z forward).

Intrinsics are pinhole ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels of that image with
``fy = (H/2) / tan(fov_h/2)``, ``fx = (W/2) / tan(fov_w/2)`` and the principal point at the
image centre ``(cx, cy) = (W/2, H/2)``. The encoding cannot hold a principal point, so a round
trip moves it to the centre.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vggt_mapper.geometry._arrays import as_float_array, check_trailing_shape
from vggt_mapper.geometry.errors import GeometryError
from vggt_mapper.geometry.rotation import matrix_to_quat_xyzw, quat_xyzw_to_matrix

__all__ = ['extrinsics_intrinsics_to_pose_encoding', 'pose_encoding_to_extrinsics_intrinsics']

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


def extrinsics_intrinsics_to_pose_encoding(
    cam_from_world: ArrayLike,
    intrinsics: ArrayLike,
    image_hw: tuple[int, int],
) -> NDArray[np.floating[Any]]:
    """
    Encode camera-from-world extrinsics and intrinsics as ``absT_quaR_FoV``.

    Only ``fx`` and ``fy`` are kept (``fov_h = 2·atan(H/2 / fy)``, ``fov_w = 2·atan(W/2 / fx)``);
    the principal point is dropped.

    :param cam_from_world: (..., 3, 4) or (..., 4, 4) extrinsics ``[R | t]``.
    :param intrinsics: (..., 3, 3) K in pixels of an (H, W) image, same leading shape.
    :param image_hw: (H, W) of that image in pixels.
    :return: (..., 9) encodings, unit quaternions with ``w ≥ 0``, promoted input precision.
    :raises GeometryError: on wrong shapes or image size.
    """
    height, width = _check_image_hw(image_hw)
    extrinsics = as_float_array(cam_from_world, 'cam_from_world')
    if extrinsics.ndim < 2 or tuple(extrinsics.shape[-2:]) not in ((3, 4), (4, 4)):
        raise GeometryError(f'cam_from_world must have shape (..., 3, 4) or (..., 4, 4), '
                            f'got {tuple(extrinsics.shape)}')
    k_matrix = as_float_array(intrinsics, 'intrinsics')
    check_trailing_shape(k_matrix, (3, 3), 'intrinsics')
    if extrinsics.shape[:-2] != k_matrix.shape[:-2]:
        raise GeometryError(f'cam_from_world {tuple(extrinsics.shape)} and intrinsics '
                            f'{tuple(k_matrix.shape)} must have the same leading shape')
    dtype = np.result_type(extrinsics.dtype, k_matrix.dtype)
    quat = matrix_to_quat_xyzw(extrinsics[..., :3, :3].astype(dtype, copy=False))
    translation = extrinsics[..., :3, 3].astype(dtype, copy=False)
    half = dtype.type(0.5)
    fov_h = 2.0 * np.arctan((height * half) / k_matrix[..., 1, 1].astype(dtype, copy=False))
    fov_w = 2.0 * np.arctan((width * half) / k_matrix[..., 0, 0].astype(dtype, copy=False))
    return np.concatenate([translation, quat, fov_h[..., None], fov_w[..., None]],
                          axis=-1).astype(dtype, copy=False)
