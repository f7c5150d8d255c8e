"""
The mapping engine's one object: frames in, aligned keyframe poses and a merged map out.

Data path: ``add_frame`` → ``KeyframeSelector`` (parallax by optical flow) → a window of
``window_size`` keyframes, the first ``overlap`` of which were already mapped (the anchors)
→ ``Predictor.predict`` → ``align_window`` (robust Sim(3) on the anchors' dense depth) →
new keyframe poses and points fused into ``PointMap``.

Refused windows: when ``align_window`` refuses a window, nothing of it reaches the
trajectory or the map, its new keyframes are dropped, and the anchors stay the last keyframes
with good poses, so the next window re-anchors on them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import logging
import time

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.alignment import align_window, OverlapView
from vggt_mapper.engine.config import MapperConfig
from vggt_mapper.engine.errors import AlignmentError, EngineError, FrameError
from vggt_mapper.engine.keyframes import KeyframeSelector
from vggt_mapper.engine.point_map import PointMap
from vggt_mapper.engine.types import KeyframePose, MapperStats, MapSnapshot, WindowResult
from vggt_mapper.geometry.se3 import inverse_se3
from vggt_mapper.geometry.sim3 import Sim3
from vggt_mapper.geometry.unproject import unproject_pixels
from vggt_mapper.predictor.base import ImageMapping, Predictor, WindowPrediction

__all__ = ['Mapper', 'validate_frame']

_LOG = logging.getLogger(__name__)

_MIN_SIDE = 16


def validate_frame(image_rgb: object, stamp_ns: object) -> NDArray[np.uint8]:
    """
    Check one input frame.

    :param image_rgb: the candidate image.
    :param stamp_ns: its timestamp.
    :return: the image as a C-contiguous uint8 (H, W, 3) array.
    :raises FrameError: if the image or stamp is unusable (the message says why).
    """
    if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, (int, np.integer)):
        raise FrameError(f'stamp_ns must be an integer number of nanoseconds, got '
                         f'{type(stamp_ns).__name__} {stamp_ns!r}')
    if not isinstance(image_rgb, np.ndarray):
        raise FrameError(f'image must be a numpy array, got {type(image_rgb).__name__}')
    if image_rgb.dtype != np.uint8:
        raise FrameError(f'image must be uint8, got {image_rgb.dtype}')
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise FrameError(f'image must be (H, W, 3) RGB, got shape {image_rgb.shape}')
    if min(image_rgb.shape[:2]) < _MIN_SIDE:
        raise FrameError(f'image must be at least {_MIN_SIDE} pixels per side, got shape '
                         f'{image_rgb.shape}')
    return np.ascontiguousarray(image_rgb)


def _window_from_cam(prediction: WindowPrediction) -> NDArray[np.float64]:
    """Invert the predicted extrinsics; refuse non-finite or non-rigid ones."""
    cam_from_window = np.tile(np.eye(4), (prediction.num_frames, 1, 1))
    cam_from_window[:, :3, :4] = prediction.cam_from_window
    rotations = cam_from_window[:, :3, :3]
    if not np.all(np.isfinite(cam_from_window)):
        raise AlignmentError('prediction has non-finite camera poses')
    orthogonality = np.abs(rotations @ np.transpose(rotations, (0, 2, 1)) - np.eye(3)).max()
    if orthogonality > 1e-3 or np.any(np.linalg.det(rotations) <= 0):
        raise AlignmentError(f'prediction has camera rotations that are not rotations '
                             f'(|R R^T - I| up to {orthogonality:.3g})')
    return inverse_se3(cam_from_window)


def _copy_pose(pose: KeyframePose) -> KeyframePose:
    """Return a pose whose arrays the caller may modify without touching the engine's."""
    return replace(pose, world_from_cam=pose.world_from_cam.copy(),
                   intrinsics=pose.intrinsics.copy(),
                   intrinsics_original=pose.intrinsics_original.copy())


@dataclass
class _Keyframe:
    index: int
    name: str
    stamp_ns: int
    image_rgb: NDArray[np.uint8]


@dataclass
class _Anchor:
    """A mapped keyframe kept for the next window's overlap (its depth in world units)."""

    keyframe: _Keyframe
    pose: KeyframePose
    depth_world: NDArray[np.float32]
    conf: NDArray[np.float32]


