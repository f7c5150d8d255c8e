"""The floor of a map: gravity from a floor fit (tilted cameras) or given, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vggt_mapper.engine import (
    camera_up_world,
    fit_floor,
    Mapper,
    MapperConfig,
    OccupancyConfig,
    OccupancyError,
)
from vggt_mapper.geometry.gravity import angle_deg
from vggt_mapper.synthetic import NOISE_LEVELS, orbit_path, SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.evaluation import feed, trajectory_error

# The synthetic room's floor is the plane y = 1.2 m (y down); its up is -y.
ROOM_FLOOR_Y = 1.2
ROOM_UP = np.array([0.0, -1.0, 0.0])


class Mapped:
    """A mapped run with the truth needed to judge its floor."""

    def __init__(self, mapper: Mapper, sequence: SyntheticSequence) -> None:
        trajectory = mapper.trajectory()
        error = trajectory_error(trajectory, sequence)
        self.points = mapper.map_snapshot().points_world
        self.world_from_cams = np.stack([pose.world_from_cam for pose in trajectory])
        # Up and the cameras' height above the floor in the mapper's world (its own scale).
        self.true_up = error.gt_from_world.rotation.T @ ROOM_UP
        centres_gt = error.gt_from_world.apply(self.world_from_cams[:, :3, 3])
        heights_m = ROOM_FLOOR_Y - centres_gt[:, 1]
        self.true_camera_height = float(np.median(heights_m) / error.gt_from_world.scale)


@pytest.fixture(scope='module')
def tilted() -> Mapped:
    """Map a fifth of an orbit with every camera rolled 10° (and pitched 14° down, as ever)."""
    roll = np.eye(4)
    roll[:3, :3] = Rotation.from_euler('z', 10, degrees=True).as_matrix()
    sequence = SyntheticSequence(orbit_path(60, step_m=0.03) @ roll)
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=126)
    with Mapper(MapperConfig(window_size=8, overlap=2), predictor) as mapper:
        feed(mapper, sequence)
        return Mapped(mapper, sequence)


def test_floor_fit_recovers_gravity_within_a_degree_from_tilted_cameras(tilted: Mapped) -> None:
    # The world is the first camera's frame, so "down" in it is off by the camera's attitude,
    # and the cameras' mean image-up (the fit's prior) is off by as much on a short path.
    assert angle_deg(ROOM_UP, tilted.true_up) > 15
    assert angle_deg(camera_up_world(tilted.world_from_cams), tilted.true_up) > 15
    floor = fit_floor(tilted.points, tilted.world_from_cams, OccupancyConfig())
    assert floor.gravity == 'floor_fit'
    assert angle_deg(floor.up_world, tilted.true_up) < 1.0
    assert floor.camera_height == pytest.approx(tilted.true_camera_height, rel=0.02)
    assert 0.1 < floor.share < 0.5
    heights = floor.height_of(tilted.points)
    assert np.mean(np.abs(heights) < 0.02 * floor.scene_scale) == pytest.approx(floor.share,
                                                                                abs=0.05)


def test_given_gravity_fits_only_the_floor_height(tilted: Mapped) -> None:
    up = 3.0 * tilted.true_up  # any length
    floor = fit_floor(tilted.points, tilted.world_from_cams, OccupancyConfig(), up_world=up)
    assert floor.gravity == 'given'
    np.testing.assert_allclose(floor.up_world, tilted.true_up, atol=1e-12)
    assert floor.camera_height == pytest.approx(tilted.true_camera_height, rel=0.02)


def test_gravity_pointing_down_is_refused(tilted: Mapped) -> None:
    with pytest.raises(OccupancyError, match='not below the cameras'):
        fit_floor(tilted.points, tilted.world_from_cams, OccupancyConfig(),
                  up_world=-tilted.true_up)


def slab(rng: np.random.Generator, count: int, height: float, half_width: float
         ) -> np.ndarray:
    """Points on a level square at ``height`` (z up)."""
    xy = rng.uniform(-half_width, half_width, (count, 2))
    return np.column_stack([xy, np.full(count, height) + 0.002 * rng.normal(size=count)])


def looking_down(count: int, height: float) -> np.ndarray:
    """Camera poses at ``height`` whose image-up (OpenCV -y) is world +z (level cameras)."""
    pose = np.eye(4)
    pose[:3, :3] = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    poses = np.repeat(pose[None], count, axis=0)
    poses[:, :3, 3] = np.column_stack([np.linspace(-1, 1, count), np.zeros(count),
                                       np.full(count, height)])
    return poses


def test_the_floor_is_the_lowest_dense_plane_not_the_biggest() -> None:
    # A big table top holds more points than the floor seen around it; the floor is below it.
    rng = np.random.default_rng(0)
    points = np.concatenate([slab(rng, 3000, 0.0, 3.0), slab(rng, 6000, 0.75, 1.5),
                             slab(rng, 300, -0.6, 0.2)])  # a few stray points under the floor
    floor = fit_floor(points, looking_down(5, 1.5), OccupancyConfig())
    assert floor.offset == pytest.approx(0.0, abs=0.01)
    assert floor.camera_height == pytest.approx(1.5, abs=0.01)


def test_no_level_plane_is_no_floor() -> None:
    rng = np.random.default_rng(1)
    walls = slab(rng, 2000, 0.0, 2.0)[:, [2, 0, 1]]  # vertical: x = 0
    with pytest.raises(OccupancyError, match='no floor'):
        fit_floor(walls + [1.0, 0.0, 0.0], looking_down(3, 1.0), OccupancyConfig())


@pytest.mark.parametrize('points, poses, match', [
    (np.zeros((10, 3)), looking_down(2, 1.0), 'too few'),
    (np.full((100, 3), np.nan), looking_down(2, 1.0), 'non-finite'),
    (np.zeros((100, 2)), looking_down(2, 1.0), r'\(N, 3\)'),
    (np.zeros((100, 3)), np.zeros((0, 4, 4)), r'\(K, 4, 4\)'),
])
def test_bad_input_is_refused_with_a_reason(points: np.ndarray, poses: np.ndarray,
                                            match: str) -> None:
    with pytest.raises(OccupancyError, match=match):
        fit_floor(points, poses, OccupancyConfig())


def test_camera_up_world_follows_the_mounting() -> None:
    poses = looking_down(4, 1.0)
    np.testing.assert_allclose(camera_up_world(poses), [0, 0, 1], atol=1e-12)
    # With TF: base_link's z seen in the optical frame is (0, -1, 0) for this mounting.
    np.testing.assert_allclose(camera_up_world(poses, up_cam=[0, 0, 1]), [0, 1, 0], atol=1e-12)
    opposite = np.concatenate([poses, poses @ np.diag([-1.0, -1.0, 1.0, 1.0])])
    with pytest.raises(OccupancyError, match='disagree'):
        camera_up_world(opposite)
