"""
MappingWorker: bounded lossy queue, listeners, commands, failures, stop semantics.

A small fake mapper stands in for the engine so the tests can hold the worker inside an
"inference" (an Event) and control exactly when windows complete and what fails.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vggt_mapper.engine.errors import AlignmentError, PredictorFailedError
from vggt_mapper.engine.types import (
    InputFrame,
    KeyframePose,
    MapperStats,
    MapSnapshot,
    WindowResult,
)
from vggt_mapper.engine.worker import DropPolicy, MappingWorker, WorkerError

TIMEOUT_S = 10.0


def make_frame(stamp_ns: int) -> InputFrame:
    return InputFrame(image_rgb=np.full((4, 4, 3), stamp_ns % 256, np.uint8), stamp_ns=stamp_ns,
                      name=f'frame_{stamp_ns}')


class FakeMapper:
    """Every ``window_every``-th frame completes a window holding that frame's stamp as a point."""

    def __init__(self, window_every: int = 2) -> None:
        self.window_every = window_every
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)
        self.seen: list[int] = []
        self.fail_stamps: dict[int, BaseException] = {}
        self.points: list[float] = []
        self.poses: list[KeyframePose] = []
        self.windows = 0
        self.threads: set[str] = set()

    def add_frame(self, image_rgb: np.ndarray, stamp_ns: int,
                  name: str | None = None) -> list[WindowResult]:
        self.threads.add(threading.current_thread().name)
        self.entered.release()
        assert self.gate.wait(TIMEOUT_S)
        self.seen.append(stamp_ns)
        if stamp_ns in self.fail_stamps:
            raise self.fail_stamps[stamp_ns]
        if len(self.seen) % self.window_every:
            return []
        return [self._window(stamp_ns)]

    def _window(self, stamp_ns: int) -> WindowResult:
        pose = KeyframePose(index=len(self.poses), name=f'frame_{stamp_ns}', stamp_ns=stamp_ns,
                            world_from_cam=np.eye(4), intrinsics=np.eye(3), model_hw=(4, 4),
                            intrinsics_original=np.eye(3), original_hw=(4, 4))
        self.poses.append(pose)
        self.points.append(float(stamp_ns))
        result = WindowResult(window_index=self.windows, keyframe_indices=(pose.index,),
                              accepted=True, reason='', poses=(pose,),
                              points_world=np.full((1, 3), stamp_ns, np.float32),
                              colors_rgb=np.zeros((1, 3), np.uint8), predict_s=0.25,
                              align_s=0.01)
        self.windows += 1
        return result

    def flush(self) -> list[WindowResult]:
        return [self._window(-1)]

    def reset(self) -> None:
        self.points, self.poses, self.seen, self.windows = [], [], [], 0

    def trajectory(self) -> list[KeyframePose]:
        return list(self.poses)

    def map_snapshot(self) -> MapSnapshot:
        points = np.array(self.points, np.float32).reshape(-1, 1).repeat(3, axis=1)
        return MapSnapshot(points_world=points, colors_rgb=np.zeros(points.shape, np.uint8))

    @property
    def stats(self) -> MapperStats:
        return MapperStats(frames_seen=len(self.seen), frames_skipped=0,
                           keyframes=len(self.poses), windows_done=self.windows,
                           windows_rejected=0, pending_keyframes=0,
                           map_points=len(self.points))


