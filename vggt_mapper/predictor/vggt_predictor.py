"""
``VGGTPredictor``: the ``Predictor`` backed by this project's VGGT model.

One call = one window: preprocess the frames exactly like VGGT (``preprocess.py``), run the
camera and depth heads (and the point head when asked) once under ``torch.inference_mode``, decode
the pose encoding and return a ``WindowPrediction`` in the window frame.

Frame 0: VGGT is trained to express every camera in the first frame's camera frame, so a trained
model returns ``cam_from_window[0]`` close to identity. The predictor returns the model's own
frame 0 extrinsic **unchanged** (it does not overwrite it with identity, which would hide the
model's error and shift the depth of frame 0 against the others); a consumer that needs an exact
identity re-expresses the window in frame 0 itself. An untrained model (the tiny synthetic one)
gives arbitrary extrinsics, frame 0 included.

Fields of view: VGGT clamps its FoV outputs with a ReLU, so an untrained model can return exactly
0 (an infinite focal length). Such values are raised to ``MIN_FOV_RAD`` (1°) with a logged
warning, so the prediction stays finite; a trained model never gets near it.
"""

from __future__ import annotations

from collections.abc import Sequence
import logging
import math
import threading

import numpy as np
from numpy.typing import NDArray
import torch

from vggt_mapper.geometry import pose_encoding_to_extrinsics_intrinsics
from vggt_mapper.predictor.base import WindowPrediction
from vggt_mapper.predictor.device import autocast_context, select_device_and_dtype
from vggt_mapper.predictor.errors import PredictorError, PredictorSpecError
from vggt_mapper.predictor.preprocess import (
    PATCH_SIZE,
    preprocess_frames,
    PREPROCESS_MODES,
    TARGET_SIZE,
)

__all__ = ['MIN_FOV_RAD', 'VGGTPredictor']

_LOGGER = logging.getLogger(__name__)

MIN_FOV_RAD = math.radians(1.0)
"""Smallest field of view passed on; smaller (ReLU-clamped zero) values are raised to it."""


def _to_numpy(tensor: torch.Tensor | None, name: str) -> NDArray[np.float32]:
    if tensor is None:
        raise PredictorError(f'the model returned no {name}; '
                             f'it must run the heads it is asked for')
    return tensor.detach().to(device='cpu', dtype=torch.float32).numpy()


