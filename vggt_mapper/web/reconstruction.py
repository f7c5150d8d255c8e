"""
Run the mapping engine over an upload and keep what the viewer controls need.

Long uploads go through ``Mapper`` window by window (``MapperConfig.window_size`` keyframes at a
time), so memory and GPU use do not grow with the sequence length. A recording wrapper around
the predictor keeps, for each keyframe, a downsampled copy of its dense prediction in its own
camera frame (from the first window that contained it). At the end the engine's final keyframe
poses carry these clouds into the world frame.

Each accepted ``WindowResult`` carries the Sim(3) the engine estimated for its window; its
scale converts the cached window-unit depth into world units (the door does no alignment).

``plan_passes`` decides the windows: a photo set that fits the frame limit per pass
(``capacity.py``) is one pass, like the official demo; a larger one is chained by visual
similarity (``ordering.py``) and mapped in windows of that limit; a video keeps its time order
and the engine's window size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
import math
import threading
import time
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.config import MapperConfig
from vggt_mapper.engine.errors import PredictorFailedError
from vggt_mapper.engine.types import (
    InputFrame,
    KeyframePose,
    MapperStats,
    MapSnapshot,
    WindowResult,
)
from vggt_mapper.geometry.se3 import transform_points
from vggt_mapper.geometry.unproject import depth_to_points_cam
from vggt_mapper.predictor.base import Predictor, WindowPrediction
from vggt_mapper.web.errors import ServerClosingError, WebError
from vggt_mapper.web.ordering import FrameOrder
from vggt_mapper.web.scene import KeyframeCloud, Scene

__all__ = [
    'MapperLike',
    'MapperFactory',
    'PassPlan',
    'ProgressFn',
    'ReconstructionError',
    'estimate_windows',
    'plan_passes',
    'reconstruct',
]

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(windows_done, windows_expected)`` after each window."""


class ReconstructionError(WebError):
    """The engine produced no usable map (every window refused, or no keyframe)."""


class MapperLike(Protocol):
    """What the door uses of ``vggt_mapper.engine.mapper.Mapper``."""

    def add_frame(self, image_rgb: NDArray[np.uint8], stamp_ns: int,
                  name: str | None = None) -> list[WindowResult]: ...

    def flush(self) -> list[WindowResult]: ...

    def trajectory(self) -> list[KeyframePose]: ...

    def map_snapshot(self) -> MapSnapshot: ...

    @property
    def stats(self) -> MapperStats: ...

    def close(self) -> None: ...


MapperFactory = Callable[[MapperConfig, Predictor], MapperLike]


@dataclass(frozen=True)
class PassPlan:
    """
    How an upload goes through the model.

    :param config: the engine settings for this upload (window size and overlap set here).
    :param order: upload positions in mapping order, or None for name order.
    :param note: one sentence for the log (one pass, or windows and why).
    """

    config: MapperConfig
    order: tuple[int, ...] | None
    note: str


def _windowed(config: MapperConfig, window_size: int) -> MapperConfig:
    window_size = max(2, window_size)
    return replace(config, window_size=window_size,
                   overlap=min(config.overlap, window_size - 1))


def plan_passes(num_frames: int, source: str, frames_per_pass: int, config: MapperConfig,
                order_frames: Callable[[], FrameOrder]) -> PassPlan:
    """
    Decide the windows of an upload.

    :param num_frames: frames uploaded.
    :param source: ``'images'`` (a photo set) or ``'video'``.
    :param frames_per_pass: the frame limit per model pass.
    :param config: the server's engine settings (a video's window size and the overlap).
    :param order_frames: computes the similarity order (called only for a set over the limit).
    :return: the plan.
    """
    if source != 'images':
        window = min(config.window_size, frames_per_pass)
        return PassPlan(_windowed(config, window), None,
                        f'video frames in time order, windows of {window}')
    if num_frames <= frames_per_pass:
        return PassPlan(_windowed(config, num_frames), None,
                        f'one pass (limit {frames_per_pass} frames per pass)')
    order = order_frames()
    how = ('ordered by visual similarity' if order.reordered
           else 'upload order kept (already a chain of similar views)')
    return PassPlan(_windowed(config, frames_per_pass), order.order if order.reordered else None,
                    f'{num_frames} photos over the limit of {frames_per_pass} frames per pass: '
                    f'{how}, windows of {frames_per_pass}')


