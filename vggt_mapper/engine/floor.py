"""
The floor of a map: gravity's up direction and the floor's height, for the occupancy grid.

A robot that has ``base_link`` in TF knows up: pass ``up_world`` (``camera_up_world`` turns the
camera's mounting into it) and only the floor's height is fitted. Otherwise the floor plane is
fitted too, by RANSAC (``vggt_mapper.geometry.plane.ransac_plane``) on the map points:

* planes are only hypothesised within ``max_floor_tilt_deg`` of the cameras' mean image-up
  direction, so walls are never candidates;
* once a plane holding ``min_floor_share`` of the points is found, the points below it are
  searched again, until no such plane is left: the *lowest dense plane*, so a large table top,
  a box top or the ceiling never passes for the floor;
* its inliers are refitted by total least squares (``fit_plane``).

RANSAC rather than robust least squares because the floor is a minority of the points (walls,
furniture and ceiling are gross outliers, beyond what an M-estimator tolerates) and an
M-estimator needs a start inside its basin, which a tilted camera does not give.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from vggt_mapper.engine.config import MIN_FLOOR_POINTS, OccupancyConfig
from vggt_mapper.engine.errors import OccupancyError
from vggt_mapper.geometry.errors import GeometryError
from vggt_mapper.geometry.gravity import gravity_up_world, unit_vector
from vggt_mapper.geometry.plane import fit_plane, Plane, ransac_plane

__all__ = ['FloorPlane', 'as_points', 'as_poses', 'camera_up_world', 'fit_floor',
           'scene_scale']

# Points below a plane by more than this many tolerances are searched for a lower plane.
_BELOW_TOLERANCES = 3.0
# Total-least-squares refits of the consensus set (inliers recomputed each time).
_REFITS = 2
# OpenCV image up in camera coordinates (x right, y down): the default mounting.
_IMAGE_UP_CAM = (0.0, -1.0, 0.0)


@dataclass(frozen=True)
class FloorPlane:
    """
    The floor: the world points ``p`` with ``up_world · p = offset``.

    :param up_world: (3,) unit normal pointing up (from the floor towards the cameras), engine
        world frame.
    :param offset: ``up_world · p`` of the floor's points, world units.
    :param scene_scale: median distance from a map point to its nearest keyframe camera (the
        yardstick of the relative settings), world units.
    :param camera_height: the keyframe cameras' median height above the floor, world units.
    :param inliers: sampled points within the tolerance of the plane.
    :param share: ``inliers`` over the points sampled.
    :param gravity: ``given`` when up came from the caller (TF) and only the height was
        fitted, ``floor_fit`` when the plane's normal was fitted too.
    """

    up_world: NDArray[np.float64]
    offset: float
    scene_scale: float
    camera_height: float
    inliers: int
    share: float
    gravity: str

    def height_of(self, points_world: ArrayLike) -> NDArray[np.float64]:
        """
        Heights of world points above the floor.

        :param points_world: (N, 3) points, world frame.
        :return: (N,) signed heights, world units (negative below the floor).
        """
        return Plane(self.up_world, self.offset).distance(points_world)


def as_points(points: ArrayLike, name: str) -> NDArray[np.float64]:
    """
    Check an (N, 3) array of finite points.

    :param points: the array.
    :param name: its name in error messages.
    :return: it as float64.
    :raises OccupancyError: for another shape or non-finite points.
    """
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise OccupancyError(f'{name} must be (N, 3), got shape {array.shape}')
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array).all(axis=1)))
        raise OccupancyError(f'{name} holds {bad} non-finite points')
    return array


def as_poses(world_from_cams: ArrayLike) -> NDArray[np.float64]:
    """
    Check a (K, 4, 4) stack of finite camera poses, K ≥ 1.

    :param world_from_cams: the poses.
    :return: them as float64.
    :raises OccupancyError: for another shape, no pose, or non-finite values.
    """
    poses = np.asarray(world_from_cams, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or poses.shape[0] == 0:
        raise OccupancyError(f'world_from_cams must be (K, 4, 4) with K >= 1, got shape '
                             f'{poses.shape}')
    if not np.all(np.isfinite(poses)):
        raise OccupancyError('world_from_cams holds non-finite poses')
    return poses


def camera_up_world(world_from_cams: ArrayLike, up_cam: ArrayLike = _IMAGE_UP_CAM
                    ) -> NDArray[np.float64]:
    """
    Return the mean up direction of a camera mounting, in the world frame.

    With TF, ``up_cam`` is ``base_link``'s z axis in the optical frame
    (``optical_from_base[:3, 2]``, from the lookup of ``base_link`` in ``<camera>_optical``),
    and the result is gravity's up as the robot carries it; without, the image's up (OpenCV
    ``-y``) gives the prior the floor fit starts from.

    :param world_from_cams: (K, 4, 4) keyframe camera poses, world frame (OpenCV axes).
    :param up_cam: (3,) the up direction in the camera frame.
    :return: (3,) unit vector: the mean of the keyframes' up directions, again without those
        more than 15° from it (``geometry.gravity.gravity_up_world``).
    :raises OccupancyError: if there are no poses or the directions cancel out.
    """
    poses = as_poses(world_from_cams)
    mean = (poses[:, :3, :3] @ unit_vector(up_cam, 'up_cam')).mean(axis=0)
    if np.linalg.norm(mean) < 0.5:
        raise OccupancyError(f'the cameras disagree on up (mean up vector of norm '
                             f'{np.linalg.norm(mean):.2f} over {len(poses)} keyframes); '
                             f'pass up_world')
    return gravity_up_world(poses, up_cam)  # the same robust mean as the node's levelling


def scene_scale(points_world: ArrayLike, camera_centres_world: ArrayLike) -> float:
    """
    Median distance from the points to their nearest camera: the yardstick of relative lengths.

    :param points_world: (N, 3) map points, N ≥ 1.
    :param camera_centres_world: (K, 3) camera centres, K ≥ 1.
    :return: the median distance, world units.
    :raises OccupancyError: without points or cameras, or if the points sit on the cameras.
    """
    points = as_points(points_world, 'points_world')
    centres = as_points(camera_centres_world, 'camera_centres_world')
    if not len(points) or not len(centres):
        raise OccupancyError(f'no scene scale from {len(points)} points and {len(centres)} '
                             f'cameras')
    scale = float(np.median(cKDTree(centres).query(points)[0]))
    if not scale > 0:
        raise OccupancyError('the map points sit on the cameras: no scene scale')
    return scale


def _lowest_plane(points: NDArray[np.float64], tolerance: float, prior: NDArray[np.float64],
                  max_tilt_deg: float, min_support: int, config: OccupancyConfig
                  ) -> Plane | None:
    """Find a dense plane, then search below it again, until none is left below."""
    rng = np.random.default_rng(config.seed)
    found = None
    candidates = points
    while len(candidates) >= min_support:
        result = ransac_plane(candidates, tolerance, rng, trials=config.floor_trials,
                              axis=prior, max_tilt_deg=max_tilt_deg)
        if result is None or np.count_nonzero(result[1]) < min_support:
            break
        found = result[0]
        candidates = candidates[found.distance(candidates) < -_BELOW_TOLERANCES * tolerance]
    return found


def _refit(points: NDArray[np.float64], plane: Plane, tolerance: float, fixed_normal: bool
           ) -> Plane:
    """Total least squares on the plane's inliers (only its height when the normal is given)."""
    for _ in range(_REFITS):
        inliers = points[np.abs(plane.distance(points)) < tolerance]
        if fixed_normal:
            plane = Plane(plane.normal, float(np.median(inliers @ plane.normal)))
            continue
        try:
            plane = fit_plane(inliers, towards=plane.normal)
        except GeometryError as err:
            raise OccupancyError(f'the floor plane cannot be refitted: {err}') from err
    return plane


