"""
Loop closure: place recognition proposes a revisit, the model verifies it, the graph corrects.

Detection and verification are kept apart (VGGT-SLAM learns its checks, not its shape):

* ``LoopDetector`` keeps one global descriptor per mapped keyframe in a ``PlaceIndex`` and
  proposes, for a new keyframe, the most similar mapped keyframes that are not its recent
  neighbours (``LoopConfig.exclusion_keyframes`` in the same segment; any keyframe of another
  segment may be a candidate, which is how segments find each other again).
* ``verify_loop`` runs the predictor once on a *loop window*: the candidate with its neighbours
  and the query with its predecessors. Each side is aligned to its own known poses with the same
  dense, confidence-weighted robust Sim(3) as between windows (through the keyframes' stored
  pixels), so each alignment checks that the model reproduced a side's known geometry; then the
  query's points must land on the candidate's depth (``LoopConfig.min_covisible``): the two
  really see one place. Only then do the two alignments give the correction
  ``candidate-world_from_query-world``, and from it a pose-graph edge.

Every candidate's fate is a ``LoopOutcome`` (accepted, or the kind of rejection).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.alignment import (
    align_window,
    AlignmentReport,
    covisible_fraction,
    OverlapView,
    PointView,
)
from vggt_mapper.engine.config import LoopConfig
from vggt_mapper.engine.errors import AlignmentError
from vggt_mapper.engine.keyframe_store import KeyframeCloud, KeyframeRecord
from vggt_mapper.engine.places import PlaceIndex
from vggt_mapper.engine.types import LoopOutcome
from vggt_mapper.geometry.se3 import inverse_se3
from vggt_mapper.geometry.sim3 import Sim3
from vggt_mapper.predictor.base import WindowPrediction

__all__ = ['KeyframeSource', 'LoopDetector', 'LoopEdge', 'align_side', 'point_view', 'verify_loop',
           'window_from_cam_poses']


class KeyframeSource(Protocol):
    """What verification reads about mapped keyframes (the mapper provides it)."""

    def image(self, index: int) -> NDArray[np.uint8]:
        """Return the stored image of a keyframe."""
        ...

    def cloud(self, index: int) -> KeyframeCloud:
        """Return a keyframe's local cloud."""
        ...

    def record(self, index: int) -> KeyframeRecord:
        """Return a keyframe's record."""
        ...

    def world_from_node(self, index: int) -> Sim3:
        """Return a keyframe's current pose-graph value."""
        ...

    def segment_of(self, index: int) -> int:
        """Return a keyframe's segment."""
        ...

    def neighbours(self, index: int, before: int, after: int) -> list[int]:
        """Return mapped keyframes of the same segment around ``index`` (itself included)."""
        ...

    def path_length(self, first: int, last: int) -> float:
        """Return the distance travelled between two keyframes of one segment (world units)."""
        ...


@dataclass(frozen=True)
class LoopEdge:
    """
    What an accepted loop adds to the pose graph.

    :param outcome: the accepted outcome (for the doors).
    :param candidate_from_query: the edge measurement ``world_from_candidate^-1 ∘ correction ∘
        world_from_query`` (node frames, each in its home unit).
    :param correction: ``candidate-world_from_query-world``.
    :param residual_ratio: the worse of the two alignments' residual / scene depth.
    :param rotation_deg: the worse of the two alignments' camera disagreement, degrees.
    """

    outcome: LoopOutcome
    candidate_from_query: Sim3
    correction: Sim3
    residual_ratio: float
    rotation_deg: float


def window_from_cam_poses(prediction: WindowPrediction) -> NDArray[np.float64]:
    """
    Return the prediction's camera poses ``window_from_cam`` (S, 4, 4), rigid inverses.

    Rotations are projected onto SO(3) first (a model's are orthonormal only to its float
    precision; the pose graph composes thousands of them).

    :param prediction: a validated prediction (finite, proper rotations to about 1e-3).
    :return: the poses.
    """
    cam_from_window = np.asarray(prediction.cam_from_window, dtype=np.float64).copy()
    u_mat, _, vt_mat = np.linalg.svd(cam_from_window[:, :3, :3])
    cam_from_window[:, :3, :3] = u_mat @ vt_mat
    return inverse_se3(cam_from_window)


def point_view(cloud: KeyframeCloud, world_from_node: Sim3, record: KeyframeRecord
               ) -> PointView:
    """
    Make an alignment view of a mapped keyframe's stored points, in its segment's world.

    :param cloud: its local cloud.
    :param world_from_node: its current pose.
    :param record: its record (model image size).
    :return: the view.
    """
    cam_pose = np.eye(4)
    cam_pose[:3, :3] = world_from_node.rotation
    cam_pose[:3, 3] = world_from_node.translation
    return PointView(cam_pose, world_from_node.apply(cloud.points_local),
                     cloud.pixels_uv[:, 1].astype(np.intp), cloud.pixels_uv[:, 0].astype(np.intp),
                     cloud.conf.astype(np.float64), record.model_hw)


