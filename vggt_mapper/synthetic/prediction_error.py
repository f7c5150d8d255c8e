"""
How wrong one prediction is against the ground truth: per-frame errors and per-preset summaries.

Scale-free measures, as a window comes at its own scale: the depth scale of a window (window
units per metre) is the median ratio of predicted to true depth over all its pixels; depth error
is the median ``|d_pred / (s·d_true) - 1|`` of a frame (AbsRel after median scaling); pose error
compares ``cam_from_window`` with the true pose relative to the window's first frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from vggt_mapper.geometry import inverse_se3
from vggt_mapper.predictor.base import WindowPrediction
from vggt_mapper.synthetic.noise import PredictionNoise
from vggt_mapper.synthetic.predictor import SyntheticPredictor
from vggt_mapper.synthetic.sequence import SyntheticSequence

__all__ = ['WRONG_CENTER_REL', 'WRONG_ROTATION_DEG', 'FrameError', 'NoiseSummary',
           'WindowError', 'orbit_windows', 'summarise_noise', 'window_error']

WRONG_ROTATION_DEG = 10.0
"""A frame whose rotation is off by more than this (degrees) has a wrong pose."""
WRONG_CENTER_REL = 0.3
"""A frame whose camera centre is off by more than this share of the scene depth is wrong."""


@dataclass(frozen=True)
class FrameError:
    """
    One predicted frame against the truth.

    :param focal_ratio: predicted fx / true fx.
    :param depth_abs_rel: median relative depth error after the window's median scaling.
    :param rotation_deg: angle of the rotation error of ``cam_from_window``, degrees.
    :param center_error_rel: camera-centre error in the window frame (after the window's
        scale), divided by the scene depth (median true depth of frame 0).
    """

    focal_ratio: float
    depth_abs_rel: float
    rotation_deg: float
    center_error_rel: float

    @property
    def wrong_pose(self) -> bool:
        """Whether the pose is wrong, not just noisy (see ``WRONG_ROTATION_DEG``)."""
        return self.rotation_deg > WRONG_ROTATION_DEG or self.center_error_rel > WRONG_CENTER_REL


@dataclass(frozen=True)
class WindowError:
    """
    One predicted window against the truth.

    :param frames: per-frame errors, window order.
    :param depth_scale: window units per metre (median predicted / true depth).
    """

    frames: tuple[FrameError, ...]
    depth_scale: float


def _true_depths(prediction: WindowPrediction, sequence: SyntheticSequence,
                 frame_indices: Sequence[int]) -> NDArray[np.float64]:
    height, width = prediction.model_hw
    depths = [sequence.render(index, mapping.model_from_original @ sequence.intrinsics,
                              height, width)[1]
              for index, mapping in zip(frame_indices, prediction.mappings, strict=True)]
    return np.stack(depths).astype(np.float64)


def window_error(prediction: WindowPrediction, sequence: SyntheticSequence,
                 frame_indices: Sequence[int]) -> WindowError:
    """
    Measure a prediction of frames ``frame_indices`` of ``sequence`` against the truth.

    :param prediction: the window's prediction (any predictor).
    :param sequence: the ground truth.
    :param frame_indices: sequence index of each predicted frame, in window order.
    :return: the errors.
    :raises ValueError: if the prediction has another number of frames.
    """
    if prediction.num_frames != len(frame_indices):
        raise ValueError(f'prediction has {prediction.num_frames} frames, '
                         f'{len(frame_indices)} indices given')
    truth = _true_depths(prediction, sequence, frame_indices)
    with np.errstate(divide='ignore', invalid='ignore'):
        ratio = prediction.depth / truth
    scale = float(np.nanmedian(np.where(np.isfinite(ratio), ratio, np.nan)))
    poses = sequence.poses_world_from_cam[list(frame_indices)]
    window_from_cam = inverse_se3(poses[0]) @ poses
    true_k = prediction.mappings[0].model_from_original @ sequence.intrinsics
    rotation_error = Rotation.from_matrix(
        prediction.cam_from_window[:, :, :3] @ window_from_cam[:, :3, :3])
    centers = inverse_se3(prediction.cam_from_window)[:, :3, 3] / scale
    center_error = np.linalg.norm(centers - window_from_cam[:, :3, 3], axis=1)
    scene_depth = float(np.median(truth[0]))
    frames = tuple(
        FrameError(float(prediction.intrinsics[slot, 0, 0] / true_k[0, 0]),
                   float(np.nanmedian(np.abs(ratio[slot] / scale - 1.0))),
                   float(np.degrees(rotation_error[slot].magnitude())),
                   float(center_error[slot] / scene_depth))
        for slot in range(prediction.num_frames))
    return WindowError(frames, scale)


@dataclass(frozen=True)
class NoiseSummary:
    """
    Errors of a noise setting over many windows (medians over frames or windows).

    :param name: the setting's name (a preset name).
    :param windows: windows predicted.
    :param frames: frames predicted.
    :param focal_error: median ``|predicted / true focal - 1|`` over frames.
    :param depth_abs_rel: median of the frames' depth errors (after median scaling).
    :param last_rotation_deg: median over windows of the last frame's rotation error, degrees.
    :param wrong_pose_share: share of frames after frame 0 with a wrong pose.
    """

    name: str
    windows: int
    frames: int
    focal_error: float
    depth_abs_rel: float
    last_rotation_deg: float
    wrong_pose_share: float


def orbit_windows(count: int = 20, size: int = 16, spacing: int = 5, stride: int = 12
                  ) -> list[list[int]]:
    """
    Frame indices of windows like the mapper's on an orbit: keyframes ``spacing`` frames apart.

    :param count: number of windows.
    :param size: frames per window.
    :param spacing: frames between consecutive keyframes (5 at 2 cm per frame ≈ 10 cm).
    :param stride: keyframes from one window's start to the next (size - overlap).
    :return: ``count`` lists of ``size`` increasing frame indices.
    """
    return [[spacing * (window * stride + slot) for slot in range(size)]
            for window in range(count)]


def summarise_noise(sequence: SyntheticSequence, noise: PredictionNoise,
                    windows: Sequence[Sequence[int]], name: str = '', model_width: int = 112,
                    seed: int = 0) -> NoiseSummary:
    """
    Predict each window with a fresh ``SyntheticPredictor`` and summarise its errors.

    :param sequence: the ground truth (a render cache makes repeated summaries cheaper).
    :param noise: the noise setting.
    :param windows: frame indices of each window (``orbit_windows``).
    :param name: name to report.
    :param model_width: model image width (a multiple of 14).
    :param seed: the predictor's seed.
    :return: the summary.
    """
    predictor = SyntheticPredictor(sequence, noise, model_width=model_width, seed=seed)
    errors = [window_error(predictor.predict([sequence.frame(i) for i in window]), sequence,
                           window) for window in windows]
    frames = [frame for error in errors for frame in error.frames]
    later = [frame for error in errors for frame in error.frames[1:]]
    return NoiseSummary(
        name, len(errors), len(frames),
        float(np.median([abs(frame.focal_ratio - 1.0) for frame in frames])),
        float(np.median([frame.depth_abs_rel for frame in frames])),
        float(np.median([error.frames[-1].rotation_deg for error in errors])),
        float(np.mean([frame.wrong_pose for frame in later])) if later else 0.0)
