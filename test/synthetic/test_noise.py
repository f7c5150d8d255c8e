"""
The synthetic predictor's systematic errors: each does what its ``PredictionNoise`` line says.

Every test switches one term on over the noise-free preset and measures its effect on predicted
windows against the ground truth (``prediction_error.window_error``). Seeds are pinned.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vggt_mapper.geometry import depth_to_points_cam
from vggt_mapper.synthetic import (
    NOISE_LEVELS,
    NOISE_SEVERITY_ORDER,
    PredictionNoise,
    SyntheticPredictor,
    SyntheticSequence,
)
from vggt_mapper.synthetic.prediction_error import (
    orbit_windows,
    summarise_noise,
    window_error,
    WindowError,
)

NONE = NOISE_LEVELS['none']
WINDOW = [0, 5, 10, 15, 20]


@pytest.fixture(scope='module')
def orbit() -> SyntheticSequence:
    return SyntheticSequence.orbit(240, step_m=0.02, cache_renders=512)


def _predict(predictor: SyntheticPredictor, window: list[int]) -> WindowError:
    sequence = predictor.sequence
    prediction = predictor.predict([sequence.frame(i) for i in window])
    return window_error(prediction, sequence, window)


def test_focal_error_is_one_factor_per_window(orbit: SyntheticSequence) -> None:
    predictor = SyntheticPredictor(orbit, dataclasses.replace(NONE, focal_rel=0.05),
                                   model_width=56, seed=1)
    per_window = []
    for _ in range(6):
        prediction = predictor.predict([orbit.frame(i) for i in WINDOW])
        errors = window_error(prediction, orbit, WINDOW)
        ratios = [frame.focal_ratio for frame in errors.frames]
        assert np.ptp(ratios) < 1e-12  # shared inside the window
        true_k = prediction.mappings[0].model_from_original @ orbit.intrinsics
        assert np.allclose(prediction.intrinsics[:, 1, 1] / true_k[1, 1], ratios)
        assert np.allclose(prediction.intrinsics[:, :2, 2], true_k[:2, 2])
        # Depth and poses stay exact: the error is in K alone.
        assert max(f.depth_abs_rel for f in errors.frames) < 1e-6
        assert max(f.rotation_deg for f in errors.frames) < 1e-6
        per_window.append(ratios[0])
    # A different factor for every window, spread like the level asks.
    assert len(set(per_window)) == len(per_window)
    assert 0.02 < np.std(np.log(per_window)) < 0.1


def test_focal_error_distorts_back_projected_geometry_laterally(
        orbit: SyntheticSequence) -> None:
    predictor = SyntheticPredictor(orbit, dataclasses.replace(NONE, focal_rel=0.05),
                                   model_width=56, seed=2)
    prediction = predictor.predict([orbit.frame(0)])
    truth = prediction.mappings[0].model_from_original @ orbit.intrinsics
    factor = prediction.intrinsics[0, 0, 0] / truth[0, 0]
    assert abs(factor - 1.0) > 0.01
    predicted = depth_to_points_cam(prediction.depth[0], prediction.intrinsics[0])
    exact = depth_to_points_cam(prediction.depth[0], truth)
    assert np.allclose(predicted[..., 2], exact[..., 2])
    off_axis = np.abs(exact[..., 0]) > 1e-3
    assert np.allclose(predicted[..., 0][off_axis] / exact[..., 0][off_axis], 1.0 / factor)


def test_focal_jitter_differs_between_frames_of_a_window(orbit: SyntheticSequence) -> None:
    noise = dataclasses.replace(NONE, focal_rel=0.05, focal_jitter_rel=0.01)
    errors = _predict(SyntheticPredictor(orbit, noise, model_width=56, seed=1), WINDOW)
    ratios = np.log([frame.focal_ratio for frame in errors.frames])
    assert 0.002 < np.std(ratios) < 0.03


def _log_depth_fit(predictor: SyntheticPredictor, window: list[int]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Fit log(pred) = slope·log(true) + a·u_n + b·v_n + c per frame; return slopes, tilts."""
    sequence = predictor.sequence
    prediction = predictor.predict([sequence.frame(i) for i in window])
    height, width = prediction.model_hw
    v_n, u_n = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing='ij')
    slopes, tilts = [], []
    for slot, index in enumerate(window):
        truth = sequence.render(index, prediction.mappings[slot].model_from_original
                                @ sequence.intrinsics, height, width)[1]
        design = np.stack([np.log(truth).ravel(), u_n.ravel(), v_n.ravel(),
                           np.ones(truth.size)], axis=1)
        coef, *_ = np.linalg.lstsq(design, np.log(prediction.depth[slot]).ravel(), rcond=None)
        slopes.append(coef[0])
        tilts.append(coef[1:3])
    return np.array(slopes), np.array(tilts)