class VGGTPredictor:
    """
    Predict a window's cameras and depth with a VGGT model.

    :param model: a ``vggt_mapper.model.VGGT`` (or any module with the same call signature:
        ``model(images[S,3,H,W], heads={...})`` returning ``pose_enc``, ``depth``,
        ``depth_conf`` and optionally ``world_points``/``world_points_conf`` with a batch dim).
    :param device: ``'auto'``, ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'mps'``; the model is
        moved there and set to eval mode.
    :param preprocess_mode: ``'crop'`` (width 518) or ``'pad'`` (518×518 with white borders).
    :param compute_points: also run the point head and fill ``points_window``/``points_conf``.
    :param target_size: model image width (crop) or side (pad), a multiple of 14; VGGT was
        trained at 518.
    :raises PredictorSpecError: for a bad device, mode, or a head the model lacks.
    """

    def __init__(self, model: torch.nn.Module, *, device: str = 'auto',
                 preprocess_mode: str = 'crop', compute_points: bool = False,
                 target_size: int = TARGET_SIZE) -> None:
        if preprocess_mode not in PREPROCESS_MODES:
            raise PredictorSpecError(f'preprocess_mode must be one of {PREPROCESS_MODES}, '
                                     f'got {preprocess_mode!r}')
        if target_size <= 0 or target_size % PATCH_SIZE != 0:
            raise PredictorSpecError(f'target_size must be a positive multiple of {PATCH_SIZE} '
                                     f'(VGGT: {TARGET_SIZE}), got {target_size}')
        self.device, self.autocast_dtype = select_device_and_dtype(device)
        self.preprocess_mode = preprocess_mode
        self.compute_points = compute_points
        self.target_size = target_size
        self.heads = frozenset({'camera', 'depth', 'point'} if compute_points
                               else {'camera', 'depth'})
        enabled = getattr(model, 'enabled_heads', None)
        if enabled is not None and not self.heads <= set(enabled):
            raise PredictorSpecError(f'the model lacks heads {sorted(self.heads - set(enabled))} '
                                     f'(it has {sorted(enabled)}); build it with them enabled'
                                     + (' or set compute_points=False' if compute_points else ''))
        self.model = model.to(self.device).eval()
        self._warned_small_fov = False
        # One forward at a time: callers on several threads (ROS worker, web queue) would
        # otherwise stack activations on one device.
        self._lock = threading.Lock()
        _LOGGER.info('VGGTPredictor on %s (autocast %s), preprocess %s, heads %s', self.device,
                     self.autocast_dtype, preprocess_mode, sorted(self.heads))

    def __repr__(self) -> str:
        """Return a short description (device, precision, mode)."""
        return (f'VGGTPredictor(device={str(self.device)!r}, autocast={self.autocast_dtype}, '
                f'preprocess_mode={self.preprocess_mode!r}, '
                f'compute_points={self.compute_points})')

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        """
        Predict cameras and depth for one window.

        :param frames_rgb: S ≥ 1 uint8 (H, W, 3) RGB images of any size, oldest first (RGBA and
            gray are accepted too); sizes may differ within the window (they are padded).
        :return: the prediction in the first frame's camera frame, at the model's scale:
            ``cam_from_window`` (S, 3, 4) float64 as the model gives it (frame 0 is not forced to
            identity), intrinsics in model pixels, depth (S, H, W), the model images, the
            mappings back to the original frames and, when the model computes them, one place
            descriptor per frame.
        :raises FrameFormatError: for an empty window or frames that are not uint8 images.
        :raises PredictorError: when the model returns a non-finite pose.
        """
        window = preprocess_frames(frames_rgb, mode=self.preprocess_mode,
                                   target_size=self.target_size)
        images = torch.from_numpy(window.images_chw_float32()).to(self.device)
        with self._lock, torch.inference_mode(), autocast_context(
                self.device, self.autocast_dtype):
            output = self.model(images, heads=self.heads)
        pose_enc = _to_numpy(output.pose_enc, 'pose_enc')[0].astype(np.float64)
        if not np.all(np.isfinite(pose_enc)):
            raise PredictorError(f'the model returned a non-finite pose encoding for a window of '
                                 f'{len(frames_rgb)} frames: {pose_enc.tolist()}')
        small_fov = pose_enc[:, 7:9] < MIN_FOV_RAD
        if small_fov.any():
            # Warn once per predictor: an untrained model does this on every window.
            log = _LOGGER.debug if self._warned_small_fov else _LOGGER.warning
            self._warned_small_fov = True
            log('the model predicted %d field(s) of view below %.4f rad (min %.3g); raising them '
                'to that floor (an untrained model does this)', int(small_fov.sum()),
                MIN_FOV_RAD, float(pose_enc[:, 7:9].min()))
            pose_enc[:, 7:9] = np.maximum(pose_enc[:, 7:9], MIN_FOV_RAD)
        cam_from_window, intrinsics = pose_encoding_to_extrinsics_intrinsics(
            pose_enc, window.model_hw)
        if not np.all(np.isfinite(cam_from_window)):
            raise PredictorError(f'the model returned a zero quaternion for a window of '
                                 f'{len(frames_rgb)} frames: {pose_enc[:, 3:7].tolist()}')
        # Place descriptors come free with the forward pass (None from a model without them).
        frame_descriptors = getattr(output, 'frame_descriptors', None)
        descriptors = None if frame_descriptors is None else _to_numpy(
            frame_descriptors, 'frame_descriptors')[0]
        points_window = points_conf = None
        if self.compute_points:
            points_window = _to_numpy(output.world_points, 'world_points')[0]
            points_conf = _to_numpy(output.world_points_conf, 'world_points_conf')[0]
        return WindowPrediction(
            cam_from_window=cam_from_window.astype(np.float64),
            intrinsics=intrinsics.astype(np.float64),
            depth=_to_numpy(output.depth, 'depth')[0, ..., 0],
            depth_conf=_to_numpy(output.depth_conf, 'depth_conf')[0],
            images_rgb=window.images_rgb,
            mappings=window.mappings,
            points_window=points_window,
            points_conf=points_conf,
            descriptors=descriptors,
        )
