"""
Typed results the mapping engine hands to its callers (the doors).

Conventions (pinned by ``test/engine/test_convention_mapper.py``):

* World frame = the camera frame of the first keyframe, OpenCV axes (x right, y down,
  z forward), in the first window's scale unit times ``MapperConfig.scale``.
* ``cam_from_world`` maps world points into the camera frame: ``x_cam = R @ x_world + t``;
  ``world_from_cam`` is its inverse (its translation is the camera centre). Both are 4×4 float64.
* Stamps are integer nanoseconds (``stamp_ns``), as in rosbag2 and ROS 2 ``Time``.
* Outputs (``Mapper.trajectory``, ``map_snapshot``, ``WindowResult`` poses and points) are in
  metres for a segment whose ``MetricScale.metric`` is true (odometry, a camera height or a
  fixed ``scale``), else in the segment's own unit; ``MetricScale.factor`` is what was applied
  to the engine's internal unit.
"""  # noqa: A005 (public module name, imported as vggt_mapper.engine.types)

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.geometry.se3 import inverse_se3
from vggt_mapper.geometry.sim3 import Sim3

__all__ = ['InputFrame', 'KeyframePose', 'LoopOutcome', 'MapSnapshot', 'MapperStats',
           'MetricScale', 'WindowResult']


