"""
A rendered synthetic sequence and a predictor that answers windows from its ground truth.

``SyntheticPredictor`` plays VGGT's part for tests and benchmarks: it recognises each frame by
its content (a hash of the image bytes registered when the sequence rendered it), renders true
depth at the model resolution, and answers in the window's first-camera frame at a random
scale per window, with depth noise, pose noise, confidence maps (lower far away and at depth
edges) and low-confidence outliers. Seeds are pinned, so runs are reproducible.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
import hashlib

import cv2
import numpy as np
from numpy.typing import NDArray

from vggt_mapper.geometry.se3 import inverse_se3
from vggt_mapper.predictor.base import ImageMapping, WindowPrediction
from vggt_mapper.synthetic.world import default_room, intrinsics_for, orbit_path, Room

__all__ = ['NOISE_LEVELS', 'PredictionNoise', 'SyntheticPredictor', 'SyntheticSequence',
           'UnknownFrameError', 'model_mapping']

PATCH = 14


class UnknownFrameError(KeyError):
    """The predictor was given an image its sequence never rendered."""


@dataclass(frozen=True)
class PredictionNoise:
    """
    How far the synthetic predictor's answers stray from the truth.

    :param depth_rel: std of per-pixel multiplicative depth noise (0.01 = 1 %).
    :param depth_bias_rel: std of a per-frame multiplicative depth bias.
    :param rot_deg: std of the per-frame rotation error, degrees (frame 0 exact).
    :param trans_m: std of the per-frame camera-centre error, metres before the window scale.
    :param outlier_fraction: fraction of pixels with a wrong depth (×0.5-1.5) and low
        confidence.
    :param scale_range: each window's unit is ``median depth of frame 0 / f`` with ``f`` log-
        uniform in ``[1/scale_range, scale_range]`` (VGGT normalises scenes to unit scale).
    """

    depth_rel: float = 0.01
    depth_bias_rel: float = 0.003
    rot_deg: float = 0.15
    trans_m: float = 0.004
    outlier_fraction: float = 0.02
    scale_range: float = 2.0


NOISE_LEVELS: dict[str, PredictionNoise] = {
    'none': PredictionNoise(0.0, 0.0, 0.0, 0.0, 0.0, 2.0),
    'default': PredictionNoise(),
    'high': PredictionNoise(0.03, 0.01, 0.5, 0.015, 0.05, 2.0),
}


def model_mapping(original_hw: tuple[int, int], model_width: int) -> ImageMapping:
    """
    Return VGGT's "crop" preprocessing as an ImageMapping.

    Width → ``model_width``, height scaled and rounded to a multiple of 14, centre-cropped to
    ``model_width`` if taller.

    :param original_hw: (height, width) of the original image.
    :param model_width: model width in pixels (a multiple of 14, e.g. 518).
    :return: the mapping from original to model pixels.
    """
    height, width = original_hw
    resized_h = int(round(height * model_width / width / PATCH)) * PATCH
    model_h = min(resized_h, model_width)
    top = (resized_h - model_h) // 2
    sx = model_width / width
    sy = resized_h / height
    # Pixel centres at integers on both sides: u_m + 0.5 = s (u_o + 0.5).
    matrix = np.array([[sx, 0.0, 0.5 * sx - 0.5],
                       [0.0, sy, 0.5 * sy - 0.5 - top],
                       [0.0, 0.0, 1.0]])
    return ImageMapping((height, width), (model_h, model_width), matrix)


def _image_key(image_rgb: NDArray[np.uint8]) -> bytes:
    digest = hashlib.blake2b(np.ascontiguousarray(image_rgb).tobytes(), digest_size=16)
    digest.update(repr(image_rgb.shape).encode())
    return digest.digest()


def _thumbnail(image_rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    return cv2.resize(image_rgb, (24, 18), interpolation=cv2.INTER_AREA).astype(np.float32)


class SyntheticSequence:
    """
    A camera path through a room, rendered on demand; remembers which image is which frame.

    :param poses_world_from_cam: (N, 4, 4) camera poses in the room's world frame.
    :param room: the scene (default: ``default_room()``).
    :param height: original image height in pixels.
    :param width: original image width in pixels.
    :param hfov_deg: horizontal field of view, degrees.
    :param match_thumbnails: also remember a 24×18 thumbnail of each rendered frame, so that
        images that went through lossy storage (JPEG) are still recognised by nearest thumbnail.
    :param cache_renders: keep this many most recent renders (any resolution) to answer
        repeated requests without ray casting again (tests feed one sequence many times).
    """

    def __init__(self, poses_world_from_cam: NDArray[np.floating], room: Room | None = None,
                 height: int = 120, width: int = 160, hfov_deg: float = 70.0,
                 match_thumbnails: bool = False, cache_renders: int = 0) -> None:
        self.poses_world_from_cam = np.asarray(poses_world_from_cam, dtype=np.float64)
        self.room = room if room is not None else default_room()
        self.height = height
        self.width = width
        self.intrinsics = intrinsics_for(height, width, hfov_deg)
        self.match_thumbnails = match_thumbnails
        self._index_by_key: dict[bytes, int] = {}
        self._intrinsics_by_key: dict[bytes, NDArray[np.float64]] = {}
        self._thumbs: dict[int, NDArray[np.float32]] = {}
        self.cache_renders = cache_renders
        self._renders: OrderedDict[tuple[int, bytes, int, int],
                                   tuple[NDArray[np.uint8], NDArray[np.float32]]] = OrderedDict()

    def render(self, index: int, intrinsics: NDArray[np.floating], height: int, width: int
               ) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        """
        Render frame ``index``'s pose with any pinhole camera (cached if ``cache_renders``).

        :param index: 0-based frame number.
        :param intrinsics: 3×3 K in pixels.
        :param height: image height in pixels.
        :param width: image width in pixels.
        :return: ``image_rgb`` (H, W, 3) uint8 and ``depth_m`` (H, W) float32.
        """
        k_matrix = np.asarray(intrinsics, dtype=np.float64)
        key = (index, k_matrix.tobytes(), height, width)
        cached = self._renders.get(key)
        if cached is not None:
            self._renders.move_to_end(key)
            return cached
        rendered = self.room.render(self.poses_world_from_cam[index], k_matrix, height, width)
        if self.cache_renders > 0:
            self._renders[key] = rendered
            while len(self._renders) > self.cache_renders:
                self._renders.popitem(last=False)
        return rendered

    @classmethod
    def orbit(cls, num_frames: int, step_m: float = 0.02, static_frames: int = 0,
              **kwargs: object) -> SyntheticSequence:
        """
        Sequence along ``orbit_path`` in the default room.

        :param num_frames: number of frames.
        :param step_m: metres travelled per frame.
        :param static_frames: leading frames with the camera standing still.
        :param kwargs: passed to the constructor (height, width, ...).
        :return: the sequence.
        """
        poses = orbit_path(num_frames, step_m=step_m, static_frames=static_frames)
        return cls(poses, **kwargs)  # type: ignore[arg-type]

    def __len__(self) -> int:
        """Return the number of frames."""
        return int(self.poses_world_from_cam.shape[0])

    def frame(self, index: int) -> NDArray[np.uint8]:
        """
        Render frame ``index`` (RGB uint8 H×W×3) and register it for the predictor.

        :param index: 0-based frame number.
        :return: the image.
        """
        image, _ = self.render(index, self.intrinsics, self.height, self.width)
        self._index_by_key[_image_key(image)] = index
        if self.match_thumbnails:
            self._thumbs[index] = _thumbnail(image)
        return image

    def register(self, image_rgb: NDArray[np.uint8], index: int,
                 intrinsics: NDArray[np.floating]) -> None:
        """
        Recognise ``image_rgb`` as frame ``index`` from now on (e.g. a resized copy of it).

        :param image_rgb: the image.
        :param index: its frame.
        :param intrinsics: 3×3 K of that image, in its pixels.
        """
        key = _image_key(image_rgb)
        self._index_by_key[key] = index
        self._intrinsics_by_key[key] = np.asarray(intrinsics, dtype=np.float64)

    def intrinsics_of(self, image_rgb: NDArray[np.uint8]) -> NDArray[np.float64]:
        """
        Return the K of an image of this sequence (a registered copy's own, else the original's).

        :param image_rgb: a frame or a registered copy.
        :return: 3×3 K in the image's pixels.
        """
        return self._intrinsics_by_key.get(_image_key(image_rgb), self.intrinsics)

    def depth(self, index: int) -> NDArray[np.float32]:
        """Render the true z-depth of frame ``index``: (H, W) float32, metres."""
        _, depth = self.render(index, self.intrinsics, self.height, self.width)
        return depth

    def index_of(self, image_rgb: NDArray[np.uint8]) -> int:
        """
        Which frame an image is.

        :param image_rgb: an image returned by ``frame`` (or a lossy copy of one when
            ``match_thumbnails`` is set).
        :return: its frame index.
        :raises UnknownFrameError: if the image was never rendered by this sequence.
        """
        index = self._index_by_key.get(_image_key(image_rgb))
        if index is not None:
            return index
        if self.match_thumbnails and self._thumbs:
            query = _thumbnail(image_rgb)
            keys = list(self._thumbs)
            errors = [float(np.mean(np.abs(self._thumbs[k] - query))) for k in keys]
            best = int(np.argmin(errors))
            if errors[best] < 12.0:
                return keys[best]
        raise UnknownFrameError(f'image of shape {image_rgb.shape} was not rendered by this '
                                f'sequence; pass frames from SyntheticSequence.frame()')


class SyntheticPredictor:
    """
    Answers windows from a ``SyntheticSequence``'s ground truth, the way VGGT would.

    :param sequence: the rendered sequence the frames come from.
    :param noise: noise settings (``NOISE_LEVELS['default']`` if omitted).
    :param model_width: model image width (multiple of 14; VGGT uses 518).
    :param seed: seed of the noise generator.
    """

    def __init__(self, sequence: SyntheticSequence, noise: PredictionNoise | None = None,
                 model_width: int = 518, seed: int = 0) -> None:
        if model_width % PATCH:
            raise ValueError(f'model_width must be a multiple of {PATCH}, got {model_width}')
        self.sequence = sequence
        self.noise = noise if noise is not None else NOISE_LEVELS['default']
        self.model_width = model_width
        self.rng = np.random.default_rng(seed)
        self.calls = 0

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        """
        Predict one window from ground truth (see the module docstring).

        :param frames_rgb: S ≥ 1 images rendered by the sequence.
        :return: the prediction in the first frame's camera frame, at a random scale.
        :raises UnknownFrameError: if a frame is not from the sequence.
        """
        if len(frames_rgb) < 1:
            raise ValueError('predict needs at least one frame')
        self.calls += 1
        rng = self.rng
        noise = self.noise
        seq = self.sequence
        indices = [seq.index_of(frame) for frame in frames_rgb]
        mapping = model_mapping(frames_rgb[0].shape[:2], self.model_width)
        model_h, model_w = mapping.model_hw
        k_model = mapping.model_from_original @ seq.intrinsics_of(frames_rgb[0])
        window_from_world = inverse_se3(seq.poses_world_from_cam[indices[0]])
        num = len(indices)
        depths = np.empty((num, model_h, model_w), np.float32)
        confs = np.empty((num, model_h, model_w), np.float32)
        images = np.empty((num, model_h, model_w, 3), np.uint8)
        cams = np.empty((num, 3, 4))
        window_scale = 0.0
        for slot, (index, frame) in enumerate(zip(indices, frames_rgb, strict=True)):
            _, depth_m = seq.render(index, k_model, model_h, model_w)
            if slot == 0:
                factor = np.exp(rng.uniform(-np.log(noise.scale_range),
                                            np.log(noise.scale_range)))
                window_scale = factor / float(np.median(depth_m))
            images[slot] = self._model_image(frame, mapping)
            # A model image fed back (loop verification re-predicts stored keyframes) is the
            # same frame, as it would be for VGGT.
            seq.register(images[slot], index, k_model)
            confs[slot] = self._confidence(depth_m)
            noisy = depth_m * (1.0 + noise.depth_bias_rel * rng.standard_normal())
            noisy = noisy * (1.0 + noise.depth_rel * rng.standard_normal(noisy.shape))
            outliers = rng.random(noisy.shape) < noise.outlier_fraction
            noisy = np.where(outliers, noisy * rng.uniform(0.5, 1.5, noisy.shape), noisy)
            confs[slot] = np.where(outliers, 1.0 + 0.3 * rng.random(noisy.shape), confs[slot])
            depths[slot] = (noisy * window_scale).astype(np.float32)
            window_from_cam = window_from_world @ seq.poses_world_from_cam[index]
            if slot > 0:
                window_from_cam = self._perturb(window_from_cam)
            cam_from_window = inverse_se3(window_from_cam)
            cams[slot] = cam_from_window[:3, :4]
            cams[slot, :, 3] *= window_scale
        intrinsics = np.repeat(k_model[None], num, axis=0)
        return WindowPrediction(cams, intrinsics, depths, confs, images, (mapping,) * num)

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
        rotation, _ = cv2.Rodrigues(axis_angle)
        out = window_from_cam.copy()
        out[:3, :3] = rotation @ out[:3, :3]
        out[:3, 3] += noise.trans_m * self.rng.standard_normal(3)
        return out