def fit_floor(points_world: ArrayLike, world_from_cams: ArrayLike, config: OccupancyConfig,
              up_world: ArrayLike | None = None) -> FloorPlane:
    """
    Find the floor: the lowest dense, nearly level plane of the map (module docstring).

    :param points_world: (N, 3) map points, world frame (one segment's).
    :param world_from_cams: (K, 4, 4) the keyframe camera poses of the same segment.
    :param config: tolerance, tilt limit, share, trials, sampling.
    :param up_world: (3,) up (against gravity) in the world frame when the robot knows it
        (TF); only the floor's height is fitted then. None: the plane's normal is fitted too.
    :return: the floor.
    :raises OccupancyError: for too few points, no plane dense enough, or a floor that is not
        below the cameras (the message says what to change).
    """
    points = as_points(points_world, 'points_world')
    poses = as_poses(world_from_cams)
    if len(points) < MIN_FLOOR_POINTS:
        raise OccupancyError(f'{len(points)} map points are too few to find the floor (at '
                             f'least {MIN_FLOOR_POINTS})')
    if len(points) > config.max_fit_points:
        sample = np.random.default_rng(config.seed).choice(len(points), config.max_fit_points,
                                                           replace=False)
        points = points[sample]
    centres = poses[:, :3, 3]
    scale = scene_scale(points, centres)
    tolerance = config.floor_tolerance_rel * scale
    given = up_world is not None
    prior = camera_up_world(poses) if up_world is None else unit_vector(up_world, 'up_world')
    max_tilt = 0.0 if given else config.max_floor_tilt_deg
    min_support = max(3, math.ceil(config.min_floor_share * len(points)))
    plane = _lowest_plane(points, tolerance, prior, max_tilt, min_support, config)
    if plane is None:
        raise OccupancyError(
            f'no floor: no plane within {max_tilt:g}° of level holds '
            f'{config.min_floor_share:.0%} of the {len(points)} points sampled (tolerance '
            f'{tolerance:.3g}); is the floor in view? Lower min_floor_share, or raise '
            f'floor_tolerance_rel for noisy depth')
    plane = _refit(points, plane, tolerance, given)
    camera_height = float(np.median(plane.distance(centres)))
    if not camera_height > tolerance:
        raise OccupancyError(f'the floor found is not below the cameras (their median height '
                             f'above it is {camera_height:.3g}); check the sign of up_world, '
                             f'or that the floor is in view')
    inliers = int(np.count_nonzero(np.abs(plane.distance(points)) < tolerance))
    return FloorPlane(plane.normal, plane.offset, scale, camera_height, inliers,
                      inliers / len(points), 'given' if given else 'floor_fit')
