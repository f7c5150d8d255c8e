"""
Levelling a frame by gravity: the smallest rotation that makes a given up direction its +z.

A frame whose z axis should point up (REP 103's ``map``) but was fixed to a tilted camera is
levelled by rotating it about the horizontal axis perpendicular to its tilt, by the tilt angle
(the shortest arc from its up direction to +z, ``scipy.spatial.transform.Rotation.
align_vectors``), which changes its heading no more than levelling needs: a frame pitched about
its y axis keeps y, and its x axis becomes the old x axis projected on the horizontal plane.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.transform import Rotation

from vggt_mapper.geometry._arrays import as_float_array, check_trailing_shape
from vggt_mapper.geometry.errors import GeometryError

__all__ = ['level_frame', 'tilt_deg', 'unit_vector']

_Z = np.array([0.0, 0.0, 1.0])


def unit_vector(vector: ArrayLike, name: str = 'vector') -> NDArray[np.float64]:
    """
    Return a 3-vector scaled to unit length.

    :param vector: (3,) any finite, non-zero vector.
    :param name: argument name used in error messages.
    :return: (3,) float64 unit vector.
    :raises GeometryError: for a wrong shape, a non-finite or a (near) zero vector.
    """
    values = np.asarray(as_float_array(vector, name), dtype=np.float64)
    check_trailing_shape(values, (3,), name)
    if values.ndim != 1:
        raise GeometryError(f'{name} must be one 3-vector, got shape {values.shape}')
    norm = float(np.linalg.norm(values))
    if not np.isfinite(norm) or norm < 1e-12:
        raise GeometryError(f'{name} {values.tolist()} has no direction (norm {norm:.3g})')
    return values / norm


def tilt_deg(up_a: ArrayLike, up_b: ArrayLike) -> float:
    """
    Angle between two directions, degrees (how far one up estimate is from another).

    :param up_a: (3,) a direction, any length.
    :param up_b: (3,) another, in the same frame.
    :return: the angle in [0, 180].
    :raises GeometryError: as ``unit_vector``.
    """
    cosine = float(np.dot(unit_vector(up_a, 'up_a'), unit_vector(up_b, 'up_b')))
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def level_frame(frame_from_world: ArrayLike, up_world: ArrayLike) -> NDArray[np.float64]:
    """
    Rotate a frame about its origin so that ``up_world`` becomes its +z axis.

    ``levelled = R_level @ frame_from_world`` where ``R_level`` is the shortest rotation taking
    ``frame_from_world``'s image of ``up_world`` onto +z: a frame already level is returned
    unchanged, and the heading changes no more than levelling needs.

    :param frame_from_world: 4×4 rigid transform (or 3×3 rotation) from the world into the
        frame to level.
    :param up_world: (3,) the up direction (against gravity) in the world frame, any length.
    :return: 4×4 float64 ``levelled_from_world``; its third row's rotation part is
        ``up_world`` normalised, so ``(levelled_from_world @ p)_z`` is the height of ``p``
        along up.
    :raises GeometryError: for a wrong shape, a non-rotation or a zero up vector.
    """
    matrix = np.asarray(as_float_array(frame_from_world, 'frame_from_world'), dtype=np.float64)
    if matrix.shape == (3, 3):
        matrix = np.block([[matrix, np.zeros((3, 1))], [np.zeros((1, 3)), np.ones((1, 1))]])
    if matrix.shape != (4, 4):
        raise GeometryError(f'frame_from_world must be 4×4 or 3×3, got {matrix.shape}')
    rotation = matrix[:3, :3]
    if (not np.all(np.isfinite(matrix))
            or np.abs(rotation @ rotation.T - np.eye(3)).max() > 1e-6
            or np.linalg.det(rotation) <= 0):
        raise GeometryError('frame_from_world must be a rigid transform (a proper rotation)')
    up_frame = rotation @ unit_vector(up_world, 'up_world')
    shortest, _ = Rotation.align_vectors(_Z[None], up_frame[None])
    level = np.eye(4)
    level[:3, :3] = shortest.as_matrix()
    return level @ matrix
