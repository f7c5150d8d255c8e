"""
Accuracy of a mapper run on a synthetic sequence: ATE (with evo) and map-to-surface error.

Keyframe names must be ``<prefix><frame index>`` (e.g. ``f00042``) so keyframes can be matched
to ground-truth frames; ``frame_name`` makes such names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import re

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.engine.types import KeyframePose, MapSnapshot, WindowResult
from vggt_mapper.geometry.sim3 import Sim3
from vggt_mapper.synthetic.predictor import SyntheticSequence

__all__ = ['MapError', 'TrajectoryError', 'feed', 'frame_name', 'map_error',
           'trajectory_error']

FRAME_PERIOD_NS = 33_333_333


@dataclass(frozen=True)
class TrajectoryError:
    """
    Absolute trajectory error after Sim(3) alignment (evo APE, translation part).

    :param rmse: ATE RMSE in metres.
    :param path_length_m: length of the true keyframe path, metres.
    :param num_poses: keyframes compared.
    :param gt_from_world: the Sim(3) evo found, mapper world → ground-truth world.
    """

    rmse: float
    path_length_m: float
    num_poses: int
    gt_from_world: Sim3

    @property
    def scale_error(self) -> float:
        """Relative scale error: the trajectory's lengths over the true ones, minus 1."""
        return 1.0 / self.gt_from_world.scale - 1.0

    @property
    def rmse_percent(self) -> float:
        """ATE RMSE as a percentage of the path length."""
        return 100.0 * self.rmse / max(self.path_length_m, 1e-12)


@dataclass(frozen=True)
class MapError:
    """
    Distance of map points to the true surfaces, metres (after ``gt_from_world``).

    :param median_m: median distance.
    :param mean_m: mean distance.
    :param p90_m: 90th percentile.
    :param num_points: points evaluated.
    """

    median_m: float
    mean_m: float
    p90_m: float
    num_points: int


def frame_name(index: int) -> str:
    """Return the name the evaluation expects for frame ``index`` (``f00042``)."""
    return f'f{index:05d}'


def feed(mapper: Mapper, sequence: SyntheticSequence, start: int = 0, stop: int | None = None,
         flush: bool = True, *, known_intrinsics: bool = False,
         odom_from_camera: NDArray[np.float64] | None = None) -> list[WindowResult]:
    """
    Render frames ``start:stop`` of a sequence and give them to a mapper (30 Hz stamps).

    :param mapper: the mapper.
    :param sequence: the synthetic sequence.
    :param start: first frame.
    :param stop: one past the last frame (all frames if omitted).
    :param flush: call ``mapper.flush()`` at the end.
    :param known_intrinsics: hand each frame the sequence's true K (a calibrated camera).
    :param odom_from_camera: (N, 4, 4) an odometry pose per frame of the sequence
        (``synthetic.odometry``), handed with each frame.
    :return: every window result produced.
    """
    results: list[WindowResult] = []
    for index in range(start, len(sequence) if stop is None else stop):
        results += mapper.add_frame(
            sequence.frame(index), index * FRAME_PERIOD_NS, frame_name(index),
            intrinsics=sequence.intrinsics if known_intrinsics else None,
            odom_from_camera=None if odom_from_camera is None else odom_from_camera[index])
    if flush:
        results += mapper.flush()
    return results


def _frame_index(name: str) -> int:
    match = re.search(r'(\d+)$', name)
    if match is None:
        raise ValueError(f'keyframe name {name!r} does not end in a frame number; name frames '
                         f'with synthetic.evaluation.frame_name')
    return int(match.group(1))


def trajectory_error(trajectory: Sequence[KeyframePose], sequence: SyntheticSequence
                     ) -> TrajectoryError:
    """
    ATE RMSE of the mapper's keyframe poses with evo (APE, ``align`` + ``correct_scale``).

    :param trajectory: ``Mapper.trajectory()``.
    :param sequence: the ground truth.
    :return: the error and the alignment used.
    :raises ValueError: with fewer than 3 keyframes.
    """
    from evo.core import metrics
    from evo.core.trajectory import PoseTrajectory3D

    if len(trajectory) < 3:
        raise ValueError(f'need at least 3 keyframes for ATE, got {len(trajectory)}')
    indices = [_frame_index(pose.name) for pose in trajectory]
    stamps = np.array([pose.stamp_ns for pose in trajectory], dtype=np.float64) * 1e-9
    estimate = PoseTrajectory3D(poses_se3=[pose.world_from_cam for pose in trajectory],
                                timestamps=stamps)
    truth = PoseTrajectory3D(poses_se3=list(sequence.poses_world_from_cam[indices]),
                             timestamps=stamps.copy())
    rotation, translation, scale = estimate.align(truth, correct_scale=True)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((truth, estimate))
    rmse = float(ape.get_statistic(metrics.StatisticsType.rmse))
    return TrajectoryError(rmse, float(truth.path_length), len(indices),
                           Sim3(float(scale), rotation, translation))


def map_error(snapshot: MapSnapshot, sequence: SyntheticSequence, gt_from_world: Sim3,
              max_points: int = 200_000, seed: int = 0) -> MapError:
    """
    Distance of (a random subset of) map points to the room's true surfaces.

    :param snapshot: ``Mapper.map_snapshot()``.
    :param sequence: the ground truth (its room knows the surfaces).
    :param gt_from_world: mapper world → ground-truth world (``TrajectoryError``).
    :param max_points: evaluate at most this many points.
    :param seed: seed of the subset.
    :return: the error statistics.
    :raises ValueError: if the map is empty.
    """
    points: NDArray[np.float32] = snapshot.points_world
    if points.shape[0] == 0:
        raise ValueError('the map is empty')
    if points.shape[0] > max_points:
        pick = np.random.default_rng(seed).choice(points.shape[0], max_points, replace=False)
        points = points[pick]
    distance = sequence.room.distance_to_surfaces(gt_from_world.apply(points))
    return MapError(float(np.median(distance)), float(np.mean(distance)),
                    float(np.percentile(distance, 90)), int(distance.shape[0]))
