"""
Rotation matrices and quaternions, quaternions in **x, y, z, w** order (scalar last).

Convention (the one VGGT's pose encoding uses): Hamilton quaternions, ``quat_xyzw`` =
``(x, y, z, w)`` with ``w = cos(θ/2)``; a matrix ``R`` acts on column vectors, ``p' = R @ p``.
``q`` and ``-q`` are the same rotation; ``matrix_to_quat_xyzw`` returns the one with ``w ≥ 0``.
Functions work on any leading batch shape and keep float32 or float64 precision.
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vggt_mapper.geometry._arrays import as_float_array, check_trailing_shape

__all__ = ['matrix_to_quat_xyzw', 'quat_xyzw_to_matrix']

# Candidates are divided by 2·max(|q_i|, floor): the floor only matters for branches that are
# not selected (their |q_i| is small), so it just keeps them finite.
_CANDIDATE_FLOOR = 0.1


# float64 in, float64 out: the overloads let the engine and io keep NDArray[np.float64] types.
@overload
def quat_xyzw_to_matrix(quat_xyzw: NDArray[np.float64]) -> NDArray[np.float64]: ...
@overload
def quat_xyzw_to_matrix(quat_xyzw: ArrayLike) -> NDArray[np.floating[Any]]: ...


def quat_xyzw_to_matrix(quat_xyzw: ArrayLike) -> NDArray[np.floating[Any]]:
    """
    Convert quaternions (x, y, z, w) to 3×3 rotation matrices.

    Non-unit quaternions are accepted, as a network outputs them: the formula scales by
    ``2/‖q‖²``, which equals normalising ``q`` first.

    :param quat_xyzw: (..., 4) quaternions, scalar last, any non-zero norm.
    :return: (..., 3, 3) rotation matrices in the input's float precision.
    :raises GeometryError: if the last dimension is not 4.
    """
    quat = as_float_array(quat_xyzw, 'quat_xyzw')
    check_trailing_shape(quat, (4,), 'quat_xyzw')
    x, y, z, w = (quat[..., index] for index in range(4))
    two_s = 2.0 / (quat * quat).sum(axis=-1)
    one = quat.dtype.type(1.0)
    rows = (
        one - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w),
        two_s * (x * y + z * w), one - two_s * (x * x + z * z), two_s * (y * z - x * w),
        two_s * (x * z - y * w), two_s * (y * z + x * w), one - two_s * (x * x + y * y),
    )
    matrix = np.stack(rows, axis=-1).astype(quat.dtype, copy=False)
    return matrix.reshape(quat.shape[:-1] + (3, 3))


@overload
def matrix_to_quat_xyzw(matrix: NDArray[np.float64]) -> NDArray[np.float64]: ...
@overload
def matrix_to_quat_xyzw(matrix: ArrayLike) -> NDArray[np.floating[Any]]: ...


def matrix_to_quat_xyzw(matrix: ArrayLike) -> NDArray[np.floating[Any]]:
    """
    Convert 3×3 rotation matrices to unit quaternions (x, y, z, w) with ``w ≥ 0``.

    Uses the numerically stable four-branch method: each of ``4·w², 4·x², 4·y², 4·z²`` is read
    off the diagonal, and the quaternion is rebuilt from the branch with the largest one. When
    ``w`` is exactly 0 (180° rotations) the sign is the one that branch gives.

    :param matrix: (..., 3, 3) rotation matrices.
    :return: (..., 4) quaternions, scalar last, in the input's float precision.
    :raises GeometryError: if the trailing shape is not (3, 3).
    """
    mat = as_float_array(matrix, 'matrix')
    check_trailing_shape(mat, (3, 3), 'matrix')
    m00, m01, m02 = mat[..., 0, 0], mat[..., 0, 1], mat[..., 0, 2]
    m10, m11, m12 = mat[..., 1, 0], mat[..., 1, 1], mat[..., 1, 2]
    m20, m21, m22 = mat[..., 2, 0], mat[..., 2, 1], mat[..., 2, 2]
    one = mat.dtype.type(1.0)
    # 4·q_i² for (w, x, y, z), clamped at 0 before the square root.
    four_sq = np.stack([
        one + m00 + m11 + m22,
        one + m00 - m11 - m22,
        one - m00 + m11 - m22,
        one - m00 - m11 + m22,
    ], axis=-1)
    abs_wxyz = np.sqrt(np.maximum(four_sq, 0.0)).astype(mat.dtype, copy=False)
    # Row i holds 4·q_i·(w, x, y, z); dividing by 2·|q_i| gives the quaternion.
    sq = abs_wxyz * abs_wxyz
    candidates = np.stack([
        np.stack([sq[..., 0], m21 - m12, m02 - m20, m10 - m01], axis=-1),
        np.stack([m21 - m12, sq[..., 1], m10 + m01, m02 + m20], axis=-1),
        np.stack([m02 - m20, m10 + m01, sq[..., 2], m12 + m21], axis=-1),
        np.stack([m10 - m01, m20 + m02, m21 + m12, sq[..., 3]], axis=-1),
    ], axis=-2)
    denominator = 2.0 * np.maximum(abs_wxyz, mat.dtype.type(_CANDIDATE_FLOOR))
    candidates = candidates / denominator[..., None]
    best = np.argmax(abs_wxyz, axis=-1)
    quat_wxyz = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    quat_xyzw = quat_wxyz[..., [1, 2, 3, 0]]
    quat_xyzw = np.where(quat_xyzw[..., 3:4] < 0, -quat_xyzw, quat_xyzw)
    return quat_xyzw.astype(mat.dtype, copy=False)
