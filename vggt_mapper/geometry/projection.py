"""
Projection of world points into cameras, with optional lens distortion.

Conventions: camera-from-world extrinsics ``[R | t]`` (OpenCV axes: x right, y down, z forward),
pinhole K in pixels, pixel centres at integer coordinates. A point projects to
``K @ [x/z, y/z, 1]``; points behind the camera are projected too (no culling), and a NaN result
(``z = 0`` with ``x = 0``) is replaced by ``default``. Distortion acts on the normalised
coordinates ``(x/z, y/z)`` before K, with 1 parameter ``k`` (radial ``k·r²``), 2 parameters
``k1, k2`` (``k1·r² + k2·r⁴``) or 4 parameters ``k1, k2, p1, p2`` (OpenCV radial + tangential).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vggt_mapper.geometry._arrays import as_float_array, check_trailing_shape
from vggt_mapper.geometry.errors import GeometryError

__all__ = ['apply_distortion', 'project_points_world']

_DISTORTION_SIZES = (1, 2, 4)


def apply_distortion(
    distortion: ArrayLike,
    u_norm: ArrayLike,
    v_norm: ArrayLike,
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]:
    """
    Distort normalised image coordinates, one parameter set per camera.

    With ``r² = u² + v²`` and ``radial = k1·r² + k2·r⁴`` (``k2 = 0`` for one parameter):
    ``u' = u + u·radial + 2·p1·u·v + p2·(r² + 2u²)``,
    ``v' = v + v·radial + 2·p2·u·v + p1·(r² + 2v²)`` (``p1 = p2 = 0`` unless 4 parameters).

    :param distortion: (B, k) parameters, k in {1, 2, 4}: ``[k]``, ``[k1, k2]`` or
        ``[k1, k2, p1, p2]``.
    :param u_norm: (B, N) normalised x coordinates (x/z).
    :param v_norm: (B, N) normalised y coordinates (y/z).
    :return: distorted ``(u, v)``, each (B, N).
    :raises GeometryError: on an unsupported parameter count or mismatched shapes.
    """
    params = as_float_array(distortion, 'distortion')
    u = as_float_array(u_norm, 'u_norm')
    v = as_float_array(v_norm, 'v_norm')
    if params.ndim != 2 or params.shape[1] not in _DISTORTION_SIZES:
        raise GeometryError(f'distortion must be (B, k) with k in {_DISTORTION_SIZES}, '
                            f'got {tuple(params.shape)}')
    if u.shape != v.shape or u.ndim != 2 or u.shape[0] != params.shape[0]:
        raise GeometryError(f'u_norm {tuple(u.shape)} and v_norm {tuple(v.shape)} must both be '
                            f'(B, N) with B = {params.shape[0]}')
    count = params.shape[1]
    r2 = u * u + v * v
    k1 = params[:, 0:1]
    radial = k1 * r2 if count == 1 else k1 * r2 + params[:, 1:2] * r2 * r2
    du = u * radial
    dv = v * radial
    if count == 4:
        p1, p2 = params[:, 2:3], params[:, 3:4]
        uv = u * v
        du = du + 2.0 * p1 * uv + p2 * (r2 + 2.0 * u * u)
        dv = dv + 2.0 * p2 * uv + p1 * (r2 + 2.0 * v * v)
    return u + du, v + dv


def project_points_world(
    points_world: ArrayLike,
    cam_from_world: ArrayLike,
    intrinsics: ArrayLike,
    distortion: ArrayLike | None = None,
    default: float = 0.0,
) -> tuple[NDArray[np.floating[Any]], NDArray[np.floating[Any]]]:
    """
    Project world points into B cameras.

    :param points_world: (P, 3) points in the world frame.
    :param cam_from_world: (B, 3, 4) camera-from-world extrinsics.
    :param intrinsics: (B, 3, 3) pinhole K in pixels.
    :param distortion: optional (B, k) distortion parameters, k in {1, 2, 4}
        (see ``apply_distortion``).
    :param default: value that replaces NaN pixel coordinates.
    :return: ``(uv, points_cam)``: (B, P, 2) pixel coordinates (u, v) and (B, 3, P) camera-frame
        points, in the promoted precision of the inputs.
    :raises GeometryError: on wrong shapes.
    """
    points = as_float_array(points_world, 'points_world')
    extrinsics = as_float_array(cam_from_world, 'cam_from_world')
    k_matrices = as_float_array(intrinsics, 'intrinsics')
    if points.ndim != 2 or points.shape[1] != 3:
        raise GeometryError(f'points_world must be (P, 3), got {tuple(points.shape)}')
    check_trailing_shape(extrinsics, (3, 4), 'cam_from_world')
    check_trailing_shape(k_matrices, (3, 3), 'intrinsics')
    if extrinsics.ndim != 3 or k_matrices.shape != (extrinsics.shape[0], 3, 3):
        raise GeometryError(f'cam_from_world must be (B, 3, 4) and intrinsics (B, 3, 3), got '
                            f'{tuple(extrinsics.shape)} and {tuple(k_matrices.shape)}')
    points_cam = extrinsics[:, :, :3] @ points.T[None] + extrinsics[:, :, 3:4]
    with np.errstate(divide='ignore', invalid='ignore'):
        normalised = points_cam / points_cam[:, 2:3, :]
    u_norm, v_norm = normalised[:, 0], normalised[:, 1]
    if distortion is not None:
        u_norm, v_norm = apply_distortion(distortion, u_norm, v_norm)
    homogeneous = np.stack([u_norm, v_norm, np.ones_like(u_norm)], axis=1)
    pixels = (k_matrices @ homogeneous)[:, :2, :]
    pixels = np.where(np.isnan(pixels), default, pixels)
    return np.swapaxes(pixels, 1, 2), points_cam
