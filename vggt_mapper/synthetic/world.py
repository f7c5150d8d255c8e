"""
Textured synthetic indoor worlds and camera paths, rendered by vectorised numpy ray casting.

World frame of the synthetic scene: OpenCV-like, y down (the floor is at +y), metres. A room
is an axis-aligned box seen from inside (walls, floor, ceiling); objects are axis-aligned boxes
seen from outside. Every surface carries a procedural texture of random-coloured cells with a
finer overlay, so corner detectors and optical flow find plenty to track.

Worlds for back-end tests: ``default_room`` with ``orbit_path`` (a smooth ellipse) or
``loop_path`` (one or more laps that come back near the start: loop closure), and
``corridor_room`` with ``corridor_path`` (a straight walk past texture and objects that repeat
every ``period_m``: places that look alike but are not the same, the trap of loop detection).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.geometry.unproject import pixel_grid_uv, unproject_pixels

__all__ = ['CORRIDOR_LOOKAHEAD_M', 'Box', 'RepeatingRoom', 'Room', 'corridor_path',
           'corridor_room', 'default_room', 'intrinsics_for', 'look_at_world_from_cam',
           'loop_path', 'orbit_frames_per_lap', 'orbit_path']


@dataclass(frozen=True)
class Box:
    """
    An axis-aligned box in the world frame.

    :param lo: (3,) minimum corner, metres.
    :param hi: (3,) maximum corner, metres.
    """

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]


@dataclass(frozen=True)
class Room:
    """
    A room (inside of ``bounds``) with box objects in it.

    :param bounds: the room's box; cameras must stay inside it.
    :param objects: boxes standing in the room, seen from outside.
    :param texture_seed: seed of the procedural textures.
    :param cell_m: edge of the coarse texture cells, metres.
    """

    bounds: Box
    objects: tuple[Box, ...] = field(default_factory=tuple)
    texture_seed: int = 7
    cell_m: float = 0.12

    def cast(self, origin: NDArray[np.float64], directions: NDArray[np.float64]
             ) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
        """
        Cast rays from one origin and return the first hit of each.

        :param origin: (3,) ray origin in the world frame (inside the room).
        :param directions: (N, 3) ray directions in the world frame (any length; the
            returned ``t`` is in units of these directions).
        :return: ``t`` (N,) ray parameter of the hit, ``surface`` (N,) surface id (0-5 room
            faces, 6 + 6·k + face for object k), ``hit`` (N, 3) hit points in the world frame.
        """
        d = directions
        with np.errstate(divide='ignore', invalid='ignore'):
            inv = 1.0 / d
        lo = np.asarray(self.bounds.lo)
        hi = np.asarray(self.bounds.hi)
        # Inside the room: the exit distance on each axis is towards hi for d > 0, lo for d < 0.
        t_axis = np.where(d > 0, (hi - origin) * inv, (lo - origin) * inv)
        t_axis = np.where(np.abs(d) < 1e-12, np.inf, t_axis)
        axis = np.argmin(t_axis, axis=1)
        t_best = t_axis[np.arange(d.shape[0]), axis]
        surface = axis * 2 + (np.take_along_axis(d, axis[:, None], axis=1)[:, 0] > 0)
        surface = surface.astype(np.int64)
        for k, box in enumerate(self.objects):
            b_lo = np.asarray(box.lo)
            b_hi = np.asarray(box.hi)
            with np.errstate(invalid='ignore'):
                t1 = (b_lo - origin) * inv
                t2 = (b_hi - origin) * inv
            t_near_axis = np.minimum(t1, t2)
            t_far = np.nanmin(np.maximum(t1, t2), axis=1)
            near_axis = np.nanargmax(np.where(np.isnan(t_near_axis), -np.inf, t_near_axis),
                                     axis=1)
            t_near = t_near_axis[np.arange(d.shape[0]), near_axis]
            hit = (t_near <= t_far) & (t_near > 1e-6) & (t_near < t_best)
            if np.any(hit):
                face = near_axis * 2 + (np.take_along_axis(d, near_axis[:, None], 1)[:, 0] < 0)
                t_best = np.where(hit, t_near, t_best)
                surface = np.where(hit, 6 + 6 * k + face, surface)
        points = origin + t_best[:, None] * d
        return t_best, surface, points

    def texture(self, points: NDArray[np.float64], surface: NDArray[np.int64]
                ) -> NDArray[np.uint8]:
        """
        Colour of surface points: random-coloured cells plus a finer stripe pattern.

        :param points: (N, 3) points on the surfaces, world frame.
        :param surface: (N,) surface ids from ``cast``.
        :return: (N, 3) uint8 RGB.
        """
        axis = (surface % 6) // 2
        # Two in-plane coordinates of each point: drop the coordinate along the face normal.
        u_idx = np.where(axis == 0, 1, 0)
        v_idx = np.where(axis == 2, 1, 2)
        rows = np.arange(points.shape[0])
        u = points[rows, u_idx]
        v = points[rows, v_idx]
        cu = np.floor(u / self.cell_m).astype(np.int64)
        cv = np.floor(v / self.cell_m).astype(np.int64)
        # Integer hash of (cell, surface) -> a reproducible random colour per cell.
        key = (cu * 73856093) ^ (cv * 19349663) ^ ((surface + self.texture_seed) * 83492791)
        key = (key * 2654435761) & 0xFFFFFFFF
        base = np.stack([(key >> 0) & 255, (key >> 8) & 255, (key >> 16) & 255], axis=1)
        palette_seed = (surface * 37 + self.texture_seed) % 255
        tint = np.stack([(palette_seed * 3) % 255, (palette_seed * 7) % 255,
                         (palette_seed * 11) % 255], axis=1)
        fine = 0.5 + 0.5 * np.sin(u * 91.0) * np.sin(v * 67.0)
        colour = 0.55 * base + 0.25 * tint + 0.2 * 255 * fine[:, None]
        return np.clip(colour, 0, 255).astype(np.uint8)

    def distance_to_surfaces(self, points: NDArray[np.floating]) -> NDArray[np.float64]:
        """
        Unsigned distance of world points to the nearest surface of the scene.

        :param points: (N, 3) points, world frame, metres.
        :return: (N,) distances in metres.
        """
        pts = np.asarray(points, dtype=np.float64)
        lo = np.asarray(self.bounds.lo)
        hi = np.asarray(self.bounds.hi)
        best = np.min(np.minimum(np.abs(pts - lo), np.abs(pts - hi)), axis=1)
        outside = np.any((pts < lo) | (pts > hi), axis=1)
        # Outside the room: distance to the box from outside.
        out_d = np.linalg.norm(np.maximum(0, np.maximum(lo - pts, pts - hi)), axis=1)
        best = np.where(outside, out_d, best)
        for box in self.objects:
            centre = (np.asarray(box.lo) + np.asarray(box.hi)) / 2
            half = (np.asarray(box.hi) - np.asarray(box.lo)) / 2
            q = np.abs(pts - centre) - half
            dist = np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(np.max(q, axis=1), 0)
            best = np.minimum(best, np.abs(dist))
        return np.asarray(best, dtype=np.float64)

    def render(self, world_from_cam: NDArray[np.floating], intrinsics: NDArray[np.floating],
               height: int, width: int
               ) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        """
        Render one pinhole view.

        :param world_from_cam: 4×4 camera pose in the world (OpenCV camera axes).
        :param intrinsics: 3×3 K in pixels (pixel centres at integer coordinates).
        :param height: image height in pixels.
        :param width: image width in pixels.
        :return: ``image_rgb`` (H, W, 3) uint8 and ``depth_m`` (H, W) float32 z-depth.
        """
        pose = np.asarray(world_from_cam, dtype=np.float64)
        # Rays with z = 1 in the camera frame, so the hit parameter t is the z-depth.
        rays_cam = unproject_pixels(pixel_grid_uv(height, width).reshape(-1, 2), 1.0, intrinsics)
        rays_world = rays_cam @ pose[:3, :3].T
        depth, surface, points = self.cast(pose[:3, 3], rays_world)
        colour = self.texture(points, surface)
        image = colour.reshape(height, width, 3)
        return image, depth.reshape(height, width).astype(np.float32)


def default_room() -> Room:
    """Return the standard test room: 6 × 2.6 × 7 m with four boxes of different sizes."""
    return Room(
        bounds=Box((-3.0, -1.4, -3.0), (3.0, 1.2, 4.0)),
        objects=(
            Box((-2.2, 0.4, 2.2), (-1.2, 1.2, 3.2)),
            Box((1.0, 0.6, 2.6), (2.2, 1.2, 3.4)),
            Box((1.8, -0.2, -1.0), (2.6, 1.2, 0.0)),
            Box((-2.6, 0.7, -2.4), (-1.6, 1.2, -1.4)),
        ),
    )


def intrinsics_for(height: int, width: int, hfov_deg: float = 70.0) -> NDArray[np.float64]:
    """
    Pinhole K with the given horizontal field of view, principal point at the image centre.

    :param height: image height in pixels.
    :param width: image width in pixels.
    :param hfov_deg: horizontal field of view, degrees.
    :return: 3×3 float64 K (pixel centres at integers).
    """
    focal = (width / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return np.array([[focal, 0.0, (width - 1) / 2.0],
                     [0.0, focal, (height - 1) / 2.0],
                     [0.0, 0.0, 1.0]])


def look_at_world_from_cam(position: NDArray[np.floating], target: NDArray[np.floating]
                           ) -> NDArray[np.float64]:
    """
    Return the OpenCV camera pose at ``position`` looking at ``target`` with world +y as "down".

    :param position: (3,) camera centre, world frame.
    :param target: (3,) point the optical axis passes through.
    :return: 4×4 float64 ``world_from_cam``.
    """
    pos = np.asarray(position, dtype=np.float64)
    z_axis = np.asarray(target, dtype=np.float64) - pos
    z_axis /= np.linalg.norm(z_axis)
    x_axis = np.cross(np.array([0.0, 1.0, 0.0]), z_axis)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([x_axis, y_axis, z_axis], axis=1)
    pose[:3, 3] = pos
    return pose


ORBIT_CENTRE = (0.0, -0.1, 0.5)


def _orbit_pose(angle: float, radius_m: float) -> NDArray[np.float64]:
    position = np.asarray(ORBIT_CENTRE) + np.array([radius_m * np.cos(angle),
                                                    0.15 * np.sin(3 * angle),
                                                    0.9 * radius_m * np.sin(angle)])
    # Look ahead along the path and outward, towards the walls (rich parallax).
    ahead = np.array([-np.sin(angle), 0.0, np.cos(angle)])
    outward = np.array([np.cos(angle), 0.0, np.sin(angle)])
    look = position + 0.8 * ahead + 0.6 * outward + np.array([0.0, 0.25, 0.0])
    return look_at_world_from_cam(position, look)


def orbit_path(num_frames: int, step_m: float = 0.02, radius_m: float = 1.3,
               static_frames: int = 0) -> NDArray[np.float64]:
    """
    Return a smooth camera path: an ellipse around the room centre, looking outward and ahead.

    The path goes on round the ellipse for as many frames as asked; ``orbit_frames_per_lap``
    says how many make one lap.

    :param num_frames: number of poses.
    :param step_m: approximate distance travelled between consecutive frames, metres.
    :param radius_m: radius of the orbit, metres.
    :param static_frames: the first ``static_frames`` poses repeat the first pose (a camera
        standing still before it moves).
    :return: (num_frames, 4, 4) float64 ``world_from_cam`` poses.
    """
    poses = np.empty((num_frames, 4, 4))
    for index in range(num_frames):
        moving = max(index - static_frames, 0)
        poses[index] = _orbit_pose(moving * step_m / radius_m, radius_m)
    return poses


def orbit_frames_per_lap(step_m: float = 0.02, radius_m: float = 1.3) -> int:
    """
    Return after how many moving frames ``orbit_path`` is back at its start (within a step).

    :param step_m: ``orbit_path``'s step, metres.
    :param radius_m: ``orbit_path``'s radius, metres.
    :return: the number of frames of one lap (frame ``n`` is next to frame 0).
    """
    return int(round(2.0 * np.pi * radius_m / step_m))


def loop_path(frames_per_lap: int = 400, laps: float = 1.0, radius_m: float = 1.3,
              drift_m: float = 0.03) -> NDArray[np.float64]:
    """
    Return a closed loop in ``default_room``: laps of the orbit that come back near the start.

    One lap is about 7.7 m (radius 1.3 m). Each lap runs ``drift_m`` further inside than the
    one before, as a person walking a loop twice never retraces it exactly: frame
    ``frames_per_lap`` is ``drift_m`` from frame 0, looking the same way, and the images of a
    revisit are alike but never pixel-identical (the synthetic predictor tells frames apart by
    their pixels).

    :param frames_per_lap: frames per lap (about 2 cm per frame for 400).
    :param laps: number of laps; the path has ``round(laps * frames_per_lap) + 1`` poses.
    :param radius_m: radius of the first lap, metres.
    :param drift_m: how much closer to the centre each lap runs, metres (> 0).
    :return: (N, 4, 4) float64 ``world_from_cam`` poses.
    :raises ValueError: for fewer than 8 frames per lap, no lap, or ``drift_m`` <= 0.
    """
    if frames_per_lap < 8 or laps <= 0 or drift_m <= 0:
        raise ValueError(f'loop_path needs frames_per_lap >= 8, laps > 0 and drift_m > 0, got '
                         f'{frames_per_lap}, {laps} and {drift_m}')
    num_frames = int(round(laps * frames_per_lap)) + 1
    poses = np.empty((num_frames, 4, 4))
    for index in range(num_frames):
        lap_fraction = index / frames_per_lap
        poses[index] = _orbit_pose(2.0 * np.pi * lap_fraction, radius_m - drift_m * lap_fraction)
    return poses


@dataclass(frozen=True)
class RepeatingRoom(Room):
    """
    A room whose look repeats every ``period_m`` along z, with a slow colour drift.

    Texture coordinates are taken modulo ``period_m`` along z and every object wears the same
    texture, so objects placed every period look identical: one period apart, views are alike
    to a global image descriptor. A colour drift of ``drift_per_m`` grey levels per metre along z
    (red up, blue down) makes them differ slightly in every pixel, never identical.

    :param period_m: repetition period along z, metres.
    :param drift_per_m: colour drift, uint8 levels per metre along z.
    """

    period_m: float = 2.4
    drift_per_m: float = 1.5

    def texture(self, points: NDArray[np.float64], surface: NDArray[np.int64]
                ) -> NDArray[np.uint8]:
        """
        Colour of surface points: ``Room``'s texture folded onto one period, plus the drift.

        :param points: (N, 3) points on the surfaces, world frame.
        :param surface: (N,) surface ids from ``cast``.
        :return: (N, 3) uint8 RGB.
        """
        folded = points.copy()
        folded[:, 2] = np.mod(points[:, 2], self.period_m)
        # One material for every object: face k of every box looks like face k of the first.
        material = np.where(surface >= 6, 6 + surface % 6, surface)
        colour = super().texture(folded, material).astype(np.float64)
        drift = self.drift_per_m * points[:, 2]
        colour[:, 0] += drift
        colour[:, 2] -= drift
        return np.clip(np.round(colour), 0, 255).astype(np.uint8)


CORRIDOR_LOOKAHEAD_M = 7.0
"""How far ahead along z ``corridor_path``'s camera can see; the room must extend this far."""

