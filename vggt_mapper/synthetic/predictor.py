"""
A predictor that answers windows of a ``SyntheticSequence`` from its ground truth, like VGGT.

``SyntheticPredictor`` plays VGGT's part for tests and benchmarks: it recognises each frame by
its content (a hash of the image bytes registered when the sequence rendered it), renders true
depth at the model resolution, and answers in the window's first-camera frame at a random
scale per window, with depth noise, pose noise, confidence maps (lower far away and at depth
edges) and low-confidence outliers — and, when its ``PredictionNoise`` says so, with the
systematic errors of a real feed-forward model (``noise.py``): per-window focal error and depth
warp, pose drift along the window, wrong frames, collapsed depth and overlap-dependent failure.
What was done to the last window is in ``last_errors``. Seeds are pinned, so runs are
reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from vggt_mapper.geometry import inverse_se3
from vggt_mapper.predictor.base import ImageMapping, WindowPrediction
from vggt_mapper.synthetic.errors import UnknownFrameError
from vggt_mapper.synthetic.noise import (
    apply_pose_errors,
    collapse_depth,
    draw_window_errors,
    ErrorStreams,
    NOISE_LEVELS,
    PredictionNoise,
    warp_depth,
    WindowErrors,
)
from vggt_mapper.synthetic.sequence import model_mapping, PATCH, SyntheticSequence

__all__ = ['NOISE_LEVELS', 'PredictionNoise', 'SyntheticPredictor', 'SyntheticSequence',
           'UnknownFrameError', 'WindowErrors', 'model_mapping']


class SyntheticPredictor:
    """
    Answers windows from a ``SyntheticSequence``'s ground truth, the way VGGT would.

    :param sequence: the rendered sequence the frames come from.
    :param noise: noise settings (``NOISE_LEVELS['default']`` if omitted).
    :param model_width: model image width (multiple of 14; VGGT uses 518).
    :param seed: seed of the noise generators.
    :param noise_per_window: draw each window's noise from ``(seed, its frames)`` instead of
        one stream for the run: the same window gets the same answer whatever was asked
        before, so two runs that differ only in extra calls (loop verification) see the same
        odometry noise — a fair A/B comparison.
    """

    def __init__(self, sequence: SyntheticSequence, noise: PredictionNoise | None = None,
                 model_width: int = 518, seed: int = 0, noise_per_window: bool = False) -> None:
        if model_width % PATCH:
            raise ValueError(f'model_width must be a multiple of {PATCH}, got {model_width}')
        self.sequence = sequence
        self.noise = noise if noise is not None else NOISE_LEVELS['default']
        self.model_width = model_width
        self.seed = seed
        self.noise_per_window = noise_per_window
        self.rng = np.random.default_rng(seed)
        self.streams = ErrorStreams(seed)
        self.calls = 0
        self.last_errors: WindowErrors | None = None
        """The systematic errors of the last window answered (ground truth of its failures)."""

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        """
        Predict one window from ground truth (see the module docstring).

        :param frames_rgb: S ≥ 1 images rendered by the sequence.
        :return: the prediction in the first frame's camera frame, at a random scale.
        :raises ValueError: for an empty window.
        :raises UnknownFrameError: if a frame is not from the sequence.
        """
        if len(frames_rgb) < 1:
            raise ValueError('predict needs at least one frame')
        self.calls += 1
        seq = self.sequence
        indices = [seq.index_of(frame) for frame in frames_rgb]
        if self.noise_per_window:
            window_seed = np.random.SeedSequence([self.seed, len(indices), *indices])
            self.rng = np.random.default_rng(window_seed)
            self.streams = ErrorStreams(int(window_seed.generate_state(1)[0]))
        mapping = model_mapping(frames_rgb[0].shape[:2], self.model_width)
        model_h, model_w = mapping.model_hw
        k_model = mapping.model_from_original @ seq.intrinsics_of(frames_rgb[0])
        true_depths = [seq.render(index, k_model, model_h, model_w)[1] for index in indices]
        errors = draw_window_errors(self.noise, self.streams, len(indices),
                                    lambda: seq.covisibility_matrix(indices))
        self.last_errors = errors
        scene_depth_m = float(np.median(true_depths[0]))
        window_from_cam, depths, confs, window_scale = self._noisy_window(
            indices, true_depths, errors, scene_depth_m)
        window_from_cam = apply_pose_errors(window_from_cam, errors, scene_depth_m)
        cams = np.asarray(inverse_se3(window_from_cam)[:, :3, :], dtype=np.float64)
        cams[:, :, 3] *= window_scale
        intrinsics = np.repeat(k_model[None], len(indices), axis=0)
        intrinsics[:, :2, :2] *= errors.focal_factors[:, None, None]
        images = np.stack([self._model_image(frame, mapping) for frame in frames_rgb])
        for image, index in zip(images, indices, strict=True):
            # A model image fed back (loop verification re-predicts stored keyframes) is the
            # same frame, as it would be for VGGT.
            seq.register(image, index, k_model)
        return WindowPrediction(cams, intrinsics, depths, confs, images,
                                (mapping,) * len(indices))

    def _noisy_window(self, indices: list[int], true_depths: list[NDArray[np.float32]],
                      errors: WindowErrors, scene_depth_m: float
                      ) -> tuple[NDArray[np.float64], NDArray[np.float32], NDArray[np.float32],
                                 float]:
        # The independent noise, drawn from self.rng in the order it always was (scale, then per
        # frame: bias, pixel noise, outliers, pose), so presets without systematic errors give
        # the same numbers for the same seed.
        rng, noise = self.rng, self.noise
        window_from_world = inverse_se3(self.sequence.poses_world_from_cam[indices[0]])
        factor = np.exp(rng.uniform(-np.log(noise.scale_range), np.log(noise.scale_range)))
        window_scale = float(factor / scene_depth_m)
        depths = np.empty((len(indices),) + true_depths[0].shape, np.float32)
        confs = np.empty_like(depths)
        window_from_cam = np.empty((len(indices), 4, 4))
        for slot, (index, depth_m) in enumerate(zip(indices, true_depths, strict=True)):
            confs[slot] = self._confidence(depth_m)
            predicted = warp_depth(depth_m, errors, scene_depth_m)
            if slot == errors.collapsed_slot:
                predicted = collapse_depth(predicted, errors)
            noisy = predicted * (1.0 + noise.depth_bias_rel * rng.standard_normal())
            noisy = noisy * (1.0 + noise.depth_rel * rng.standard_normal(noisy.shape))
            outliers = rng.random(noisy.shape) < noise.outlier_fraction
            noisy = np.where(outliers, noisy * rng.uniform(0.5, 1.5, noisy.shape), noisy)
            confs[slot] = np.where(outliers, 1.0 + 0.3 * rng.random(noisy.shape), confs[slot])
            depths[slot] = (noisy * window_scale).astype(np.float32)
            pose = window_from_world @ self.sequence.poses_world_from_cam[index]
            window_from_cam[slot] = self._perturb(pose) if slot > 0 else pose
        return window_from_cam, depths, confs, window_scale

    @staticmethod
    def _model_image(frame: NDArray[np.uint8], mapping: ImageMapping) -> NDArray[np.uint8]:
        height, width = mapping.model_hw
        resized_h = int(round(mapping.model_from_original[1, 1] * mapping.original_hw[0]))
        resized = cv2.resize(frame, (width, resized_h), interpolation=cv2.INTER_AREA)
        top = (resized_h - height) // 2
        return np.ascontiguousarray(resized[top:top + height])

    @staticmethod
    def _confidence(depth_m: NDArray[np.float32]) -> NDArray[np.float32]:
        # Like VGGT: >= 1, higher for near surfaces, lower at depth discontinuities.
        grad_v, grad_u = np.gradient(depth_m)
        edge = np.hypot(grad_u, grad_v) / np.maximum(depth_m, 1e-6)
        conf = 1.0 + 6.0 * np.exp(-depth_m / 3.0) / (1.0 + (edge * 30.0) ** 2)
        return np.asarray(conf, dtype=np.float32)

    def _perturb(self, window_from_cam: NDArray[np.float64]) -> NDArray[np.float64]:
        noise = self.noise
        if noise.rot_deg == 0 and noise.trans_m == 0:
            return window_from_cam
        axis_angle = np.radians(noise.rot_deg) * self.rng.standard_normal(3)
        out = window_from_cam.copy()
        out[:3, :3] = Rotation.from_rotvec(axis_angle).as_matrix() @ out[:3, :3]
        out[:3, 3] += noise.trans_m * self.rng.standard_normal(3)
        return out
