"""End-to-end tests of the Mapper on the synthetic room: accuracy, windows, refusals, bounds."""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses

import numpy as np
from numpy.typing import NDArray
import pytest

from vggt_mapper.engine import Mapper, MapperConfig, WindowResult
from vggt_mapper.engine import mapper as mapper_module
from vggt_mapper.engine.alignment import AlignmentReport
from vggt_mapper.engine.config import KeyframeConfig, MapConfig
from vggt_mapper.geometry.sim3 import Sim3
from vggt_mapper.predictor.base import WindowPrediction
from vggt_mapper.synthetic import NOISE_LEVELS, SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.evaluation import feed, map_error, trajectory_error

# Thresholds: the mapper reaches ~0.15 % / ~2 cm here; a broken alignment is far above.
MAX_ATE_PERCENT = 0.5
MAX_MAP_MEDIAN_M = 0.03
MODEL_WIDTH = 126


def _config(**kwargs: object) -> MapperConfig:
    values: dict[str, object] = {'window_size': 8, 'overlap': 3}
    values.update(kwargs)
    return MapperConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope='module')
def sequence() -> SyntheticSequence:
    return SyntheticSequence.orbit(160, step_m=0.03, cache_renders=400)


@pytest.fixture(scope='module')
def mapped(sequence: SyntheticSequence) -> tuple[Mapper, list[WindowResult]]:
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=MODEL_WIDTH)
    mapper = Mapper(_config(), predictor)
    return mapper, feed(mapper, sequence)


def test_trajectory_and_map_are_accurate(sequence: SyntheticSequence,
                                         mapped: tuple[Mapper, list[WindowResult]]) -> None:
    mapper, results = mapped
    assert all(result.accepted for result in results)
    error = trajectory_error(mapper.trajectory(), sequence)
    assert error.num_poses == mapper.stats.keyframes >= 20
    assert error.rmse_percent < MAX_ATE_PERCENT
    surface = map_error(mapper.map_snapshot(), sequence, error.gt_from_world)
    assert surface.median_m < MAX_MAP_MEDIAN_M


def test_identity_alignment_breaks_the_thresholds(sequence: SyntheticSequence,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The accuracy test must be able to fail: chain windows with identity instead of Sim(3).
    def identity_alignment(*_args: object, **_kwargs: object) -> AlignmentReport:
        return AlignmentReport(Sim3.identity(), 0, 0.0, 1.0, 0.0, 0.0)

    monkeypatch.setattr(mapper_module, 'align_window', identity_alignment)
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=MODEL_WIDTH)
    mapper = Mapper(_config(), predictor)
    feed(mapper, sequence)
    error = trajectory_error(mapper.trajectory(), sequence)
    assert error.rmse_percent > MAX_ATE_PERCENT
    surface = map_error(mapper.map_snapshot(), sequence, error.gt_from_world)
    assert surface.median_m > MAX_MAP_MEDIAN_M


def test_windows_overlap_by_the_configured_keyframes(
        mapped: tuple[Mapper, list[WindowResult]]) -> None:
    mapper, results = mapped
    first = results[0]
    assert first.keyframe_indices == tuple(range(8))
    assert [pose.index for pose in first.poses] == list(range(8))
    for previous, current in zip(results, results[1:], strict=False):
        assert current.keyframe_indices[:3] == previous.keyframe_indices[-3:]
        assert len(current.keyframe_indices) <= 8
        # Only the new keyframes get (new) poses; the anchors keep theirs.
        assert [p.index for p in current.poses] == list(current.keyframe_indices[3:])
    assert results[-1].keyframe_indices[-1] == mapper.stats.keyframes - 1
    assert [pose.index for pose in mapper.trajectory()] == list(range(mapper.stats.keyframes))
    assert mapper.stats.pending_keyframes == 0
    assert mapper.stats.windows_done == len(results)


def test_window_results_carry_points_and_intrinsics(
        mapped: tuple[Mapper, list[WindowResult]]) -> None:
    mapper, results = mapped
    result = results[1]
    assert result.points_world.dtype == np.float32 and result.points_world.shape[1] == 3
    assert result.colors_rgb.shape == result.points_world.shape
    assert result.colors_rgb.dtype == np.uint8
    assert result.predict_s > 0 and result.align_s > 0
    pose = result.poses[0]
    assert pose.model_hw == (98, 126) and pose.original_hw == (120, 160)
    assert np.allclose(pose.intrinsics_original[0, 0] * 126 / 160, pose.intrinsics[0, 0])
    snapshot = mapper.map_snapshot()
    assert snapshot.num_points == mapper.stats.map_points > 1000
    snapshot.points_world[:] = 0  # a copy: the map is not touched
    assert np.any(mapper.map_snapshot().points_world != 0)


