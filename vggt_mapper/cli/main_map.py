"""
Library side of ``vggt-mapper map``: feed frames to a mapper until the input or Ctrl-C ends.

No argparse, no printing: the CLI (``vggt_mapper.cli.map``) wraps this with a progress bar and
exports, and other callers can use it with their own mapper and callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
import logging
import time

from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.engine.types import (
    InputFrame,
    KeyframePose,
    MapperStats,
    MapSnapshot,
    WindowResult,
)

__all__ = ['MappingOutcome', 'map_sequence']

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
    """

    trajectory: list[KeyframePose]
    snapshot: MapSnapshot
    stats: MapperStats
    frames_read: int
    interrupted: bool
    flushed: bool
    elapsed_s: float


def map_sequence(frames: Iterable[InputFrame], mapper: Mapper, *,
                 on_frame: Callable[[InputFrame, MapperStats], None] | None = None,
                 on_window: Callable[[WindowResult], None] | None = None,
                 on_interrupt: Callable[[MapperStats], None] | None = None) -> MappingOutcome:
    """
    Map a sequence: every frame into ``mapper.add_frame``, then ``flush`` the last window.

    Ctrl-C (``KeyboardInterrupt``) while reading stops the reading; the pending keyframes are
    still flushed, unless a second Ctrl-C arrives during that flush, and what was mapped is
    returned with ``interrupted=True`` instead of the exception propagating.

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

    def deliver(results: list[WindowResult]) -> None:
        for result in results:
            if not result.accepted:
                _LOG.info('window %d refused: %s', result.window_index, result.reason)
            if on_window is not None:
                on_window(result)

    try:
        for frame in frames:
            frames_read += 1
            deliver(mapper.add_frame(frame.image_rgb, frame.stamp_ns, frame.name))
            if on_frame is not None:
                on_frame(frame, mapper.stats)
    except KeyboardInterrupt:
        interrupted = True
        if on_interrupt is not None:
            on_interrupt(mapper.stats)
    flushed = False
    try:
        deliver(mapper.flush())
        flushed = True
    except KeyboardInterrupt:
        interrupted = True
        _LOG.warning('flush interrupted: the last %d pending keyframes are not mapped',
                     mapper.stats.pending_keyframes)
    return MappingOutcome(trajectory=mapper.trajectory(), snapshot=mapper.map_snapshot(),
                          stats=mapper.stats, frames_read=frames_read, interrupted=interrupted,
                          flushed=flushed, elapsed_s=time.perf_counter() - start)
