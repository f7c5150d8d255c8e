"""
The mapping engine's one object: frames in, a keyframe pose graph and the map it carries out.

Data path: ``add_frame`` → ``KeyframeSelector`` (parallax by optical flow) → a window of
``window_size`` keyframes, the first ``overlap`` of which are already mapped (the anchors) →
``Predictor.predict`` → checks (a usable answer, each new keyframe consistent with its window) →
``align_window`` (robust Sim(3) between the anchors' stored points and their new depth) → new
keyframe nodes and odometry edges in the ``PoseGraph``, local clouds in the ``KeyframeStore``,
points fused into the ``WorldMap`` → loop detection and verification (``engine.loops``) →
optimisation in a background thread, whose result moves keyframes and patches the map.

Saved maps (``engine.map_state``): ``map_state`` takes everything needed to continue, and
``load_state`` replaces the map by a saved one (new keyframes then start a segment of their own
that loop closure merges into the loaded map). Localization mode (``engine.localization``,
``set_mode``): keyframes are placed against the map, which is not extended.

Frames may carry what the robot knows (``engine.calibration``): a known K replaces the model's
in every back-projection, and an odometry pose makes each segment metric
(``engine.metric_scale``): the engine keeps its internal unit and scales its outputs
(trajectory, map snapshot, window results) by each segment's current metres per unit.

Refused windows keep their keyframes (``RecoveryConfig``): the window is retried as a bridge with
fewer new keyframes; when even the smallest bridge is refused the link to the map is lost and the
keyframes start a new *segment* with its own frame and scale. A verified loop between two
segments merges them through the pose graph. Keyframes are given up only when they cannot start a
segment either; they are counted (``MapperStats.keyframes_lost``), never dropped silently.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, replace
import logging
from pathlib import Path
import time

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.alignment import (
    align_window,
    AlignmentReport,
    covisible_fraction,
    OverlapView,
)
from vggt_mapper.engine.calibration import (
    check_intrinsics,
    check_odom_pose,
    with_known_intrinsics,
)
from vggt_mapper.engine.config import MapperConfig
from vggt_mapper.engine.errors import (
    AlignmentError,
    ConfigError,
    EngineError,
    FrameError,
    PlaceError,
    PredictorFailedError,
)
from vggt_mapper.engine.keyframe_store import (
    KeyframeCloud,
    KeyframeRecord,
    KeyframeStore,
    select_keyframe_points,
)
from vggt_mapper.engine.keyframes import KeyframeSelector
from vggt_mapper.engine.localization import Localization, place_keyframe
from vggt_mapper.engine.loops import (
    LoopDetector,
    LoopEdge,
    point_view,
    verify_loop,
    window_from_cam_poses,
)
from vggt_mapper.engine.map_state import keyframe_pose, MapState, PlaceDescriptors, restore_map
from vggt_mapper.engine.metric_scale import MetricScaleTracker
from vggt_mapper.engine.places import PlaceDescriber, PredictionDescriber
from vggt_mapper.engine.pose_graph import (
    BackgroundOptimizer,
    EdgeNoise,
    LoopVerdict,
    OptimizationError,
    PoseGraph,
)
from vggt_mapper.engine.types import (
    KeyframePose,
    LoopOutcome,
    MapperStats,
    MapSnapshot,
    MetricScale,
    WindowResult,
)
from vggt_mapper.engine.world_map import WorldMap
from vggt_mapper.geometry.se3 import inverse_se3
from vggt_mapper.geometry.sim3 import Sim3
from vggt_mapper.predictor.base import Predictor, WindowPrediction

__all__ = ['LOCALIZATION', 'MAPPING', 'Mapper', 'validate_frame']

_LOG = logging.getLogger(__name__)

MAPPING = 'mapping'
"""``Mapper.mode``: keyframes extend the map."""
LOCALIZATION = 'localization'
"""``Mapper.mode``: keyframes are placed against the map, which is not extended."""

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


def _rigid(pose: NDArray[np.float64]) -> Sim3:
    return Sim3(1.0, pose[:3, :3], pose[:3, 3])


@dataclass
class _Keyframe:
    """A selected keyframe whose image the mapper still holds (pending, or an anchor)."""

    index: int
    name: str
    stamp_ns: int
    image_rgb: NDArray[np.uint8]
    intrinsics: NDArray[np.float64] | None = None
    odom_from_camera: NDArray[np.float64] | None = None


@dataclass(frozen=True)
class _Answer:
    """A window prediction that passed every check, with its place in the world."""

    prediction: WindowPrediction
    window_from_cam: NDArray[np.float64]
    world_from_window: Sim3
    report: AlignmentReport | None
    model_intrinsics: NDArray[np.float64] | None = None
    focal_ratios: NDArray[np.float64] | None = None


class _Refused(Exception):
    """
    One attempt at a window was refused; ``kind`` counts it, the message explains it.

    ``predictor_failed`` tells a predictor that did not answer (an exception, or something
    that is not a prediction of these frames) from one that answered badly.
    """

    def __init__(self, kind: str, message: str, predictor_failed: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.predictor_failed = predictor_failed


class Mapper:
    """
    Incremental mapper: keyframes → windows → predictions → pose graph → one map per segment.

    Synchronous: ``add_frame`` runs the predictor when a window is complete, so a door that must
    stay responsive calls it from a worker thread (``vggt_mapper.engine.worker``); the pose graph
    is optimised in a background thread and its result is applied between windows. Memory: at
    most ``window_size`` keyframe images wait for the predictor, ``overlap`` anchors keep theirs,
    the store keeps a bounded hot set of clouds in RAM (the rest on disk, ``StoreConfig``), and
    each segment's fused map is capped (``MapConfig.max_points``). Call ``close`` (or use the
    mapper as a context manager) to stop the optimiser and remove the store's temporary files.

    :param config: engine settings.
    :param predictor: the model (or a stand-in) answering windows.
    :param describer: place descriptor for loop detection; None uses the predictor's own
        descriptors when its predictions carry them, else a weight-free default.
    :param store_dir: where the keyframe store makes its private temporary folder (removed by
        ``close``); None: the system's temporary folder. Give a disk with room for long runs
        (about ``points_per_keyframe`` × 21 bytes plus an image per keyframe).
    """

    def __init__(self, config: MapperConfig, predictor: Predictor, *,
                 describer: PlaceDescriber | None = None, store_dir: Path | None = None) -> None:
        self.config = config
        self.predictor = predictor
        self._describer = describer
        self._store_dir = store_dir
        self._selector = KeyframeSelector(config.keyframes)
        self._store: KeyframeStore | None = None
        self._optimizer: BackgroundOptimizer | None = None
        self._mode = MAPPING
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Mapper:
        """Return the mapper; ``close`` on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the mapper."""
        self.close()

    def close(self) -> None:
        """Stop the optimiser thread and release the keyframe store (its temporary files)."""
        if self._optimizer is not None:
            self._optimizer.close()
            self._optimizer = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def reset(self) -> None:
        """Forget everything: keyframes, pose graph, map, pending keyframes, counters."""
        self.close()
        self._selector.reset()
        self._store = KeyframeStore(self.config.store, parent=self._store_dir)
        self._graph = PoseGraph(self.config.graph.solver)
        self._optimizer = BackgroundOptimizer(self.config.graph.solver)
        self._world = WorldMap(self.config.map)
        self._loops = LoopDetector(self.config.loops)
        self._members: dict[int, list[int]] = {}
        self._pending: list[_Keyframe] = []
        self._anchors: list[_Keyframe] = []
        self._segment: int | None = None
        self._segments_started = 0
        self._frame_hw: tuple[int, int] | None = None
        self._last_stamp_ns: int | None = None
        self._counts: Counter[str] = Counter()
        self._refusals: Counter[str] = Counter()
        self._loop_rejections: Counter[str] = Counter()
        self._failed_windows = 0
        self._corrected = False
        self._optimize_s = 0.0
        self._loops_submitted = 0
        self._model_s: dict[str, float] = {}
        self._loop_verdicts: Counter[str] = Counter()
        self._places = PredictionDescriber(self._describer)
        self._last_placed_ns: int | None = None
        self._last_localization: Localization | None = None
        self._scale_tracker = MetricScaleTracker(self.config.metric, self.config.scale)
        self._scales: dict[int, MetricScale] = {}
        self._focal_ratios: list[float] = []

    # -- intake ------------------------------------------------------------------------------

    def add_frame(self, image_rgb: NDArray[np.uint8], stamp_ns: int,
                  name: str | None = None, *, intrinsics: NDArray[np.float64] | None = None,
                  odom_from_camera: NDArray[np.float64] | None = None
                  ) -> list[WindowResult]:
        """
        Offer one frame; returns the windows it completed (usually none or one).

        Bad frames (wrong dtype/shape, empty, a size other than the first frame's, a stamp
        not after the previous one, intrinsics or an odometry pose that are not one) are
        logged, counted in ``stats.frames_skipped`` and ignored: this never raises for bad
        input.

        :param image_rgb: uint8 (H, W, 3) RGB image.
        :param stamp_ns: timestamp in integer nanoseconds, increasing.
        :param name: frame name (``frame_<n>`` if omitted).
        :param intrinsics: the known 3×3 K of ``image_rgb`` in its pixels (after undistortion);
            it replaces the model's K in the maths (``engine.calibration``).
        :param odom_from_camera: the camera's 4×4 metric pose in an odometry frame at
            ``stamp_ns`` (OpenCV camera axes); it makes the map metric
            (``engine.metric_scale``).
        :return: the window results this frame produced.
        :raises PredictorFailedError: if the predictor failed on too many windows in a row
            (``RecoveryConfig.max_failed_windows``); the map so far stays readable.
        """
        if self._mode == LOCALIZATION:
            self.localize_frame(image_rgb, stamp_ns, name, intrinsics=intrinsics,
                                odom_from_camera=odom_from_camera)
            return []
        keyframe = self._select(image_rgb, stamp_ns, name, intrinsics, odom_from_camera)
        if keyframe is None:
            return []
        self._pending.append(keyframe)
        return self._map_ready(flushing=False)

    def _select(self, image_rgb: NDArray[np.uint8], stamp_ns: int, name: str | None,
                intrinsics: NDArray[np.float64] | None = None,
                odom_from_camera: NDArray[np.float64] | None = None) -> _Keyframe | None:
        """Check a frame and offer it to the keyframe selector; the keyframe it makes, if any."""
        number = self._counts['frames_seen']
        self._counts['frames_seen'] += 1
        try:
            image = self._check_frame(image_rgb, stamp_ns)
            known_k = None if intrinsics is None else check_intrinsics(intrinsics,
                                                                       image.shape[:2])
            odom = None if odom_from_camera is None else check_odom_pose(odom_from_camera)
        except FrameError as err:
            self._counts['frames_skipped'] += 1
            _LOG.warning('skipped frame %d (%s): %s', number, name, err)
            return None
        decision = self._selector.offer(image)
        if not decision.is_keyframe:
            return None
        keyframe = _Keyframe(self._counts['keyframes'],
                             name if name is not None else f'frame_{number}', int(stamp_ns),
                             image.copy(), known_k, odom)
        self._counts['keyframes'] += 1
        _LOG.debug('keyframe %d from frame %d (%s, parallax %.1f px)', keyframe.index,
                   number, decision.reason, decision.parallax_px)
        return keyframe

    def flush(self) -> list[WindowResult]:
        """
        Map the last, partial window (end of stream) and apply a last optimisation.

        :return: the results of the windows that were still waiting (none if none was).
        :raises PredictorFailedError: as ``add_frame``.
        """
        results = self._map_ready(flushing=True)
        corrected = False
        if self.config.graph.optimize_at_end and self._optimizer is not None:
            self._loops_submitted = -1  # a last optimisation, loops or not
        while self._optimizer is not None and (self._optimizer.busy or self._graph_dirty()):
            self._optimize_soon()
            corrected |= self._apply_optimization(block=True)
        if corrected and results:
            results[-1] = _with_corrected(results[-1])
        return results

    def _check_frame(self, image_rgb: NDArray[np.uint8], stamp_ns: int) -> NDArray[np.uint8]:
        image = validate_frame(image_rgb, stamp_ns)
        if self._frame_hw is not None and image.shape[:2] != self._frame_hw:
            raise FrameError(f'image size {image.shape[:2]} differs from the first frame size '
                             f'{self._frame_hw}; one camera per mapper')
        if self._last_stamp_ns is not None and int(stamp_ns) <= self._last_stamp_ns:
            raise FrameError(f'stamp_ns {stamp_ns} is not after the previous frame stamp '
                             f'{self._last_stamp_ns}')
        self._frame_hw = (int(image.shape[0]), int(image.shape[1]))
        self._last_stamp_ns = int(stamp_ns)
        return image

    # -- readers -----------------------------------------------------------------------------

    def trajectory(self) -> list[KeyframePose]:
        """Return the current poses of all mapped keyframes, in keyframe order (copies)."""
        return [self._keyframe_pose(index) for index in sorted(self._all_mapped())]

    def map_snapshot(self) -> MapSnapshot:
        """Return the fused coloured map of every segment now (a copy the caller may keep)."""
        snapshot = self._world.snapshot()
        factors = {segment: scale.factor for segment, scale in self._scales.items()
                   if scale.factor != 1.0}
        if not factors:
            return snapshot
        points = snapshot.points_world.copy()
        for segment, factor in factors.items():
            points[snapshot.segments == segment] *= np.float32(factor)
        return replace(snapshot, points_world=points)

    @property
    def metric_scales(self) -> dict[int, MetricScale]:
        """Each segment's metres per unit now, as applied to the outputs (a copy)."""
        return dict(self._scales)

    @property
    def store(self) -> KeyframeStore:
        """Clouds and images of the mapped keyframes (the keyframe store)."""
        assert self._store is not None, 'the mapper is closed'
        return self._store

    @property
    def pose_graph(self) -> PoseGraph:
        """Return the pose graph (read it, do not modify it)."""
        return self._graph

    @property
    def stats(self) -> MapperStats:
        """Counters (frames, keyframes, windows, refusals, segments, loops, memory)."""
        counts = self._counts
        store = self.store
        return MapperStats(
            frames_seen=counts['frames_seen'], frames_skipped=counts['frames_skipped'],
            keyframes=counts['keyframes'], windows_done=counts['windows_done'],
            windows_rejected=counts['windows_rejected'],
            pending_keyframes=len(self._pending), map_points=self._world.num_points,
            frames_untrackable=self._selector.frames_untrackable, keyframes_mapped=len(store),
            keyframes_lost=counts['keyframes_lost'], model_calls=counts['model_calls'],
            verification_calls=counts['verification_calls'], refusals=dict(self._refusals),
            segments=len(self._members), segments_started=self._segments_started,
            loop_candidates=counts['loop_candidates'], loops_accepted=counts['loops_accepted'],
            loop_rejections=dict(self._loop_rejections),
            loop_verdicts=dict(self._loop_verdicts),
            optimizations=counts['optimizations'], optimize_s=self._optimize_s,
            store_bytes=store.disk_bytes, store_memory_bytes=store.memory_bytes,
            map_bytes=self._world.nbytes + self._loops.nbytes, mode=self._mode,
            keyframes_localized=counts['keyframes_localized'],
            keyframes_not_localized=counts['keyframes_not_localized'],
            localization_calls=counts['localization_calls'],
            keyframes_with_intrinsics=counts['keyframes_with_intrinsics'],
            keyframes_with_odometry=self._scale_tracker.keyframes_with_odometry,
            focal_ratios=tuple(self._focal_ratios), metric_scales=dict(self._scales))

    # -- windows -----------------------------------------------------------------------------

    def _map_ready(self, flushing: bool) -> list[WindowResult]:
        """Map windows while one is complete (or, when flushing, while keyframes wait)."""
        results: list[WindowResult] = []
        while self._pending and (flushing or len(self._anchors) + len(self._pending)
                                 >= self._window_target()):
            corrected = self._apply_optimization()
            result = self._map_window()
            results.append(_with_corrected(result) if corrected else result)
        return results

    def _window_target(self) -> int:
        """Keyframes that complete the next window: ``first_window_size`` until one is mapped."""
        config = self.config
        if config.first_window_size is not None and not self._members:
            return config.first_window_size
        return config.window_size

    def _map_window(self) -> WindowResult:
        """Map the pending keyframes (a prefix of them when bridging); see the docstring."""
        window_index = self._counts['windows_done']
        self._counts['windows_done'] += 1
        self._model_s = {'model_calls': 0.0, 'verification_calls': 0.0}
        start = time.perf_counter()
        capacity = max(self.config.window_size - len(self._anchors), 1)
        count = min(len(self._pending), capacity)
        refusals: list[str] = []
        refused: list[_Refused] = []
        while True:
            keyframes = self._pending[:count]
            try:
                answer = self._attempt(keyframes)
            except _Refused as refusal:
                refused.append(refusal)
                refusals.append(f'{refusal.kind}: {refusal}')
                self._refusals[refusal.kind] += 1
                self._counts['windows_rejected'] += 1
                _LOG.warning('window %d (keyframes %d-%d) refused: %s', window_index,
                             keyframes[0].index, keyframes[-1].index, refusal)
                next_count = self._next_attempt(count, refused)
                if next_count is None:
                    result = self._give_up(window_index, keyframes, refusals)
                    self._count_failed_window(refused)
                    break
                count = next_count
                continue
            result = self._commit(window_index, keyframes, answer, refusals)
            break
        model_s, verify_s = self._model_s['model_calls'], self._model_s['verification_calls']
        return replace(result, predict_s=model_s, verify_s=verify_s,
                       align_s=time.perf_counter() - start - model_s - verify_s)

    def _next_attempt(self, count: int, refused: list[_Refused]) -> int | None:
        """Fewer keyframes (bridge), a new segment (same keyframes), or None (give up)."""
        recovery = self.config.recovery
        if not recovery.enabled:
            return None
        if count <= recovery.min_bridge_keyframes and refused[-1].predictor_failed \
                and not any(r.predictor_failed for r in refused[:-1]):
            return count  # the predictor did not answer: try once more before losing the link
        if count > recovery.min_bridge_keyframes:
            return max(count // 2, recovery.min_bridge_keyframes)
        if self._segment is not None:
            _LOG.warning('link to segment %d lost: the next keyframes start a new segment',
                         self._segment)
            self._segment = None
            self._anchors = []
            return min(len(self._pending), self.config.window_size)
        return None

    def _give_up(self, window_index: int, keyframes: list[_Keyframe], refusals: list[str]
                 ) -> WindowResult:
        lost = tuple(k.index for k in keyframes)
        self._pending = self._pending[len(keyframes):]
        self._counts['keyframes_lost'] += len(lost)
        _LOG.warning('keyframes %s could not be mapped (%s)', list(lost), refusals[-1])
        return WindowResult(window_index, lost, False, refusals[-1], (),
                            np.empty((0, 3), np.float32), np.empty((0, 3), np.uint8),
                            0.0, 0.0, None, status='refused', segment=-1,
                            attempts=len(refusals), refusals=tuple(refusals),
                            lost_keyframes=lost)

    def _attempt(self, keyframes: list[_Keyframe]) -> _Answer:
        """Predict anchors + ``keyframes`` and check the answer; raise ``_Refused`` if bad."""
        frames = [k.image_rgb for k in self._anchors + keyframes]
        model = self._predict(frames, 'model_calls')
        prediction, ratios = with_known_intrinsics(
            model, [k.intrinsics for k in self._anchors + keyframes])
        window_from_cam = window_from_cam_poses(prediction)
        new_slots = range(len(self._anchors), len(frames))
        self._check_depth(prediction, new_slots)
        self._check_consistency(prediction, window_from_cam, new_slots)
        if not self._anchors:
            first = inverse_se3(window_from_cam[0])
            scale = self.config.scale
            return _Answer(prediction, window_from_cam,
                           Sim3(scale, first[:3, :3], scale * first[:3, 3]), None,
                           model.intrinsics, ratios)
        old = [point_view(self.store.cloud(a.index), self._graph.value(a.index),
                          self.store.record(a.index)) for a in self._anchors]
        new = [OverlapView(window_from_cam[slot], prediction.depth[slot],
                           prediction.depth_conf[slot], prediction.intrinsics[slot])
               for slot in range(len(self._anchors))]
        try:
            report = align_window(old, new, self.config.alignment)
        except AlignmentError as err:
            raise _Refused(f'alignment:{err.kind}', str(err)) from err
        return _Answer(prediction, window_from_cam, report.world_from_window, report,
                       model.intrinsics, ratios)

    def _predict(self, frames: list[NDArray[np.uint8]], counter: str) -> WindowPrediction:
        """Run the predictor; any failure of it (user code) becomes a refusal, counted."""
        self._counts[counter] += 1
        start = time.perf_counter()
        try:
            prediction = self.predictor.predict(frames)
        except Exception as err:  # noqa: BLE001 - the predictor is plugin code: CUDA OOM, a
            # remote server gone, a custom model's bug all refuse this window, not the run.
            raise _Refused('predictor:error', f'{type(err).__name__}: {err}', True) from err
        finally:
            self._model_s[counter] = self._model_s.get(counter, 0.0) + time.perf_counter() - start
        _check_prediction(prediction, len(frames))
        self._failed_windows = 0
        return prediction

    def _count_failed_window(self, refusals: list[_Refused]) -> None:
        """Stop the run when the predictor did not answer for too many windows in a row."""
        if not all(refusal.predictor_failed for refusal in refusals):
            return
        self._failed_windows += 1
        limit = self.config.recovery.max_failed_windows
        if self._failed_windows >= limit:
            raise PredictorFailedError(
                f'the predictor failed on every attempt at {self._failed_windows} windows in '
                f'a row, last: {refusals[-1]}; stopping (what was mapped is kept)')

    @staticmethod
    def _check_depth(prediction: WindowPrediction, slots: range) -> None:
        for slot in slots:
            depth = prediction.depth[slot]
            usable = np.isfinite(depth) & (depth > 0) & np.isfinite(prediction.depth_conf[slot])
            if usable.mean() < 0.01:
                raise _Refused('prediction:depth', f'frame {slot} of the window has no usable '
                               f'depth ({usable.mean():.1%} finite and positive)')

    def _check_consistency(self, prediction: WindowPrediction,
                           window_from_cam: NDArray[np.float64], slots: range) -> None:
        recovery = self.config.recovery
        if recovery.min_frame_consistency <= 0:
            return
        count = prediction.num_frames
        if count < 2:
            return
        # Every other frame of the window, not only those before: a photo set in one pass
        # comes in any order, and a frame the model got wrong disagrees with all of them.
        scores = {slot: max(covisible_fraction(
            prediction.depth[other], prediction.intrinsics[other], window_from_cam[other],
            prediction.depth[slot], prediction.intrinsics[slot], window_from_cam[slot])
            for other in range(count) if other != slot)
            for slot in slots}
        # Absolute floor, and relative to the window: what one frame got wrong stands out
        # against the others, whatever the window's own noise level.
        typical = float(np.median(list(scores.values())))
        threshold = max(recovery.min_frame_consistency,
                        recovery.relative_frame_consistency * typical)
        slot, score = min(scores.items(), key=lambda item: item[1])
        if score < threshold:
            raise _Refused('prediction:consistency',
                           f'frame {slot} of the window agrees with the other frames on '
                           f'only {score:.0%} of its points (need {threshold:.0%}; the window '
                           f'typically {typical:.0%}): the model got it or its pose wrong')

    # -- committing an accepted window -------------------------------------------------------

    def _commit(self, window_index: int, keyframes: list[_Keyframe], answer: _Answer,
                refusals: list[str]) -> WindowResult:
        self._pending = self._pending[len(keyframes):]
        new_segment = self._segment is None
        if new_segment:
            self._segment = self._start_segment()
        segment = self._segment
        assert segment is not None
        anchors = self._anchors
        points, colours = [], []
        for offset, keyframe in enumerate(keyframes):
            slot = len(anchors) + offset
            node = answer.world_from_window.compose(_rigid(answer.window_from_cam[slot]))
            cloud = self._store_keyframe(keyframe, answer, slot)
            self._graph.add_node(keyframe.index, node, segment)
            self._members.setdefault(segment, []).append(keyframe.index)
            points.append(self._world.add(keyframe.index, segment, node, cloud))
            colours.append(cloud.colors_rgb)
            self._scale_tracker.add_keyframe(keyframe.index, keyframe.odom_from_camera,
                                             cloud.points_local)
        self._add_odometry(keyframes, answer)
        self._anchors = (anchors + keyframes)[-self.config.overlap:]
        loops = self._close_loops(keyframes, answer.prediction, len(anchors))
        self._refresh_scales()
        status = 'new_segment' if new_segment and self._segments_started > 1 else \
            'bridged' if refusals else 'accepted'
        home = self._segment if self._segment is not None else segment  # merged by a loop?
        factor = self._scales[home].factor if home in self._scales else 1.0
        ratios = answer.focal_ratios
        focal = float(np.nanmedian(ratios)) if ratios is not None and np.any(
            np.isfinite(ratios)) else float('nan')
        if np.isfinite(focal):
            self._focal_ratios.append(focal)
        return WindowResult(
            window_index, tuple(k.index for k in anchors + keyframes), True, '',
            tuple(self._keyframe_pose(k.index) for k in keyframes),
            np.concatenate(points) * np.float32(factor), np.concatenate(colours), 0.0, 0.0,
            Sim3(factor, np.eye(3), np.zeros(3)).compose(answer.world_from_window),
            status=status, segment=home, attempts=len(refusals) + 1, refusals=tuple(refusals),
            loops=tuple(loops),
            focal_ratio=focal)

    def _start_segment(self) -> int:
        # Never a merged-away segment's number: the pose graph refuses nodes there.
        segment = max(self._segments_started, max(self._members, default=-1) + 1)
        self._segments_started += 1
        if self._segments_started > 1:
            _LOG.warning('starting map segment %d (its own frame and scale until a loop closure '
                         'merges it)', segment)
        return segment

    def _store_keyframe(self, keyframe: _Keyframe, answer: _Answer, slot: int
                        ) -> KeyframeCloud:
        prediction = answer.prediction
        intrinsics = np.asarray(prediction.intrinsics[slot], dtype=np.float64)
        predicted = None
        if keyframe.intrinsics is not None and answer.model_intrinsics is not None:
            predicted = np.asarray(answer.model_intrinsics[slot], dtype=np.float64)
            self._counts['keyframes_with_intrinsics'] += 1
        mapping = prediction.mappings[slot]
        cloud = select_keyframe_points(prediction.depth[slot], prediction.depth_conf[slot],
                                       intrinsics, prediction.images_rgb[slot],
                                       self.config.map, self.config.store)
        median = float(np.median(cloud.points_local[:, 2])) if cloud.num_points else 1.0
        record = KeyframeRecord(keyframe.index, keyframe.name, keyframe.stamp_ns, intrinsics,
                                tuple(mapping.model_hw),  # type: ignore[arg-type]
                                mapping.intrinsics_to_original(intrinsics),
                                tuple(mapping.original_hw),  # type: ignore[arg-type]
                                median, cloud.num_points, predicted)
        # The model image: re-predicting it gives the model exactly the pixels of this pass.
        self.store.add(record, cloud, prediction.images_rgb[slot])
        return cloud

    def _add_odometry(self, keyframes: list[_Keyframe], answer: _Answer) -> None:
        """
        Edges from one window: its camera chain over every slot, and the anchors' alignment.

        Chain edges join consecutive slots, anchors included, with the window's own relative
        poses: each pair of anchors is measured again by every window that holds it, so the
        graph averages the model's per-window pose noise. An anchor's node is in its home
        window's unit, so its end of an edge is rescaled by ``node.scale / W.scale`` (the
        alignment's scale). Alignment edges then tie each anchor to the first new keyframe as
        the dense alignment placed it, weighted by the alignment's residual.
        """
        graph_cfg = self.config.graph
        world_from_window = answer.world_from_window
        keys = [k.index for k in self._anchors + keyframes]

        def in_window_unit(slot: int) -> Sim3:
            ratio = self._graph.value(keys[slot]).scale / world_from_window.scale
            return _rigid(answer.window_from_cam[slot]).compose(Sim3(ratio, np.eye(3),
                                                                     np.zeros(3)))

        for slot in range(len(keys) - 1):
            relative = in_window_unit(slot).inverse().compose(in_window_unit(slot + 1))
            depth = self.store.record(keys[slot]).median_depth
            self._graph.add_odometry(keys[slot], keys[slot + 1], relative, EdgeNoise(
                np.radians(graph_cfg.odometry_rot_deg), graph_cfg.odometry_trans_rel * depth,
                graph_cfg.odometry_log_scale))
        report = answer.report
        if report is None:
            return
        first = keyframes[0].index
        rel = max(report.residual_ratio, graph_cfg.min_alignment_rel)
        for anchor in self._anchors:
            relative = self._graph.value(anchor.index).inverse().compose(
                self._graph.value(first))
            depth = self.store.record(anchor.index).median_depth
            self._graph.add_odometry(anchor.index, first, relative, EdgeNoise(
                np.radians(max(report.max_rotation_deg, graph_cfg.odometry_rot_deg)),
                rel * depth, rel))

    # -- loops -------------------------------------------------------------------------------

    def _close_loops(self, keyframes: list[_Keyframe], prediction: WindowPrediction,
                     first_slot: int) -> list[LoopOutcome]:
        cfg = self.config.loops
        slots = list(range(first_slot, first_slot + len(keyframes)))
        descriptors = self._descriptors(prediction, slots)
        if descriptors is None:
            return []
        proposals: list[tuple[float, int, int]] = []
        for keyframe, descriptor in zip(keyframes, descriptors, strict=True):
            if not cfg.enabled:
                break  # indexed all the same: a saved map can be relocalized in
            for candidate, similarity in self._loops.propose(keyframe.index, descriptor,
                                                             self._graph.segment_of):
                proposals.append((similarity, keyframe.index, candidate))
        for keyframe, descriptor in zip(keyframes, descriptors, strict=True):
            self._loops.add(keyframe.index, descriptor)
        outcomes: list[LoopOutcome] = []
        for similarity, query, candidate in sorted(proposals, reverse=True):
            if len(outcomes) >= cfg.max_verifications_per_window:
                break
            outcomes.append(self._verify(query, candidate, similarity))
        return outcomes

    def _descriptors(self, prediction: WindowPrediction, slots: list[int]
                     ) -> NDArray[np.float32] | None:
        try:
            return self._places.describe_prediction(prediction)[slots]
        except PlaceError as err:
            self._counts['windows_undescribed'] += 1
            _LOG.warning('no place descriptors for this window, its keyframes cannot be found '
                         'again by loop closure: %s', err)
            return None

    def _verify(self, query: int, candidate: int, similarity: float) -> LoopOutcome:
        self._counts['loop_candidates'] += 1

        def predict(frames: list[NDArray[np.uint8]], keys: list[int]) -> WindowPrediction | str:
            try:
                model = self._predict(frames, 'verification_calls')
            except _Refused as refusal:
                return str(refusal)
            # The stored images are model images: a known K is the record's, in their pixels.
            records = [self.store.record(key) for key in keys]
            return with_known_intrinsics(model, [
                None if r.intrinsics_predicted is None else r.intrinsics for r in records])[0]

        verdict = verify_loop(query, candidate, similarity, _MappedKeyframes(self), predict,
                              self.config.loops)
        if isinstance(verdict, LoopOutcome):
            self._loop_rejections[verdict.reason.split(':', 1)[0]] += 1
            _LOG.info('loop %d -> %d rejected: %s', query, candidate, verdict.reason)
            return verdict
        self._add_loop(verdict)
        return verdict.outcome

    def _add_loop(self, edge: LoopEdge) -> None:
        outcome = edge.outcome
        self._counts['loops_accepted'] += 1
        self._loops.remember_accepted(outcome.query, outcome.candidate)
        if outcome.merged is not None:
            self._merge_segments(*outcome.merged, correction=edge.correction)
        rel = max(edge.residual_ratio, self.config.graph.min_alignment_rel)
        depth = self.store.record(outcome.candidate).median_depth
        self._graph.add_loop(outcome.candidate, outcome.query, edge.candidate_from_query,
                             EdgeNoise(np.radians(max(edge.rotation_deg,
                                                      self.config.graph.odometry_rot_deg)),
                                       rel * depth, rel))
        _LOG.info('loop %d -> %d accepted (similarity %.2f, covisible %.2f)', outcome.query,
                  outcome.candidate, outcome.similarity, outcome.covisible)
        self._optimize_soon()

    def _merge_segments(self, candidate_segment: int, query_segment: int, *,
                        correction: Sim3) -> None:
        """Merge the younger segment into the older one's frame (``correction``: q → c)."""
        keep, absorb = sorted((candidate_segment, query_segment))
        transform = correction if keep == candidate_segment else correction.inverse()
        self._graph.merge_segments(keep, absorb, transform)
        self._members[keep] = sorted(self._members.pop(absorb) + self._members[keep])
        if self._segment == absorb:
            self._segment = keep
        self._move_keyframes(self._members[keep])
        self._refresh_scales()
        _LOG.warning('loop closure merged map segment %d into segment %d', absorb, keep)

    # -- optimisation ------------------------------------------------------------------------

    def _optimize_soon(self) -> None:
        """Submit the graph to the background optimiser unless it is busy."""
        assert self._optimizer is not None
        loops = self._graph.edge_counts().loop
        if self._optimizer.submit(self._graph.snapshot()):
            self._loops_submitted = loops

    def _graph_dirty(self) -> bool:
        return self._graph.edge_counts().loop > self._loops_submitted

    def _apply_optimization(self, block: bool = False) -> bool:
        """Apply a finished optimisation (moves keyframes, patches the map); True if one."""
        if self._optimizer is None:
            return False
        try:
            result = self._optimizer.wait() if block else self._optimizer.poll()
        except OptimizationError as err:
            self._counts['optimizations_failed'] += 1
            _LOG.warning('pose-graph optimisation failed, the map keeps its poses: %s', err)
            return False
        if result is None:
            if self._graph_dirty():
                self._optimize_soon()
            return False
        self._graph.apply(result)
        self._counts['optimizations'] += 1
        self._optimize_s += result.seconds
        for report in result.loops:
            if report.verdict is not LoopVerdict.INLIER:
                _LOG.info('loop %d -> %d %s by the robust kernel (weight %.2f)', report.b,
                          report.a, report.verdict.value.replace('_', '-'), report.weight)
        self._loop_verdicts = Counter(report.verdict.value for report in result.loops)
        self._move_keyframes(sorted(self._all_mapped()))
        self._refresh_scales()
        if self._graph_dirty():
            self._optimize_soon()
        return True

    def _move_keyframes(self, indices: list[int]) -> None:
        """Re-fuse the keyframes whose points moved by more than a fraction of a voxel."""
        moved = [i for i in indices if self._world.needs_move(
            i, self._graph.segment_of(i), self._graph.value(i))]
        for index, cloud in self.store.iter_clouds(moved):
            self._world.move(index, self._graph.segment_of(index), self._graph.value(index),
                             cloud)

    # -- saved maps (engine.map_state) --------------------------------------------------------

    def map_state(self) -> MapState:
        """
        Take the map as data, to save it (``vggt_mapper.io.map_folder``); close it when done.

        Cheap (copies of the records, graph and descriptors; the keyframe data is read later
        through a view of the store's append-only files), and safe to write from another
        thread while this mapper goes on. Pending keyframes are not in it: ``flush`` first to
        include them.

        :return: the state (a context manager).
        """
        keys, descriptors, accepted = self._loops.items()
        places = None if self._places.name is None or not len(keys) else PlaceDescriptors(
            self._places.name, keys, descriptors, accepted)
        view = self.store.view()
        records = tuple(view.record(index) for index in view.indices())
        return MapState(self.config, records, self._graph.snapshot(), places,
                        self._counts['keyframes'], self._segments_started, view,
                        self.map_snapshot())

    def load_state(self, state: MapState) -> None:
        """
        Replace the map by a saved one; the next keyframes start a new segment.

        Everything is rebuilt aside first: on any error the current map is kept as it was.
        Pending keyframes and counters are dropped (as by ``reset``); the mode is kept.

        :param state: the map (read once; the caller closes it).
        :raises MapStateError: if the state is inconsistent or damaged, or its place
            descriptors are of another space than this mapper's describer gives.
        """
        restored = restore_map(state, self.config, self._describer, self._store_dir)
        try:
            self.reset()
        except BaseException:
            restored.store.close()
            raise
        self.store.close()  # the empty one reset made
        self._store = restored.store
        self._graph, self._world = restored.graph, restored.world
        self._loops, self._places = restored.loops, restored.places
        self._members = restored.members
        self._counts['keyframes'] = state.next_keyframe
        self._segments_started = max(state.segments_started, len(restored.members))
        self._refresh_scales()  # a fixed scale applies to the loaded segments too
        _LOG.info('loaded a map of %d keyframes in %d segments', len(state.records),
                  len(restored.members))

    # -- localization (engine.localization) ---------------------------------------------------

    @property
    def mode(self) -> str:
        """Return ``MAPPING`` or ``LOCALIZATION`` (``set_mode``)."""
        return self._mode

    @property
    def last_localization(self) -> Localization | None:
        """Return the result of the last keyframe localized (None before any)."""
        return self._last_localization

    def set_mode(self, mode: str) -> list[WindowResult]:
        """
        Switch between mapping and localization (at any time between frames).

        Entering localization maps the keyframes still pending first (they were selected for
        the map). Back in mapping, the next window starts a new segment: the camera moved
        while the map was not extended, so the last mapped keyframes are no anchors; loop
        closure merges the segment into the map when it sees it again.

        :param mode: ``MAPPING`` or ``LOCALIZATION``.
        :return: the windows mapped on the way (the pending keyframes), usually none.
        :raises ConfigError: for another mode.
        """
        if mode not in (MAPPING, LOCALIZATION):
            raise ConfigError(f'mode must be {MAPPING!r} or {LOCALIZATION!r}, got {mode!r}')
        if mode == self._mode:
            return []
        results = self._map_ready(flushing=True) if mode == LOCALIZATION else []
        self._mode = mode
        self._segment, self._anchors = None, []
        self._last_placed_ns = None
        _LOG.info('mapper mode: %s', mode)
        return results

    def localize_frame(self, image_rgb: NDArray[np.uint8], stamp_ns: int,
                       name: str | None = None, *,
                       intrinsics: NDArray[np.float64] | None = None,
                       odom_from_camera: NDArray[np.float64] | None = None
                       ) -> Localization | None:
        """
        Offer one frame in localization mode; a keyframe is placed against the map.

        Bad frames are counted and skipped as by ``add_frame``. The map is not extended.

        :param image_rgb: uint8 (H, W, 3) RGB image.
        :param stamp_ns: timestamp in integer nanoseconds, increasing.
        :param name: frame name (``frame_<n>`` if omitted).
        :param intrinsics: as ``add_frame`` (checked; placement uses the model's own K).
        :param odom_from_camera: as ``add_frame`` (checked, not used for placement).
        :return: the keyframe's result, or None if the frame did not become a keyframe.
        :raises EngineError: if the mapper is not in localization mode.
        """
        if self._mode != LOCALIZATION:
            raise EngineError('localize_frame needs localization mode: '
                              f'set_mode({LOCALIZATION!r}) first')
        keyframe = self._select(image_rgb, stamp_ns, name, intrinsics, odom_from_camera)
        if keyframe is None:
            return None
        self._model_s = {}
        placement, reason, tried = None, '', 0
        try:
            prediction = self._predict([keyframe.image_rgb], 'localization_calls')
            descriptor = self._places.describe_prediction(prediction)[0]
        except _Refused as refusal:
            reason = f'predictor: {refusal}'
        except PlaceError as err:
            reason = f'no descriptor: {err}'
        else:
            placement, reason, tried = place_keyframe(
                prediction.images_rgb[0], descriptor, self._loops, _MappedKeyframes(self),
                self._predict_or_why, self.config.localization, self.config.loops)
        self._counts['keyframes_localized' if placement else 'keyframes_not_localized'] += 1
        if placement is not None:
            self._last_placed_ns = keyframe.stamp_ns
        result = Localization(keyframe.index, keyframe.name, keyframe.stamp_ns, placement,
                              reason, tried, self._last_placed_ns)
        self._last_localization = result
        _LOG.debug('keyframe %d %s', keyframe.index,
                   f'localized against map keyframe {placement.candidate}' if placement
                   else f'not localized: {reason}')
        return result

    def _predict_or_why(self, frames: list[NDArray[np.uint8]]) -> WindowPrediction | str:
        try:
            return self._predict(frames, 'localization_calls')
        except _Refused as refusal:
            return str(refusal)

    # -- helpers -----------------------------------------------------------------------------

    def _refresh_scales(self) -> None:
        """Re-estimate every segment's metres per unit from the current poses."""
        def node(index: int) -> tuple[float, NDArray[np.float64]]:
            value = self._graph.value(index)
            return value.scale, value.translation

        previous = self._scales
        self._scales = {segment: self._scale_tracker.estimate(segment, members, node)
                        for segment, members in self._members.items()}
        for segment, scale in self._scales.items():
            before = previous.get(segment)
            if scale.metric and (before is None or not before.metric):
                _LOG.info('segment %d is metric (%s: %.4g m per unit from %d samples, spread '
                          '%.1f%%)', segment, scale.source, scale.factor, scale.samples,
                          100 * scale.spread_rel)

    def _all_mapped(self) -> list[int]:
        return [index for members in self._members.values() for index in members]

    def _keyframe_pose(self, index: int) -> KeyframePose:
        segment = self._graph.segment_of(index)
        scale = self._scales.get(segment)
        return keyframe_pose(self.store.record(index), self._graph.value(index), segment,
                             scale.factor if scale is not None else 1.0)


class _MappedKeyframes:
    """The mapper's keyframes as loop verification reads them."""

    def __init__(self, mapper: Mapper) -> None:
        self._mapper = mapper

    def image(self, index: int) -> NDArray[np.uint8]:
        return self._mapper.store.image(index)

    def cloud(self, index: int) -> KeyframeCloud:
        return self._mapper.store.cloud(index)

    def record(self, index: int) -> KeyframeRecord:
        return self._mapper.store.record(index)

    def world_from_node(self, index: int) -> Sim3:
        return self._mapper.pose_graph.value(index)

    def segment_of(self, index: int) -> int:
        return self._mapper.pose_graph.segment_of(index)

    def neighbours(self, index: int, before: int, after: int) -> list[int]:
        members = self._mapper._members[self.segment_of(index)]
        at = bisect_left(members, index)
        return members[max(at - before, 0):at + after + 1]

    def path_length(self, first: int, last: int) -> float:
        members = self._mapper._members[self.segment_of(first)]
        low, high = sorted((first, last))
        keys = members[bisect_left(members, low):bisect_left(members, high) + 1]
        graph = self._mapper.pose_graph
        centres = np.array([graph.value(key).translation for key in keys])
        return float(np.linalg.norm(np.diff(centres, axis=0), axis=1).sum())


def _check_prediction(prediction: object, num_frames: int) -> None:
    """Refuse a predictor answer that is not a usable ``WindowPrediction`` of these frames."""
    if not isinstance(prediction, WindowPrediction):
        raise _Refused('prediction:malformed', f'the predictor returned a '
                       f'{type(prediction).__name__}, not a WindowPrediction', True)
    if prediction.num_frames != num_frames:
        raise _Refused('prediction:malformed', f'the predictor returned '
                       f'{prediction.num_frames} frames for a window of {num_frames}', True)
    focal = prediction.intrinsics[:, [0, 1], [0, 1]]
    if not (np.all(np.isfinite(prediction.intrinsics)) and np.all(focal > 0)):
        raise _Refused('prediction:intrinsics', f'unusable intrinsics (focal lengths '
                       f'{np.nanmin(focal):.3g}..{np.nanmax(focal):.3g})')
    rotations = prediction.cam_from_window[:, :3, :3]
    if not np.all(np.isfinite(prediction.cam_from_window)):
        raise _Refused('prediction:poses', 'non-finite camera poses')
    orthogonality = np.abs(rotations @ np.transpose(rotations, (0, 2, 1)) - np.eye(3)).max()
    if orthogonality > 1e-3 or np.any(np.linalg.det(rotations) <= 0):
        raise _Refused('prediction:poses', f'camera rotations that are not rotations '
                       f'(|R R^T - I| up to {orthogonality:.3g})')


def _with_corrected(result: WindowResult) -> WindowResult:
    return replace(result, corrected=True)
