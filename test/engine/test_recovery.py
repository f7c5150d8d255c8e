"""
Refused windows keep their keyframes: bridges, new segments, and what is given up, counted.

The predictor stand-ins below fail the way models and their servers do: one bad answer, a crash,
a camera that jumps (no window spanning the jump can be aligned), a frame no window can use, a
server that is gone for good.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses

import numpy as np
from numpy.typing import NDArray
import pytest

from vggt_mapper.engine import Mapper, MapperConfig, WindowResult
from vggt_mapper.engine.config import KeyframeConfig, LoopConfig, RecoveryConfig
from vggt_mapper.engine.errors import PredictorFailedError
from vggt_mapper.engine.keyframes import KeyframeSelector
from vggt_mapper.predictor.base import WindowPrediction
from vggt_mapper.synthetic import NOISE_LEVELS, SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.evaluation import feed, trajectory_error

MODEL_WIDTH = 126


def _config(**kwargs: object) -> MapperConfig:
    values: dict[str, object] = {'window_size': 8, 'overlap': 3,
                                 'loops': LoopConfig(enabled=False)}
    values.update(kwargs)
    return MapperConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope='module')
def sequence() -> SyntheticSequence:
    return SyntheticSequence.orbit(160, step_m=0.03, cache_renders=400)


class Sabotaged:
    """Answers like ``inner`` except where ``fault(call, frame_indices)`` returns a failure."""

    def __init__(self, sequence: SyntheticSequence,
                 fault: Callable[[int, list[int]], str | None]) -> None:
        self.inner = SyntheticPredictor(sequence, NOISE_LEVELS['default'],
                                        model_width=MODEL_WIDTH)
        self.sequence = sequence
        self.fault = fault
        self.calls = 0

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        call = self.calls
        self.calls += 1
        indices = [self.sequence.index_of(frame) for frame in frames_rgb]
        failure = self.fault(call, indices)
        if failure == 'raise':
            raise RuntimeError('CUDA out of memory (simulated)')
        prediction = self.inner.predict(frames_rgb)
        if failure == 'scramble':
            rng = np.random.default_rng(call)
            depth = rng.permutation(prediction.depth.ravel()).reshape(prediction.depth.shape)
            return dataclasses.replace(prediction, depth=depth)
        if failure is not None and failure.startswith('scramble frame '):
            slot = indices.index(int(failure.split()[-1]))
            depth = prediction.depth.copy()
            rng = np.random.default_rng(call)
            depth[slot] = rng.permutation(depth[slot].ravel()).reshape(depth[slot].shape)
            return dataclasses.replace(prediction, depth=depth)
        if failure == 'nan':
            return dataclasses.replace(prediction,
                                       depth=np.full_like(prediction.depth, np.nan))
        if failure == 'shear':
            cams = prediction.cam_from_window.copy()
            cams[:, 0, 1] += 0.5
            return dataclasses.replace(prediction, cam_from_window=cams)
        return prediction


def _mapped(mapper: Mapper) -> set[int]:
    return {pose.index for pose in mapper.trajectory()}


def test_a_refused_window_is_bridged_and_keeps_its_keyframes(
        sequence: SyntheticSequence) -> None:
    predictor = Sabotaged(sequence, lambda call, _: 'scramble' if call == 2 else None)
    mapper = Mapper(_config(), predictor)
    results = feed(mapper, sequence)
    bridged = [r for r in results if r.status == 'bridged']
    assert len(bridged) == 1 and bridged[0].attempts == 2
    assert bridged[0].refusals[0].startswith('prediction:consistency')
    # The bridge mapped fewer keyframes, the rest went into the next window: none lost.
    assert len(_mapped(mapper)) == mapper.stats.keyframes
    assert mapper.stats.keyframes_lost == 0 and mapper.stats.segments == 1
    assert mapper.stats.refusals == {'prediction:consistency': 1}
    assert trajectory_error(mapper.trajectory(), sequence).rmse_percent < 0.5


def test_a_crashed_predictor_call_refuses_the_window_not_the_run(
        sequence: SyntheticSequence) -> None:
    predictor = Sabotaged(sequence, lambda call, _: 'raise' if call == 1 else None)
    mapper = Mapper(_config(), predictor)
    results = feed(mapper, sequence)
    assert results[1].status == 'bridged'
    assert 'CUDA out of memory' in results[1].refusals[0]
    assert mapper.stats.refusals == {'predictor:error': 1}
    assert len(_mapped(mapper)) == mapper.stats.keyframes


def test_a_camera_jump_starts_a_new_segment(sequence: SyntheticSequence) -> None:
    # No window that holds frames on both sides of frame 80 can be predicted consistently.
    def jump(_call: int, indices: list[int]) -> str | None:
        return 'scramble' if min(indices) < 80 <= max(indices) else None

    mapper = Mapper(_config(), Sabotaged(sequence, jump))
    results = feed(mapper, sequence)
    assert [r.status for r in results].count('new_segment') == 1
    poses = mapper.trajectory()
    assert len(poses) == mapper.stats.keyframes  # every keyframe mapped
    first_of_new = min(p.index for p in poses if p.segment == 1)
    assert all((p.segment == 1) == (p.index >= first_of_new) for p in poses)
    assert mapper.stats.segments == 2 and mapper.stats.segments_started == 2
    snapshot = mapper.map_snapshot()
    assert set(np.unique(snapshot.segments)) == {0, 1}
    # Each segment on its own is accurate (its own frame and scale).
    for segment in (0, 1):
        part = [p for p in poses if p.segment == segment]
        assert trajectory_error(part, sequence).rmse_percent < 0.5


def test_a_frame_no_window_can_use_is_given_up_and_counted(
        sequence: SyntheticSequence) -> None:
    # The model gets one keyframe wrong whatever window it is in (a blurred frame, say).
    selector = KeyframeSelector(KeyframeConfig())
    keyframes = [i for i in range(len(sequence)) if selector.offer(sequence.frame(i)).is_keyframe]
    bad = keyframes[len(keyframes) // 2]

    def poisoned(_call: int, indices: list[int]) -> str | None:
        return f'scramble frame {bad}' if bad in indices else None

    mapper = Mapper(_config(), Sabotaged(sequence, poisoned))
    results = feed(mapper, sequence)
    lost = [k for r in results for k in r.lost_keyframes]
    assert mapper.stats.keyframes_lost == len(lost) >= 1
    assert len(_mapped(mapper)) + len(lost) == mapper.stats.keyframes
    assert len(lost) <= 2  # only the poisoned keyframe (and a bridge partner at worst)


def test_without_recovery_refused_keyframes_are_lost(sequence: SyntheticSequence) -> None:
    # The old behaviour, kept as an option for comparison: the refused window's keyframes are
    # dropped and the next window re-anchors on the last good keyframes.
    predictor = Sabotaged(sequence, lambda call, _: 'scramble' if call == 2 else None)
    mapper = Mapper(_config(recovery=RecoveryConfig(enabled=False)), predictor)
    results = feed(mapper, sequence)
    refused = [r for r in results if r.status == 'refused']
    assert refused and refused[0].attempts == 1
    assert mapper.stats.keyframes_lost == sum(len(r.lost_keyframes) for r in refused) >= 5
    assert len(_mapped(mapper)) == mapper.stats.keyframes - mapper.stats.keyframes_lost


def test_a_first_window_without_usable_depth_is_refused_and_mapping_starts_after_it(
        sequence: SyntheticSequence) -> None:
    predictor = Sabotaged(sequence, lambda _call, indices: 'nan' if 0 in indices else None)
    mapper = Mapper(_config(), predictor)
    results = feed(mapper, sequence)
    assert results[0].status == 'refused' and 'depth' in results[0].reason
    assert 0 in results[0].lost_keyframes
    assert mapper.map_snapshot().num_points > 1000
    assert min(_mapped(mapper)) > 0
    assert all(r.status in ('accepted', 'bridged') for r in results[1:])


def test_a_predictor_that_always_fails_stops_the_run_with_the_map_kept(
        sequence: SyntheticSequence) -> None:
    predictor = Sabotaged(sequence, lambda call, _: 'raise' if call >= 3 else None)
    mapper = Mapper(_config(recovery=RecoveryConfig(max_failed_windows=2)), predictor)
    with pytest.raises(PredictorFailedError, match='every attempt at 2 windows in a row'):
        feed(mapper, sequence)
    kept = mapper.trajectory()
    assert len(kept) >= 8 and mapper.map_snapshot().num_points > 0


def test_malformed_answers_are_refused(sequence: SyntheticSequence) -> None:
    # Answers, but wrong ones: refused window after window, never taken for a dead model.
    mapper = Mapper(_config(), Sabotaged(sequence, lambda *_: 'shear'))
    results: list[WindowResult] = feed(mapper, sequence, stop=60)
    assert results and all(r.status == 'refused' for r in results)
    assert 'not rotations' in results[0].reason
    assert mapper.trajectory() == [] and mapper.stats.keyframes_lost == mapper.stats.keyframes
    assert set(mapper.stats.refusals) == {'prediction:poses'}


def test_the_frame_check_takes_a_window_in_any_order(sequence: SyntheticSequence) -> None:
    # A photo set in one pass: the second photo sees nothing of the first, but of those after it.
    order = [0, 80, 2, 82, 4, 84]
    photos = KeyframeConfig(min_parallax_px=0.0, duplicate_px=0.0, min_gap=1, max_gap=1)
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=MODEL_WIDTH)
    with Mapper(_config(window_size=6, overlap=2, keyframes=photos), predictor) as mapper:
        results = [result for stamp, index in enumerate(order, start=1)
                   for result in mapper.add_frame(sequence.frame(index), stamp)]
        [window] = results + mapper.flush()
        assert window.accepted and window.attempts == 1
        assert mapper.stats.keyframes_mapped == len(order)
