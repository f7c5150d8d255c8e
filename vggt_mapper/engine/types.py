"""
Typed results the mapping engine hands to its callers (the doors).

Conventions (pinned by ``test/engine/test_convention_mapper.py``):

* World frame = the camera frame of the first keyframe, OpenCV axes (x right, y down,
  z forward), in the first window's scale unit times ``MapperConfig.scale``.
* ``cam_from_world`` maps world points into the camera frame: ``x_cam = R @ x_world + t``;
  ``world_from_cam`` is its inverse (its translation is the camera centre). Both are 4×4 float64.
* Stamps are integer nanoseconds (``stamp_ns``), as in rosbag2 and ROS 2 ``Time``.
"""  # noqa: A005 (public module name, imported as vggt_mapper.engine.types)

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.geometry.se3 import inverse_se3
from vggt_mapper.geometry.sim3 import Sim3

__all__ = ['InputFrame', 'KeyframePose', 'MapSnapshot', 'MapperStats', 'WindowResult']


@dataclass(frozen=True)
class InputFrame:
    """
    One decoded camera frame, as every reader and door hands it to the engine.

    :param image_rgb: (H, W, 3) uint8 RGB.
    :param stamp_ns: timestamp in integer nanoseconds (message stamp, video PTS, or index-based).
    :param name: a name for logs and exports (file name, ``frame_000123``).
    """

    image_rgb: NDArray[np.uint8]
    stamp_ns: int
    name: str


@dataclass(frozen=True)
class KeyframePose:
    """
    One keyframe's current pose and camera model.

    :param index: keyframe number, 0-based, in selection order.
    :param name: the frame's name (file name, or ``frame_<n>``).
    :param stamp_ns: the frame's timestamp in integer nanoseconds.
    :param world_from_cam: 4×4 float64 pose of the camera in the world (OpenCV camera axes).
    :param intrinsics: 3×3 float64 K in the pixels of the image the model saw.
    :param model_hw: (height, width) of the image the model saw.
    :param intrinsics_original: 3×3 float64 K in the pixels of the original image.
    :param original_hw: (height, width) of the original image.
    """

    index: int
    name: str
    stamp_ns: int
    world_from_cam: NDArray[np.float64]
    intrinsics: NDArray[np.float64]
    model_hw: tuple[int, int]
    intrinsics_original: NDArray[np.float64]
    original_hw: tuple[int, int]

    @property
    def cam_from_world(self) -> NDArray[np.float64]:
        """4×4 float64 camera-from-world transform (the extrinsics), inverse of world_from_cam."""
        return inverse_se3(self.world_from_cam)

    @property
    def position_world(self) -> NDArray[np.float64]:
        """Camera centre in the world frame, (3,)."""
        return np.asarray(self.world_from_cam[:3, 3], dtype=np.float64)


@dataclass(frozen=True)
class WindowResult:
    """
    What one processed window changed.

    :param window_index: 0-based window number.
    :param keyframe_indices: keyframes the window covered, in order.
    :param accepted: False if its alignment was refused (the map is unchanged then).
    :param reason: why it was refused, empty when accepted.
    :param poses: current poses of the keyframes this window added or corrected.
    :param points_world: (N, 3) float32 points this window added to the map, world frame.
    :param colors_rgb: (N, 3) uint8 colours of ``points_world``.
    :param predict_s: seconds spent in the predictor.
    :param align_s: seconds spent in alignment and map update (the back end).
    :param world_from_window: the Sim(3) that carried the window's frame (its first camera, at
        the model's arbitrary scale) into the world; None when the window was refused. Its
        ``scale`` converts the window's depth units into world units.
    """

    window_index: int
    keyframe_indices: tuple[int, ...]
    accepted: bool
    reason: str
    poses: tuple[KeyframePose, ...]
    points_world: NDArray[np.float32]
    colors_rgb: NDArray[np.uint8]
    predict_s: float
    align_s: float
    world_from_window: Sim3 | None = None


@dataclass(frozen=True)
class MapSnapshot:
    """
    The merged coloured map at one moment.

    :param points_world: (N, 3) float32 points in the world frame.
    :param colors_rgb: (N, 3) uint8 colours.
    """

    points_world: NDArray[np.float32]
    colors_rgb: NDArray[np.uint8]

    @property
    def num_points(self) -> int:
        """Return the number of points N."""
        return int(self.points_world.shape[0])


@dataclass(frozen=True)
class MapperStats:
    """
    Counters for logs, progress bars and diagnostics.

    :param frames_seen: frames passed to ``add_frame``.
    :param frames_skipped: frames refused as bad input (logged and counted, never raised).
    :param keyframes: keyframes selected so far.
    :param windows_done: windows predicted (accepted or not).
    :param windows_rejected: windows whose alignment was refused.
    :param pending_keyframes: keyframes selected but not yet predicted (the lag).
    :param map_points: points in the merged map.
    """

    frames_seen: int
    frames_skipped: int
    keyframes: int
    windows_done: int
    windows_rejected: int
    pending_keyframes: int
    map_points: int