_CORRIDOR_X = (-1.5, 1.5)
_CORRIDOR_Y = (-1.3, 1.2)
_CORRIDOR_BEHIND_M = 1.0


def corridor_room(length_m: float = 24.0, period_m: float = 2.4) -> RepeatingRoom:
    """
    Return a 3 m wide, 2.5 m high corridor along +z whose walls and objects repeat.

    Each period holds the same two boxes: a low cabinet against the right wall (+x) and a tall
    shelf against the left wall. The corridor runs from z = 0 to z = ``length_m``.

    :param length_m: corridor length, metres (at least two periods).
    :param period_m: repetition period of texture and objects, metres (at least 2 m).
    :return: the room.
    :raises ValueError: if the corridor is shorter than two periods or the period under 2 m.
    """
    if period_m < 2.0 or length_m < 2 * period_m:
        raise ValueError(f'corridor_room needs period_m >= 2 and length_m >= 2 periods, got '
                         f'period {period_m} m and length {length_m} m')
    objects = []
    for start in np.arange(0.0, length_m - 1e-9, period_m):
        objects.append(Box((1.0, 0.3, start + 0.3), (1.5, 1.2, start + 1.1)))
        objects.append(Box((-1.5, -0.2, start + 1.3), (-1.1, 1.2, start + 1.8)))
    return RepeatingRoom(bounds=Box((_CORRIDOR_X[0], _CORRIDOR_Y[0], 0.0),
                                    (_CORRIDOR_X[1], _CORRIDOR_Y[1], length_m)),
                         objects=tuple(objects), period_m=period_m)


