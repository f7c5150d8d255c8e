"""
Trajectory and loop metrics of the mapping benchmark, beyond ``synthetic.evaluation``'s ATE.

All compare a mapper's keyframe poses (``Mapper.trajectory()``) with the ground truth of the
``SyntheticSequence`` they were mapped from; keyframes are matched to frames by name
(``synthetic.evaluation.frame_name``). Lengths come out in metres.

* ``largest_segment``: the keyframes of the segment that holds the most (a map split into
  segments has one frame and scale per segment: metrics are taken within one).
* ``end_point_error``: the drift at the end of a path.
* ``first_keyframe_scale``: world units → metres when evo's Sim(3) alignment is degenerate
  (a straight walk: Umeyama refuses collinear positions).
* ``relative_pose_error``: evo RPE, translation part, between consecutive keyframes.
* ``displacement``: how far each keyframe moved between two runs of the same sequence.
* ``loop_edge_errors``: how far each accepted loop edge places its query from where ground truth
  says it is relative to its candidate (a false loop places it metres away).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.pose_graph import Edge
from vggt_mapper.engine.types import KeyframePose
from vggt_mapper.geometry.se3 import inverse_se3
from vggt_mapper.synthetic import SyntheticSequence
from vggt_mapper.synthetic.evaluation import _frame_index, TrajectoryError

__all__ = ['LoopEdgeError', 'displacement', 'end_point_error', 'first_keyframe_scale',
           'largest_segment', 'loop_edge_errors', 'relative_pose_error']


def largest_segment(trajectory: Sequence[KeyframePose]) -> list[KeyframePose]:
    """
    Return the keyframes of the segment with the most keyframes, in keyframe order.

    :param trajectory: ``Mapper.trajectory()``.
    :return: those keyframes (empty if the trajectory is).
    """
    if not trajectory:
        return []
    counts = Counter(pose.segment for pose in trajectory)
    segment = max(counts, key=lambda key: (counts[key], -key))
    return [pose for pose in trajectory if pose.segment == segment]


def _true_poses(trajectory: Sequence[KeyframePose], sequence: SyntheticSequence
                ) -> NDArray[np.float64]:
    indices = [_frame_index(pose.name) for pose in trajectory]
    return sequence.poses_world_from_cam[indices]


def _relative_to_first(world_from_cam: NDArray[np.float64]) -> NDArray[np.float64]:
    """Return (N, 4, 4) poses in the first pose's camera frame."""
    return inverse_se3(world_from_cam[0])[None] @ world_from_cam


def end_point_error(trajectory: Sequence[KeyframePose], sequence: SyntheticSequence,
                    ate: TrajectoryError) -> float:
    """
    Drift at the end of a path: where the last keyframe is seen from the first, vs the truth.

    The last keyframe's position in the first keyframe's camera frame, scaled to metres with
    the scale of evo's ATE alignment (``ate.gt_from_world.scale``), minus the same position
    from the ground-truth poses; the norm of the difference. On a loop that returns to its
    start this is the loop-closure error a user sees (the seam), which ATE averages away.

    :param trajectory: keyframes of one segment, in order (at least 2).
    :param sequence: the ground truth.
    :param ate: the ATE of that trajectory (its alignment gives the scale).
    :return: the error in metres.
    :raises ValueError: with fewer than 2 keyframes.
    """
    if len(trajectory) < 2:
        raise ValueError(f'need at least 2 keyframes for an end-point error, got '
                         f'{len(trajectory)}')
    estimate = np.stack([trajectory[0].world_from_cam, trajectory[-1].world_from_cam])
    truth = _true_poses([trajectory[0], trajectory[-1]], sequence)
    est_m = ate.gt_from_world.scale * _relative_to_first(estimate)[1, :3, 3]
    true_m = _relative_to_first(truth)[1, :3, 3]
    return float(np.linalg.norm(est_m - true_m))


def first_keyframe_scale(trajectory: Sequence[KeyframePose], sequence: SyntheticSequence
                         ) -> float:
    """
    Metres per world unit: least squares between positions seen from the first keyframe.

    Both trajectories are expressed in their first keyframe's camera frame, where the mapper
    and the truth share orientation; the scale ``s`` minimises ``sum |s p_est - p_true|^2``.
    Well defined on a straight walk, where evo's Sim(3) (Umeyama) alignment is not.

    :param trajectory: keyframes of one segment, in order.
    :param sequence: the ground truth.
    :return: the scale.
    :raises ValueError: if the keyframes do not move (no scale to measure).
    """
    estimate = _relative_to_first(np.stack([pose.world_from_cam for pose in trajectory]))
    truth = _relative_to_first(_true_poses(trajectory, sequence))
    est, true = estimate[:, :3, 3], truth[:, :3, 3]
    denominator = float(np.sum(est * est))
    if denominator <= 0.0:
        raise ValueError('the keyframes do not move: no scale to measure')
    return float(np.sum(est * true)) / denominator


