"""Metric scale per segment: from an odometry, a camera height, or a fixed scale."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_mapper.engine.config import MapperConfig, MetricScaleConfig
from vggt_mapper.engine.errors import ConfigError
from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.engine.metric_scale import floor_distance, odometry_ratios, robust_scale
from vggt_mapper.synthetic import (
    NOISE_LEVELS,
    OdometryNoise,
    simulate_odometry,
    SyntheticPredictor,
    SyntheticSequence,
)
from vggt_mapper.synthetic.evaluation import feed, trajectory_error

MODEL_WIDTH = 126


def test_odometry_ratios_pair_each_keyframe_with_one_far_enough_back() -> None:
    odom = np.array([[0.0, 0, 0], [0.1, 0, 0], [0.1, 0, 0], [0.3, 0, 0], [0.5, 0, 0]])
    # The map is the odometry at half scale; keyframes 1-2 are a rotation on the spot.
    samples = odometry_ratios(odom / 2, odom, min_motion_m=0.2, max_samples=10)
    # Pairs (3, 4) and (2, 3), newest first; keyframes 1 and 2 have none far enough back.
    np.testing.assert_allclose(samples, [2.0, 2.0])
    assert odometry_ratios(odom / 2, odom, 0.2, max_samples=1).size == 1
    assert odometry_ratios(odom / 2, odom, 1.0, 10).size == 0


def test_the_estimate_is_the_median_and_its_spread_the_mad() -> None:
    estimate = robust_scale(np.array([1.0, 1.1, 0.9, 1.0, 50.0]), 3, 'odometry', 5)
    assert estimate.metric and estimate.factor == 1.0 and estimate.segment == 3
    assert estimate.spread_rel == pytest.approx(1.4826 * 0.1)
    assert not robust_scale(np.array([1.0, 1.1]), 0, 'odometry', 5).metric


def test_floor_distance_finds_the_plane_below_the_camera() -> None:
    rng = np.random.default_rng(1)
    # A floor 1.5 below a camera pitched down by 20 degrees, and a wall ahead.
    pitch = np.radians(20)
    floor = np.c_[rng.uniform(-2, 2, 800), np.full(800, 1.5), rng.uniform(1, 5, 800)]
    wall = np.c_[rng.uniform(-2, 2, 800), rng.uniform(-1, 1.5, 800), np.full(800, 5.0)]
    cam_from_level = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)],
                               [0, np.sin(pitch), np.cos(pitch)]])
    points = np.vstack([floor, wall]) @ cam_from_level.T
    distance = floor_distance(points + rng.normal(0, 0.005, points.shape), np.array([0, 1, 0]),
                              max_tilt_deg=30)
    assert distance == pytest.approx(1.5, rel=0.01)
    assert floor_distance(points, np.array([0, 1, 0]), max_tilt_deg=10) is None  # too tilted


@pytest.fixture(scope='module')
def orbit() -> SyntheticSequence:
    return SyntheticSequence.orbit(150, step_m=0.03, cache_renders=500)


def test_odometry_makes_the_map_metric(orbit: SyntheticSequence) -> None:
    odometry = simulate_odometry(orbit.poses_world_from_cam, OdometryNoise(scale_error=0.02),
                                 seed=1)
    predictor = SyntheticPredictor(orbit, NOISE_LEVELS['default'], model_width=MODEL_WIDTH)
    config = MapperConfig(window_size=8, overlap=3, scale=1.0)
    with Mapper(config, predictor) as mapper:
        first = feed(mapper, orbit, 0, 12, flush=False,
                     odom_from_camera=odometry.odom_from_camera)
        assert not mapper.metric_scales or not mapper.metric_scales[0].metric or first
        feed(mapper, orbit, 12, odom_from_camera=odometry.odom_from_camera)
        error = trajectory_error(mapper.trajectory(), orbit)
        scale = mapper.metric_scales[0]
        stats = mapper.stats
        snapshot = mapper.map_snapshot()
    assert scale.metric and scale.source == 'odometry' and scale.samples >= 10
    # Metres as the odometry measures them: 2 % long, like the odometry.
    assert error.scale_error == pytest.approx(0.02, abs=0.01)
    assert stats.metric_scales[0] == scale and stats.keyframes_with_odometry == stats.keyframes
    # The map is in the same metres as the trajectory (the true room is 6 m across).
    extent = np.percentile(snapshot.points_world, 95, axis=0) - np.percentile(
        snapshot.points_world, 5, axis=0)
    assert 2.0 < float(np.max(extent)) < 8.0


def test_without_odometry_the_map_keeps_its_unit_unless_a_scale_is_given(
        orbit: SyntheticSequence) -> None:
    predictor = SyntheticPredictor(orbit, NOISE_LEVELS['none'], model_width=MODEL_WIDTH)
    with Mapper(MapperConfig(window_size=8, overlap=3), predictor) as mapper:
        feed(mapper, orbit, 0, 60)
        assert mapper.metric_scales[0].source == 'none'
        assert not mapper.metric_scales[0].metric
    with Mapper(MapperConfig(window_size=8, overlap=3, scale=2.0), predictor) as mapper:
        feed(mapper, orbit, 0, 60)
        assert mapper.metric_scales[0].source == 'fixed' and mapper.metric_scales[0].metric


def test_a_known_camera_height_makes_the_map_metric() -> None:
    corridor = SyntheticSequence.corridor(70, step_m=0.04)  # 1.2 m above the floor
    predictor = SyntheticPredictor(corridor, NOISE_LEVELS['default'], model_width=MODEL_WIDTH)
    config = MapperConfig(window_size=8, overlap=3, metric=MetricScaleConfig(
        source='camera_height', camera_height_m=1.2))
    with Mapper(config, predictor) as mapper:
        feed(mapper, corridor)
        scale = mapper.metric_scales[0]
        trajectory = mapper.trajectory()
    assert scale.metric and scale.source == 'camera_height' and scale.samples >= 5
    # A straight walk: the distance from the first to the last keyframe, mapped and true.
    first, last = trajectory[0], trajectory[-1]
    mapped = np.linalg.norm(last.position_world - first.position_world)
    true = np.linalg.norm(np.diff(corridor.poses_world_from_cam[
        [int(first.name[1:]), int(last.name[1:])], :3, 3], axis=0))
    assert mapped / true == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize('values, message', [
    ({'source': 'gps'}, 'scale source must be one of'),
    ({'source': 'camera_height'}, 'camera_height_m > 0'),
    ({'min_samples': 5, 'max_samples': 2}, 'min_samples <= max_samples'),
])
def test_metric_config_is_checked_when_built(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MetricScaleConfig(**values)  # type: ignore[arg-type]
