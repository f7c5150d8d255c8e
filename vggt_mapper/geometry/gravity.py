"""
Gravity from camera poses, and the level frame it defines.

A robot whose base frame has z up (REP 103: ``base_link`` x forward, y left, z up) and a camera
rigidly mounted on it knows "up" in the camera frame: ``up_cam = R_base_from_camᵀ @ e_z``.
Every keyframe then says where up is in the map's world frame (``R_world_from_cam @ up_cam``);
their robust mean is the world's up direction, averaging the model's rotation noise and the
base's small tilts (a ramp, a bump). The level frame keeps the world origin and turns it so that
its z axis is that up direction and its x axis the horizontal part of a chosen forward
direction (REP 103 body axes: x forward, y left, z up).

Conventions: ``world_from_cam`` poses are 4×4 (or 3×4) with OpenCV camera axes; directions are
(3,) float64 vectors in the named frame; rotations are 3×3 float64 ``b_from_a``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vggt_mapper.geometry._arrays import as_float_array, check_trailing_shape
from vggt_mapper.geometry.errors import GeometryError

__all__ = ['UP_BASE', 'gravity_up_world', 'level_from_world_rotation', 'tilt_deg']

#: The up direction of a REP 103 base frame (``base_link``: z up).
UP_BASE: NDArray[np.float64] = np.array([0.0, 0.0, 1.0])
UP_BASE.flags.writeable = False

#: Keyframes whose up direction is further than this from the first mean are outliers (a wrong
#: rotation from the model, a robot on a steep ramp) and are left out of the second mean.
_OUTLIER_DEG = 15.0


def _unit(vector: ArrayLike, name: str) -> NDArray[np.float64]:
    array = np.asarray(as_float_array(vector, name), dtype=np.float64)
    if array.shape != (3,):
        raise GeometryError(f'{name} must have shape (3,), got {array.shape}')
    norm = float(np.linalg.norm(array))
    if not np.isfinite(norm) or norm < 1e-9:
        raise GeometryError(f'{name} must be a finite non-zero vector, got {array.tolist()}')
    return array / norm


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
    ups = poses[:, :3, :3] @ _unit(up_cam, 'up_cam')  # (K, 3), unit: rotations keep lengths
    mean = _unit(ups.mean(axis=0), 'mean up direction')
    inliers = ups @ mean >= np.cos(np.deg2rad(_OUTLIER_DEG))
    if np.any(inliers):
        mean = _unit(ups[inliers].mean(axis=0), 'mean up direction')
    return mean


def level_from_world_rotation(up_world: ArrayLike,
                              forward_world: ArrayLike) -> NDArray[np.float64]:
    """
    Return the rotation from the world into the level frame with REP 103 axes.

    Rows of the result: x = the horizontal part of ``forward_world`` (normalised), z =
    ``up_world``, y = z × x (left). When ``forward_world`` is (nearly) vertical, the world axis
    with the largest horizontal part is used instead, so the result is always a rotation.

    :param up_world: (3,) up direction in the world frame (any length).
    :param forward_world: (3,) direction that becomes the level frame's x axis once levelled,
        e.g. the first camera's optical axis ``(0, 0, 1)``.
    :return: (3, 3) float64 ``level_from_world`` rotation (det +1).
    :raises GeometryError: on wrong shapes or zero vectors.
    """
    up = _unit(up_world, 'up_world')
    candidates = [_unit(forward_world, 'forward_world'), *np.eye(3)]
    horizontal = [c - (c @ up) * up for c in candidates]
    # The requested forward direction unless it is within ~0.6° of vertical.
    best = horizontal[0] if np.linalg.norm(horizontal[0]) > 1e-2 else max(
        horizontal[1:], key=lambda h: float(np.linalg.norm(h)))
    x_axis = best / np.linalg.norm(best)
    y_axis = np.cross(up, x_axis)
    return np.stack([x_axis, y_axis, up])


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
    up_in_frame = rotation[:3, :3] @ _unit(up_world, 'up_world')
    return float(np.degrees(np.arccos(np.clip(up_in_frame[2], -1.0, 1.0))))