def relative_pose_error(trajectory: Sequence[KeyframePose], sequence: SyntheticSequence,
                        metres_per_unit: float) -> float:
    """
    RMSE of evo's RPE, translation part, between consecutive keyframes (delta 1), metres.

    Relative poses do not depend on the world frame, so only the scale is aligned.

    :param trajectory: keyframes of one segment, in order (at least 2).
    :param sequence: the ground truth.
    :param metres_per_unit: the mapper's scale (``first_keyframe_scale``).
    :return: the RMSE in metres.
    """
    from evo.core import metrics
    from evo.core.trajectory import PoseTrajectory3D

    stamps = np.array([pose.stamp_ns for pose in trajectory], dtype=np.float64) * 1e-9
    estimate = PoseTrajectory3D(poses_se3=[pose.world_from_cam for pose in trajectory],
                                timestamps=stamps)
    estimate.scale(metres_per_unit)
    truth = PoseTrajectory3D(poses_se3=list(_true_poses(trajectory, sequence)),
                             timestamps=stamps.copy())
    rpe = metrics.RPE(metrics.PoseRelation.translation_part, delta=1,
                      delta_unit=metrics.Unit.frames, all_pairs=False)
    rpe.process_data((truth, estimate))
    return float(rpe.get_statistic(metrics.StatisticsType.rmse))


def displacement(trajectory: Sequence[KeyframePose], baseline: Sequence[KeyframePose],
                 metres_per_unit: float) -> tuple[float, float]:
    """
    How far keyframes moved between two runs that share a world frame and unit.

    Two runs of one sequence with the same per-window prediction noise
    (``SyntheticPredictor(noise_per_window=True)``) share the first keyframe's frame and the
    first window's unit, so their positions compare directly.

    :param trajectory: the run that differs (e.g. with a loop).
    :param baseline: the reference run.
    :param metres_per_unit: the baseline's scale.
    :return: ``(max, rms)`` displacement over the keyframes both runs mapped, metres.
    :raises ValueError: if the runs share no keyframe.
    """
    base = {pose.index: pose.position_world for pose in baseline}
    moved = [np.linalg.norm(pose.position_world - base[pose.index])
             for pose in trajectory if pose.index in base]
    if not moved:
        raise ValueError('the two runs share no keyframe')
    distances = metres_per_unit * np.asarray(moved)
    return float(distances.max()), float(np.sqrt(np.mean(distances ** 2)))


@dataclass(frozen=True)
class LoopEdgeError:
    """
    One accepted loop edge against the ground truth.

    :param query: the keyframe that found the revisit.
    :param candidate: the keyframe it was tied to.
    :param true_gap_m: true distance between the two cameras, metres.
    :param error_m: distance between where the edge puts the query relative to the candidate
        and where it truly is, metres (in the candidate's camera frame).
    """

    query: int
    candidate: int
    true_gap_m: float
    error_m: float


def loop_edge_errors(edges: Sequence[Edge], candidate_scale: Mapping[int, float],
                     trajectory: Sequence[KeyframePose], sequence: SyntheticSequence,
                     metres_per_unit: float) -> list[LoopEdgeError]:
    """
    Compare loop edges of a pose graph with the ground truth.

    A loop edge ``a_from_b`` (``a`` the candidate, ``b`` the query) is what loop verification
    measured: where the query sits relative to the candidate, in the candidate node's frame and
    unit. The candidate's ``world_from_node.scale`` converts that unit to world units,
    ``metres_per_unit`` world units to metres.

    :param edges: the loop edges (``PoseGraph.edges()`` of kind ``LOOP``).
    :param candidate_scale: ``world_from_node.scale`` of each edge's candidate ``a``.
    :param trajectory: ``Mapper.trajectory()`` (keyframe names).
    :param sequence: the ground truth.
    :param metres_per_unit: the scale of the candidates' segment.
    :return: one record per edge, in order.
    """
    names = {pose.index: pose for pose in trajectory}
    errors = []
    for edge in edges:
        truth = _true_poses([names[edge.a], names[edge.b]], sequence)
        true_a_from_b = _relative_to_first(truth)[1, :3, 3]
        unit_m = metres_per_unit * candidate_scale[edge.a]
        measured = unit_m * np.asarray(edge.a_from_b.translation)
        errors.append(LoopEdgeError(edge.b, edge.a, float(np.linalg.norm(true_a_from_b)),
                                    float(np.linalg.norm(measured - true_a_from_b))))
    return errors
