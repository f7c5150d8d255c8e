"""
The predictor protocol: what the mapping engine asks of a feed-forward multi-view model.

Conventions (pinned by ``test/predictor/test_convention_base.py``):

* Pixel coordinates are ``(u, v) = (column, row)`` with pixel centres at integer positions,
  as in VGGT's unprojection.
* Extrinsics are **camera-from-window** ``[R | t]`` (3×4): ``x_cam = R @ x_window + t``, OpenCV
  axes (x right, y down, z forward). The window frame is the camera frame of the window's first
  frame, so ``cam_from_window[0]`` is (close to) identity.
* Depth is the z coordinate in the camera frame, in the window's own arbitrary scale unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

__all__ = ['ImageMapping', 'Predictor', 'WindowPrediction']


@dataclass(frozen=True)
class ImageMapping:
    """
    How the image the model saw relates to the original camera image.

    :param original_hw: (height, width) of the original image in pixels.
    :param model_hw: (height, width) of the model image in pixels.
    :param model_from_original: 3×3 affine matrix ``A`` with
        ``[u_m, v_m, 1]^T = A @ [u_o, v_o, 1]^T`` (pixel centres at integers on both sides).
    """

    original_hw: tuple[int, int]
    model_hw: tuple[int, int]
    model_from_original: NDArray[np.float64]

    def __post_init__(self) -> None:
        matrix = np.asarray(self.model_from_original, dtype=np.float64)
        if matrix.shape != (3, 3):
            raise ValueError(f'model_from_original must be 3x3, got shape {matrix.shape}')
        object.__setattr__(self, 'model_from_original', matrix)

    @property
    def original_from_model(self) -> NDArray[np.float64]:
        """Inverse affine matrix: model pixel coordinates to original pixel coordinates."""
        return np.asarray(np.linalg.inv(self.model_from_original), dtype=np.float64)

    def to_original(self, uv_model: NDArray[np.floating]) -> NDArray[np.float64]:
        """
        Map model-image pixel coordinates to original-image pixel coordinates.

        :param uv_model: (..., 2) array of (u, v) in model pixels.
        :return: (..., 2) array of (u, v) in original pixels.
        """
        uv = np.asarray(uv_model, dtype=np.float64)
        inverse = self.original_from_model
        result: NDArray[np.float64] = uv @ inverse[:2, :2].T + inverse[:2, 2]
        return result

    def intrinsics_to_original(
            self, intrinsics_model: NDArray[np.floating]) -> NDArray[np.float64]:
        """
        Express a pinhole intrinsics matrix given in model pixels in original-image pixels.

        :param intrinsics_model: 3×3 K in model-image pixels.
        :return: 3×3 K in original-image pixels (``A^-1 @ K``).
        """
        return self.original_from_model @ np.asarray(intrinsics_model, dtype=np.float64)


@dataclass(frozen=True)
class WindowPrediction:
    """
    A model's answer for one window of S frames, in the window frame at the window's own scale.

    :param cam_from_window: (S, 3, 4) float64 camera-from-window extrinsics, OpenCV axes;
        frame 0 is the window frame (identity up to the model's error).
    :param intrinsics: (S, 3, 3) float64 pinhole K in model-image pixels.
    :param depth: (S, H, W) float32 depth along the camera z axis, window units.
    :param depth_conf: (S, H, W) float32 confidence, larger is more confident (VGGT: ≥ 1).
    :param images_rgb: (S, H, W, 3) uint8 the RGB images the model saw.
    :param mappings: S ``ImageMapping`` back to the original images.
    :param points_window: optional (S, H, W, 3) float32 point-head points in the window frame.
    :param points_conf: optional (S, H, W) float32 confidence of ``points_window``.
    :param descriptors: optional (S, D) float32 global place descriptors the model computed for
        its frames (VGGT: the mean of each frame's DINO patch tokens), rows of unit L2 norm, each
        independent of the other frames of the window. The engine's place recognition uses them
        when present (``vggt_mapper.engine.places``).
    """

    cam_from_window: NDArray[np.float64]
    intrinsics: NDArray[np.float64]
    depth: NDArray[np.float32]
    depth_conf: NDArray[np.float32]
    images_rgb: NDArray[np.uint8]
    mappings: tuple[ImageMapping, ...]
    points_window: NDArray[np.float32] | None = None
    points_conf: NDArray[np.float32] | None = field(default=None)
    descriptors: NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        num = len(self.mappings)
        checks: list[tuple[str, NDArray[np.generic] | None, tuple[int, ...]]] = []
        if self.depth.ndim != 3:
            raise ValueError(f'depth must be (S, H, W), got shape {self.depth.shape}')
        _, height, width = self.depth.shape
        checks = [
            ('cam_from_window', self.cam_from_window, (num, 3, 4)),
            ('intrinsics', self.intrinsics, (num, 3, 3)),
            ('depth', self.depth, (num, height, width)),
            ('depth_conf', self.depth_conf, (num, height, width)),
            ('images_rgb', self.images_rgb, (num, height, width, 3)),
            ('points_window', self.points_window, (num, height, width, 3)),
            ('points_conf', self.points_conf, (num, height, width)),
        ]
        for name, array, shape in checks:
            if array is not None and tuple(array.shape) != shape:
                raise ValueError(f'{name} must have shape {shape} for {num} frames, '
                                 f'got {tuple(array.shape)}')
        if self.descriptors is not None and (self.descriptors.ndim != 2
                                             or self.descriptors.shape[0] != num
                                             or self.descriptors.shape[1] < 1):
            raise ValueError(f'descriptors must have shape (S, D) = ({num}, D >= 1) for {num} '
                             f'frames, got {tuple(self.descriptors.shape)}')
        if self.images_rgb.dtype != np.uint8:
            raise ValueError(f'images_rgb must be uint8, got {self.images_rgb.dtype}')
        for index, mapping in enumerate(self.mappings):
            if tuple(mapping.model_hw) != (height, width):
                raise ValueError(f'mappings[{index}].model_hw {mapping.model_hw} does not match '
                                 f'depth size {(height, width)}')

    @property
    def num_frames(self) -> int:
        """Return the number of frames S in the window."""
        return len(self.mappings)

    @property
    def model_hw(self) -> tuple[int, int]:
        """(height, width) of the model images."""
        return int(self.depth.shape[1]), int(self.depth.shape[2])


@runtime_checkable
class Predictor(Protocol):
    """
    Anything that turns a window of RGB frames into a ``WindowPrediction``.

    Frames are uint8 H×W×3 RGB arrays of any size (the predictor resizes them). The returned
    prediction has one entry per input frame, in input order, expressed in the first frame's
    camera frame at an arbitrary scale. Implementations: ``VGGTPredictor`` (this project's VGGT),
    ``RemotePredictor`` (a vggt_mapper server), ``SyntheticPredictor`` (tests, from ground truth).
    """

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        """
        Predict cameras and depth for one window.

        :param frames_rgb: S ≥ 1 uint8 (H, W, 3) RGB images, oldest first.
        :return: the window prediction, one entry per frame.
        """
        ...
