"""Known intrinsics in the engine: the model's K replaced, its focal reported, bad K skipped."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vggt_mapper.engine.calibration import check_intrinsics, with_known_intrinsics
from vggt_mapper.engine.config import MapperConfig
from vggt_mapper.engine.errors import FrameError
from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.engine.types import KeyframePose, MapperStats
from vggt_mapper.synthetic import NOISE_LEVELS, SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.evaluation import feed, map_error, trajectory_error

MODEL_WIDTH = 126
# A model that errs only in its field of view: 8 % focal error per window, nothing else.
FOCAL_ONLY = dataclasses.replace(NOISE_LEVELS['none'], focal_rel=0.08)


@pytest.fixture(scope='module')
def orbit() -> SyntheticSequence:
    return SyntheticSequence.orbit(110, step_m=0.03, cache_renders=400)


def _map(sequence: SyntheticSequence, known: bool
         ) -> tuple[float, float, MapperStats, KeyframePose]:
    predictor = SyntheticPredictor(sequence, FOCAL_ONLY, model_width=MODEL_WIDTH, seed=4,
                                   noise_per_window=True)
    with Mapper(MapperConfig(window_size=8, overlap=3), predictor) as mapper:
        feed(mapper, sequence, known_intrinsics=known)
        error = trajectory_error(mapper.trajectory(), sequence)
        surface = map_error(mapper.map_snapshot(), sequence, error.gt_from_world)
        return error.rmse_percent, surface.median_m, mapper.stats, mapper.trajectory()[-1]


def test_known_intrinsics_undo_the_models_focal_error(orbit: SyntheticSequence) -> None:
    ate_guessed, map_guessed, _, _ = _map(orbit, known=False)
    ate_known, map_known, stats, pose = _map(orbit, known=True)
    # With the true K the map is as if the model had never erred (no other error here).
    assert ate_known < 0.05 and map_known < 0.002, (ate_known, map_known)
    assert ate_guessed > 4 * ate_known and map_guessed > 4 * map_known
    assert stats.keyframes_with_intrinsics == stats.keyframes_mapped
    assert pose.intrinsics_source == 'known' and pose.intrinsics_predicted is not None


def test_the_models_focal_over_the_known_one_is_reported_per_window(
        orbit: SyntheticSequence) -> None:
    predictor = SyntheticPredictor(orbit, FOCAL_ONLY, model_width=MODEL_WIDTH, seed=4)
    factors = []
    with Mapper(MapperConfig(window_size=8, overlap=3), predictor) as mapper:
        for index in range(60):
            results = mapper.add_frame(orbit.frame(index), index * 10**8, f'f{index}',
                                       intrinsics=orbit.intrinsics)
            if results:
                assert predictor.last_errors is not None
                factors.append(float(np.median(predictor.last_errors.focal_factors)))
                assert results[-1].focal_ratio == pytest.approx(factors[-1], rel=1e-9)
        assert mapper.stats.focal_ratios == pytest.approx(factors, rel=1e-9)
    assert len(factors) >= 2 and max(abs(np.log(factors))) > 0.01


def test_frames_without_a_known_k_keep_the_models() -> None:
    sequence = SyntheticSequence.orbit(3, height=60, width=80)
    prediction = SyntheticPredictor(sequence, FOCAL_ONLY, model_width=56).predict(
        [sequence.frame(i) for i in range(3)])
    replaced, ratios = with_known_intrinsics(prediction, [sequence.intrinsics, None, None])
    k_model = prediction.mappings[0].model_from_original @ sequence.intrinsics
    np.testing.assert_allclose(replaced.intrinsics[0], k_model)
    np.testing.assert_array_equal(replaced.intrinsics[1:], prediction.intrinsics[1:])
    assert np.isfinite(ratios[0]) and np.isnan(ratios[1:]).all()


@pytest.mark.parametrize('intrinsics, message', [
    (np.eye(2), 'finite 3x3'),
    ([[100.0, 0, 40], [0, -100, 30], [0, 0, 1]], 'positive focal'),
    ([[100.0, 0, 40], [0, 100, 30], [0, 1, 1]], 'pinhole K'),
    ([[100.0, 0, 400], [0, 100, 30], [0, 0, 1]], 'far outside the 80x60 image'),
])
def test_unusable_intrinsics_are_refused(intrinsics: object, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        check_intrinsics(intrinsics, (60, 80))


def test_a_frame_with_unusable_intrinsics_or_odometry_is_skipped_and_counted() -> None:
    sequence = SyntheticSequence.orbit(2, height=60, width=80)
    with Mapper(MapperConfig(window_size=4, overlap=2), SyntheticPredictor(
            sequence, model_width=56)) as mapper:
        mapper.add_frame(sequence.frame(0), 1, intrinsics=np.full((3, 3), np.nan))
        skewed = np.eye(4)
        skewed[0, 1] = 0.5
        mapper.add_frame(sequence.frame(1), 2, odom_from_camera=skewed)
        assert mapper.stats.frames_skipped == 2 and mapper.stats.keyframes == 0