def estimate_windows(num_frames: int, config: MapperConfig) -> int:
    """
    Count the windows that ``num_frames`` keyframes make (for the progress bar).

    :param num_frames: keyframes expected.
    :param config: window size and overlap.
    :return: windows expected (at least 1).
    """
    if num_frames <= config.window_size:
        return 1
    step = config.window_size - config.overlap
    return 1 + math.ceil((num_frames - config.window_size) / step)


@dataclass
class _LocalCloud:
    """A keyframe's dense prediction in its camera frame, in its window's units."""

    window: int
    points_cam: NDArray[np.float32]
    conf_depth: NDArray[np.float32]
    colors_rgb: NDArray[np.uint8]
    points_map_cam: NDArray[np.float32] | None
    conf_map: NDArray[np.float32] | None


class _RecordingPredictor:
    """Passes windows to the real predictor and remembers each prediction until it is used."""

    def __init__(self, inner: Predictor, on_window: Callable[[], None],
                 cancel: threading.Event | None) -> None:
        self.inner = inner
        self.on_window = on_window
        self.cancel = cancel
        self.pending: list[WindowPrediction] = []
        self.predict_s = 0.0

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        # Between windows is the only safe place to stop: a forward pass cannot be interrupted.
        if self.cancel is not None and self.cancel.is_set():
            raise ServerClosingError('the server is shutting down; this reconstruction was '
                                     'stopped, send it again later')
        start = time.perf_counter()
        prediction = self.inner.predict(frames_rgb)
        self.predict_s += time.perf_counter() - start
        self.pending.append(prediction)
        self.on_window()
        return prediction


def _local_clouds(prediction: WindowPrediction, window: int,
                  stride: int) -> list[_LocalCloud]:
    clouds = []
    for slot in range(prediction.num_frames):
        depth = prediction.depth[slot]
        points_cam = depth_to_points_cam(depth, prediction.intrinsics[slot])
        points_map_cam = conf_map = None
        if prediction.points_window is not None:
            points_map_cam = transform_points(prediction.cam_from_window[slot],
                                              prediction.points_window[slot])
            conf_map = (prediction.points_conf[slot] if prediction.points_conf is not None
                        else np.ones_like(depth))
        cut = (slice(None, None, stride), slice(None, None, stride))
        clouds.append(_LocalCloud(
            window=window,
            points_cam=np.ascontiguousarray(points_cam[cut], dtype=np.float32),
            conf_depth=np.ascontiguousarray(prediction.depth_conf[slot][cut], dtype=np.float32),
            colors_rgb=np.ascontiguousarray(prediction.images_rgb[slot][cut]),
            points_map_cam=None if points_map_cam is None else np.ascontiguousarray(
                points_map_cam[cut], dtype=np.float32),
            conf_map=None if conf_map is None else np.ascontiguousarray(
                conf_map[cut], dtype=np.float32)))
    return clouds


def _choose_stride(model_hw: tuple[int, int], num_frames: int, pixel_budget: int) -> int:
    pixels = model_hw[0] * model_hw[1] * max(num_frames, 1)
    return max(1, math.ceil(math.sqrt(pixels / pixel_budget)))


