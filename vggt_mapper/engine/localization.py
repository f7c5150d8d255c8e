"""
Localization mode: place keyframes against a (loaded) map without extending it.

Like rtabmap's localization mode, each new keyframe is relocalized on its own:

1. its place descriptor (in the map's descriptor space: the model's own, or the describer's of
   its model image) proposes the most similar map keyframes (``LoopDetector.search``, no
   temporal exclusion: every map keyframe is a candidate);
2. each candidate, most similar first, is verified like a loop (``engine.loops``): the model
   predicts the candidate with its neighbours and the keyframe in one window; the candidate
   side must align with the map's stored points (``align_side``, the same dense robust Sim(3)
   and checks as loop closure and odometry); the keyframe's points must land on the
   candidate's depth (``covisible_fraction`` ≥ ``LoopConfig.min_covisible``);
3. the alignment then carries the keyframe's predicted camera into the map:
   ``world_from_cam = world_from_window ∘ window_from_cam[query]``.

Every keyframe gets a ``Localization``: its pose in the map segment's frame, or why it has
none. Nothing is added to the store, the pose graph or the place index.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.alignment import covisible_fraction
from vggt_mapper.engine.config import LocalizationConfig, LoopConfig
from vggt_mapper.engine.errors import AlignmentError
from vggt_mapper.engine.loops import (
    align_side,
    KeyframeSource,
    LoopDetector,
    window_from_cam_poses,
)
from vggt_mapper.geometry.sim3 import Sim3
from vggt_mapper.predictor.base import WindowPrediction

__all__ = ['Localization', 'Placement', 'place_keyframe']


@dataclass(frozen=True)
class Placement:
    """
    Where a verified candidate puts a keyframe.

    :param world_from_cam: 4×4 float64 camera pose in the candidate's segment frame.
    :param segment: that segment.
    :param candidate: the map keyframe that placed it.
    :param similarity: descriptor similarity of the two.
    :param covisible: share of the keyframe's points the candidate sees (as predicted).
    :param scale: map units per unit of the keyframe's predicted depth.
    """

    world_from_cam: NDArray[np.float64]
    segment: int
    candidate: int
    similarity: float
    covisible: float
    scale: float


@dataclass(frozen=True)
class Localization:
    """
    One keyframe's result in localization mode (what a door publishes).

    :param index: the keyframe's number in this session (after the map's keyframes; it is not
        added to the map).
    :param name: the frame's name.
    :param stamp_ns: the frame's stamp, integer nanoseconds.
    :param placement: where it is in the map, None when it could not be placed.
    :param reason: why it could not be placed (empty when placed): ``no candidate: ...``,
        ``predictor: ...``, ``map side: ...`` (the model's answer does not fit the map),
        ``covisibility: ...``.
    :param candidates_tried: map keyframes verified (model calls besides describing it).
    :param last_success_stamp_ns: stamp of the last placed keyframe (this one if placed), None
        if none was placed since the mode was entered or the map loaded.
    """

    index: int
    name: str
    stamp_ns: int
    placement: Placement | None
    reason: str
    candidates_tried: int
    last_success_stamp_ns: int | None

    @property
    def localized(self) -> bool:
        """Return whether the keyframe was placed in the map."""
        return self.placement is not None

    @property
    def world_from_cam(self) -> NDArray[np.float64] | None:
        """4×4 pose in the map segment's frame, or None."""
        return None if self.placement is None else self.placement.world_from_cam

    @property
    def since_success_ns(self) -> int | None:
        """Nanoseconds of stamps since the last placed keyframe (0 if this one), or None."""
        if self.last_success_stamp_ns is None:
            return None
        return self.stamp_ns - self.last_success_stamp_ns


def _verify(image_rgb: NDArray[np.uint8], candidate: int, similarity: float,
            source: KeyframeSource,
            predict: Callable[[list[NDArray[np.uint8]]], WindowPrediction | str],
            config: LoopConfig) -> Placement | str:
    """Verify one candidate (module docstring); the placement, or why not."""
    keys = source.neighbours(candidate, config.neighbours, config.neighbours)
    answer = predict([source.image(key) for key in keys] + [image_rgb])
    if isinstance(answer, str):
        return f'predictor: {answer}'
    poses = window_from_cam_poses(answer)
    try:
        side = align_side(source, keys, range(len(keys)), answer, poses, config)
    except AlignmentError as err:
        return f'map side: {err}'
    c_slot, q_slot = keys.index(candidate), len(keys)
    covisible = covisible_fraction(
        answer.depth[c_slot], answer.intrinsics[c_slot], poses[c_slot],
        answer.depth[q_slot], answer.intrinsics[q_slot], poses[q_slot])
    if covisible < config.min_covisible:
        return (f'covisibility: {covisible:.2f} of the keyframe seen by map keyframe '
                f'{candidate}, need {config.min_covisible}')
    camera = Sim3(1.0, poses[q_slot][:3, :3], poses[q_slot][:3, 3])
    world_from_cam = side.world_from_window.compose(camera)
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = world_from_cam.rotation, world_from_cam.translation
    return Placement(pose, source.segment_of(candidate), candidate, similarity, covisible,
                     world_from_cam.scale)


def place_keyframe(image_rgb: NDArray[np.uint8], descriptor: NDArray[np.float32],
                   detector: LoopDetector, source: KeyframeSource,
                   predict: Callable[[list[NDArray[np.uint8]]], WindowPrediction | str],
                   config: LocalizationConfig, loops: LoopConfig
                   ) -> tuple[Placement | None, str, int]:
    """
    Place one keyframe in the map (module docstring).

    :param image_rgb: the keyframe's model image (the size of the map's stored images).
    :param descriptor: its place descriptor, in the map's space.
    :param detector: the map's place index.
    :param source: the map's keyframes.
    :param predict: runs the predictor; a validated prediction or why there is none.
    :param config: candidates and verifications per keyframe.
    :param loops: the verification checks (shared with loop closure).
    :return: the placement (None if none), why not, and the candidates verified.
    """
    found = detector.search(descriptor, config.candidates, -1.0)
    candidates = [(key, similarity) for key, similarity in found
                  if similarity >= config.min_similarity]
    if not candidates:
        best = f'best similarity {found[0][1]:.2f}' if found else 'the map has no descriptors'
        return None, (f'no candidate: no map keyframe looks like it ({best}, need '
                      f'{config.min_similarity})'), 0
    reasons: list[str] = []
    for key, similarity in candidates[:config.max_verifications]:
        verdict = _verify(image_rgb, key, similarity, source, predict, loops)
        if isinstance(verdict, Placement):
            return verdict, '', len(reasons) + 1
        reasons.append(verdict)
    return None, reasons[0], len(reasons)
