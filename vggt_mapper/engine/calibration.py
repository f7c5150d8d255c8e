"""
Known camera intrinsics in the maths: checks, and the model's K replaced by the known one.

A door that knows the camera (a calibration file, ``CameraInfo``) hands each frame's K with the
frame, in the pixels of the image as given (after undistortion). The predictor answers in
*model* pixels (VGGT resizes and crops), so the known K is carried through the frame's
``ImageMapping`` (``K_model = A · K_original``) and replaces the model's K for every
back-projection downstream: the consistency check, the window alignment, the keyframe clouds
and loop verification. Depth and poses are the model's: a wrong focal length stretches the
back-projected geometry sideways, and the known K undoes exactly that.

Measured on the synthetic orbit at the ``realistic`` preset (a 3 % focal error per window;
``benchmarks/calibration.py``): replacing the K cuts the ATE by the figure in the README;
additionally rescaling each frame's depth by its focal ratio (relative to its window's) did not
pay and is not offered.

The model's focal over the known one (``focal_ratio``) is reported per window: how far the
model's field of view strays on this camera.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.errors import FrameError
from vggt_mapper.predictor.base import WindowPrediction

__all__ = ['check_intrinsics', 'check_odom_pose', 'focal_ratio', 'with_known_intrinsics']

# A principal point may sit off centre, but not off the image by more than this share of it.
_PRINCIPAL_MARGIN = 0.5
_ROTATION_TOLERANCE = 1e-3


def check_intrinsics(intrinsics: object, image_hw: tuple[int, int]) -> NDArray[np.float64]:
    """
    Check a known pinhole K for an image of ``image_hw``.

    :param intrinsics: the candidate 3×3 K (pixels, centres at integers).
    :param image_hw: (height, width) of the image it belongs to.
    :return: the K as a float64 (3, 3) copy.
    :raises FrameError: if it is not a finite pinhole K with positive focal lengths, a
        bottom row ``[0, 0, 1]`` and a principal point near the image (the message says which).
    """
    try:
        matrix = np.array(intrinsics, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise FrameError(f'intrinsics must be a 3x3 matrix of numbers: {err}') from err
    if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
        raise FrameError(f'intrinsics must be a finite 3x3 K, got shape {matrix.shape}')
    if not np.allclose(matrix[2], [0.0, 0.0, 1.0]) or matrix[1, 0] != 0.0:
        raise FrameError(f'intrinsics must be a pinhole K [[fx, s, cx], [0, fy, cy], [0, 0, 1]], '
                         f'got rows {matrix[1].tolist()} and {matrix[2].tolist()}')
    if not (matrix[0, 0] > 0 and matrix[1, 1] > 0):
        raise FrameError(f'intrinsics need positive focal lengths, got fx={matrix[0, 0]:.6g} '
                         f'fy={matrix[1, 1]:.6g}')
    height, width = image_hw
    cx, cy = matrix[0, 2], matrix[1, 2]
    if not (-_PRINCIPAL_MARGIN * width <= cx <= (1 + _PRINCIPAL_MARGIN) * width
            and -_PRINCIPAL_MARGIN * height <= cy <= (1 + _PRINCIPAL_MARGIN) * height):
        raise FrameError(f'principal point ({cx:.1f}, {cy:.1f}) is far outside the '
                         f'{width}x{height} image: intrinsics of another image size?')
    return matrix


def check_odom_pose(odom_from_camera: object) -> NDArray[np.float64]:
    """
    Check a metric camera pose in an odometry frame.

    :param odom_from_camera: the candidate 4×4 rigid transform (metres, OpenCV camera axes).
    :return: it as a float64 (4, 4) copy.
    :raises FrameError: if it is not a finite rigid transform (the message says why).
    """
    try:
        matrix = np.array(odom_from_camera, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise FrameError(f'odom_from_camera must be a 4x4 matrix of numbers: {err}') from err
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise FrameError(f'odom_from_camera must be a finite 4x4 transform, got shape '
                         f'{matrix.shape}')
    rotation = matrix[:3, :3]
    error = float(np.abs(rotation @ rotation.T - np.eye(3)).max())
    if error > _ROTATION_TOLERANCE or np.linalg.det(rotation) <= 0 \
            or not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0]):
        raise FrameError(f'odom_from_camera must be rigid (a rotation, bottom row 0 0 0 1), '
                         f'|R R^T - I| = {error:.3g}')
    return matrix


def focal_ratio(predicted: NDArray[np.floating], known: NDArray[np.floating]) -> float:
    """
    Return the model's focal length over the known one (geometric mean of x and y).

    :param predicted: 3×3 K the model predicted.
    :param known: 3×3 K known for the same image, same pixels.
    :return: ``sqrt(fx_p / fx_k · fy_p / fy_k)``; 1 when they agree.
    """
    return float(np.sqrt(predicted[0, 0] / known[0, 0] * predicted[1, 1] / known[1, 1]))


def with_known_intrinsics(prediction: WindowPrediction,
                          known: Sequence[NDArray[np.float64] | None]
                          ) -> tuple[WindowPrediction, NDArray[np.float64]]:
    """
    Replace the model's K by the known one, frame by frame, in model pixels.

    :param prediction: the model's answer for S frames.
    :param known: per frame, the known 3×3 K in the pixels of the frame given to the predictor,
        or None (that frame keeps the model's K).
    :return: the prediction with the known K where given, and the (S,) focal ratios (model /
        known; NaN where no K was known).
    :raises ValueError: if ``known`` does not have one entry per frame.
    """
    if len(known) != prediction.num_frames:
        raise ValueError(f'need one known K (or None) per frame: {len(known)} for '
                         f'{prediction.num_frames} frames')
    ratios = np.full(prediction.num_frames, np.nan)
    if all(k is None for k in known):
        return prediction, ratios
    intrinsics = np.array(prediction.intrinsics, dtype=np.float64)
    for slot, k_original in enumerate(known):
        if k_original is None:
            continue
        k_model = prediction.mappings[slot].model_from_original @ k_original
        ratios[slot] = focal_ratio(intrinsics[slot], k_model)
        intrinsics[slot] = k_model
    return replace(prediction, intrinsics=intrinsics), ratios
