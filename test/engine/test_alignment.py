"""Tests of window alignment: robust Sim(3) on the overlap keyframes' dense depth."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vggt_mapper.engine.alignment import align_window, OverlapView
from vggt_mapper.engine.config import AlignmentConfig
from vggt_mapper.engine.errors import AlignmentError
from vggt_mapper.geometry.sim3 import Sim3
from vggt_mapper.synthetic import SyntheticSequence


def _views(sequence: SyntheticSequence, frames: list[int], window_from_world: Sim3,
           noise: float = 0.0, seed: int = 0) -> tuple[list[OverlapView], list[OverlapView]]:
    rng = np.random.default_rng(seed)
    old, new = [], []
    for index in frames:
        pose = sequence.poses_world_from_cam[index]
        depth = sequence.depth(index)
        conf = np.full(depth.shape, 2.0, np.float32)
        old.append(OverlapView(pose, depth, conf, sequence.intrinsics))
        noisy = depth * (1 + noise * rng.standard_normal(depth.shape))
        new.append(OverlapView(window_from_world.apply_to_pose(pose),
                               (noisy * window_from_world.scale).astype(np.float32), conf,
                               sequence.intrinsics))
    return old, new


def _window_from_world() -> Sim3:
    rotation, _ = cv2.Rodrigues(np.array([0.3, -0.2, 0.5]))
    return Sim3(0.37, rotation, np.array([0.5, -1.0, 2.0]))


def test_recovers_world_from_window() -> None:
    sequence = SyntheticSequence.orbit(12, step_m=0.05)
    truth = _window_from_world()
    old, new = _views(sequence, [8, 10, 11], truth, noise=0.01)
    report = align_window(old, new, AlignmentConfig())
    expected = truth.inverse()
    assert report.world_from_window.scale == pytest.approx(expected.scale, rel=0.005)
    assert np.allclose(report.world_from_window.matrix(), expected.matrix(), atol=0.01)
    assert report.inlier_fraction > 0.9
    assert report.residual_ratio < 0.02


def test_static_overlap_cameras_still_align_from_depth() -> None:
    # All overlap cameras at one place: their centres alone could not fix rotation or scale.
    sequence = SyntheticSequence.orbit(5, static_frames=5)
    truth = _window_from_world()
    old, new = _views(sequence, [0, 2, 4], truth, noise=0.01)
    report = align_window(old, new, AlignmentConfig())
    assert np.allclose(report.world_from_window.matrix(), truth.inverse().matrix(), atol=0.01)


def test_outlier_pixels_do_not_pull_the_fit() -> None:
    sequence = SyntheticSequence.orbit(12, step_m=0.05)
    truth = _window_from_world()
    old, new = _views(sequence, [8, 10, 11], truth)
    rng = np.random.default_rng(1)
    corrupted = []
    for view in new:
        depth = view.depth.copy()
        mask = rng.random(depth.shape) < 0.15
        depth[mask] *= rng.uniform(0.3, 3.0, size=int(mask.sum())).astype(np.float32)
        corrupted.append(OverlapView(view.cam_pose, depth, view.conf, view.intrinsics))
    report = align_window(old, corrupted, AlignmentConfig())
    assert np.allclose(report.world_from_window.matrix(), truth.inverse().matrix(), atol=0.01)


def test_inconsistent_overlap_is_refused() -> None:
    sequence = SyntheticSequence.orbit(12, step_m=0.05)
    old, new = _views(sequence, [8, 10, 11], _window_from_world())
    rng = np.random.default_rng(2)
    scrambled = [OverlapView(v.cam_pose, rng.permutation(v.depth.ravel()).reshape(v.depth.shape),
                             v.conf, v.intrinsics) for v in new]
    with pytest.raises(AlignmentError, match='residual|agree'):
        align_window(old, scrambled, AlignmentConfig())


def test_too_few_confident_pixels_are_refused() -> None:
    sequence = SyntheticSequence.orbit(12, step_m=0.05)
    old, new = _views(sequence, [10, 11], _window_from_world())
    tiny = AlignmentConfig(sample_points=50, min_points=200)
    with pytest.raises(AlignmentError, match='confident overlap pixel pairs'):
        align_window(old, new, tiny)


def test_overlap_camera_disagreement_is_refused() -> None:
    sequence = SyntheticSequence.orbit(12, step_m=0.05)
    truth = _window_from_world()
    old, new = _views(sequence, [8, 10, 11], truth)
    # The new window puts one overlap camera 20 degrees off (its depth still agrees).
    turn, _ = cv2.Rodrigues(np.radians([0.0, 20.0, 0.0]))
    pose = new[1].cam_pose.copy()
    pose[:3, :3] = pose[:3, :3] @ turn
    new[1] = OverlapView(pose, new[1].depth, new[1].conf, new[1].intrinsics)
    with pytest.raises(AlignmentError):
        align_window(old, new, AlignmentConfig(max_residual_ratio=1.0, min_inlier_fraction=0.0))
