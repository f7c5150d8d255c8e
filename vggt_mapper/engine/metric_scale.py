"""
Metres per map unit, per segment: from a metric odometry, or a known camera height.

VGGT answers each window at an arbitrary scale and the map keeps its first window's unit. A
robot usually knows something metric:

* **Odometry** (``odometry``): the camera's pose in an odometry frame at each frame's stamp
  (TF ``odom → base_link → camera``). For keyframe pairs of one segment whose odometry moved at
  least ``min_motion_m``, the ratio of the two camera-centre distances, odometry over map, is a
  sample of metres per unit. Each mapped keyframe ends one pair, with the latest keyframe far
  enough before it; the segment's scale is the median of its last ``max_samples`` pairs (a
  sliding set: the map's own scale drifts slowly along a path), recomputed from the current
  poses whenever they change. Rotation on the spot gives no pair; one bad odometry step spoils
  only the pairs across it, and the median ignores them.
* **Camera height** (``camera_height``): a plane is fitted (RANSAC) to each keyframe's points
  below the camera, among planes whose normal is within ``max_floor_tilt_deg`` of "down"
  (the odometry's -z when the frame has an odometry pose, else the camera's +y); the known
  height over the plane's distance is the keyframe's sample.

The spread of the samples (1.4826 · MAD / median) is reported with the estimate; a segment
becomes metric once it has ``min_samples``. Without a sample, ``MapperConfig.scale`` other than 1
is taken as a metric scale the user knows (``fixed``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.config import MetricScaleConfig
from vggt_mapper.engine.types import MetricScale
from vggt_mapper.geometry.plane import ransac_plane

__all__ = ['MetricScaleTracker', 'floor_distance', 'odometry_ratios', 'robust_scale']

_MAD_TO_SIGMA = 1.4826
_RANSAC_ITERATIONS = 500
_RANSAC_SEED = 0
_MIN_FLOOR_POINTS = 50


def odometry_ratios(map_centres: NDArray[np.float64], odom_centres: NDArray[np.float64],
                    min_motion_m: float, max_samples: int) -> NDArray[np.float64]:
    """
    Metres-per-unit samples from keyframe pairs, newest first.

    Each keyframe ``j`` (newest first) is paired with the latest keyframe ``i < j`` whose
    odometry centre is at least ``min_motion_m`` from its own; the sample is
    ``|o_j - o_i| / |m_j - m_i|``.

    :param map_centres: (N, 3) camera centres in the map, in keyframe order (one segment).
    :param odom_centres: (N, 3) the same cameras' centres in the odometry frame, metres.
    :param min_motion_m: least odometry distance of a pair, metres.
    :param max_samples: stop after this many pairs.
    :return: (M,) samples, M <= max_samples (pairs with no map motion are left out).
    """
    samples: list[float] = []
    distances = np.linalg.norm(odom_centres[:, None] - odom_centres[None], axis=-1)
    for j in range(len(odom_centres) - 1, 0, -1):
        far = np.flatnonzero(distances[j, :j] >= min_motion_m)
        if far.size == 0:
            continue  # no motion enough since the start (or a rotation on the spot)
        partner = int(far[-1])
        map_motion = float(np.linalg.norm(map_centres[j] - map_centres[partner]))
        if map_motion > 0:
            samples.append(float(np.linalg.norm(odom_centres[j] - odom_centres[partner]))
                           / map_motion)
        if len(samples) >= max_samples:
            break
    return np.asarray(samples, dtype=np.float64)


def robust_scale(samples: NDArray[np.float64], segment: int, source: str, min_samples: int
                 ) -> MetricScale:
    """
    Combine samples of metres per unit into one estimate: median and MAD spread.

    :param samples: (M,) positive samples.
    :param segment: the segment they belong to.
    :param source: where they came from (``odometry``, ``camera_height``).
    :param min_samples: fewer samples than this give a non-metric result.
    :return: the estimate (``metric`` False and factor 1 below ``min_samples``).
    """
    finite = samples[np.isfinite(samples) & (samples > 0)]
    if finite.size < max(min_samples, 1):
        return MetricScale(segment, source, False, 1.0, int(finite.size))
    median = float(np.median(finite))
    spread = (_MAD_TO_SIGMA * float(np.median(np.abs(finite - median))) / median
              if finite.size >= 2 else float('nan'))
    return MetricScale(segment, source, True, median, int(finite.size), spread)


def floor_distance(points_cam: NDArray[np.floating], down_cam: NDArray[np.float64],
                   max_tilt_deg: float, inlier_rel: float = 0.01) -> float | None:
    """
    Distance from the camera to the floor plane seen in its points (RANSAC), or None.

    The floor is the plane with the most points below the camera within ``inlier_rel`` of
    the median point depth, its normal within ``max_tilt_deg`` of ``down_cam``
    (``geometry.plane.ransac_plane``: LO-RANSAC, refitted by total least squares), lying
    below the camera. The best-supported level below the camera is taken for the floor: a
    large table top filling the view would be taken for it too (the median over keyframes
    tolerates a few).

    :param points_cam: (N, 3) points in the camera frame (OpenCV axes), any unit.
    :param down_cam: (3,) unit "down" direction in the camera frame.
    :param max_tilt_deg: largest angle between the floor normal and ``down_cam``.
    :param inlier_rel: inlier band, as a fraction of the median point depth.
    :return: the camera height in the points' unit, or None without a plausible floor.
    """
    points = np.asarray(points_cam, dtype=np.float64)
    down = np.asarray(down_cam, dtype=np.float64) / np.linalg.norm(down_cam)
    below = points[points @ down > 0]
    if below.shape[0] < _MIN_FLOOR_POINTS:
        return None
    band = inlier_rel * float(np.median(np.linalg.norm(points, axis=1)))
    found = ransac_plane(below, band, np.random.default_rng(_RANSAC_SEED),
                         trials=_RANSAC_ITERATIONS, axis=down, max_tilt_deg=max_tilt_deg)
    if found is None:
        return None
    plane, inliers = found
    # Oriented along "down": a positive offset lies below the camera centre.
    if np.count_nonzero(inliers) < _MIN_FLOOR_POINTS or plane.offset <= 0:
        return None
    return float(plane.offset)


class MetricScaleTracker:
    """
    Per-keyframe metric observations, and each segment's estimate from them.

    :param config: the metric scale settings.
    :param fixed_scale: ``MapperConfig.scale`` (reported as ``fixed`` when no sample exists
        and it is not 1).
    """

    def __init__(self, config: MetricScaleConfig, fixed_scale: float) -> None:
        self.config = config
        self.fixed_scale = fixed_scale
        self._odom_centres: dict[int, NDArray[np.float64]] = {}
        self._floor: dict[int, float] = {}

    @property
    def keyframes_with_odometry(self) -> int:
        """Keyframes that came with an odometry pose."""
        return len(self._odom_centres)

    def add_keyframe(self, index: int, odom_from_camera: NDArray[np.float64] | None,
                     points_local: NDArray[np.floating] | None) -> None:
        """
        Remember what a mapped keyframe tells about metres.

        :param index: the keyframe.
        :param odom_from_camera: its 4×4 odometry pose (metres), or None.
        :param points_local: its local cloud (camera frame, home unit) for the floor, or None.
        """
        if odom_from_camera is not None:
            self._odom_centres[index] = np.asarray(odom_from_camera[:3, 3], dtype=np.float64)
        cfg = self.config
        if cfg.source == 'camera_height' and points_local is not None:
            down = np.array([0.0, 1.0, 0.0])
            if odom_from_camera is not None:  # REP 103: the odometry frame's z is up
                down = -odom_from_camera[:3, :3].T @ np.array([0.0, 0.0, 1.0])
            distance = floor_distance(points_local, down, cfg.max_floor_tilt_deg)
            if distance is not None and distance > 0:
                self._floor[index] = distance

    def estimate(self, segment: int, members: Sequence[int],
                 world_from_node: Callable[[int], tuple[float, NDArray[np.float64]]]
                 ) -> MetricScale:
        """
        Estimate one segment's metres per unit from its keyframes' current poses.

        :param segment: the segment.
        :param members: its keyframes, in order.
        :param world_from_node: a keyframe's current (scale, camera centre) in the segment.
        :return: the estimate.
        """
        cfg = self.config
        estimate: MetricScale | None = None
        if cfg.source == 'odometry' and self._odom_centres:
            keys = [k for k in members if k in self._odom_centres]
            # The newest pairs only: enough keyframes back for max_samples pairs of motion.
            keys = keys[-(4 * cfg.max_samples + 1):]
            samples = np.empty(0)
            if len(keys) >= 2:
                samples = odometry_ratios(np.array([world_from_node(k)[1] for k in keys]),
                                          np.array([self._odom_centres[k] for k in keys]),
                                          cfg.min_motion_m, cfg.max_samples)
            estimate = robust_scale(samples, segment, 'odometry', cfg.min_samples)
        elif cfg.source == 'camera_height':
            keys = [k for k in members if k in self._floor][-cfg.max_samples:]
            samples = np.array([cfg.camera_height_m / (self._floor[k] * world_from_node(k)[0])
                                for k in keys])
            estimate = robust_scale(samples, segment, 'camera_height', cfg.min_samples)
        if estimate is not None and estimate.metric:
            return estimate
        if cfg.source == 'fixed' or self.fixed_scale != 1.0:
            # The scale is already in the internal unit (the first window's Sim(3)).
            return MetricScale(segment, 'fixed', True)
        return estimate if estimate is not None else MetricScale(segment, 'none', False)
