"""
A wheel- or VIO-like odometry of a synthetic camera path: metric, but with a scale error and noise.

The camera sits on a robot base (``base_link``, REP 103 axes: x forward, y left, z up) through a
fixed mount ``base_from_camera``. The odometry integrates the base's true frame-to-frame motion
with errors a real one has: every step's translation is ``1 + scale_error`` times too long (a
wrong wheel radius, a VIO scale bias), plus noise on each step's translation and heading, so
the error grows along the path like an odometry's does. ``odom_from_camera`` is what TF
``odom → base_link → camera_optical`` gives at each frame's stamp.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from vggt_mapper.geometry import inverse_se3

__all__ = ['BASE_FROM_CAMERA', 'Odometry', 'OdometryNoise', 'simulate_odometry']


def _mount() -> NDArray[np.float64]:
    mount = np.eye(4)
    # Optical axes (x right, y down, z forward) in REP 103 body axes (x forward, y left, z up).
    mount[:3, :3] = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    mount[:3, 3] = (0.15, -0.05, 0.4)  # 15 cm ahead, 5 cm right of and 40 cm above the base
    mount.flags.writeable = False
    return mount


BASE_FROM_CAMERA: NDArray[np.float64] = _mount()
"""4×4 default camera mount: the optical frame in ``base_link``, forward-looking."""


@dataclass(frozen=True)
class OdometryNoise:
    """
    How the synthetic odometry errs.

    :param scale_error: every step's translation is ``1 + scale_error`` times the true one
        (0.02: the odometry says 102 m for 100 m).
    :param step_trans_rel: std of each step's translation noise per axis, as a fraction of the
        step's length.
    :param step_trans_m: std of an extra per-axis translation noise per step, metres.
    :param step_yaw_deg: std of each step's heading noise about the base's z axis, degrees.
    :raises ValueError: if a value is not finite or, except ``scale_error``, negative, or if
        ``scale_error`` <= -1.
    """

    scale_error: float = 0.02
    step_trans_rel: float = 0.02
    step_trans_m: float = 0.0005
    step_yaw_deg: float = 0.05

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not np.isfinite(value) or (item.name != 'scale_error' and value < 0):
                raise ValueError(f'OdometryNoise.{item.name} must be a finite number'
                                 f'{"" if item.name == "scale_error" else " >= 0"}, got '
                                 f'{value!r}')
        if self.scale_error <= -1:
            raise ValueError(f'OdometryNoise.scale_error must be > -1, got {self.scale_error}')


@dataclass(frozen=True)
class Odometry:
    """
    A simulated odometry stream, one pose per frame of the path.

    :param odom_from_base: (N, 4, 4) the base's pose in the odometry frame (its frame 0 pose is
        the identity), metres.
    :param base_from_camera: 4×4 the camera mount.
    :param scale_error: the stream's scale error (lengths are ``1 + scale_error`` times true).
    """

    odom_from_base: NDArray[np.float64]
    base_from_camera: NDArray[np.float64]
    scale_error: float

    @property
    def odom_from_camera(self) -> NDArray[np.float64]:
        """(N, 4, 4) the camera's pose in the odometry frame (what TF gives), metres."""
        return np.asarray(self.odom_from_base @ self.base_from_camera, dtype=np.float64)


def simulate_odometry(world_from_cam: NDArray[np.floating], noise: OdometryNoise | None = None,
                      base_from_camera: NDArray[np.floating] = BASE_FROM_CAMERA,
                      seed: int = 0) -> Odometry:
    """
    Integrate a camera path's true base motion with the errors of ``noise``.

    :param world_from_cam: (N, 4, 4) true camera poses (OpenCV axes), metres.
    :param noise: the errors (``OdometryNoise()``: 2 % scale error and noise, if omitted).
    :param base_from_camera: 4×4 camera mount in ``base_link``.
    :param seed: seed of the noise.
    :return: the odometry, pose 0 at the identity.
    """
    noise = noise if noise is not None else OdometryNoise()
    mount = np.asarray(base_from_camera, dtype=np.float64)
    world_from_base = np.asarray(world_from_cam, dtype=np.float64) @ inverse_se3(mount)
    rng = np.random.default_rng(seed)
    poses = np.empty_like(world_from_base)
    poses[0] = np.eye(4)
    for k in range(1, len(world_from_base)):
        step = inverse_se3(world_from_base[k - 1]) @ world_from_base[k]
        length = float(np.linalg.norm(step[:3, 3]))
        step[:3, 3] *= 1.0 + noise.scale_error
        step[:3, 3] += (noise.step_trans_rel * length + noise.step_trans_m) \
            * rng.standard_normal(3)
        yaw = Rotation.from_rotvec([0.0, 0.0, np.radians(noise.step_yaw_deg)
                                    * rng.standard_normal()]).as_matrix()
        step[:3, :3] = yaw @ step[:3, :3]
        poses[k] = poses[k - 1] @ step
    return Odometry(poses, mount.copy(), noise.scale_error)