class CorruptingPredictor:
    """Scrambles the depth of chosen calls, as a model failure would."""

    def __init__(self, inner: SyntheticPredictor, bad_calls: set[int]) -> None:
        self.inner = inner
        self.bad_calls = bad_calls
        self.calls = 0

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        prediction = self.inner.predict(frames_rgb)
        self.calls += 1
        if self.calls - 1 not in self.bad_calls:
            return prediction
        rng = np.random.default_rng(self.calls)
        depth = rng.permutation(prediction.depth.ravel()).reshape(prediction.depth.shape)
        return dataclasses.replace(prediction, depth=depth)


def test_refused_window_leaves_the_map_unchanged_and_mapping_continues(
        sequence: SyntheticSequence) -> None:
    inner = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=MODEL_WIDTH)
    mapper = Mapper(_config(), CorruptingPredictor(inner, bad_calls={2}))
    results = feed(mapper, sequence, stop=60, flush=False)
    accepted_before = [r for r in results if r.accepted]
    snapshot_before = mapper.map_snapshot()
    trajectory_before = mapper.trajectory()
    more: list[WindowResult] = []
    index = 60
    while not any(not r.accepted for r in more):
        more += feed(mapper, sequence, start=index, stop=index + 1, flush=False)
        index += 1
    refused = more[-1]
    assert not refused.accepted and refused.reason
    assert refused.points_world.shape == (0, 3) and refused.poses == ()
    assert mapper.stats.windows_rejected == 1
    snapshot_after = mapper.map_snapshot()
    assert np.array_equal(snapshot_after.points_world, snapshot_before.points_world)
    assert [p.index for p in mapper.trajectory()] == [p.index for p in trajectory_before]
    # The next window re-anchors on the last good keyframes, not on the refused ones.
    rest = feed(mapper, sequence, start=index)
    assert all(r.accepted for r in rest)
    assert rest[0].keyframe_indices[:3] == refused.keyframe_indices[:3]
    assert rest[0].keyframe_indices[:3] == accepted_before[-1].keyframe_indices[-3:]
    dropped = set(refused.keyframe_indices[3:])
    mapped_indices = {p.index for p in mapper.trajectory()}
    assert not dropped & mapped_indices
    error = trajectory_error(mapper.trajectory(), sequence)
    assert error.rmse_percent < MAX_ATE_PERCENT


def test_config_scale_scales_the_world(sequence: SyntheticSequence) -> None:
    positions = []
    for scale in (1.0, 2.5):
        predictor = SyntheticPredictor(sequence, NOISE_LEVELS['none'], model_width=MODEL_WIDTH)
        mapper = Mapper(_config(scale=scale), predictor)
        feed(mapper, sequence, stop=40)
        positions.append(np.stack([p.position_world for p in mapper.trajectory()]))
    assert np.allclose(positions[1], 2.5 * positions[0], atol=1e-6)


def test_map_memory_stays_bounded_on_a_long_run() -> None:
    sequence = SyntheticSequence.orbit(700, step_m=0.06, height=60, width=80)
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=70)
    config = _config(keyframes=KeyframeConfig(min_parallax_px=6.0),
                     map=MapConfig(voxel_size=0.005, max_points=3000, active_keyframes=4))
    mapper = Mapper(config, predictor)
    peak_points = 0
    peak_pending = 0
    for index in range(len(sequence)):
        feed(mapper, sequence, start=index, stop=index + 1, flush=False)
        peak_points = max(peak_points, mapper.stats.map_points)
        peak_pending = max(peak_pending, mapper.stats.pending_keyframes)
    assert mapper.stats.keyframes > 60
    assert peak_points <= 3000
    assert peak_pending <= 8
    assert len(mapper.point_map.active_keyframes()) == 4
    assert mapper.point_map.voxel_size > 0.005


