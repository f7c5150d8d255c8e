"""
A predictor for windows that mix frames of two synthetic worlds: unrelated places in one window.

Relocalizing in a saved map shows the model the map's keyframes together with a frame that may
come from somewhere else entirely (another room, a corridor). VGGT then relates frames that
share nothing and places them almost at random, while each frame's own depth stays plausible.
``TwoWorldsPredictor`` does the same with two ``SyntheticPredictor`` s: a window from one world
is answered by that world's predictor; a mixed window is answered per world, and the frames of
the world that is not the first frame's are put into the window frame by a wrong rigid motion
(a rotation of at least ``min_rotation_deg`` about a random axis and a shift of about the scene
depth, as ``PredictionNoise.overlap_min`` does within one world), their depth brought to the
first world's scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from vggt_mapper.predictor.base import WindowPrediction
from vggt_mapper.synthetic.errors import UnknownFrameError
from vggt_mapper.synthetic.predictor import SyntheticPredictor

__all__ = ['TwoWorldsPredictor']


class TwoWorldsPredictor:
    """
    Answers windows of frames rendered by either of two synthetic sequences (module docstring).

    :param first: the predictor of one world.
    :param second: the predictor of the other.
    :param seed: seed of the wrong motions (drawn per window from its frames: reproducible).
    :param min_rotation_deg: least rotation of the wrongly placed world, degrees.
    """

    def __init__(self, first: SyntheticPredictor, second: SyntheticPredictor, seed: int = 0,
                 min_rotation_deg: float = 45.0) -> None:
        self.predictors = (first, second)
        self.seed = seed
        self.min_rotation_deg = min_rotation_deg
        self.mixed_windows = 0

    def _world(self, frame: NDArray[np.uint8]) -> tuple[int, int]:
        for world, predictor in enumerate(self.predictors):
            try:
                return world, predictor.sequence.index_of(frame)
            except UnknownFrameError:
                continue
        raise UnknownFrameError(f'a frame of shape {frame.shape} was rendered by neither world')

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        """
        Predict a window (see the module docstring).

        :param frames_rgb: frames of either world.
        :return: the prediction in the first frame's camera frame.
        :raises UnknownFrameError: for a frame of neither world.
        :raises ValueError: if the two worlds' model images differ in size.
        """
        found = [self._world(frame) for frame in frames_rgb]
        worlds = [world for world, _ in found]
        if len(set(worlds)) == 1:
            return self.predictors[worlds[0]].predict(frames_rgb)
        self.mixed_windows += 1
        home = worlds[0]
        slots = [[s for s, w in enumerate(worlds) if w == world] for world in (home, 1 - home)]
        parts = [self.predictors[world].predict([frames_rgb[s] for s in group])
                 for world, group in zip((home, 1 - home), slots, strict=True)]
        if parts[0].model_hw != parts[1].model_hw:
            raise ValueError(f'the two worlds give model images of {parts[0].model_hw} and '
                             f'{parts[1].model_hw}; render them at one size')
        rng = np.random.default_rng([self.seed, *[index for _, index in found], *worlds])
        cams = self._misplaced(parts[1], parts[0], rng)
        order = np.argsort(np.concatenate(slots))
        return WindowPrediction(
            np.concatenate([parts[0].cam_from_window, cams])[order],
            np.concatenate([p.intrinsics for p in parts])[order],
            np.concatenate([parts[0].depth, parts[1].depth * self._ratio(parts)])[order],
            np.concatenate([p.depth_conf for p in parts])[order],
            np.concatenate([p.images_rgb for p in parts])[order],
            tuple(mapping for p in parts for mapping in p.mappings))  # one size: same mapping

    @staticmethod
    def _ratio(parts: list[WindowPrediction]) -> np.float32:
        """Depth unit of the first world's answer over the second's (median first frames)."""
        first, second = (float(np.median(p.depth[0][np.isfinite(p.depth[0])])) for p in parts)
        return np.float32(first / second)

    def _misplaced(self, away: WindowPrediction, home: WindowPrediction,
                   rng: np.random.Generator) -> NDArray[np.float64]:
        """Put the away world's cameras in the home window frame by a wrong rigid motion."""
        ratio = float(self._ratio([home, away]))
        axis = rng.normal(size=3)
        angle = np.radians(rng.uniform(self.min_rotation_deg, 180.0))
        away_from_home = np.eye(4)
        away_from_home[:3, :3] = Rotation.from_rotvec(angle * axis / np.linalg.norm(axis)
                                                      ).as_matrix()
        depth = float(np.median(home.depth[0][np.isfinite(home.depth[0])]))
        away_from_home[:3, 3] = depth * rng.normal(size=3) / np.sqrt(3.0)
        cams = np.asarray(away.cam_from_window, dtype=np.float64).copy()
        cams[:, :, 3] *= ratio
        full = np.concatenate([cams, np.tile([[[0.0, 0.0, 0.0, 1.0]]], (len(cams), 1, 1))], 1)
        return np.asarray((full @ away_from_home)[:, :3, :], dtype=np.float64)
