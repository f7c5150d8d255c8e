"""
The published ``map`` frame of each map segment, and the data carried into it (no rclpy here).

The engine's world of a segment is its first keyframe's camera frame (OpenCV axes). The node
publishes in ``map`` (REP 103 axes: x forward, y left, z up), obtained from that world by a
rotation about the world origin, ``map_from_world``:

* **levelled** (``level_map: tf`` and TF has ``base_frame -> camera_frame``): z is gravity's up,
  estimated from every keyframe of the segment with the camera's up direction in TF
  (``vggt_mapper.geometry.gravity``: the base's z is up), turned from the fixed REP 103 frame
  by the shortest rotation (``io.ros_messages.level_map_from_world``, the same levelling the
  occupancy grid uses): x stays as near the first camera's viewing direction as levelling allows;
* otherwise the fixed rotation ``MAP_FROM_WORLD`` (``io.ros_messages``): level only if the first
  camera was. Another source of "up" (the grid's floor-plane fit) plugs in by giving
  ``map_frame_from_up`` its ``up_world``.

The same ``map_from_world`` turns topics, TF (so ``map -> odom`` too) and saved files into the
one ``map`` frame: ``poses_in_map`` and ``snapshot_in_map`` carry a whole map, segment by segment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.types import KeyframePose, MapSnapshot
from vggt_mapper.geometry.gravity import tilt_deg
from vggt_mapper.geometry.se3 import transform_points
from vggt_mapper.io.ros_messages import level_map_from_world, MAP_FROM_WORLD

__all__ = ['DEFAULT_CAMERA_FRAME', 'UNLEVELLED', 'MapFrame', 'camera_frame_of',
           'map_frame_from_up', 'poses_in_map', 'snapshot_in_map']

#: The camera frame when neither the parameter nor the images name one.
DEFAULT_CAMERA_FRAME = 'camera_optical'


@dataclass(frozen=True)
class MapFrame:
    """
    How one segment's world becomes the published ``map`` frame.

    :param map_from_world: 4×4 float64 rotation (no translation: same origin).
    :param levelled_by: where gravity came from (``tf``), or empty when the frame is not
        levelled (the fixed REP 103 turn of the first camera's frame).
    :param tilt_deg: how far from level the unlevelled frame is, by the same gravity (NaN when
        gravity is unknown).
    """

    map_from_world: NDArray[np.float64]
    levelled_by: str = ''
    tilt_deg: float = float('nan')

    def describe(self) -> str:
        """Say which frame this is, for logs, service answers and saved files."""
        if self.levelled_by:
            return (f'REP 103 axes (x forward, y left, z up), levelled by gravity from '
                    f'{self.levelled_by} (the first camera was {self.tilt_deg:.1f}° off level), '
                    f"origin at the first keyframe's camera")
        return ("REP 103 axes (x forward, y left, z up) turned from the first keyframe's camera "
                'frame, origin at that camera; not levelled (no gravity known)')


#: The frame of a segment whose gravity is unknown.
UNLEVELLED = MapFrame(MAP_FROM_WORLD.copy())


def map_frame_from_up(up_world: NDArray[np.floating] | None, source: str) -> MapFrame:
    """
    Build a segment's map frame from its up direction, when one is known.

    :param up_world: (3,) gravity's up in the segment's world, or None when unknown.
    :param source: what gave ``up_world`` (``tf``...), for ``MapFrame.levelled_by``.
    :return: the levelled frame, or the fixed REP 103 turn when ``up_world`` is None.
    """
    if up_world is None:
        return UNLEVELLED
    return MapFrame(level_map_from_world(up_world), source, tilt_deg(up_world, MAP_FROM_WORLD))


def camera_frame_of(parameter: str, header_frame_id: str) -> str:
    """
    Return the camera frame the poses are published in.

    :param parameter: the ``camera_frame`` parameter (empty: take the images' frame).
    :param header_frame_id: the images' ``header.frame_id`` (may be empty).
    :return: the parameter if set, else the images' frame, else ``DEFAULT_CAMERA_FRAME``.
    """
    return parameter or header_frame_id or DEFAULT_CAMERA_FRAME


def poses_in_map(poses: Sequence[KeyframePose],
                 frames: Mapping[int, MapFrame]) -> list[KeyframePose]:
    """
    Express keyframe poses in the map frame of their segment.

    :param poses: keyframes with ``world_from_cam`` in their segment's world.
    :param frames: map frame per segment; a segment missing here gets ``UNLEVELLED``.
    :return: copies whose ``world_from_cam`` is ``map_from_world @ world_from_cam``.
    """
    return [replace(pose, world_from_cam=frames.get(pose.segment, UNLEVELLED).map_from_world
                    @ pose.world_from_cam) for pose in poses]


def snapshot_in_map(snapshot: MapSnapshot, frames: Mapping[int, MapFrame]) -> MapSnapshot:
    """
    Express a map's points in the map frame of their segment.

    :param snapshot: points in their segment's world.
    :param frames: map frame per segment; a segment missing here gets ``UNLEVELLED``.
    :return: a new snapshot (float32 points, same colours and segments).
    """
    segments = snapshot.segments
    points = np.empty_like(snapshot.points_world, dtype=np.float32)
    for segment in np.unique(segments):
        mask = segments == segment
        points[mask] = transform_points(frames.get(int(segment), UNLEVELLED).map_from_world,
                                        snapshot.points_world[mask])
    return replace(snapshot, points_world=points)
