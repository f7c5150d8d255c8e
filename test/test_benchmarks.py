"""
The mapping benchmark's own measures, on trajectories whose errors are known by construction.

``benchmarks/`` is a folder of scripts, not a package: its helper modules are imported the way
the scripts import them, from their folder (``monkeypatch.syspath_prepend``, undone after each
test). The whole benchmark runs at toy sizes in CI (``--smoke``, ``.ci/run``).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
import importlib
import multiprocessing
from pathlib import Path
import subprocess
import sys
from types import ModuleType

import numpy as np
import pytest

from vggt_mapper.engine.pose_graph import Edge, EdgeKind, EdgeNoise
from vggt_mapper.engine.types import KeyframePose
from vggt_mapper.geometry.se3 import inverse_se3
from vggt_mapper.geometry.sim3 import Sim3
from vggt_mapper.synthetic import SyntheticSequence
from vggt_mapper.synthetic.evaluation import frame_name, TrajectoryError

BENCHMARKS = Path(__file__).resolve().parents[1] / 'benchmarks'
METRES_PER_UNIT = 2.0  # the mapper's world unit is half a metre in these trajectories


def _import(monkeypatch: pytest.MonkeyPatch, name: str) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module(name)


@pytest.fixture()
def metrics(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _import(monkeypatch, 'mapping_metrics')


@pytest.fixture(scope='module')
def loop() -> SyntheticSequence:
    return SyntheticSequence.loop(frames_per_lap=40, laps=1.0)  # poses only: nothing rendered


def _mapped(sequence: SyntheticSequence, frames: list[int]) -> list[KeyframePose]:
    """Give the ground truth as a mapper would: first keyframe's frame, half-metre unit."""
    first_from_world = inverse_se3(sequence.poses_world_from_cam[frames[0]])
    poses = []
    for key, index in enumerate(frames):
        pose = first_from_world @ sequence.poses_world_from_cam[index]
        pose[:3, 3] /= METRES_PER_UNIT
        poses.append(KeyframePose(key, frame_name(index), index * 1000, pose, np.eye(3),
                                  (42, 56), np.eye(3), (60, 80)))
    return poses


def _moved(pose: KeyframePose, offset_m: list[float]) -> KeyframePose:
    world_from_cam = pose.world_from_cam.copy()
    world_from_cam[:3, 3] += np.asarray(offset_m) / METRES_PER_UNIT
    return KeyframePose(pose.index, pose.name, pose.stamp_ns, world_from_cam, pose.intrinsics,
                        pose.model_hw, pose.intrinsics_original, pose.original_hw)


def test_end_point_error_is_the_last_keyframes_offset_from_the_truth_in_metres(
        metrics: ModuleType, loop: SyntheticSequence) -> None:
    poses = _mapped(loop, list(range(0, 41, 4)))
    ate = TrajectoryError(0.0, 7.7, len(poses), Sim3(METRES_PER_UNIT, np.eye(3), np.zeros(3)))
    assert metrics.end_point_error(poses, loop, ate) == pytest.approx(0.0, abs=1e-9)
    # Drift at the end: the last keyframe 6 cm off, seen from the first (whose frame is the
    # world here); keyframes in between do not count.
    drifted = ([poses[0], _moved(poses[1], [0.5, 0.0, 0.0])] + poses[2:-1]
               + [_moved(poses[-1], [0.0, 0.06, 0.0])])
    assert metrics.end_point_error(drifted, loop, ate) == pytest.approx(0.06, rel=1e-6)


def test_the_scale_is_found_on_a_straight_walk_where_evo_alignment_is_degenerate(
        metrics: ModuleType) -> None:
    corridor = SyntheticSequence.corridor(30, step_m=0.05)
    poses = _mapped(corridor, list(range(0, 30, 3)))
    assert metrics.first_keyframe_scale(poses, corridor) == pytest.approx(METRES_PER_UNIT)
    with pytest.raises(ValueError, match='do not move'):
        metrics.first_keyframe_scale(poses[:1], corridor)


