"""
Gravity: the up direction from camera poses, and levelling a frame by it.

A robot whose base frame has z up (REP 103: ``base_link`` x forward, y left, z up) and a camera
rigidly mounted on it knows "up" in the camera frame: ``up_cam = R_base_from_camᵀ @ e_z``.
Every keyframe then says where up is in the map's world frame (``R_world_from_cam @ up_cam``);
their robust mean (``gravity_up_world``) is the world's up direction, averaging the model's
rotation noise and the base's small tilts (a ramp, a bump). A floor-plane fit
(``engine.floor``) is the other source of up.

A frame whose z axis should point up (REP 103's ``map``) but was fixed to a tilted camera is
levelled (``level_frame``) by rotating it about the horizontal axis perpendicular to its tilt,
by the tilt angle (the shortest arc from its up direction to +z, ``scipy.spatial.transform.
Rotation.align_vectors``), which changes its heading no more than levelling needs: a frame
pitched about its y axis keeps y, and its x axis becomes the old x axis projected on the
horizontal plane.

Conventions: ``world_from_cam`` poses are 4×4 (or 3×4) with OpenCV camera axes; directions are
(3,) float64 vectors in the named frame; rotations are 3×3 float64 ``b_from_a``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial.transform import Rotation

from vggt_mapper.geometry._arrays import as_float_array, check_trailing_shape
from vggt_mapper.geometry.errors import GeometryError

__all__ = ['UP_BASE', 'angle_deg', 'gravity_up_world', 'level_frame', 'tilt_deg', 'unit_vector']

#: The up direction of a REP 103 base frame (``base_link``: z up).
UP_BASE: NDArray[np.float64] = np.array([0.0, 0.0, 1.0])
UP_BASE.flags.writeable = False

#: Keyframes whose up direction is further than this from the first mean are outliers (a wrong
#: rotation from the model, a robot on a steep ramp) and are left out of the second mean.
_OUTLIER_DEG = 15.0

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


def angle_deg(up_a: ArrayLike, up_b: ArrayLike) -> float:
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


def gravity_up_world(world_from_cams: ArrayLike, up_cam: ArrayLike) -> NDArray[np.float64]:
    """
    Estimate the world's up direction from camera poses and the camera's own up direction.

    Each pose gives ``R_world_from_cam @ up_cam``; the result is their mean, recomputed
    without the poses further than 15° from the first mean.

    :param world_from_cams: (K, 4, 4) or (K, 3, 4) camera poses in the world, K >= 1.
    :param up_cam: (3,) up in the camera frame (``R_base_from_camᵀ @ UP_BASE``); any length.
    :return: (3,) unit up direction in the world frame.
    :raises GeometryError: on wrong shapes, no pose, or a zero ``up_cam``.
    """
    poses = np.asarray(as_float_array(world_from_cams, 'world_from_cams'), dtype=np.float64)
    if poses.ndim != 3 or poses.shape[0] == 0:
        raise GeometryError(f'world_from_cams must have shape (K, 4, 4) with K >= 1, got '
                            f'{poses.shape}')
    check_trailing_shape(poses[:, :3, :], (3, 4), 'world_from_cams')
    ups = poses[:, :3, :3] @ unit_vector(up_cam, 'up_cam')  # (K, 3), unit: rotations keep lengths
    mean = unit_vector(ups.mean(axis=0), 'mean up direction')
    inliers = ups @ mean >= np.cos(np.deg2rad(_OUTLIER_DEG))
    if np.any(inliers):
        mean = unit_vector(ups[inliers].mean(axis=0), 'mean up direction')
    return mean


def tilt_deg(up_world: ArrayLike, frame_from_world: ArrayLike) -> float:
    """
    Angle between a frame's z axis and the world's up direction, in degrees.

    :param up_world: (3,) up direction in the world frame.
    :param frame_from_world: (3, 3) rotation (or 4×4 transform) from the world into the frame.
    :return: the tilt of the frame (0 for a level frame).
    :raises GeometryError: on wrong shapes or a zero ``up_world``.
    """
    rotation = np.asarray(as_float_array(frame_from_world, 'frame_from_world'), np.float64)
    if rotation.shape not in ((3, 3), (4, 4)):
        raise GeometryError(f'frame_from_world must have shape (3, 3) or (4, 4), got '
                            f'{rotation.shape}')
    return angle_deg(rotation[:3, :3] @ unit_vector(up_world, 'up_world'), _Z)