def test_depth_warp_is_not_a_scale_and_is_shared_by_a_window(orbit: SyntheticSequence) -> None:
    predictor = SyntheticPredictor(orbit, dataclasses.replace(NONE, depth_gamma=0.1),
                                   model_width=56, seed=3)
    gammas = []
    for _ in range(5):
        slopes, tilts = _log_depth_fit(predictor, WINDOW)
        errors = predictor.last_errors
        assert errors is not None
        # The ratio to the truth follows depth as d^γ: the same γ for every frame.
        assert np.allclose(slopes, 1.0 + errors.depth_gamma, atol=1e-4)
        assert np.allclose(tilts, 0.0, atol=1e-4)
        gammas.append(slopes[0] - 1.0)
    assert len(set(np.round(gammas, 6))) == len(gammas)
    assert max(abs(g) for g in gammas) > 0.05


def test_depth_tilt_is_a_smooth_image_space_warp_shared_by_a_window(
        orbit: SyntheticSequence) -> None:
    predictor = SyntheticPredictor(orbit, dataclasses.replace(NONE, depth_tilt=0.05),
                                   model_width=56, seed=4)
    slopes, tilts = _log_depth_fit(predictor, WINDOW)
    errors = predictor.last_errors
    assert errors is not None
    assert np.allclose(slopes, 1.0, atol=1e-4)
    assert np.allclose(tilts, np.array(errors.depth_tilt_uv)[None], atol=1e-4)
    assert np.max(np.abs(tilts)) > 0.01


def _rotation_errors(noise: PredictionNoise, windows: int, size: int, seed: int = 5
                     ) -> np.ndarray:
    sequence = SyntheticSequence.orbit(5 * size, cache_renders=2 * size)
    predictor = SyntheticPredictor(sequence, noise, model_width=28, seed=seed)
    window = list(range(0, 5 * size, 5))
    return np.array([[frame.rotation_deg for frame in _predict(predictor, window).frames]
                     for _ in range(windows)])


def test_random_walk_pose_error_grows_along_the_window() -> None:
    walk = _rotation_errors(dataclasses.replace(NONE, walk_rot_deg=0.5), windows=40, size=9)
    rms = np.sqrt(np.mean(walk ** 2, axis=0))
    assert rms[0] == 0.0
    # A random walk: the error of frame k is a sum of k increments, its RMS grows like √k.
    assert rms[8] > 2.0 * rms[1]
    assert np.all(np.diff(rms[1:]) > -0.25 * rms[1])
    # Independent per-frame noise of the same size does not grow.
    independent = _rotation_errors(dataclasses.replace(NONE, rot_deg=0.5), windows=40, size=9)
    flat = np.sqrt(np.mean(independent ** 2, axis=0))
    assert flat[8] < 1.5 * flat[1]


def test_random_walk_moves_camera_centres_more_towards_the_window_end(
        orbit: SyntheticSequence) -> None:
    predictor = SyntheticPredictor(orbit, dataclasses.replace(NONE, walk_trans_m=0.01),
                                   model_width=28, seed=6)
    window = list(range(0, 45, 5))
    centre = np.array([[frame.center_error_rel for frame in _predict(predictor, window).frames]
                       for _ in range(40)])
    rms = np.sqrt(np.mean(centre ** 2, axis=0))
    assert rms[0] == 0.0 and rms[-1] > 2.0 * rms[1]


