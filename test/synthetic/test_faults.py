"""Fault injection: ``FaultyPredictor`` fails the chosen calls, the chosen way, and counts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
import pytest

from vggt_mapper.predictor.base import WindowPrediction
from vggt_mapper.synthetic import (
    FaultMode,
    FaultyPredictor,
    FooledByLookAlikes,
    NOISE_LEVELS,
    SyntheticFailure,
    SyntheticPredictor,
    SyntheticSequence,
)

WINDOW = [0, 4, 8]


@pytest.fixture(scope='module')
def sequence() -> SyntheticSequence:
    return SyntheticSequence.orbit(30, cache_renders=64)


def _inner(sequence: SyntheticSequence) -> SyntheticPredictor:
    return SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=56, seed=3)


def _frames(sequence: SyntheticSequence, window: list[int]) -> list[NDArray[np.uint8]]:
    return [sequence.frame(i) for i in window]


def test_raise_fails_the_chosen_calls_only_without_running_the_model(
        sequence: SyntheticSequence) -> None:
    inner = _inner(sequence)
    predictor = FaultyPredictor(inner, fail_on={1, 3})
    frames = _frames(sequence, WINDOW)
    assert predictor.predict(frames).num_frames == 3
    with pytest.raises(SyntheticFailure, match='call 1 .*frames \\[0, 4, 8\\]'):
        predictor.predict(frames)
    assert predictor.predict(frames).num_frames == 3
    with pytest.raises(RuntimeError):  # what callers catch for a crashed model
        predictor.predict(frames)
    assert (predictor.calls, predictor.failures, inner.calls) == (4, 2, 2)
    assert [(r.call, r.frame_indices, r.mode) for r in predictor.records] == [
        (1, (0, 4, 8), FaultMode.RAISE), (3, (0, 4, 8), FaultMode.RAISE)]


def test_raise_can_raise_another_exception_type(sequence: SyntheticSequence) -> None:
    predictor = FaultyPredictor(_inner(sequence), fail_on=[0], error=ConnectionError)
    with pytest.raises(ConnectionError, match='injected'):
        predictor.predict(_frames(sequence, WINDOW))


def test_a_predicate_chooses_windows_by_their_frames(sequence: SyntheticSequence) -> None:
    predictor = FaultyPredictor(_inner(sequence), lambda frames: 12 in frames, 'raise')
    predictor.predict(_frames(sequence, [0, 4, 8]))
    with pytest.raises(SyntheticFailure):
        predictor.predict(_frames(sequence, [8, 12, 16]))
    predictor.predict(_frames(sequence, [16, 20, 24]))
    assert predictor.failures == 1 and predictor.records[0].frame_indices == (8, 12, 16)


def test_garbage_gives_random_rigid_poses_and_keeps_the_depth(
        sequence: SyntheticSequence) -> None:
    frames = _frames(sequence, WINDOW)
    good = _inner(sequence).predict(frames)
    bad = FaultyPredictor(_inner(sequence), [0], FaultMode.GARBAGE).predict(frames)
    assert np.array_equal(bad.depth, good.depth)
    assert np.allclose(bad.cam_from_window[0], np.eye(4)[:3])
    rotations = bad.cam_from_window[1:, :, :3]
    assert np.allclose(rotations @ np.swapaxes(rotations, 1, 2), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(rotations), 1.0)
    assert np.all(np.isfinite(bad.cam_from_window))
    assert not np.allclose(bad.cam_from_window[1:], good.cam_from_window[1:], atol=0.1)


def test_nan_gives_an_all_nan_depth(sequence: SyntheticSequence) -> None:
    frames = _frames(sequence, WINDOW)
    good = _inner(sequence).predict(frames)
    bad = FaultyPredictor(_inner(sequence), [0], 'nan').predict(frames)
    assert bad.depth.shape == good.depth.shape and np.all(np.isnan(bad.depth))
    assert np.array_equal(bad.cam_from_window, good.cam_from_window)


def test_wrong_count_answers_one_frame_fewer(sequence: SyntheticSequence) -> None:
    predictor = FaultyPredictor(_inner(sequence), [0], 'wrong_count')
    prediction = predictor.predict(_frames(sequence, WINDOW))
    assert isinstance(prediction, WindowPrediction) and prediction.num_frames == 2
    single = FaultyPredictor(_inner(sequence), [0], 'wrong_count')
    assert single.predict(_frames(sequence, [0])).num_frames == 0


class _Echo:
    """A predictor that knows no sequence (like a remote one)."""

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        raise AssertionError('not called in these tests')


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'fail_on': [0], 'mode': 'explode'}, 'unknown fault mode'),
    ({'fail_on': [-1]}, '0-based'),
    ({'fail_on': lambda frames: True}, 'pass sequence='),
    ({'fail_on': [0], 'error': 'boom'}, 'exception type'),
])
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultyPredictor(_Echo(), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope='module')
def corridor() -> SyntheticSequence:
    # Looks repeat every 2.4 m: 80 frames of 3 cm.
    return SyntheticSequence.corridor(120, step_m=0.03, cache_renders=64)


def _distance_ratio(prediction: WindowPrediction) -> float:
    """How much farther the window's last camera is from its first than its second camera."""
    centres = [-cam[:, :3].T @ cam[:, 3] for cam in prediction.cam_from_window]
    return float(np.linalg.norm(centres[-1]) / np.linalg.norm(centres[1]))


def test_look_alikes_are_taken_for_one_place_in_loop_windows_only(
        corridor: SyntheticSequence) -> None:
    inner = SyntheticPredictor(corridor, NOISE_LEVELS['none'], model_width=56)
    predictor = FooledByLookAlikes(inner, period_frames=80)
    # A loop window: frames 10, 11, then a jump to 100, one period past frame 20.
    loop_window = _frames(corridor, [10, 11, 100])
    fooled = predictor.predict(loop_window)
    assert _distance_ratio(fooled) == pytest.approx(10.0, rel=1e-6)  # frame 20, not 100
    assert predictor.fooled == 1
    # The swap lasts one call: the frame is itself again, and regular windows are the truth.
    assert corridor.index_of(loop_window[2]) == 100
    honest = predictor.predict(_frames(corridor, [10, 11, 30]))
    assert _distance_ratio(honest) == pytest.approx(20.0, rel=1e-6)
    assert (predictor.calls, predictor.fooled) == (2, 1)


def test_look_alike_settings_are_checked(corridor: SyntheticSequence) -> None:
    inner = SyntheticPredictor(corridor, NOISE_LEVELS['none'], model_width=56)
    with pytest.raises(ValueError, match='period_frames'):
        FooledByLookAlikes(inner, period_frames=0)