@dataclass(frozen=True)
class InputFrame:
    """
    One decoded camera frame, as every reader and door hands it to the engine.

    :param image_rgb: (H, W, 3) uint8 RGB.
    :param stamp_ns: timestamp in integer nanoseconds (message stamp, video PTS, or index-based).
    :param name: a name for logs and exports (file name, ``frame_000123``).
    :param intrinsics: optional known 3×3 float64 pinhole K of ``image_rgb`` as given (after
        undistortion), in its pixels (a calibration file, ``CameraInfo``); None: the model's.
    :param odom_from_camera: optional 4×4 float64 metric pose of the camera (OpenCV axes) in an
        odometry frame at ``stamp_ns`` (TF ``odom → base_link → camera``); None: unknown.
    """

    image_rgb: NDArray[np.uint8]
    stamp_ns: int
    name: str
    intrinsics: NDArray[np.float64] | None = None
    odom_from_camera: NDArray[np.float64] | None = None

    def sensor_kwargs(self) -> dict[str, NDArray[np.float64]]:
        """
        Return the known intrinsics and odometry as ``Mapper.add_frame`` keywords.

        :return: only the ones given (an empty dict for a bare image).
        """
        given = {'intrinsics': self.intrinsics, 'odom_from_camera': self.odom_from_camera}
        return {key: value for key, value in given.items() if value is not None}


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
    :param segment: the map segment the keyframe belongs to; each segment has its own world
        frame and scale until a loop closure merges it into an older one (segment 0's world is
        the first keyframe's camera).
    :param intrinsics_predicted: the model's own 3×3 K in model-image pixels when a known K
        replaced it (``intrinsics`` is then the known one); None when ``intrinsics`` is the
        model's.
    """

    index: int
    name: str
    stamp_ns: int
    world_from_cam: NDArray[np.float64]
    intrinsics: NDArray[np.float64]
    model_hw: tuple[int, int]
    intrinsics_original: NDArray[np.float64]
    original_hw: tuple[int, int]
    segment: int = 0
    intrinsics_predicted: NDArray[np.float64] | None = None

    @property
    def intrinsics_source(self) -> str:
        """``known`` (a calibration the door gave) or ``predicted`` (the model's own)."""
        return 'predicted' if self.intrinsics_predicted is None else 'known'

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
    :param predict_s: seconds spent in the predictor mapping this window (retries included).
    :param align_s: seconds of the back end for this window, model time excluded: checks,
        alignment, keyframe store, map update, place recognition, loop verification's own
        work and applying an optimisation result (the optimisation itself runs in another
        process: ``MapperStats.optimize_s``).
    :param world_from_window: the Sim(3) that carried the window's frame (its first camera, at
        the model's arbitrary scale) into the world; None when the window was refused. Its
        ``scale`` converts the window's depth units into world units.
    :param status: ``accepted`` (the window joined the map), ``bridged`` (accepted after
        refused attempts, with fewer new keyframes), ``new_segment`` (the link to the map was
        lost: the window starts a new segment) or ``refused`` (its keyframes could not be
        mapped at all: ``lost_keyframes``).
    :param segment: the segment the window's keyframes joined (-1 when refused).
    :param attempts: model calls this window took (1 + retries).
    :param refusals: why each refused attempt was refused, in order.
    :param lost_keyframes: keyframes given up (never mapped), with the last refusal as reason.
    :param corrected: the pose graph moved mapped keyframes since the previous result
        (``Mapper.trajectory()`` and the map changed beyond this window's additions).
    :param loops: loop candidates verified during this window and their fate.
    :param verify_s: seconds spent in the predictor verifying loop candidates.
    :param focal_ratio: the model's focal length over the known one, median over the window's
        frames with a known K (NaN when none had one or the window was refused).
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
    status: str = 'accepted'
    segment: int = 0
    attempts: int = 1
    refusals: tuple[str, ...] = ()
    lost_keyframes: tuple[int, ...] = ()
    corrected: bool = False
    loops: tuple[LoopOutcome, ...] = ()
    verify_s: float = 0.0
    focal_ratio: float = float('nan')


@dataclass(frozen=True)
class LoopOutcome:
    """
    The fate of one loop-closure candidate (data the doors show and ``map_stats.json`` counts).

    :param query: the new keyframe that looked for a revisit.
    :param candidate: the mapped keyframe place recognition proposed.
    :param similarity: descriptor similarity of the two (cosine, 1 = identical).
    :param accepted: True if verification accepted it and it became a pose-graph edge.
    :param reason: why it was rejected (a short kind, then details); empty when accepted.
    :param covisible: share of the query's points that the candidate sees, as the loop window
        predicted them (NaN when verification stopped before measuring it).
    :param correction: ``candidate-world_from_query-world`` Sim(3) the loop implies (identity
        when there is no drift); None when rejected.
    :param merged: ``(kept, absorbed)`` segments when the loop merged two segments.
    """

    query: int
    candidate: int
    similarity: float
    accepted: bool
    reason: str
    covisible: float = float('nan')
    correction: Sim3 | None = None
    merged: tuple[int, int] | None = None


@dataclass(frozen=True)
class MapSnapshot:
    """
    The merged coloured map at one moment.

    :param points_world: (N, 3) float32 points in the world frame.
    :param colors_rgb: (N, 3) uint8 colours.
    :param segment_ids: (N,) int32 map segment of each point (None: all in segment 0). Points
        of different segments are in different frames until their segments merge.
    """

    points_world: NDArray[np.float32]
    colors_rgb: NDArray[np.uint8]
    segment_ids: NDArray[np.int32] | None = None

    @property
    def segments(self) -> NDArray[np.int32]:
        """(N,) int32 segment of each point (zeros when the map has one segment)."""
        if self.segment_ids is None:
            return np.zeros(self.num_points, np.int32)
        return self.segment_ids

    @property
    def num_points(self) -> int:
        """Return the number of points N."""
        return int(self.points_world.shape[0])


@dataclass(frozen=True)
class MetricScale:
    """
    How one map segment's unit relates to metres, as the engine knows it now.

    :param segment: the segment.
    :param source: ``odometry`` (keyframe-to-keyframe translation lengths against a metric
        odometry), ``camera_height`` (a known camera height above a detected floor plane),
        ``fixed`` (``MapperConfig.scale``, taken as metric) or ``none`` (no metric source).
    :param metric: True when the segment's outputs are in metres.
    :param factor: metres per internal unit, applied to the segment's outputs (1.0 when not
        metric, and for ``fixed``, whose scale is already in the internal unit).
    :param samples: ratios the estimate is the median of (keyframe pairs or keyframes).
    :param spread_rel: robust spread of those ratios: 1.4826 · MAD / median (NaN below two).
    """

    segment: int
    source: str
    metric: bool
    factor: float = 1.0
    samples: int = 0
    spread_rel: float = float('nan')

    @property
    def stderr_rel(self) -> float:
        """Relative standard error of the median: 1.2533 · spread / sqrt(samples)."""
        if self.samples < 2:
            return float('nan')
        return 1.2533 * self.spread_rel / float(np.sqrt(self.samples))


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
    :param frames_untrackable: frames the keyframe selector could not use (blank, saturated).
    :param keyframes_mapped: keyframes with a pose in the map.
    :param keyframes_lost: keyframes given up after every recovery attempt.
    :param model_calls: predictor calls for mapping windows (retries included).
    :param verification_calls: predictor calls spent verifying loop candidates.
    :param refusals: refused attempts by kind (``alignment:residual``, ``predictor:error``...).
    :param segments: map segments now (1 while the map is one piece).
    :param segments_started: segments ever started (merged ones included).
    :param loop_candidates: loop candidates verified.
    :param loops_accepted: loop edges added to the pose graph.
    :param loop_rejections: rejected candidates by kind.
    :param loop_verdicts: what the robust kernel made of the loop edges in the last
        optimisation (``inlier``, ``down_weighted``, ``ignored``).
    :param optimizations: pose-graph optimisations applied.
    :param optimize_s: seconds spent optimising (in the background thread).
    :param store_bytes: bytes of keyframe clouds and images on disk.
    :param store_memory_bytes: bytes of keyframe clouds held in RAM.
    :param map_bytes: bytes of the fused world map grids.
    :param mode: ``mapping`` or ``localization`` (``Mapper.set_mode``).
    :param keyframes_localized: keyframes placed against the map in localization mode.
    :param keyframes_not_localized: keyframes localization mode could not place.
    :param localization_calls: predictor calls of localization mode (describing keyframes,
        verifying candidates).
    :param keyframes_with_intrinsics: mapped keyframes whose known K replaced the model's.
    :param keyframes_with_odometry: keyframes selected with a metric odometry pose.
    :param focal_ratios: model focal / known focal of each window with a known K, in order.
    :param metric_scales: each segment's metric scale now, by segment.
    """

    frames_seen: int
    frames_skipped: int
    keyframes: int
    windows_done: int
    windows_rejected: int
    pending_keyframes: int
    map_points: int
    frames_untrackable: int = 0
    keyframes_mapped: int = 0
    keyframes_lost: int = 0
    model_calls: int = 0
    verification_calls: int = 0
    refusals: Mapping[str, int] = field(default_factory=dict)
    segments: int = 0
    segments_started: int = 0
    loop_candidates: int = 0
    loops_accepted: int = 0
    loop_rejections: Mapping[str, int] = field(default_factory=dict)
    loop_verdicts: Mapping[str, int] = field(default_factory=dict)
    optimizations: int = 0
    optimize_s: float = 0.0
    store_bytes: int = 0
    store_memory_bytes: int = 0
    map_bytes: int = 0
    mode: str = 'mapping'
    keyframes_localized: int = 0
    keyframes_not_localized: int = 0
    localization_calls: int = 0
    keyframes_with_intrinsics: int = 0
    keyframes_with_odometry: int = 0
    focal_ratios: tuple[float, ...] = ()
    metric_scales: Mapping[int, MetricScale] = field(default_factory=dict)
