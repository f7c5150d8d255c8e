"""
Pinhole projection both ways: pixels with depth to camera-frame points, and back.

Conventions: pixel ``(u, v) = (column, row)`` with pixel **centres at integer** coordinates (no
+0.5, as VGGT); depth is the z coordinate in the camera frame (OpenCV axes: x right, y down,
z forward); ``x_cam = (u - cx)·d/fx``, ``y_cam = (v - cy)·d/fy``, ``z_cam = d`` with a pinhole
``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in pixels (no skew, as VGGT predicts it). World
points are ``transform_points(world_from_cam, points_cam)`` (``vggt_mapper.geometry.se3``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vggt_mapper.geometry._arrays import as_float_array, check_trailing_shape
from vggt_mapper.geometry.errors import GeometryError

__all__ = ['depth_to_points_cam', 'pixel_grid_uv', 'project_points', 'unproject_pixels']


def pixel_grid_uv(height: int, width: int) -> NDArray[np.float64]:
    """
    Return the integer pixel-centre coordinates of an image.

    :param height: image height H in pixels.
    :param width: image width W in pixels.
    :return: (H, W, 2) float64 array of (u, v) = (column, row).
    """
    v_rows, u_cols = np.meshgrid(np.arange(height, dtype=np.float64),
                                 np.arange(width, dtype=np.float64), indexing='ij')
    return np.stack([u_cols, v_rows], axis=-1)


def _pinhole(intrinsics: ArrayLike) -> tuple[float, float, float, float]:
    """Return ``(fx, fy, cx, cy)`` of a pinhole K; refuse any other 3×3 matrix."""
    k_matrix = as_float_array(intrinsics, 'intrinsics').astype(np.float64)
    if k_matrix.shape != (3, 3):
        raise GeometryError(f'intrinsics must be (3, 3), got {tuple(k_matrix.shape)}')
    fx, fy = float(k_matrix[0, 0]), float(k_matrix[1, 1])
    # Skew or a projective last row would be silently dropped by the formula: refuse them.
    structural = k_matrix[[0, 1, 2, 2, 2], [1, 0, 0, 1, 2]] - [0.0, 0.0, 0.0, 0.0, 1.0]
    if not (fx > 0 and fy > 0 and np.all(np.abs(structural) <= 1e-9 * max(fx, fy))):
        raise GeometryError(f'intrinsics must be a pinhole K [[fx, 0, cx], [0, fy, cy], '
                            f'[0, 0, 1]] with fx, fy > 0, got {k_matrix.tolist()}')
    return fx, fy, float(k_matrix[0, 2]), float(k_matrix[1, 2])


def unproject_pixels(pixels_uv: ArrayLike, depth: ArrayLike,
                     intrinsics: ArrayLike) -> NDArray[np.float64]:
    """
    Camera-frame points of pixels at given z-depths; with depth 1, rays with ``z = 1``.

    :param pixels_uv: (..., 2) pixel coordinates (u, v) = (column, row), centres at integers
        (sub-pixel positions such as image corners at -0.5 are allowed).
    :param depth: z-depth of each pixel, broadcastable to ``pixels_uv.shape[:-1]`` (a scalar
        applies to every pixel).
    :param intrinsics: (3, 3) pinhole K in the pixels of ``pixels_uv``.
    :return: (..., 3) float64 points in the camera frame, depth units.
    :raises GeometryError: on wrong shapes or a K that is not a pinhole matrix.
    """
    uv = as_float_array(pixels_uv, 'pixels_uv').astype(np.float64)
    check_trailing_shape(uv, (2,), 'pixels_uv')
    z_cam = as_float_array(depth, 'depth').astype(np.float64)
    try:
        z_cam = np.broadcast_to(z_cam, uv.shape[:-1])
    except ValueError as err:
        raise GeometryError(f'depth {tuple(z_cam.shape)} does not broadcast to the pixels '
                            f'{tuple(uv.shape[:-1])}') from err
    fx, fy, cx, cy = _pinhole(intrinsics)
    x_cam = (uv[..., 0] - cx) * z_cam / fx
    y_cam = (uv[..., 1] - cy) * z_cam / fy
    return np.stack([x_cam, y_cam, z_cam], axis=-1)


def depth_to_points_cam(depth: ArrayLike, intrinsics: ArrayLike) -> NDArray[np.floating[Any]]:
    """
    Unproject every pixel of one depth map into camera-frame points.

    :param depth: (H, W) depth along the camera z axis.
    :param intrinsics: (3, 3) pinhole K in pixels of that depth map.
    :return: (H, W, 3) points in the camera frame, in the depth's float precision (computed
        in float64, then rounded once, as VGGT does).
    :raises GeometryError: on wrong shapes or a K that is not a pinhole matrix.
    """
    depth_map = as_float_array(depth, 'depth')
    if depth_map.ndim != 2:
        raise GeometryError(f'depth must be a single (H, W) depth map, '
                            f'got {tuple(depth_map.shape)}')
    grid = pixel_grid_uv(*depth_map.shape)
    return unproject_pixels(grid, depth_map, intrinsics).astype(depth_map.dtype)


def project_points(points_cam: ArrayLike, intrinsics: ArrayLike
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """
    Pixel coordinates and z-depth of camera-frame points (the inverse of ``unproject_pixels``).

    :param points_cam: (..., 3) points in the camera frame (OpenCV axes).
    :param intrinsics: (3, 3) pinhole K in pixels.
    :return: ``(pixels_uv, depth)``: (..., 2) float64 (u, v), pixel centres at integers (NaN or
        infinite for points at z = 0), and (...,) float64 z; points behind the camera (z < 0)
        get pixel coordinates too, so callers test ``depth > 0``.
    :raises GeometryError: on wrong shapes or a K that is not a pinhole matrix.
    """
    points = as_float_array(points_cam, 'points_cam').astype(np.float64)
    check_trailing_shape(points, (3,), 'points_cam')
    fx, fy, cx, cy = _pinhole(intrinsics)
    z_cam = points[..., 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        u_pix = fx * points[..., 0] / z_cam + cx
        v_pix = fy * points[..., 1] / z_cam + cy
    return np.stack([u_pix, v_pix], axis=-1), z_cam