def reconstruct(frames: Iterable[InputFrame], num_frames: int, predictor: Predictor,
                config: MapperConfig, mapper_factory: MapperFactory,
                progress: ProgressFn | None = None, pixel_budget: int = 4_000_000,
                cancel: threading.Event | None = None, plan_note: str = '') -> Scene:
    """
    Map an upload with the engine and build the viewer's scene.

    :param frames: the frames, in order.
    :param num_frames: how many there are (for progress and the cache budget).
    :param predictor: the model.
    :param config: the engine settings.
    :param mapper_factory: builds the engine (``Mapper``).
    :param progress: called after each window with ``(done, expected)``.
    :param pixel_budget: at most this many cached pixels over all keyframes (longer uploads
        are cached at a coarser pixel stride).
    :param cancel: when set, the run stops before its next window.
    :param plan_note: how the windows were planned, for the log.
    :return: the scene, with a log line of counts and timings.
    :raises ReconstructionError: when no keyframe could be mapped.
    :raises ServerClosingError: when ``cancel`` was set.
    """
    start = time.perf_counter()
    expected = estimate_windows(num_frames, config)
    done = [0]

    def on_window() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], max(expected, done[0]))

    recorder = _RecordingPredictor(predictor, on_window, cancel)
    mapper = mapper_factory(config, recorder)
    clouds: dict[int, _LocalCloud] = {}
    window_scales: dict[int, float] = {}
    stride = 0
    results: list[WindowResult] = []

    def absorb(new_results: list[WindowResult]) -> None:
        nonlocal stride
        for result in new_results:
            results.append(result)
            if not recorder.pending:
                continue
            prediction = recorder.pending.pop(0)
            if stride == 0:
                stride = _choose_stride(prediction.model_hw, num_frames, pixel_budget)
            if not result.accepted or result.world_from_window is None:
                continue
            window_scales[result.window_index] = result.world_from_window.scale
            local = _local_clouds(prediction, result.window_index, stride)
            for k, cloud in zip(result.keyframe_indices, local, strict=False):
                clouds.setdefault(k, cloud)

    try:
        _map_frames(frames, mapper, absorb, cancel)
        trajectory, stats = mapper.trajectory(), mapper.stats
    finally:
        mapper.close()  # its optimiser process and keyframe store

    keyframes = []
    for pose in trajectory:
        cloud = clouds.get(pose.index)
        if cloud is None:
            continue
        scale = window_scales[cloud.window]

        def to_world(points_cam: NDArray[np.float32], scale: float = scale,
                     world_from_cam: NDArray[np.float64] = pose.world_from_cam
                     ) -> NDArray[np.float32]:
            return transform_points(world_from_cam, scale * points_cam.astype(np.float64)).astype(
                np.float32)

        keyframes.append(KeyframeCloud(
            pose=pose,
            points_depth_world=to_world(cloud.points_cam),
            conf_depth=cloud.conf_depth,
            colors_rgb=cloud.colors_rgb,
            points_map_world=None if cloud.points_map_cam is None else to_world(
                cloud.points_map_cam),
            conf_map=cloud.conf_map))
    if not keyframes:
        raise ReconstructionError(
            f'no keyframe could be mapped from {num_frames} frames ({len(results)} windows, '
            f'{sum(not r.accepted for r in results)} refused); try more overlapping images')
    return Scene(keyframes=tuple(keyframes),
                 log=_success_line(num_frames, len(keyframes), results, stats,
                                   recorder.predict_s, time.perf_counter() - start, plan_note))


def _map_frames(frames: Iterable[InputFrame], mapper: MapperLike,
                absorb: Callable[[list[WindowResult]], None],
                cancel: threading.Event | None) -> None:
    """Feed the frames and flush; a shutdown that stopped the model ends the run."""
    try:
        for frame in frames:
            absorb(mapper.add_frame(frame.image_rgb, frame.stamp_ns, frame.name))
        absorb(mapper.flush())
    except PredictorFailedError as err:
        # The model did not fail: the recorder refused to start windows after the stop.
        if cancel is not None and cancel.is_set():
            raise ServerClosingError('the server is shutting down; this reconstruction was '
                                     'stopped, send it again later') from err
        raise


def _success_line(num_frames: int, num_keyframes: int, results: list[WindowResult],
                  stats: MapperStats, predict_s: float, total_s: float, plan_note: str) -> str:
    refused = [r for r in results if not r.accepted]
    dropped = num_frames - num_keyframes
    parts = [f'Reconstruction Success ({num_frames} frames, {num_keyframes} keyframes, '
             f'{len(results)} windows).']
    if plan_note:
        parts.append(plan_note[0].upper() + plan_note[1:] + '.')
    if refused:
        parts.append(f'{len(refused)} windows refused by the alignment ({refused[0].reason}); '
                     f'{dropped} frames are not in the map.')
    elif dropped:
        parts.append(f'{dropped} frames could not be used and are not in the map.')
    parts.append(f'Engine map: {stats.map_points:,} points (voxel-merged).')
    parts.append(f'Model {predict_s:.2f} s, alignment {sum(r.align_s for r in results):.2f} s, '
                 f'total {total_s:.2f} s.')
    return ' '.join(parts)