def test_frames_that_do_not_overlap_the_window_start_get_wild_poses(
        orbit: SyntheticSequence) -> None:
    window = [0, 5, 10, 15, 200, 205]
    covisibility = orbit.covisibility_matrix(window)
    assert covisibility[:4, 4:].max() < 0.05 and covisibility[4:, :4].max() < 0.05
    assert covisibility[4, 5] > 0.5
    noise = dataclasses.replace(NONE, overlap_min=0.1)
    predictor = SyntheticPredictor(orbit, noise, model_width=56, seed=7)
    prediction = predictor.predict([orbit.frame(i) for i in window])
    errors = window_error(prediction, orbit, window)
    assert predictor.last_errors is not None
    assert predictor.last_errors.overlap_failed_slots == (4, 5)
    assert all(frame.rotation_deg < 1e-6 and frame.center_error_rel < 1e-6
               for frame in errors.frames[:4])
    assert all(frame.rotation_deg >= 45.0 and frame.wrong_pose for frame in errors.frames[4:])
    # The two far frames fail together: their pose relative to each other is still right.
    cams = np.concatenate([prediction.cam_from_window, np.tile([[[0, 0, 0, 1.0]]], (6, 1, 1))],
                          axis=1)
    predicted = cams[5] @ np.linalg.inv(cams[4])
    true = np.linalg.inv(orbit.poses_world_from_cam[205]) @ orbit.poses_world_from_cam[200]
    assert np.allclose(predicted[:3, :3], true[:3, :3], atol=1e-9)
    assert np.allclose(predicted[:3, 3] / errors.depth_scale, true[:3, 3], atol=1e-6)
    # Without the term the same window is exact: the geometry alone does not fail.
    exact = SyntheticPredictor(orbit, NONE, model_width=56, seed=7)
    assert not any(frame.wrong_pose for frame in _predict(exact, window).frames)


def test_a_chain_of_overlapping_frames_does_not_fail(orbit: SyntheticSequence) -> None:
    window = list(range(0, 80, 5))  # first and last share nothing, neighbours much
    assert orbit.covisibility(0, window[-1]) < 0.05
    predictor = SyntheticPredictor(orbit, dataclasses.replace(NONE, overlap_min=0.25),
                                   model_width=28, seed=8)
    errors = _predict(predictor, window)
    assert not any(frame.wrong_pose for frame in errors.frames)


def _collapsed(errors: WindowError, depth: np.ndarray) -> list[int]:
    return [slot for slot, frame in enumerate(errors.frames)
            if np.ptp(depth[slot]) == 0 or frame.depth_abs_rel > 0.3]


def test_wrong_frames_and_collapsed_depth_come_at_their_rates() -> None:
    sequence = SyntheticSequence.orbit(12, cache_renders=16)
    window = [0, 5, 10]
    noise = dataclasses.replace(NONE, wrong_rotation_prob=0.3, wrong_rotation_deg=30.0,
                                collapse_prob=0.2)
    predictor = SyntheticPredictor(sequence, noise, model_width=28, seed=9)
    num = 300
    wrong_windows = collapsed_windows = flat = 0
    for _ in range(num):
        prediction = predictor.predict([sequence.frame(i) for i in window])
        errors = window_error(prediction, sequence, window)
        wrong = [slot for slot, frame in enumerate(errors.frames) if frame.wrong_pose]
        assert len(wrong) <= 1 and 0 not in wrong
        if wrong:
            assert errors.frames[wrong[0]].rotation_deg == pytest.approx(30.0, abs=1e-6)
            assert errors.frames[wrong[0]].center_error_rel < 1e-6
            wrong_windows += 1
        collapsed = _collapsed(errors, prediction.depth)
        assert len(collapsed) <= 1
        collapsed_windows += bool(collapsed)
        flat += bool(collapsed) and np.ptp(prediction.depth[collapsed[0]]) == 0
    # Binomial counts within 4 standard deviations of their means.
    for count, prob in ((wrong_windows, 0.3), (collapsed_windows, 0.2)):
        assert abs(count - num * prob) < 4 * np.sqrt(num * prob * (1 - prob))
    assert 0 < flat < collapsed_windows  # both kinds of collapse happen