class Mapper:
    """
    Incremental mapper: keyframes → overlapping windows → predictions → Sim(3) → one map.

    Synchronous: ``add_frame`` runs the predictor when a window is complete, so a door that must
    stay responsive calls it from a worker thread (``vggt_mapper.engine.worker``). Nothing here
    grows without bound: at most ``window_size`` keyframes wait for the predictor, at most
    ``overlap`` mapped keyframes keep their images and depth, and the map is capped (see
    ``PointMap``). The trajectory keeps one small pose record per keyframe.

    :param config: engine settings.
    :param predictor: the model (or a stand-in) answering windows.
    """

    def __init__(self, config: MapperConfig, predictor: Predictor) -> None:
        self.config = config
        self.predictor = predictor
        self._selector = KeyframeSelector(config.keyframes)
        self._map = PointMap(config.map)
        self.reset()

    def reset(self) -> None:
        """Forget everything: trajectory, map, pending keyframes, counters."""
        self._selector.reset()
        self._map.reset()
        self._pending: list[_Keyframe] = []
        self._anchors: list[_Anchor] = []
        self._poses: dict[int, KeyframePose] = {}
        self._frame_hw: tuple[int, int] | None = None
        self._last_stamp_ns: int | None = None
        self._frames_seen = 0
        self._frames_skipped = 0
        self._keyframes = 0
        self._windows_done = 0
        self._windows_rejected = 0

    def add_frame(self, image_rgb: NDArray[np.uint8], stamp_ns: int,
                  name: str | None = None) -> list[WindowResult]:
        """
        Offer one frame; returns the windows it completed (usually none or one).

        Bad frames (wrong dtype/shape, empty, a size other than the first frame's, a stamp
        not after the previous one) are logged, counted in ``stats.frames_skipped`` and
        ignored: this never raises for bad input.

        :param image_rgb: uint8 (H, W, 3) RGB image.
        :param stamp_ns: timestamp in integer nanoseconds, increasing.
        :param name: frame name (``frame_<n>`` if omitted).
        :return: the window results this frame produced.
        :raises EngineError: if the predictor's answer is malformed (not bad input).
        """
        number = self._frames_seen
        self._frames_seen += 1
        try:
            image = validate_frame(image_rgb, stamp_ns)
            if self._frame_hw is not None and image.shape[:2] != self._frame_hw:
                raise FrameError(f'image size {image.shape[:2]} differs from the first frame size '
                                 f'{self._frame_hw}; one camera per mapper')
            if self._last_stamp_ns is not None and int(stamp_ns) <= self._last_stamp_ns:
                raise FrameError(f'stamp_ns {stamp_ns} is not after the previous frame stamp '
                                 f'{self._last_stamp_ns}')
        except FrameError as err:
            self._frames_skipped += 1
            _LOG.warning('skipped frame %d (%s): %s', number, name, err)
            return []
        self._frame_hw = (int(image.shape[0]), int(image.shape[1]))
        self._last_stamp_ns = int(stamp_ns)
        decision = self._selector.offer(image)
        if not decision.is_keyframe:
            return []
        keyframe = _Keyframe(self._keyframes, name if name is not None else f'frame_{number}',
                             int(stamp_ns), image.copy())
        self._keyframes += 1
        _LOG.debug('keyframe %d from frame %d (%s, parallax %.1f px)', keyframe.index,
                   number, decision.reason, decision.parallax_px)
        self._pending.append(keyframe)
        if len(self._anchors) + len(self._pending) >= self.config.window_size:
            return [self._process_window()]
        return []

    def flush(self) -> list[WindowResult]:
        """
        Process the last, partial window (end of stream).

        :return: the result of that window, or nothing if no keyframe was waiting.
        """
        if not self._pending:
            return []
        return [self._process_window()]

    def trajectory(self) -> list[KeyframePose]:
        """Return the current poses of all mapped keyframes, in keyframe order (copies)."""
        return [_copy_pose(self._poses[index]) for index in sorted(self._poses)]

    def map_snapshot(self) -> MapSnapshot:
        """Return the merged coloured map now (a copy the caller may keep)."""
        return self._map.snapshot()

    @property
    def stats(self) -> MapperStats:
        """Counters (frames seen/skipped, keyframes, windows, lag)."""
        return MapperStats(self._frames_seen, self._frames_skipped, self._keyframes,
                           self._windows_done, self._windows_rejected, len(self._pending),
                           self._map.num_points)

    @property
    def point_map(self) -> PointMap:
        """Return the map store (for diagnostics and pose corrections)."""
        return self._map

    def _process_window(self) -> WindowResult:
        anchors, pending = self._anchors, self._pending
        self._pending = []
        frames = [a.keyframe.image_rgb for a in anchors] + [k.image_rgb for k in pending]
        keyframe_indices = tuple([a.keyframe.index for a in anchors]
                                 + [k.index for k in pending])
        window_index = self._windows_done
        start = time.perf_counter()
        try:
            prediction = self.predictor.predict(frames)
        except BaseException:
            # Stay consistent for the caller that recovers: the window's new keyframes are
            # lost, the anchors (good poses) stay for the next window.
            _LOG.warning('predictor failed on window %d (keyframes %s); its %d new keyframes '
                         'are dropped', window_index, keyframe_indices, len(pending))
            raise
        predict_s = time.perf_counter() - start
        self._windows_done += 1
        if prediction.num_frames != len(frames):
            raise EngineError(f'predictor returned {prediction.num_frames} frames for a window '
                              f'of {len(frames)}; its {len(pending)} new keyframes are dropped')
        start = time.perf_counter()
        try:
            window_from_cam = _window_from_cam(prediction)
            world_from_window = self._world_from_window(prediction, window_from_cam, anchors)
        except AlignmentError as err:
            self._windows_rejected += 1
            _LOG.warning('window %d (keyframes %s) refused: %s; its %d new keyframes are '
                         'dropped, the next window re-anchors on keyframes %s', window_index,
                         keyframe_indices, err, len(pending),
                         [a.keyframe.index for a in anchors])
            return WindowResult(window_index, keyframe_indices, False, str(err), (),
                                np.empty((0, 3), np.float32), np.empty((0, 3), np.uint8),
                                predict_s, time.perf_counter() - start)
        new_poses: list[KeyframePose] = []
        new_anchors: list[_Anchor] = []
        points_parts: list[NDArray[np.float32]] = []
        colour_parts: list[NDArray[np.uint8]] = []
        for slot in range(len(anchors), len(frames)):
            keyframe = pending[slot - len(anchors)]
            pose = self._keyframe_pose(keyframe, prediction, slot,
                                       world_from_window.apply_to_pose(window_from_cam[slot]))
            depth_world = (prediction.depth[slot] * world_from_window.scale).astype(np.float32)
            points_cam, colours = self._keyframe_points(depth_world, prediction, slot)
            points_parts.append(self._map.add_keyframe(keyframe.index, points_cam, colours,
                                                       pose.world_from_cam))
            colour_parts.append(colours)
            self._poses[keyframe.index] = pose
            new_poses.append(pose)
            new_anchors.append(_Anchor(keyframe, pose, depth_world,
                                       prediction.depth_conf[slot].copy()))
        self._anchors = (anchors + new_anchors)[-self.config.overlap:]
        align_s = time.perf_counter() - start
        return WindowResult(window_index, keyframe_indices, True, '',
                            tuple(_copy_pose(pose) for pose in new_poses),
                            np.concatenate(points_parts), np.concatenate(colour_parts),
                            predict_s, align_s, world_from_window)

    def _world_from_window(self, prediction: WindowPrediction,
                           window_from_cam: NDArray[np.float64],
                           anchors: list[_Anchor]) -> Sim3:
        focal = prediction.intrinsics[:, [0, 1], [0, 1]]
        if not (np.all(np.isfinite(prediction.intrinsics)) and np.all(focal > 0)):
            raise AlignmentError(f'prediction has unusable intrinsics (focal lengths '
                                 f'{focal.min():.3g}..{focal.max():.3g})')
        if not anchors:
            # First window: the world is the first keyframe's camera, in the window's unit
            # times config.scale.
            cam0_from_window = inverse_se3(window_from_cam[0])
            scale = self.config.scale
            return Sim3(scale, cam0_from_window[:3, :3], scale * cam0_from_window[:3, 3])
        old_views = [OverlapView(a.pose.world_from_cam, a.depth_world, a.conf,
                                 a.pose.intrinsics) for a in anchors]
        new_views = [OverlapView(window_from_cam[slot], prediction.depth[slot],
                                 prediction.depth_conf[slot], prediction.intrinsics[slot])
                     for slot in range(len(anchors))]
        report = align_window(old_views, new_views, self.config.alignment)
        _LOG.debug('window aligned: %d pairs, residual %.4f, inliers %.2f, rot %.2f deg',
                   report.num_pairs, report.residual_ratio, report.inlier_fraction,
                   report.max_rotation_deg)
        return report.world_from_window

    @staticmethod
    def _keyframe_pose(keyframe: _Keyframe, prediction: WindowPrediction, slot: int,
                       world_from_cam: NDArray[np.float64]) -> KeyframePose:
        mapping: ImageMapping = prediction.mappings[slot]
        intrinsics = np.asarray(prediction.intrinsics[slot], dtype=np.float64).copy()
        return KeyframePose(keyframe.index, keyframe.name, keyframe.stamp_ns, world_from_cam,
                            intrinsics, tuple(mapping.model_hw),  # type: ignore[arg-type]
                            mapping.intrinsics_to_original(intrinsics),
                            tuple(mapping.original_hw))  # type: ignore[arg-type]

    def _keyframe_points(self, depth_world: NDArray[np.float32], prediction: WindowPrediction,
                         slot: int) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
        cfg = self.config.map
        conf = prediction.depth_conf[slot]
        height, width = depth_world.shape
        rows, cols = np.mgrid[0:height:cfg.pixel_stride, 0:width:cfg.pixel_stride]
        rows, cols = rows.ravel(), cols.ravel()
        conf_s = conf[rows, cols]
        depth_s = depth_world[rows, cols]
        valid = np.isfinite(conf_s) & np.isfinite(depth_s) & (depth_s > 0)
        if np.any(valid):
            threshold = max(float(np.percentile(conf_s[valid], cfg.conf_percentile)),
                            cfg.conf_min)
            valid &= conf_s >= threshold
        rows, cols = rows[valid], cols[valid]
        points_cam = unproject_pixels(np.stack([cols, rows], axis=-1), depth_world[rows, cols],
                                      prediction.intrinsics[slot])
        colours = prediction.images_rgb[slot][rows, cols]
        return points_cam.astype(np.float32), colours
