"""``map_sequence``, the library function behind ``vggt-mapper map``, with a scripted mapper."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from vggt_mapper.cli.main_map import map_sequence
from vggt_mapper.engine import InputFrame
from vggt_mapper.engine.types import KeyframePose, MapperStats, MapSnapshot, WindowResult


def _frames(count: int) -> Iterator[InputFrame]:
    for number in range(count):
        yield InputFrame(np.zeros((32, 32, 3), np.uint8), number * 1000, f'f{number}')


class ScriptedMapper:
    """Every third frame completes a window; ``flush`` can be made to raise Ctrl-C."""

    def __init__(self, flush_raises: bool = False) -> None:
        self.frames: list[str] = []
        self.flushes = 0
        self.flush_raises = flush_raises

    def _window(self, index: int) -> WindowResult:
        return WindowResult(index, (index,), index % 2 == 0, '' if index % 2 == 0 else 'bad',
                            (), np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8),
                            0.0, 0.0)

    def add_frame(self, image_rgb: np.ndarray, stamp_ns: int,
                  name: str | None = None) -> list[WindowResult]:
        self.frames.append(str(name))
        return [self._window(len(self.frames) // 3 - 1)] if len(self.frames) % 3 == 0 else []

    def flush(self) -> list[WindowResult]:
        self.flushes += 1
        if self.flush_raises:
            raise KeyboardInterrupt
        return [self._window(99)]

    def trajectory(self) -> list[KeyframePose]:
        return []

    def map_snapshot(self) -> MapSnapshot:
        return MapSnapshot(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))

    @property
    def stats(self) -> MapperStats:
        return MapperStats(len(self.frames), 0, len(self.frames), len(self.frames) // 3, 0, 1, 0)


def test_every_frame_and_window_is_delivered_then_flushed() -> None:
    mapper = ScriptedMapper()
    windows: list[int] = []
    progress: list[int] = []

    outcome = map_sequence(_frames(7), mapper,  # type: ignore[arg-type]
                           on_frame=lambda frame, stats: progress.append(stats.frames_seen),
                           on_window=lambda result: windows.append(result.window_index))

    assert mapper.frames == [f'f{n}' for n in range(7)]
    assert progress == list(range(1, 8))
    assert windows == [0, 1, 99]
    assert (outcome.frames_read, outcome.interrupted, outcome.flushed) == (7, False, True)


def test_ctrl_c_stops_reading_and_still_flushes() -> None:
    def interrupted() -> Iterator[InputFrame]:
        yield from _frames(4)
        raise KeyboardInterrupt

    mapper = ScriptedMapper()
    notified: list[MapperStats] = []

    outcome = map_sequence(interrupted(), mapper,  # type: ignore[arg-type]
                           on_interrupt=notified.append)

    assert outcome.interrupted and outcome.flushed
    assert outcome.frames_read == 4 and mapper.flushes == 1
    assert len(notified) == 1 and notified[0].frames_seen == 4


def test_second_ctrl_c_skips_the_flush_but_returns_the_map() -> None:
    mapper = ScriptedMapper(flush_raises=True)

    outcome = map_sequence(_frames(2), mapper)  # type: ignore[arg-type]

    assert outcome.interrupted and not outcome.flushed
    assert outcome.snapshot.num_points == 0
