"""
Rigid transforms SE(3) as 3×4 ``[R | t]`` or 4×4 homogeneous matrices.

Convention: a transform named ``b_from_a`` maps points of frame ``a`` into frame ``b``:
``p_b = R @ p_a + t``. Camera extrinsics are ``cam_from_world`` (OpenCV axes: x right, y down,
z forward); camera poses are ``world_from_cam``. The camera centre in the world frame is
``-Rᵀ t``.
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vggt_mapper.geometry._arrays import as_float_array
from vggt_mapper.geometry.errors import GeometryError

__all__ = ['inverse_se3', 'transform_points']


def _as_transform(transform: ArrayLike, name: str) -> NDArray[np.floating[Any]]:
    array = as_float_array(transform, name)
    if array.ndim < 2 or tuple(array.shape[-2:]) not in ((3, 4), (4, 4)):
        raise GeometryError(f'{name} must have shape (..., 3, 4) or (..., 4, 4), '
                            f'got {tuple(array.shape)}')
    return array


# float64 in, float64 out: the overloads let the engine and io keep NDArray[np.float64] types.
@overload
def inverse_se3(transform: NDArray[np.float64]) -> NDArray[np.float64]: ...
@overload
def inverse_se3(transform: ArrayLike) -> NDArray[np.floating[Any]]: ...


def inverse_se3(transform: ArrayLike) -> NDArray[np.floating[Any]]:
    """
    Invert rigid transforms in closed form: ``[R | t]⁻¹ = [Rᵀ | -Rᵀ t]``.

    Only the rotation block and translation are read (the bottom row of a 4×4 input is
    ignored), so the input must really be rigid; no matrix inverse is computed.

    :param transform: (..., 3, 4) or (..., 4, 4) ``b_from_a`` transforms.
    :return: (..., 4, 4) ``a_from_b`` transforms in the input's float precision.
    :raises GeometryError: on any other trailing shape.
    """
    array = _as_transform(transform, 'transform')
    rotation_t = np.swapaxes(array[..., :3, :3], -1, -2)
    translation = array[..., :3, 3:4]
    out = np.zeros(array.shape[:-2] + (4, 4), dtype=array.dtype)
    out[..., :3, :3] = rotation_t
    out[..., :3, 3:4] = -(rotation_t @ translation)
    out[..., 3, 3] = 1.0
    return out


# A float64 transform promotes any accepted points (float16/32/64, integers) to float64.
@overload
def transform_points(b_from_a: NDArray[np.float64],
                     points_a: ArrayLike) -> NDArray[np.float64]: ...


@overload
def transform_points(b_from_a: ArrayLike, points_a: ArrayLike) -> NDArray[np.floating[Any]]: ...


def transform_points(b_from_a: ArrayLike, points_a: ArrayLike) -> NDArray[np.floating[Any]]:
    """
    Apply a rigid transform to points: ``p_b = R @ p_a + t``.

    :param b_from_a: (3, 4) or (4, 4) transform.
    :param points_a: (..., 3) points in frame ``a``.
    :return: (..., 3) points in frame ``b``, in the promoted precision of both inputs.
    :raises GeometryError: on wrong shapes.
    """
    transform = _as_transform(b_from_a, 'b_from_a')
    if transform.ndim != 2:
        raise GeometryError(f'b_from_a must be a single (3, 4) or (4, 4) transform, '
                            f'got {tuple(transform.shape)}')
    points = as_float_array(points_a, 'points_a')
    if points.shape[-1:] != (3,):
        raise GeometryError(f'points_a must have shape (..., 3), got {tuple(points.shape)}')
    result: NDArray[np.floating[Any]] = points @ transform[:3, :3].T + transform[:3, 3]
    return result