@pytest.mark.parametrize('bad', [
    np.zeros((120, 160, 3), np.float32),
    np.zeros((120, 160), np.uint8),
    np.zeros((120, 160, 4), np.uint8),
    np.zeros((0, 160, 3), np.uint8),
    np.zeros((60, 80, 3), np.uint8),
    'not an image',
])
def test_bad_frames_are_counted_not_raised(sequence: SyntheticSequence, bad: object) -> None:
    mapper = Mapper(_config(), SyntheticPredictor(sequence, model_width=MODEL_WIDTH))
    assert mapper.add_frame(sequence.frame(0), 0, 'f00000') == []
    assert mapper.add_frame(bad, 10, 'bad') == []  # type: ignore[arg-type]
    assert mapper.stats.frames_skipped == 1
    assert mapper.stats.frames_seen == 2


def test_bad_stamps_are_counted_not_raised(sequence: SyntheticSequence) -> None:
    mapper = Mapper(_config(), SyntheticPredictor(sequence, model_width=MODEL_WIDTH))
    mapper.add_frame(sequence.frame(0), 100)
    mapper.add_frame(sequence.frame(1), 100)  # not after the previous one
    mapper.add_frame(sequence.frame(2), 1.5)  # type: ignore[arg-type]
    assert mapper.stats.frames_skipped == 2


def test_flush_maps_a_partial_first_window_and_reset_forgets(
        sequence: SyntheticSequence) -> None:
    mapper = Mapper(_config(), SyntheticPredictor(sequence, model_width=MODEL_WIDTH))
    assert feed(mapper, sequence, stop=12, flush=False) == []
    pending = mapper.stats.pending_keyframes
    assert 2 <= pending < 8
    results = mapper.flush()
    assert len(results) == 1 and results[0].accepted
    assert len(mapper.trajectory()) == pending
    assert mapper.flush() == []
    mapper.reset()
    assert mapper.trajectory() == [] and mapper.map_snapshot().num_points == 0
    stats = mapper.stats
    assert (stats.frames_seen, stats.keyframes, stats.windows_done, stats.map_points) == (
        0, 0, 0, 0)


class FailingPredictor:
    """Raises on chosen calls (a crashed remote model), else answers like ``inner``."""

    def __init__(self, inner: SyntheticPredictor, bad_calls: set[int]) -> None:
        self.inner = inner
        self.bad_calls = bad_calls
        self.calls = 0

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        self.calls += 1
        if self.calls - 1 in self.bad_calls:
            raise RuntimeError('model crashed')
        return self.inner.predict(frames_rgb)


def test_predictor_failure_propagates_and_the_next_window_recovers(
        sequence: SyntheticSequence) -> None:
    inner = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=MODEL_WIDTH)
    mapper = Mapper(_config(), FailingPredictor(inner, bad_calls={1}))
    with pytest.raises(RuntimeError, match='model crashed'):
        feed(mapper, sequence, stop=80, flush=False)
    assert mapper.stats.windows_done == 1 and mapper.stats.pending_keyframes == 0
    anchors = [pose.index for pose in mapper.trajectory()][-3:]
    stopped = mapper.stats.frames_seen
    results = feed(mapper, sequence, start=stopped, stop=stopped + 30)
    assert results[0].accepted and list(results[0].keyframe_indices[:3]) == anchors


def test_non_rigid_predicted_rotations_are_refused(sequence: SyntheticSequence) -> None:
    class Shearing(CorruptingPredictor):
        def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
            prediction = self.inner.predict(frames_rgb)
            cams = prediction.cam_from_window.copy()
            cams[:, 0, 1] += 0.5
            return dataclasses.replace(prediction, cam_from_window=cams)

    inner = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=MODEL_WIDTH)
    mapper = Mapper(_config(), Shearing(inner, set()))
    results = feed(mapper, sequence, stop=50)
    assert results and not any(result.accepted for result in results)
    assert 'not rotations' in results[0].reason
    assert mapper.map_snapshot().num_points == 0 and mapper.trajectory() == []


def test_returned_poses_are_copies(mapped: tuple[Mapper, list[WindowResult]]) -> None:
    mapper, _ = mapped
    pose = mapper.trajectory()[3]
    pose.world_from_cam[:3, 3] += 100.0
    pose.intrinsics[0, 0] = -1.0
    again = mapper.trajectory()[3]
    assert np.all(np.abs(again.world_from_cam[:3, 3]) < 50.0)
    assert again.intrinsics[0, 0] > 0
