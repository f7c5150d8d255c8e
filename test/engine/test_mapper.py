"""End-to-end tests of the Mapper on the synthetic room: accuracy, windows, bad input, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_mapper.engine import Mapper, MapperConfig, WindowResult
from vggt_mapper.engine import mapper as mapper_module
from vggt_mapper.engine.alignment import AlignmentReport
from vggt_mapper.engine.config import KeyframeConfig, MapConfig, StoreConfig
from vggt_mapper.engine.keyframe_store import POINT_BYTES
from vggt_mapper.geometry.sim3 import Sim3
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


def test_config_scale_scales_the_world(sequence: SyntheticSequence) -> None:
    positions = []
    for scale in (1.0, 2.5):
        predictor = SyntheticPredictor(sequence, NOISE_LEVELS['none'], model_width=MODEL_WIDTH)
        mapper = Mapper(_config(scale=scale), predictor)
        feed(mapper, sequence, stop=40)
        positions.append(np.stack([p.position_world for p in mapper.trajectory()]))
    assert np.allclose(positions[1], 2.5 * positions[0], atol=1e-6)


def test_memory_stays_bounded_on_a_long_run() -> None:
    sequence = SyntheticSequence.orbit(700, step_m=0.06, height=60, width=80)
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=70)
    config = _config(keyframes=KeyframeConfig(min_parallax_px=6.0),
                     map=MapConfig(voxel_size=0.005, max_points=3000),
                     store=StoreConfig(points_per_keyframe=500, hot_keyframes=4))
    mapper = Mapper(config, predictor)
    peak_points = peak_pending = peak_hot = 0
    for index in range(len(sequence)):
        feed(mapper, sequence, start=index, stop=index + 1, flush=False)
        stats = mapper.stats
        peak_points = max(peak_points, stats.map_points)
        peak_pending = max(peak_pending, stats.pending_keyframes)
        peak_hot = max(peak_hot, stats.store_memory_bytes)
    stats = mapper.stats
    assert stats.keyframes > 60
    assert peak_points <= 3000  # the fused map is capped
    assert peak_pending <= 8
    # RAM holds at most 4 clouds; every keyframe's cloud is on disk.
    assert peak_hot <= 4 * 500 * POINT_BYTES
    assert stats.store_bytes > stats.keyframes_mapped * 100 * POINT_BYTES
    mapper.close()


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


def test_returned_poses_are_copies(mapped: tuple[Mapper, list[WindowResult]]) -> None:
    mapper, _ = mapped
    pose = mapper.trajectory()[3]
    pose.world_from_cam[:3, 3] += 100.0
    pose.intrinsics[0, 0] = -1.0
    again = mapper.trajectory()[3]
    assert np.all(np.abs(again.world_from_cam[:3, 3]) < 50.0)
    assert again.intrinsics[0, 0] > 0