def test_switching_a_term_on_leaves_the_other_noise_unchanged(
        orbit: SyntheticSequence) -> None:
    frames = [orbit.frame(i) for i in WINDOW]
    plain = SyntheticPredictor(orbit, NOISE_LEVELS['default'], model_width=56, seed=10)
    focal = SyntheticPredictor(
        orbit, dataclasses.replace(NOISE_LEVELS['default'], focal_rel=0.05), model_width=56,
        seed=10)
    a, b = plain.predict(frames), focal.predict(frames)
    assert np.array_equal(a.depth, b.depth) and np.array_equal(a.depth_conf, b.depth_conf)
    assert np.array_equal(a.cam_from_window, b.cam_from_window)
    assert not np.allclose(a.intrinsics, b.intrinsics)


def test_presets_exist_and_are_ordered_in_severity(orbit: SyntheticSequence) -> None:
    assert list(NOISE_SEVERITY_ORDER) == list(NOISE_LEVELS)
    systematic = [item.name for item in dataclasses.fields(PredictionNoise)][6:]
    for name in ('none', 'default', 'high'):  # the historical presets have no systematic error
        preset = NOISE_LEVELS[name]
        assert all(getattr(preset, field) == getattr(PredictionNoise(), field)
                   for field in systematic)
    for milder, worse in itertools.pairwise(NOISE_SEVERITY_ORDER):
        for item in dataclasses.fields(PredictionNoise):
            assert getattr(NOISE_LEVELS[milder], item.name) <= getattr(
                NOISE_LEVELS[worse], item.name), (milder, worse, item.name)
    # Measured, not just declared: errors grow from preset to preset.
    windows = orbit_windows(count=6, size=8, stride=6)
    summaries = [summarise_noise(orbit, NOISE_LEVELS[name], windows, name, model_width=28)
                 for name in NOISE_SEVERITY_ORDER]
    for measure in ('focal_error', 'depth_abs_rel', 'last_rotation_deg'):
        values = [getattr(summary, measure) for summary in summaries]
        assert values == sorted(values), (measure, values)
        assert values[-1] > values[0]
    assert summaries[NOISE_SEVERITY_ORDER.index('realistic')].focal_error > 0.01


@pytest.mark.parametrize('change', [
    {'depth_rel': -0.1}, {'wrong_rotation_prob': 1.5}, {'overlap_min': 2.0},
    {'scale_range': 0.5}, {'wrong_rotation_deg': 0.0}, {'focal_rel': float('nan')},
])
def test_invalid_noise_levels_are_refused(change: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(change))):
        PredictionNoise(**change)


def test_rotation_errors_are_measured_in_degrees(orbit: SyntheticSequence) -> None:
    # The measure used above: a known 30° error reads 30°.
    predictor = SyntheticPredictor(orbit, NONE, model_width=28)
    prediction = predictor.predict([orbit.frame(0), orbit.frame(5)])
    cams = prediction.cam_from_window.copy()
    cams[1, :, :3] = Rotation.from_rotvec([0.0, np.radians(30.0), 0.0]).as_matrix() @ cams[
        1, :, :3]
    errors = window_error(dataclasses.replace(prediction, cam_from_window=cams), orbit, [0, 5])
    assert errors.frames[1].rotation_deg == pytest.approx(30.0)


def test_noise_per_window_answers_a_window_the_same_whatever_came_before() -> None:
    sequence = SyntheticSequence.orbit(40)
    frames = [sequence.frame(i) for i in (0, 5, 10)]
    other = [sequence.frame(i) for i in (20, 25)]
    first = SyntheticPredictor(sequence, NOISE_LEVELS['realistic'], model_width=126,
                               noise_per_window=True)
    second = SyntheticPredictor(sequence, NOISE_LEVELS['realistic'], model_width=126,
                                noise_per_window=True)
    second.predict(other)
    a, b = first.predict(frames), second.predict(frames)
    assert np.array_equal(a.depth, b.depth)
    assert np.array_equal(a.cam_from_window, b.cam_from_window)
    reseeded = SyntheticPredictor(sequence, NOISE_LEVELS['realistic'], model_width=126,
                                  seed=1, noise_per_window=True)
    assert not np.array_equal(a.depth, reseeded.predict(frames).depth)