class LoopDetector:
    """
    Proposes loop candidates from global place descriptors (see the module docstring).

    :param config: thresholds and exclusion.
    """

    def __init__(self, config: LoopConfig) -> None:
        self.config = config
        self._index: PlaceIndex | None = None
        self._accepted: list[tuple[int, int]] = []

    @property
    def size(self) -> int:
        """Descriptors indexed."""
        return 0 if self._index is None else len(self._index)

    @property
    def nbytes(self) -> int:
        """Bytes held by the descriptor index."""
        return 0 if self._index is None else self._index.nbytes

    def add(self, key: int, descriptor: NDArray[np.float32]) -> None:
        """
        Index a mapped keyframe's descriptor.

        :param key: keyframe index.
        :param descriptor: (D,) L2-normalised descriptor.
        """
        if self._index is None:
            self._index = PlaceIndex(int(descriptor.shape[-1]))
        self._index.add(key, descriptor)

    def propose(self, query: int, descriptor: NDArray[np.float32],
                segment_of: Callable[[int], int] | None = None) -> list[tuple[int, float]]:
        """
        Return candidates for a query keyframe, most similar first.

        :param query: the query keyframe (already mapped, not necessarily indexed).
        :param descriptor: its descriptor.
        :param segment_of: the segment of a mapped keyframe; with it, the temporal exclusion
            applies within the query's segment only (the keyframes of another segment, e.g. of
            a loaded map, are never odometry neighbours). Without it, to every key.
        :return: ``(candidate, similarity)`` pairs above ``min_similarity``, outside the
            temporal exclusion window and the cooldown of accepted loops.
        """
        if self._index is None or len(self._index) == 0:
            return []
        cfg = self.config
        reach = cfg.exclusion_keyframes
        # Over-fetch by the loops in cooldown (each can hide a few candidates) and by the keys
        # the exclusion can hide.
        fetch = cfg.candidates + len(self._accepted) + (2 * reach if segment_of else 0)
        found = self._index.search(descriptor, fetch, query_key=query,
                                   exclusion=0 if segment_of else reach)

        def excluded(key: int) -> bool:
            return (segment_of is not None and abs(key - query) < reach
                    and segment_of(key) == segment_of(query))

        return [(c.key, c.similarity) for c in found
                if c.similarity >= cfg.min_similarity and not excluded(c.key)
                and not self._cooling(query, c.key)][:cfg.candidates]

    def search(self, descriptor: NDArray[np.float32], count: int, min_similarity: float
               ) -> list[tuple[int, float]]:
        """
        Return the indexed keyframes most like a place, without exclusion (relocalization).

        :param descriptor: the place's descriptor.
        :param count: candidates wanted at most.
        :param min_similarity: least cosine similarity.
        :return: ``(keyframe, similarity)`` pairs, most similar first.
        """
        if self._index is None or len(self._index) == 0:
            return []
        return [(c.key, c.similarity) for c in self._index.search(descriptor, count)
                if c.similarity >= min_similarity]

    def items(self) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
        """
        Return what the detector holds, to save it.

        :return: indexed keys (N,), their descriptors (N, D) (D = 0 before any), and the
            accepted loops (L, 2) as ``(query, candidate)`` rows.
        """
        accepted = np.array(self._accepted, dtype=np.int64).reshape(-1, 2)
        if self._index is None:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32), accepted
        keys, descriptors = self._index.items()
        return keys, descriptors, accepted

    def _cooling(self, query: int, candidate: int) -> bool:
        reach = self.config.cooldown_keyframes
        return any(abs(candidate - c) <= reach and abs(query - q) <= reach
                   for q, c in self._accepted)

    def remember_accepted(self, query: int, candidate: int) -> None:
        """
        Note an accepted loop for the cooldown.

        :param query: its query keyframe.
        :param candidate: its candidate keyframe.
        """
        self._accepted.append((query, candidate))


def _rejected(query: int, candidate: int, similarity: float, reason: str,
              covisible: float = float('nan')) -> LoopOutcome:
    return LoopOutcome(query, candidate, similarity, False, reason, covisible)


def align_side(source: KeyframeSource, keys: Sequence[int], slots: Sequence[int],
               prediction: WindowPrediction, poses: NDArray[np.float64],
               config: LoopConfig) -> AlignmentReport:
    """
    Align the slots of a verification window that show mapped keyframes to their known poses.

    The same dense, confidence-weighted robust Sim(3) as between windows, through the
    keyframes' stored pixels: it checks that the model reproduced their known geometry.

    :param source: the mapped keyframes.
    :param keys: the keyframes, in slot order.
    :param slots: their slots in the window.
    :param prediction: the window's prediction.
    :param poses: its ``window_from_cam_poses``.
    :param config: the alignment checks (``config.alignment``).
    :return: the alignment (``world_from_window`` into the keyframes' segment).
    :raises AlignmentError: if the model's answer does not fit the known geometry.
    """
    old = [point_view(source.cloud(k), source.world_from_node(k), source.record(k))
           for k in keys]
    new = [OverlapView(poses[s], prediction.depth[s], prediction.depth_conf[s],
                       prediction.intrinsics[s]) for s in slots]
    return align_window(old, new, config.alignment)