def wait_until(predicate: object, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, 'timed out waiting for the worker'
        time.sleep(0.005)


def test_frames_flow_to_listeners_in_the_worker_thread() -> None:
    mapper = FakeMapper(window_every=2)
    received: list[tuple[int, str, int]] = []
    with MappingWorker(mapper, queue_len=8, name='test-worker') as worker:
        # The listener sees caches that already include its window.
        worker.add_listener(lambda result: received.append(
            (result.window_index, threading.current_thread().name,
             worker.map_snapshot().num_points)))
        for stamp in range(1, 5):
            assert worker.submit(make_frame(stamp))
        wait_until(lambda: worker.stats.frames_processed == 4)
        stats = worker.stats
    assert mapper.seen == [1, 2, 3, 4]
    assert mapper.threads == {'test-worker'}
    assert received == [(0, 'test-worker', 1), (1, 'test-worker', 2)]
    assert (stats.windows_done, stats.frames_dropped, stats.last_predict_s) == (2, 0, 0.25)
    assert stats.mapper is not None and stats.mapper.frames_seen == 4
    assert [pose.stamp_ns for pose in worker.trajectory()] == [2, 4]
    assert not worker.stats.running


def test_drop_oldest_keeps_the_newest_frames() -> None:
    mapper = FakeMapper(window_every=100)
    mapper.gate.clear()
    with MappingWorker(mapper, queue_len=2, drop_policy='drop_oldest') as worker:
        worker.submit(make_frame(1))
        assert mapper.entered.acquire(timeout=TIMEOUT_S)  # frame 1 is "in inference"
        results = [worker.submit(make_frame(stamp)) for stamp in (2, 3, 4, 5)]
        assert results == [True, True, False, False]
        assert (worker.stats.queue_depth, worker.stats.frames_dropped) == (2, 2)
        mapper.gate.set()
        wait_until(lambda: worker.stats.frames_processed == 3)
    assert mapper.seen == [1, 4, 5]
    assert worker.stats.frames_received == 5


def test_drop_newest_keeps_the_backlog() -> None:
    mapper = FakeMapper(window_every=100)
    mapper.gate.clear()
    with MappingWorker(mapper, queue_len=2, drop_policy=DropPolicy.DROP_NEWEST) as worker:
        worker.submit(make_frame(1))
        assert mapper.entered.acquire(timeout=TIMEOUT_S)
        assert [worker.submit(make_frame(s)) for s in (2, 3, 4)] == [True, True, False]
        mapper.gate.set()
        wait_until(lambda: worker.stats.frames_processed == 3)
    assert mapper.seen == [1, 2, 3]
    assert worker.stats.frames_dropped == 1


def test_recoverable_failure_is_counted_and_mapping_continues() -> None:
    mapper = FakeMapper(window_every=1)
    mapper.fail_stamps = {2: PredictorFailedError('the predictor failed 8 times in a row'),
                          3: AlignmentError('degenerate')}
    failures: list[tuple[str, str]] = []
    with MappingWorker(mapper, queue_len=8) as worker:
        worker.add_failure_listener(lambda frame, err: failures.append((frame.name, str(err))))
        for stamp in (1, 2, 3, 4):
            worker.submit(make_frame(stamp))
        wait_until(lambda: worker.stats.frames_processed == 4)
        stats = worker.stats
    assert (stats.windows_failed, stats.windows_done, stats.fatal_error) == (2, 2, '')
    assert stats.last_error == 'AlignmentError: degenerate'
    assert failures == [('frame_2', 'the predictor failed 8 times in a row'),
                        ('frame_3', 'degenerate')]
    assert worker.map_snapshot().num_points == 2  # the map from frames 1 and 4 is kept


@pytest.mark.parametrize('bug', [TypeError('a bug'), ValueError('a bug'), RuntimeError('a bug')])
def test_unexpected_error_stops_the_worker_and_is_reported(bug: Exception) -> None:
    # Not an engine error: a bug, which must not pass for one failed window.
    mapper = FakeMapper(window_every=1)
    mapper.fail_stamps = {2: bug}
    worker = MappingWorker(mapper, queue_len=8)
    worker.start()
    for stamp in (1, 2):
        worker.submit(make_frame(stamp))
    wait_until(lambda: not worker.stats.running)
    stats = worker.stats
    assert stats.fatal_error == f'{type(bug).__name__}: a bug'
    assert worker.map_snapshot().num_points == 1  # the map before the bug is still served
    assert (stats.frames_processed, stats.frames_dropped) == (1, 1)  # frame 2 is lost
    assert worker.submit(make_frame(3)) is False
    assert worker.stats.frames_dropped == 2
    with pytest.raises(WorkerError, match='a bug'):
        worker.reset()
    assert worker.stop(timeout=TIMEOUT_S)


def test_reset_discards_queue_and_map() -> None:
    mapper = FakeMapper(window_every=1)
    with MappingWorker(mapper, queue_len=8) as worker:
        worker.submit(make_frame(1))
        wait_until(lambda: worker.map_snapshot().num_points == 1)
        mapper.gate.clear()
        worker.submit(make_frame(2))
        assert mapper.entered.acquire(timeout=TIMEOUT_S)
        assert mapper.entered.acquire(timeout=TIMEOUT_S)
        worker.submit(make_frame(3))  # queued behind the frame in "inference"
        future = worker.reset()
        mapper.gate.set()
        future.result(timeout=TIMEOUT_S)
        assert worker.map_snapshot().num_points == 0 and worker.trajectory() == []
        assert worker.stats.frames_dropped == 1  # frame 3
        worker.submit(make_frame(4))
        wait_until(lambda: worker.map_snapshot().num_points == 1)
    assert mapper.points == [4.0]


def test_save_runs_in_worker_thread_on_a_consistent_state() -> None:
    mapper = FakeMapper(window_every=1)
    calls: list[tuple[str, int, int]] = []

    def writer(trajectory: list[KeyframePose], snapshot: MapSnapshot) -> str:
        calls.append((threading.current_thread().name, len(trajectory), snapshot.num_points))
        return 'written'

    with MappingWorker(mapper, queue_len=8, name='saver') as worker:
        for stamp in (1, 2, 3):
            worker.submit(make_frame(stamp))
        assert worker.save(writer).result(timeout=TIMEOUT_S) == 'written'
        wait_until(lambda: worker.stats.frames_processed == 3)
    assert calls[0][0] == 'saver' and calls[0][1] == calls[0][2]
    # After stop the writer runs in the caller on the final cached state.
    assert worker.save(writer).result(timeout=TIMEOUT_S) == 'written'
    assert calls[-1] == (threading.current_thread().name, 3, 3)


def test_save_error_reaches_the_caller() -> None:
    def failing_writer(trajectory: list[KeyframePose], snapshot: MapSnapshot) -> None:
        raise OSError('disk full')

    with MappingWorker(FakeMapper(), queue_len=2) as worker:
        with pytest.raises(OSError, match='disk full'):
            worker.save(failing_writer).result(timeout=TIMEOUT_S)
        assert worker.stats.running


def test_flush_runs_partial_window_and_notifies() -> None:
    received: list[int] = []
    with MappingWorker(FakeMapper(window_every=100), queue_len=2) as worker:
        worker.add_listener(lambda result: received.append(result.window_index))
        results = worker.flush().result(timeout=TIMEOUT_S)
    assert [r.window_index for r in results] == [0] and received == [0]


def test_stop_with_and_without_drain() -> None:
    for drain, expected_seen in ((False, [1]), (True, [1, 2, 3])):
        mapper = FakeMapper(window_every=100)
        mapper.gate.clear()
        worker = MappingWorker(mapper, queue_len=4)
        worker.start()
        worker.submit(make_frame(1))
        assert mapper.entered.acquire(timeout=TIMEOUT_S)
        worker.submit(make_frame(2))
        worker.submit(make_frame(3))
        threading.Timer(0.05, mapper.gate.set).start()
        assert worker.stop(drain=drain, timeout=TIMEOUT_S)
        assert mapper.seen == expected_seen
        assert worker.stats.frames_dropped == (0 if drain else 2)
        assert worker.submit(make_frame(4)) is False


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match='queue_len'):
        MappingWorker(FakeMapper(), queue_len=0)
    with pytest.raises(ValueError):
        MappingWorker(FakeMapper(), drop_policy='drop_random')
    worker = MappingWorker(FakeMapper())
    with pytest.raises(WorkerError, match='not running'):
        worker.flush()
    worker.start()
    with pytest.raises(WorkerError, match='already started'):
        worker.start()
    worker.stop(timeout=TIMEOUT_S)
