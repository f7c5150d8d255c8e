"""
Library side of ``vggt-mapper map``: feed frames to a mapper until the input or Ctrl-C ends.

No argparse, no printing: the CLI (``vggt_mapper.cli.map``) wraps this with a progress bar and
exports, and other callers can use it with their own mapper and callbacks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
import logging
import resource
import statistics
import time
from typing import Any

from vggt_mapper.engine.errors import PredictorFailedError
from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.engine.types import (
    InputFrame,
    KeyframePose,
    MapperStats,
    MapSnapshot,
    WindowResult,
)
from vggt_mapper.io.cameras_json import scale_record

__all__ = ['MappingOutcome', 'calibration_statistics', 'map_sequence', 'run_statistics']

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class MappingOutcome:
    """
    What a mapping run produced.

    :param trajectory: poses of all mapped keyframes, in order.
    :param snapshot: the merged map.
    :param stats: the mapper's final counters.
    :param frames_read: frames taken from the input.
    :param interrupted: True if Ctrl-C stopped the reading early.
    :param flushed: True if the last, partial window was processed.
    :param elapsed_s: wall time of the run in seconds.
    :param failure: why mapping stopped early (the predictor failed window after window);
        empty when it did not. What was mapped before is in the outcome.
    :param model_s: seconds in the predictor (mapping windows).
    :param verify_s: seconds in the predictor verifying loop candidates.
    :param backend_s: seconds of the back end, model time excluded.
    """

    trajectory: list[KeyframePose]
    snapshot: MapSnapshot
    stats: MapperStats
    frames_read: int
    interrupted: bool
    flushed: bool
    elapsed_s: float
    failure: str = ''
    model_s: float = 0.0
    verify_s: float = 0.0
    backend_s: float = 0.0


def map_sequence(frames: Iterable[InputFrame], mapper: Mapper, *,
                 on_frame: Callable[[InputFrame, MapperStats], None] | None = None,
                 on_window: Callable[[WindowResult], None] | None = None,
                 on_interrupt: Callable[[MapperStats], None] | None = None) -> MappingOutcome:
    """
    Map a sequence: every frame into ``mapper.add_frame``, then ``flush`` the last window.

    Ctrl-C (``KeyboardInterrupt``) while reading stops the reading; the pending keyframes are
    still flushed, unless a second Ctrl-C arrives during that flush, and what was mapped is
    returned with ``interrupted=True`` instead of the exception propagating. A predictor that
    fails window after window (``PredictorFailedError``) stops the run the same way, with
    ``failure`` saying why.

    :param frames: the input frames, oldest first.
    :param mapper: the engine (or any object with the same methods).
    :param on_frame: called after each frame with the mapper's counters (progress bars).
    :param on_window: called with every window result, in order (for bag writers, logs).
    :param on_interrupt: called once when Ctrl-C stops the reading, before the flush.
    :return: the trajectory, the map and the counters.
    """
    start = time.perf_counter()
    frames_read = 0
    interrupted = False
    failure = ''
    seconds = {'model': 0.0, 'verify': 0.0, 'backend': 0.0}

    def deliver(results: list[WindowResult]) -> None:
        for result in results:
            seconds['model'] += result.predict_s
            seconds['verify'] += result.verify_s
            seconds['backend'] += result.align_s
            if not result.accepted:
                _LOG.info('window %d refused: %s', result.window_index, result.reason)
            if on_window is not None:
                on_window(result)

    try:
        for frame in frames:
            frames_read += 1
            deliver(mapper.add_frame(frame.image_rgb, frame.stamp_ns, frame.name,
                                     **frame.sensor_kwargs()))
            if on_frame is not None:
                on_frame(frame, mapper.stats)
    except KeyboardInterrupt:
        interrupted = True
        if on_interrupt is not None:
            on_interrupt(mapper.stats)
    except PredictorFailedError as err:
        failure = str(err)
    flushed = False
    if not failure:
        try:
            deliver(mapper.flush())
            flushed = True
        except KeyboardInterrupt:
            interrupted = True
            _LOG.warning('flush interrupted: the last %d pending keyframes are not mapped',
                         mapper.stats.pending_keyframes)
        except PredictorFailedError as err:
            failure = str(err)
    return MappingOutcome(trajectory=mapper.trajectory(), snapshot=mapper.map_snapshot(),
                          stats=mapper.stats, frames_read=frames_read, interrupted=interrupted,
                          flushed=flushed, elapsed_s=time.perf_counter() - start,
                          failure=failure, model_s=seconds['model'],
                          verify_s=seconds['verify'], backend_s=seconds['backend'])


def run_statistics(outcome: MappingOutcome, skipped_by_reason: Mapping[str, int]
                   ) -> dict[str, Any]:
    """
    Gather a run's figures for ``map_stats.json`` (JSON-ready).

    :param outcome: what ``map_sequence`` returned.
    :param skipped_by_reason: frames the reader and the engine skipped, by reason.
    :return: frames, keyframes, windows and refusals by kind, segments, loops with the fate of
        their candidates, optimisation, time split (model, loop verification, back end), memory
        (peak RSS, keyframe store on disk and in RAM, map), why the run stopped, the known
        intrinsics (the model's focal over the known one per window) and each segment's
        metric scale.
    """
    stats = outcome.stats
    per_segment = Counter(pose.segment for pose in outcome.trajectory)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        'frames': {'read': outcome.frames_read, 'skipped': sum(skipped_by_reason.values()),
                   'skipped_by_reason': dict(skipped_by_reason),
                   'untrackable': stats.frames_untrackable},
        'keyframes': {'selected': stats.keyframes, 'mapped': stats.keyframes_mapped,
                      'lost': stats.keyframes_lost, 'pending': stats.pending_keyframes},
        'windows': {'done': stats.windows_done, 'refused_attempts': stats.windows_rejected,
                    'refused_by_kind': dict(stats.refusals), 'model_calls': stats.model_calls},
        'segments': {'now': stats.segments, 'started': stats.segments_started,
                     'keyframes': {str(k): v for k, v in sorted(per_segment.items())}},
        'loops': {'candidates': stats.loop_candidates, 'accepted': stats.loops_accepted,
                  'rejected_by_reason': dict(stats.loop_rejections),
                  'verification_calls': stats.verification_calls,
                  'last_optimisation_verdicts': dict(stats.loop_verdicts)},
        'optimisation': {'runs': stats.optimizations, 'seconds': round(stats.optimize_s, 3)},
        'time_s': {'total': round(outcome.elapsed_s, 3), 'model': round(outcome.model_s, 3),
                   'loop_verification_model': round(outcome.verify_s, 3),
                   'back_end': round(outcome.backend_s, 3)},
        'memory': {'peak_rss_bytes': peak_rss, 'keyframe_store_disk_bytes': stats.store_bytes,
                   'keyframe_store_ram_bytes': stats.store_memory_bytes,
                   'map_bytes': stats.map_bytes, 'map_points': stats.map_points},
        'stopped': {'interrupted': outcome.interrupted, 'flushed': outcome.flushed,
                    'failure': outcome.failure},
        'calibration': calibration_statistics(stats),
        'scale': {'keyframes_with_odometry': stats.keyframes_with_odometry,
                  'segments': {str(segment): scale_record(scale)
                               for segment, scale in sorted(stats.metric_scales.items())}},
    }


def calibration_statistics(stats: MapperStats) -> dict[str, Any]:
    """
    Summarise how the model's focal length compared with the known one (``map_stats.json``).

    :param stats: the mapper's counters.
    :return: keyframes with a known K, and the per-window ratios model / known with their
        median, minimum and maximum (null when no window had a known K).
    """
    ratios = [round(ratio, 5) for ratio in stats.focal_ratios]
    return {'keyframes_with_known_intrinsics': stats.keyframes_with_intrinsics,
            'focal_ratio_model_over_known': {
                'per_window': ratios,
                'median': float(statistics.median(ratios)) if ratios else None,
                'min': min(ratios, default=None), 'max': max(ratios, default=None)}}