def _implausible_drift(query: int, candidate: int, correction: Sim3, source: KeyframeSource,
                       config: LoopConfig) -> str:
    """
    Say why a same-segment correction is more drift than the path between the two allows.

    A model shown two look-alike places (repeated texture, identical doors) can predict them as
    one, consistently: every geometric check passes. What gives it away is the correction: it
    would move the query by more than the odometry can have drifted since the candidate.
    Segments that never met have no such bound.
    """
    if source.segment_of(query) != source.segment_of(candidate):
        return ''
    position = source.world_from_node(query).translation
    shift = float(np.linalg.norm(correction.apply(position) - position))
    travelled = source.path_length(candidate, query)
    record = source.record(query)
    floor = 0.1 * record.median_depth * source.world_from_node(query).scale
    allowed = max(config.max_drift_rel * travelled, floor)
    if shift > allowed:
        return (f'the loop would move the query by {shift:.3g}, more than '
                f'{config.max_drift_rel:.0%} of the {travelled:.3g} travelled since the '
                f'candidate (a look-alike place?)')
    if abs(np.log(correction.scale)) > config.max_drift_log_scale:
        return (f'the loop would rescale the map by {correction.scale:.3g}, more than '
                f'exp(±{config.max_drift_log_scale})')
    return ''


def verify_loop(query: int, candidate: int, similarity: float, source: KeyframeSource,
                predict: Callable[[list[NDArray[np.uint8]], list[int]],
                                  WindowPrediction | str],
                config: LoopConfig) -> LoopEdge | LoopOutcome:
    """
    Verify one candidate by re-running the model on a loop window (module docstring).

    :param query: the new keyframe.
    :param candidate: the mapped keyframe proposed for it.
    :param similarity: their descriptor similarity.
    :param source: the mapped keyframes (images, clouds, poses, segments).
    :param predict: runs the predictor on the frames of the keyframes given with them; returns
        a validated prediction, or a string saying why there is none (the predictor failed or
        answered nonsense).
    :param config: loop settings.
    :return: a ``LoopEdge`` when accepted, else the rejected ``LoopOutcome``.
    """
    reach = config.neighbours
    candidates = source.neighbours(candidate, reach, reach)
    queries = source.neighbours(query, reach, 0)
    frames = [source.image(k) for k in candidates + queries]
    answer = predict(frames, candidates + queries)
    if isinstance(answer, str):
        return _rejected(query, candidate, similarity, f'predictor: {answer}')
    poses = window_from_cam_poses(answer)
    c_slots = list(range(len(candidates)))
    q_slots = list(range(len(candidates), len(frames)))
    try:
        side_c = align_side(source, candidates, c_slots, answer, poses, config)
    except AlignmentError as err:
        return _rejected(query, candidate, similarity, f'candidate side: {err}')
    try:
        side_q = align_side(source, queries, q_slots, answer, poses, config)
    except AlignmentError as err:
        return _rejected(query, candidate, similarity, f'query side: {err}')
    c_slot, q_slot = candidates.index(candidate), q_slots[queries.index(query)]
    covisible = covisible_fraction(
        answer.depth[c_slot], answer.intrinsics[c_slot], poses[c_slot],
        answer.depth[q_slot], answer.intrinsics[q_slot], poses[q_slot])
    if covisible < config.min_covisible:
        return _rejected(query, candidate, similarity,
                         f'covisibility: {covisible:.2f} of the query seen by the candidate, '
                         f'need {config.min_covisible}', covisible)
    correction = side_c.world_from_window.compose(side_q.world_from_window.inverse())
    implausible = _implausible_drift(query, candidate, correction, source, config)
    if implausible:
        return _rejected(query, candidate, similarity, f'drift: {implausible}', covisible)
    measured = (source.world_from_node(candidate).inverse().compose(correction)
                .compose(source.world_from_node(query)))
    merged = None
    if source.segment_of(candidate) != source.segment_of(query):
        merged = (source.segment_of(candidate), source.segment_of(query))
    outcome = LoopOutcome(query, candidate, similarity, True, '', covisible, correction, merged)
    return LoopEdge(outcome, measured, correction,
                    max(side_c.residual_ratio, side_q.residual_ratio),
                    max(side_c.max_rotation_deg, side_q.max_rotation_deg))
