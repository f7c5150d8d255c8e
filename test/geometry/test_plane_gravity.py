"""Planes (total least squares, tilt-limited LO-RANSAC) and levelling a frame by gravity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vggt_mapper.geometry import GeometryError
from vggt_mapper.geometry.gravity import angle_deg, level_frame, unit_vector
from vggt_mapper.geometry.plane import fit_plane, Plane, ransac_plane


def plane_points(normal: np.ndarray, offset: float, count: int, rng: np.random.Generator,
                 extent: float = 3.0, noise: float = 0.0) -> np.ndarray:
    """Points spread over a plane (``normal · p = offset``), with Gaussian noise along it."""
    normal = unit_vector(normal)
    helper = np.eye(3)[int(np.argmin(np.abs(normal)))]
    u = np.cross(normal, helper)
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    ab = rng.uniform(-extent, extent, (count, 2))
    heights = offset + noise * rng.normal(size=count)
    return ab[:, :1] * u + ab[:, 1:] * v + heights[:, None] * normal


def room_points(rng: np.random.Generator, tilt: float) -> tuple[np.ndarray, np.ndarray]:
    """Make a floor among four walls (a fifth of the points), turned by ``tilt``°; and up."""
    floor = plane_points([0, 0, 1], 0.0, 2000, rng, noise=0.005)
    walls = [plane_points(normal, 3.0, 2000, rng, noise=0.005)
             for normal in ([1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0])]
    points = np.concatenate([floor, *walls])
    walls_kept = np.abs(points[:, 2] - 1.5) < 1.5  # walls from the floor to 3 m
    points = points[walls_kept | (np.arange(len(points)) < 2000)]
    turn = Rotation.from_euler('x', tilt, degrees=True).as_matrix()
    return points @ turn.T, turn @ np.array([0.0, 0.0, 1.0])


def test_fit_plane_is_exact_on_a_plane_and_oriented_on_request() -> None:
    rng = np.random.default_rng(0)
    points = plane_points([1, 2, 3], 0.7, 100, rng)
    plane = fit_plane(points, towards=[-1, -2, -3])
    np.testing.assert_allclose(plane.normal, -unit_vector([1, 2, 3]), atol=1e-9)
    assert plane.offset == pytest.approx(-0.7)
    np.testing.assert_allclose(plane.distance(points), 0.0, atol=1e-9)


def test_fit_plane_refuses_a_line() -> None:
    line = np.outer(np.linspace(0, 1, 10), [1.0, 2.0, 3.0])
    with pytest.raises(GeometryError, match='line'):
        fit_plane(line)


def test_ransac_finds_the_floor_among_walls_within_the_tilt_limit() -> None:
    rng = np.random.default_rng(1)
    points, up = room_points(rng, tilt=12.0)
    prior = np.array([0.0, 0.0, 1.0])  # 12° off, as an upright camera's image-up would be
    plane, inliers = ransac_plane(points, 0.02, np.random.default_rng(0), axis=prior,
                                  max_tilt_deg=30.0)
    assert angle_deg(plane.normal, up) < 0.2
    assert plane.normal @ prior > 0  # oriented along the axis
    assert inliers.sum() == pytest.approx(2000, rel=0.02)


def test_ransac_without_a_tilt_limit_finds_the_biggest_plane_even_a_wall() -> None:
    rng = np.random.default_rng(2)
    floor = plane_points([0, 0, 1], 0.0, 500, rng)
    wall = plane_points([1, 0, 0], 3.0, 1500, rng)
    plane, _ = ransac_plane(np.concatenate([floor, wall]), 0.01, np.random.default_rng(0))
    assert abs(plane.normal @ [1, 0, 0]) == pytest.approx(1.0)
    limited, _ = ransac_plane(np.concatenate([floor, wall]), 0.01, np.random.default_rng(0),
                              axis=[0, 0, 1], max_tilt_deg=30.0)
    assert limited.normal @ [0, 0, 1] == pytest.approx(1.0)


def test_ransac_local_optimisation_levels_a_noisy_floor() -> None:
    # A thick floor (noise comparable to the tolerance): a plane through three noisy points is
    # tilted (by 0.1° to 0.3° here); refitting the best hypotheses to their inliers levels it.
    rng = np.random.default_rng(3)
    floor = plane_points([0, 0, 1], 0.0, 3000, rng, extent=2.0, noise=0.02)
    clutter = rng.uniform([-2, -2, 0.1], [2, 2, 2.0], (3000, 3))
    plane, _ = ransac_plane(np.concatenate([floor, clutter]), 0.03, np.random.default_rng(0),
                            trials=200, axis=[0, 0, 1], max_tilt_deg=30.0)
    assert angle_deg(plane.normal, [0, 0, 1]) < 0.07


def test_ransac_with_a_given_normal_fits_the_height_only() -> None:
    rng = np.random.default_rng(4)
    points = np.concatenate([plane_points([0, 0, 1], 0.25, 800, rng),
                             plane_points([0, 0, 1], 1.0, 300, rng)])
    plane, inliers = ransac_plane(points, 0.01, np.random.default_rng(0), axis=[0, 0, 2],
                                  max_tilt_deg=0.0)
    np.testing.assert_array_equal(plane.normal, [0.0, 0.0, 1.0])
    assert plane.offset == pytest.approx(0.25)
    assert inliers.sum() == 800


def test_ransac_returns_none_when_no_hypothesis_is_level_enough() -> None:
    rng = np.random.default_rng(5)
    wall = plane_points([1, 0, 0], 0.0, 200, rng)
    assert ransac_plane(wall, 0.01, np.random.default_rng(0), axis=[0, 0, 1],
                        max_tilt_deg=10.0) is None


@pytest.mark.parametrize('kwargs, match', [
    ({'tolerance': 0.0}, 'tolerance'),
    ({'trials': 0}, 'trials'),
    ({'max_tilt_deg': 95.0}, 'max_tilt_deg'),
])
def test_ransac_refuses_bad_settings(kwargs: dict[str, float], match: str) -> None:
    points = plane_points([0, 0, 1], 0.0, 10, np.random.default_rng(6))
    arguments = {'tolerance': 0.01, 'trials': 10, 'max_tilt_deg': 30.0, **kwargs}
    with pytest.raises(GeometryError, match=match):
        ransac_plane(points, arguments.pop('tolerance'), np.random.default_rng(0),
                     axis=[0, 0, 1], **arguments)  # type: ignore[arg-type]


def test_plane_distance_is_signed_along_the_normal() -> None:
    plane = Plane(np.array([0.0, 0.0, 1.0]), 1.0)
    np.testing.assert_allclose(plane.distance([[5, 5, 3], [0, 0, 0]]), [2.0, -1.0])


# -- levelling -------------------------------------------------------------------------------


def test_convention_level_frame_keeps_a_level_frame() -> None:
    frame = np.eye(4)
    frame[:3, :3] = Rotation.from_euler('z', 40, degrees=True).as_matrix()
    np.testing.assert_allclose(level_frame(frame, [0, 0, 3.0]), frame, atol=1e-12)


def test_convention_level_frame_makes_up_its_z_and_keeps_the_heading() -> None:
    # A frame pitched 14° about its y axis (a camera looking down): levelling turns it back
    # about y only, so its x axis becomes the old one projected on the horizontal plane.
    pitch = Rotation.from_euler('y', 14, degrees=True).as_matrix()
    up_world = np.array([0.0, 0.0, 2.0])  # the pitched frame sees it tilted by 14°
    levelled = level_frame(pitch, up_world)
    np.testing.assert_allclose(levelled[:3, :3] @ [0, 0, 1], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(levelled[:3, :3], np.eye(3), atol=1e-12)
    # A rolled and pitched frame: z becomes up, whatever the heading it keeps.
    tilted = Rotation.from_euler('xyz', [8, -20, 70], degrees=True).as_matrix()
    levelled = level_frame(tilted, up_world)
    np.testing.assert_allclose(levelled[2, :3], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(levelled[:3, :3] @ levelled[:3, :3].T, np.eye(3), atol=1e-12)


@pytest.mark.parametrize('frame, up, match', [
    (np.eye(4), [0, 0, 0], 'no direction'),
    (2 * np.eye(4), [0, 0, 1], 'rigid'),
    (np.eye(5), [0, 0, 1], '4×4'),
])
def test_level_frame_refuses_bad_input(frame: np.ndarray, up: list[float], match: str) -> None:
    with pytest.raises(GeometryError, match=match):
        level_frame(frame, up)


def test_angle_deg_is_the_angle_between_directions() -> None:
    assert angle_deg([0, 0, 1], [0, 1, 1]) == pytest.approx(45.0)
    assert angle_deg([0, 0, 1], [0, 0, -5]) == pytest.approx(180.0)