def test_relative_pose_error_sees_one_bad_step_and_not_the_scale(
        metrics: ModuleType, loop: SyntheticSequence) -> None:
    poses = _mapped(loop, list(range(0, 41, 4)))
    assert metrics.relative_pose_error(poses, loop, METRES_PER_UNIT) == pytest.approx(
        0.0, abs=1e-9)
    # One keyframe 10 cm off spoils the two steps around it: RMSE 0.1 * sqrt(2 / 10).
    bent = poses[:5] + [_moved(poses[5], [0.1, 0.0, 0.0])] + poses[6:]
    assert metrics.relative_pose_error(bent, loop, METRES_PER_UNIT) == pytest.approx(
        0.1 * np.sqrt(2 / 10), rel=1e-6)


def test_displacement_compares_two_runs_keyframe_by_keyframe(
        metrics: ModuleType, loop: SyntheticSequence) -> None:
    base = _mapped(loop, list(range(0, 41, 4)))
    moved = [_moved(pose, [0.0, 0.0, 0.3]) if pose.index == 4 else pose for pose in base]
    largest, rms = metrics.displacement(moved[2:], base, METRES_PER_UNIT)
    assert largest == pytest.approx(0.3)
    assert rms == pytest.approx(0.3 / np.sqrt(len(moved) - 2))


def test_a_loop_edge_that_claims_two_places_are_one_is_off_by_their_true_gap(
        metrics: ModuleType, loop: SyntheticSequence) -> None:
    poses = _mapped(loop, [0, 8, 16, 24, 32, 39])
    candidate, query = poses[1], poses[4]
    unit_scale = 0.8  # the candidate node's own unit (world units per node unit)
    true_c_from_q = inverse_se3(candidate.world_from_cam) @ query.world_from_cam
    measured = Sim3(1.0, true_c_from_q[:3, :3], true_c_from_q[:3, 3] / unit_scale)
    noise = EdgeNoise(0.01, 0.01, 0.01)
    edges = [Edge(EdgeKind.LOOP, candidate.index, query.index, measured, noise, 0),
             Edge(EdgeKind.LOOP, candidate.index, query.index, Sim3.identity(), noise, 1)]
    true, false = metrics.loop_edge_errors(edges, {candidate.index: unit_scale}, poses, loop,
                                           METRES_PER_UNIT)
    gap_m = METRES_PER_UNIT * float(np.linalg.norm(true_c_from_q[:3, 3]))
    assert (true.query, true.candidate) == (query.index, candidate.index)
    assert true.true_gap_m == pytest.approx(gap_m) and gap_m > 1.0
    assert true.error_m == pytest.approx(0.0, abs=1e-9)
    assert false.error_m == pytest.approx(gap_m)


def test_the_largest_segment_is_the_one_with_most_keyframes(
        metrics: ModuleType, loop: SyntheticSequence) -> None:
    poses = _mapped(loop, list(range(10)))
    split = [KeyframePose(p.index, p.name, p.stamp_ns, p.world_from_cam, p.intrinsics,
                          p.model_hw, p.intrinsics_original, p.original_hw,
                          segment=0 if p.index < 3 else 1) for p in poses]
    assert [p.index for p in metrics.largest_segment(split)] == list(range(3, 10))
    assert metrics.largest_segment([]) == []


def test_the_rss_sampler_sees_an_allocation_and_the_spawned_worker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    reporting = _import(monkeypatch, 'reporting')
    # In a fresh process: this one's RSS moves with whatever earlier tests left behind.
    script = ('import numpy as np, reporting\n'
              'sampler = reporting.RssSampler(period_s=60.0)\n'
              'sampler.sample(); before = sampler.peak_bytes\n'
              'block = np.ones(64 * 2**20, np.uint8)  # touched: resident\n'
              'sampler.sample(); print(sampler.peak_bytes - before)\n')
    grown = subprocess.run([sys.executable, '-c', script], cwd=BENCHMARKS, capture_output=True,
                           text=True, check=True, timeout=600).stdout
    assert int(grown) >= 60 * 2**20
    sampler = reporting.RssSampler(period_s=60.0)  # samples taken by hand below
    assert sampler.worker_bytes() == 0
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context('spawn')) as pool:
        assert pool.submit(abs, -1).result() == 1
        assert sampler.worker_bytes() > 0
    # The pool is gone; multiprocessing's resource tracker it started is no worker.
    assert sampler.worker_bytes() == 0