def corridor_path(num_frames: int, room: RepeatingRoom, step_m: float = 0.02,
                  start_z: float = _CORRIDOR_BEHIND_M) -> NDArray[np.float64]:
    """
    Return a straight walk along the corridor, looking 55° to the right and slightly down.

    The camera never looks back and never sees the far end wall (the room must extend
    ``CORRIDOR_LOOKAHEAD_M`` past the last pose), so frames ``round(room.period_m / step_m)``
    apart see the same things but for the colour drift. The camera walks 0.8 m left of the
    centre line, 1.2 m above the floor.

    :param num_frames: number of poses.
    :param room: the corridor (``corridor_room``), used to check the walk fits in it.
    :param step_m: distance between consecutive frames along z, metres.
    :param start_z: z of the first pose, metres (at least 1 m from the start wall).
    :return: (num_frames, 4, 4) float64 ``world_from_cam`` poses.
    :raises ValueError: if the walk starts too close to the start wall or ends where the camera
        would see the end wall.
    """
    end_z = start_z + (num_frames - 1) * step_m
    if start_z < _CORRIDOR_BEHIND_M or end_z + CORRIDOR_LOOKAHEAD_M > room.bounds.hi[2]:
        raise ValueError(
            f'a corridor walk of {num_frames} frames of {step_m} m from z = {start_z} m needs a '
            f'corridor of at least {end_z + CORRIDOR_LOOKAHEAD_M:.1f} m and start_z >= '
            f'{_CORRIDOR_BEHIND_M} m; the room is {room.bounds.hi[2]} m long: pass '
            f'corridor_room(length_m=...) or fewer frames')
    yaw, pitch = np.radians(55.0), np.radians(10.0)
    direction = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch),
                          np.cos(yaw) * np.cos(pitch)])
    poses = np.empty((num_frames, 4, 4))
    for index in range(num_frames):
        position = np.array([-0.8, 0.0, start_z + index * step_m])
        poses[index] = look_at_world_from_cam(position, position + direction)
    return poses
