"""
Depth maps to 3D points (pinhole unprojection).

Conventions: pixel ``(u, v) = (column, row)`` with pixel **centres at integer** coordinates (no
+0.5, as VGGT); depth is the z coordinate in the camera frame (OpenCV axes: x right, y down,
z forward); ``x_cam = (u - cx)·d/fx``, ``y_cam = (v - cy)·d/fy``, ``z_cam = d``. Extrinsics are
camera-from-world ``[R | t]``; world points are ``Rᵀ (x_cam - t)``. A pixel is valid iff
``depth > 1e-8``; points are still computed for invalid pixels (the mask only reports).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vggt_mapper.geometry._arrays import as_float_array, check_trailing_shape
from vggt_mapper.geometry.errors import GeometryError
from vggt_mapper.geometry.se3 import inverse_se3

__all__ = [
    'DEPTH_VALID_EPS',
    'depth_to_points_cam',
    'depth_to_points_world',
    'pixel_grid_uv',
    'unproject_depth_maps',
]

DEPTH_VALID_EPS = 1e-8
"""A depth value is valid iff it is greater than this (VGGT's threshold)."""


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


def _check_depth_2d(depth: NDArray[Any], name: str) -> None:
    if depth.ndim != 2:
        raise GeometryError(f'{name} must be a single (H, W) depth map, got {tuple(depth.shape)}')


def depth_to_points_cam(depth: ArrayLike, intrinsics: ArrayLike) -> NDArray[np.floating[Any]]:
    """
    Unproject one depth map into camera-frame points.

    :param depth: (H, W) depth along the camera z axis.
    :param intrinsics: (3, 3) pinhole K in pixels of that depth map.
    :return: (H, W, 3) points in the camera frame, in the depth's float precision.
    :raises GeometryError: on wrong shapes.
    """
    depth_map = as_float_array(depth, 'depth')
    _check_depth_2d(depth_map, 'depth')
    k_matrix = as_float_array(intrinsics, 'intrinsics')
    if k_matrix.shape != (3, 3):
        raise GeometryError(f'intrinsics must be (3, 3), got {tuple(k_matrix.shape)}')
    height, width = depth_map.shape
    # Computed in float64, then rounded once to the depth's precision.
    grid = pixel_grid_uv(height, width)
    k64 = k_matrix.astype(np.float64)
    d64 = depth_map.astype(np.float64)
    x_cam = (grid[..., 0] - k64[0, 2]) * d64 / k64[0, 0]
    y_cam = (grid[..., 1] - k64[1, 2]) * d64 / k64[1, 1]
    return np.stack([x_cam, y_cam, d64], axis=-1).astype(depth_map.dtype)


def depth_to_points_world(
    depth: ArrayLike,
    cam_from_world: ArrayLike,
    intrinsics: ArrayLike,
    eps: float = DEPTH_VALID_EPS,
) -> tuple[NDArray[np.float64], NDArray[np.floating[Any]], NDArray[np.bool_]]:
    """
    Unproject one depth map into world points.

    :param depth: (H, W) depth along the camera z axis.
    :param cam_from_world: (3, 4) or (4, 4) camera-from-world extrinsic.
    :param intrinsics: (3, 3) pinhole K in pixels.
    :param eps: validity threshold, valid iff ``depth > eps``.
    :return: ``(points_world, points_cam, valid)``: (H, W, 3) float64 world points, (H, W, 3)
        camera points in the depth's precision, (H, W) bool mask.
    :raises GeometryError: on wrong shapes.
    """
    depth_map = as_float_array(depth, 'depth')
    _check_depth_2d(depth_map, 'depth')
    extrinsic = as_float_array(cam_from_world, 'cam_from_world')
    if extrinsic.shape not in ((3, 4), (4, 4)):
        raise GeometryError(f'cam_from_world must be (3, 4) or (4, 4), '
                            f'got {tuple(extrinsic.shape)}')
    points_cam = depth_to_points_cam(depth_map, intrinsics)
    # The inverse is taken in the extrinsic's own precision (as VGGT does), then widened.
    world_from_cam = inverse_se3(extrinsic).astype(np.float64)
    points_world = (points_cam.astype(np.float64) @ world_from_cam[:3, :3].T
                    + world_from_cam[:3, 3])
    return points_world, points_cam, depth_map > eps


def unproject_depth_maps(
    depth: ArrayLike,
    cam_from_world: ArrayLike,
    intrinsics: ArrayLike,
) -> NDArray[np.float64]:
    """
    Unproject a stack of depth maps into world points (float64, like VGGT's numpy version).

    :param depth: (S, H, W) or (S, H, W, 1) depth maps.
    :param cam_from_world: (S, 3, 4) or (S, 4, 4) camera-from-world extrinsics.
    :param intrinsics: (S, 3, 3) pinhole K in pixels.
    :return: (S, H, W, 3) float64 world points (every pixel, valid or not).
    :raises GeometryError: on wrong or inconsistent shapes.
    """
    depth_maps = as_float_array(depth, 'depth')
    if depth_maps.ndim == 4 and depth_maps.shape[-1] == 1:
        depth_maps = depth_maps[..., 0]
    if depth_maps.ndim != 3:
        raise GeometryError(f'depth must be (S, H, W) or (S, H, W, 1), '
                            f'got {tuple(np.shape(depth))}')
    extrinsics = as_float_array(cam_from_world, 'cam_from_world')
    k_matrices = as_float_array(intrinsics, 'intrinsics')
    check_trailing_shape(k_matrices, (3, 3), 'intrinsics')
    num = depth_maps.shape[0]
    if extrinsics.ndim != 3 or extrinsics.shape[0] != num or k_matrices.shape[0] != num:
        raise GeometryError(f'need one extrinsic and one intrinsic per depth map: depth '
                            f'{tuple(depth_maps.shape)}, cam_from_world '
                            f'{tuple(extrinsics.shape)}, intrinsics {tuple(k_matrices.shape)}')
    height, width = depth_maps.shape[1:]
    grid = pixel_grid_uv(height, width)
    k64 = k_matrices.astype(np.float64)
    d64 = depth_maps.astype(np.float64)
    cx, cy = k64[:, 0, 2, None, None], k64[:, 1, 2, None, None]
    fx, fy = k64[:, 0, 0, None, None], k64[:, 1, 1, None, None]
    x_cam = (grid[None, ..., 0] - cx) * d64 / fx
    y_cam = (grid[None, ..., 1] - cy) * d64 / fy
    # Round camera points to the depth's precision as the per-frame path does, so a float32
    # input gives the same numbers whichever function is used.
    points_cam = np.stack([x_cam, y_cam, d64], axis=-1).astype(depth_maps.dtype)
    world_from_cam = inverse_se3(extrinsics).astype(np.float64)
    rotation = world_from_cam[:, None, None, :3, :3]
    translation = world_from_cam[:, None, None, :3, 3]
    points_world: NDArray[np.float64] = (
        np.einsum('...ij,...j->...i', rotation, points_cam.astype(np.float64)) + translation)
    return points_world
