"""Test worlds: a loop that comes back to its start, a corridor that repeats, covisibility."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vggt_mapper.synthetic import (
    corridor_path,
    corridor_room,
    loop_path,
    orbit_frames_per_lap,
    orbit_path,
    SyntheticPredictor,
    SyntheticSequence,
)
from vggt_mapper.synthetic.covisibility import covisible_fractions, depth_points_world
from vggt_mapper.synthetic.world import CORRIDOR_LOOKAHEAD_M, intrinsics_for


def _thumbnail(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (24, 18), interpolation=cv2.INTER_AREA).astype(np.float64)


def _rotation_deg(pose_a: np.ndarray, pose_b: np.ndarray) -> float:
    cos = (np.trace(pose_a[:3, :3].T @ pose_b[:3, :3]) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def test_loop_path_comes_back_to_its_start_after_more_than_5_m() -> None:
    poses = loop_path(frames_per_lap=200)
    centres = poses[:, :3, 3]
    assert len(poses) == 201
    assert np.sum(np.linalg.norm(np.diff(centres, axis=0), axis=1)) > 5.0
    assert np.linalg.norm(centres[-1] - centres[0]) < 0.05
    assert _rotation_deg(poses[-1], poses[0]) < 1.0
    assert np.max(np.linalg.norm(centres - centres[0], axis=1)) > 2.0  # it went somewhere


def test_loop_revisit_looks_like_the_start_but_is_another_image() -> None:
    sequence = SyntheticSequence.loop(frames_per_lap=200)
    start, back = sequence.frame(0), sequence.frame(200)
    assert not np.array_equal(start, back)
    assert sequence.index_of(back) == 200 and sequence.index_of(start) == 0
    assert sequence.covisibility(0, 200) > 0.7 and sequence.covisibility(0, 100) < 0.05


def test_orbit_frames_per_lap_says_when_the_orbit_is_back() -> None:
    lap = orbit_frames_per_lap(step_m=0.02)
    poses = orbit_path(lap + 1, step_m=0.02)
    assert np.linalg.norm(poses[lap, :3, 3] - poses[0, :3, 3]) < 0.02
    assert np.linalg.norm(poses[lap // 2, :3, 3] - poses[0, :3, 3]) > 2.0


def test_corridor_repeats_but_never_pixel_for_pixel() -> None:
    step = 0.04
    period = int(round(2.4 / step))
    sequence = SyntheticSequence.corridor(2 * period + 1, step_m=step, period_m=2.4)
    first, next_period, half = (sequence.frame(i) for i in (0, period, period // 2))
    # Not the same image (the predictor tells frames apart by their pixels) ...
    assert np.mean(first != next_period) > 0.5
    assert sequence.index_of(next_period) == period
    # ... but alike to a global descriptor: thumbnails one period apart are close, much
    # closer than half a period apart.
    near = np.mean(np.abs(_thumbnail(first) - _thumbnail(next_period)))
    far = np.mean(np.abs(_thumbnail(first) - _thumbnail(half)))
    assert near < 6.0 and near < far / 4
    # Same geometry one period on: the same depth.
    assert np.allclose(sequence.depth(0), sequence.depth(period), atol=1e-4)
    assert sequence.depth(2 * period).max() < CORRIDOR_LOOKAHEAD_M


def test_corridor_path_must_fit_in_its_corridor() -> None:
    room = corridor_room(length_m=12.0)
    corridor_path(50, room, step_m=0.02)
    with pytest.raises(ValueError, match='corridor of at least'):
        corridor_path(300, room, step_m=0.02)
    with pytest.raises(ValueError, match='period_m'):
        corridor_room(length_m=3.0)


def test_the_predictor_answers_corridor_frames() -> None:
    sequence = SyntheticSequence.corridor(130, step_m=0.04)
    predictor = SyntheticPredictor(sequence, model_width=56)
    prediction = predictor.predict([sequence.frame(i) for i in (0, 2, 4)])
    assert prediction.num_frames == 3 and np.all(prediction.depth > 0)


def test_covisibility_falls_with_distance_and_counts_occlusion() -> None:
    sequence = SyntheticSequence.orbit(120, step_m=0.02)
    shares = [sequence.covisibility(0, offset) for offset in (0, 5, 20, 40, 100)]
    assert shares[0] == 1.0 and shares == sorted(shares, reverse=True)
    assert shares[1] > 0.7 and shares[-1] == 0.0
    # Points hidden behind something nearer do not count.
    pose = sequence.poses_world_from_cam[0]
    grid_k = intrinsics_for(24, 32)
    _, depth = sequence.room.render(pose, grid_k, 24, 32)
    points = depth_points_world(depth, pose, grid_k)
    seen = covisible_fractions(points, np.stack([pose, pose]), grid_k,
                               np.stack([depth, 0.5 * depth]))
    assert seen[0] == 1.0 and seen[1] == 0.0
    matrix = sequence.covisibility_matrix([0, 5, 0])
    assert matrix.shape == (3, 3) and matrix[0, 2] == 1.0 and matrix[0, 1] == shares[1]
