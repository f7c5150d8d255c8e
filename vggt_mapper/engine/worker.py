"""
A worker thread that owns a ``Mapper`` and feeds it from a bounded, lossy frame queue.

The doors (ROS node, live web stream) receive frames faster than VGGT can map them. Their
callbacks call ``MappingWorker.submit`` — a constant-time enqueue — and the worker thread runs
``Mapper.add_frame`` (and so the predictor) one frame at a time. When the queue is full a frame is
dropped according to ``DropPolicy`` and counted, so memory stays bounded and the map follows the
camera instead of an ever-older backlog.

Threading contract:

* Only the worker thread touches the ``Mapper`` while the worker runs.
* ``trajectory()``, ``map_snapshot()`` and ``stats`` return copies cached by the worker after each
  frame (snapshot and trajectory after each completed window), so readers never wait for an
  inference.
* ``reset()``, ``flush()`` and ``save()`` are commands run by the worker thread between frames,
  ahead of queued frames; they return a ``concurrent.futures.Future``.
* Listeners are called in the worker thread after the caches are updated, one ``WindowResult``
  at a time, in window order. They must be quick (publish, not compute).

Failures: an error of one of ``recoverable_errors`` (engine errors: the predictor failing on too
many windows in a row, the keyframe store's disk; the engine itself turns one window's predictor
failure into a refused window) raised while mapping a frame is logged, counted in
``WorkerStats.windows_failed`` and reported to the failure listeners; the map built so far is
kept and the next frame is mapped. Any other exception is a bug: it is logged with its traceback,
stored in ``WorkerStats.fatal_error``, fails pending commands and stops the worker thread — the
door stays up (serving the last map) and reports the error in its diagnostics.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
import enum
import logging
import threading
import time
from typing import Any, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.errors import EngineError
from vggt_mapper.engine.types import (
    InputFrame,
    KeyframePose,
    MapperStats,
    MapSnapshot,
    WindowResult,
)

__all__ = [
    'DEFAULT_RECOVERABLE_ERRORS',
    'DropPolicy',
    'MapperLike',
    'MappingWorker',
    'WorkerError',
    'WorkerStats',
]

_LOGGER = logging.getLogger(__name__)
T = TypeVar('T')


class WorkerError(EngineError):
    """The worker cannot take the request (not started, stopped, or stopped by a fatal error)."""


#: Exceptions that fail one frame but not the worker (see the module docstring). The engine
#: already turns the predictor's failures (out of memory, a server gone, a model's bug) into
#: refused windows; what reaches the worker is an engine error (the predictor failing too
#: often in a row, the keyframe store's disk) or a bug, which must stop it loudly.
DEFAULT_RECOVERABLE_ERRORS: tuple[type[BaseException], ...] = (EngineError,)


class DropPolicy(enum.Enum):
    """
    Which frame to drop when a frame arrives and the queue is full.

    ``DROP_OLDEST`` (default) discards the oldest queued frame and keeps the newest, so the map
    follows the camera; ``DROP_NEWEST`` refuses the incoming frame and keeps the backlog, so no
    queued frame is ever lost (offline-like order, growing latency).
    """

    DROP_OLDEST = 'drop_oldest'
    DROP_NEWEST = 'drop_newest'


class MapperLike(Protocol):
    """The part of ``vggt_mapper.engine.mapper.Mapper`` the worker uses."""

    def add_frame(self, image_rgb: NDArray[np.uint8], stamp_ns: int,
                  name: str | None = None, *, intrinsics: NDArray[np.float64] | None = None,
                  odom_from_camera: NDArray[np.float64] | None = None) -> list[WindowResult]:
        """Offer one frame (with its known K and odometry pose, if any); returns windows."""
        ...

    def flush(self) -> list[WindowResult]:
        """Process the last, partial window."""
        ...

    def reset(self) -> None:
        """Forget everything."""
        ...

    def trajectory(self) -> list[KeyframePose]:
        """Return the current poses of all mapped keyframes."""
        ...

    def map_snapshot(self) -> MapSnapshot:
        """Return a copy of the merged map."""
        ...

    @property
    def stats(self) -> MapperStats:
        """Engine counters."""
        ...


@dataclass(frozen=True)
class WorkerStats:
    """
    Counters of the worker (the engine's own are in ``mapper``).

    :param frames_received: frames passed to ``submit``.
    :param frames_dropped: frames dropped by the queue policy, by ``reset`` or by a stop
        without draining, refused because the worker had stopped, or lost to a fatal error.
    :param frames_processed: frames fully handled: mapped (or failed), caches updated and
        listeners called.
    :param queue_depth: frames waiting now.
    :param queue_capacity: the queue's bound.
    :param windows_done: windows completed (accepted or rejected) since the worker started.
    :param windows_failed: frames whose mapping raised a recoverable error.
    :param last_error: ``Type: message`` of the last recoverable error, empty if none.
    :param last_predict_s: predictor seconds of the last completed window (0 before the first).
    :param last_step_s: wall seconds of the last ``add_frame`` that completed a window.
    :param running: the worker thread is alive.
    :param fatal_error: ``Type: message`` of the bug that stopped the worker, empty if none.
    :param mapper: the engine's counters after the last frame, None before the first.
    """

    frames_received: int
    frames_dropped: int
    frames_processed: int
    queue_depth: int
    queue_capacity: int
    windows_done: int
    windows_failed: int
    last_error: str
    last_predict_s: float
    last_step_s: float
    running: bool
    fatal_error: str
    mapper: MapperStats | None


@dataclass
class _Command:
    run: Callable[[], Any]
    future: Future[Any]


class MappingWorker:
    """
    Own a ``Mapper`` in a worker thread fed by a bounded frame queue (see the module docstring).

    Use as a context manager (``with MappingWorker(mapper) as worker: ...``) or call ``start()``
    and ``stop()``.
    """

    def __init__(self, mapper: MapperLike, queue_len: int = 4,
                 drop_policy: DropPolicy | str = DropPolicy.DROP_OLDEST, *,
                 recoverable_errors: Sequence[type[BaseException]] = DEFAULT_RECOVERABLE_ERRORS,
                 name: str = 'vggt-mapper-worker') -> None:
        """
        Create a stopped worker.

        :param mapper: the engine; the worker is its only user from ``start()`` to ``stop()``.
        :param queue_len: the most frames waiting for the mapper (>= 1).
        :param drop_policy: a ``DropPolicy`` or its value (``'drop_oldest'``, ``'drop_newest'``).
        :param recoverable_errors: exception types that fail one frame's mapping but not the
            worker.
        :param name: the thread's name (logs, debuggers).
        :raises ValueError: for ``queue_len`` < 1 or an unknown policy name.
        """
        if queue_len < 1:
            raise ValueError(f'queue_len must be >= 1, got {queue_len}')
        self._mapper = mapper
        self._queue_len = int(queue_len)
        self._policy = DropPolicy(drop_policy)
        self._recoverable = tuple(recoverable_errors)
        self._name = name
        self._cond = threading.Condition()
        self._frames: deque[InputFrame] = deque()
        self._commands: deque[_Command] = deque()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._drain = False
        self._listeners: list[Callable[[WindowResult], None]] = []
        self._failure_listeners: list[Callable[[InputFrame, BaseException], None]] = []
        # Counters and caches, guarded by self._cond.
        self._received = 0
        self._dropped = 0
        self._processed = 0
        self._windows_done = 0
        self._failed = 0
        self._last_error = ''
        self._last_predict_s = 0.0
        self._last_step_s = 0.0
        self._fatal = ''
        self._mapper_stats: MapperStats | None = None
        self._trajectory: list[KeyframePose] = []
        self._snapshot = MapSnapshot(points_world=np.zeros((0, 3), np.float32),
                                     colors_rgb=np.zeros((0, 3), np.uint8))

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> MappingWorker:
        """Start the worker; :return: self."""
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the worker without draining the queue."""
        self.stop(drain=False)

    def start(self) -> None:
        """
        Start the worker thread (once).

        :raises WorkerError: if it was already started.
        """
        with self._cond:
            if self._thread is not None:
                raise WorkerError('the mapping worker was already started; create a new one')
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, drain: bool = False, timeout: float | None = None) -> bool:
        """
        Stop the worker thread; pending commands still run, then the frame queue is handled.

        With ``drain=False`` queued frames are discarded (counted as dropped) and only the frame
        being mapped is finished — an inference cannot be interrupted. With ``drain=True`` every
        queued frame is mapped first. Neither flushes the last partial window: call
        ``flush()`` before stopping for that. Calling ``stop`` again is harmless.

        :param drain: map the queued frames before stopping.
        :param timeout: seconds to wait for the thread; None waits as long as it takes.
        :return: True if the thread has ended (or never started).
        """
        with self._cond:
            self._stopping = True
            self._drain = self._drain or drain
            if not self._drain:
                self._dropped += len(self._frames)
                self._frames.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # -- producers --------------------------------------------------------------------------

    def submit(self, frame: InputFrame) -> bool:
        """
        Enqueue a frame without blocking (safe from any thread, e.g. a ROS callback).

        :param frame: the decoded frame.
        :return: True if no frame was dropped; False if the queue was full (one frame dropped per
            the policy) or the worker is stopping or stopped.
        """
        with self._cond:
            self._received += 1
            if self._stopping or self._fatal:
                self._dropped += 1
                return False
            dropped = False
            if len(self._frames) >= self._queue_len:
                self._dropped += 1
                dropped = True
                if self._policy is DropPolicy.DROP_NEWEST:
                    return False
                self._frames.popleft()
            self._frames.append(frame)
            self._cond.notify_all()
            return not dropped

    def add_listener(self, listener: Callable[[WindowResult], None]) -> None:
        """
        Call ``listener(result)`` in the worker thread for every completed window.

        :param listener: quick callable; an exception it raises is logged with its traceback
            and kept in ``stats.last_error``, and mapping goes on.
        """
        with self._cond:
            self._listeners.append(listener)

    def add_failure_listener(self, listener: Callable[[InputFrame, BaseException], None]) -> None:
        """
        Call ``listener(frame, error)`` in the worker thread when mapping a frame fails.

        :param listener: quick callable (e.g. a throttled log line).
        """
        with self._cond:
            self._failure_listeners.append(listener)

    # -- commands ---------------------------------------------------------------------------

    def _command(self, run: Callable[[], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._cond:
            if self._thread is None or self._fatal or not self._thread.is_alive():
                why = self._fatal or 'it is not running'
                raise WorkerError(f'the mapping worker cannot run the request: {why}')
            self._commands.append(_Command(run, future))
            self._cond.notify_all()
        return future

    def reset(self) -> Future[None]:
        """
        Forget the map, the trajectory and the queued frames (counted as dropped).

        Frames submitted after this call are kept and mapped into the new, empty map.

        :return: a future that completes when the mapper has been reset.
        :raises WorkerError: if the worker is not running.
        """
        with self._cond:
            self._dropped += len(self._frames)
            self._frames.clear()
        return self._command(self._reset_now)

    def flush(self) -> Future[list[WindowResult]]:
        """
        Map the last, partial window (end of stream); listeners see its results.

        :return: a future with the completed windows.
        :raises WorkerError: if the worker is not running.
        """
        return self._command(self._flush_now)

    def save(self, writer: Callable[[list[KeyframePose], MapSnapshot], T]) -> Future[T]:
        """
        Run ``writer(trajectory, snapshot)`` on a consistent state, in the worker thread.

        Use it for file exports so that the caller (a service callback) does no I/O itself.
        When the worker is not running, the writer runs at once in the calling thread on the
        last cached state (e.g. saving at shutdown after ``stop()``).

        :param writer: e.g. ``functools.partial(save_map, outdir, overwrite=True)``.
        :return: a future with the writer's return value, or its exception.
        """
        with self._cond:
            alive = self._thread is not None and self._thread.is_alive() and not self._stopping
        if alive:
            return self._command(lambda: writer(self._mapper.trajectory(),
                                                self._mapper.map_snapshot()))
        future: Future[T] = Future()
        try:
            future.set_result(writer(self.trajectory(), self.map_snapshot()))
        except Exception as err:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(err)
        return future

    def run_between_frames(self, run: Callable[[], T]) -> Future[T]:
        """
        Run ``run()`` in the worker thread between two frames, then refresh the cached map.

        For what replaces the map as a whole (loading a saved one): the cached trajectory and
        snapshot are taken again afterwards, as after a window.

        :param run: the work; it may use the mapper (the worker thread owns it then).
        :return: a future with its return value, or its exception.
        :raises WorkerError: if the worker is not running.
        """
        def run_and_refresh() -> T:
            result = run()
            self._refresh_now()
            return result

        return self._command(run_and_refresh)

    def owns_mapper(self) -> bool:
        """
        Say whether the caller may touch the mapper now (see the threading contract).

        :return: True on the worker thread (a command, a listener, a ``save`` writer), or when
            no worker thread runs (never started, or ended); False otherwise.
        """
        with self._cond:
            thread = self._thread
        return thread is None or thread is threading.current_thread() or not thread.is_alive()

    # -- readers ----------------------------------------------------------------------------

    def trajectory(self) -> list[KeyframePose]:
        """
        Keyframe poses as of the last completed window (thread-safe copy).

        :return: the poses in keyframe order.
        """
        with self._cond:
            return list(self._trajectory)

    def map_snapshot(self) -> MapSnapshot:
        """
        Return the merged map as of the last completed window (thread-safe; do not modify).

        :return: the cached snapshot.
        """
        with self._cond:
            return self._snapshot

    @property
    def stats(self) -> WorkerStats:
        """Worker and engine counters now (thread-safe)."""
        with self._cond:
            thread = self._thread
            return WorkerStats(
                frames_received=self._received, frames_dropped=self._dropped,
                frames_processed=self._processed, queue_depth=len(self._frames),
                queue_capacity=self._queue_len, windows_done=self._windows_done,
                windows_failed=self._failed, last_error=self._last_error,
                last_predict_s=self._last_predict_s, last_step_s=self._last_step_s,
                running=thread is not None and thread.is_alive(), fatal_error=self._fatal,
                mapper=self._mapper_stats)

    # -- the worker thread ------------------------------------------------------------------

    def _run(self) -> None:
        item: _Command | InputFrame | None = None
        try:
            while True:
                with self._cond:
                    while not (self._commands or self._frames or self._stopping):
                        self._cond.wait()
                    if self._commands:
                        item = self._commands.popleft()
                    elif self._frames and (self._drain or not self._stopping):
                        item = self._frames.popleft()
                    else:
                        return
                if isinstance(item, _Command):
                    self._run_command(item)
                else:
                    self._map_frame(item)
        except Exception as err:  # noqa: BLE001 - a bug: record it and stop, never carry on
            _LOGGER.exception('the mapping worker stopped on an unexpected error')
            with self._cond:
                self._fatal = f'{type(err).__name__}: {err}'
                commands = list(self._commands)
                self._commands.clear()
                # The frame that hit the bug and the queued ones will never be mapped.
                self._dropped += len(self._frames) + isinstance(item, InputFrame)
                self._frames.clear()
            for command in commands:
                command.future.set_exception(WorkerError(
                    f'the mapping worker stopped: {self._fatal}'))

    def _run_command(self, command: _Command) -> None:
        if not command.future.set_running_or_notify_cancel():
            return
        try:
            result = command.run()
        except Exception as err:  # noqa: BLE001 - handed to the caller through the future
            command.future.set_exception(err)
        else:
            command.future.set_result(result)

    def _map_frame(self, frame: InputFrame) -> None:
        start = time.perf_counter()
        try:
            results = self._mapper.add_frame(frame.image_rgb, frame.stamp_ns, frame.name,
                                             **frame.sensor_kwargs())
        except self._recoverable as err:
            with self._cond:
                self._failed += 1
                self._last_error = f'{type(err).__name__}: {err}'
            _LOGGER.warning('mapping frame %s (stamp %d ns) failed, map kept: %s: %s',
                            frame.name, frame.stamp_ns, type(err).__name__, err)
            self._publish_stats()
            for failure_listener in self._failure_listeners_copy():
                failure_listener(frame, err)
        else:
            self._after_windows(results, time.perf_counter() - start)
        with self._cond:  # counted last: a processed frame's outputs are all out
            self._processed += 1

    def _after_windows(self, results: list[WindowResult], step_s: float | None) -> None:
        """Refresh counters and caches, then tell the listeners (worker thread only)."""
        if results:
            trajectory = self._mapper.trajectory()
            snapshot = self._mapper.map_snapshot()
        mapper_stats = self._mapper.stats
        with self._cond:
            self._mapper_stats = mapper_stats
            if results:
                self._trajectory, self._snapshot = trajectory, snapshot
                self._windows_done += len(results)
                self._last_predict_s = float(results[-1].predict_s)
                if step_s is not None:
                    self._last_step_s = step_s
            listeners = list(self._listeners)
        for result in results:
            for listener in listeners:
                try:
                    listener(result)
                except Exception as err:  # noqa: BLE001 - a door's publisher failing (a dead
                    # ROS context, a full disk) must not stop the mapping; it is logged whole.
                    with self._cond:
                        self._last_error = f'{type(err).__name__}: {err}'
                    _LOGGER.exception('window listener failed on window %d',
                                      result.window_index)

    def _publish_stats(self) -> None:
        mapper_stats = self._mapper.stats
        with self._cond:
            self._mapper_stats = mapper_stats

    def _failure_listeners_copy(self) -> list[Callable[[InputFrame, BaseException], None]]:
        with self._cond:
            return list(self._failure_listeners)

    def _reset_now(self) -> None:
        self._mapper.reset()
        self._refresh_now()

    def _refresh_now(self) -> None:
        trajectory, snapshot = self._mapper.trajectory(), self._mapper.map_snapshot()
        with self._cond:
            self._trajectory, self._snapshot = trajectory, snapshot
        self._publish_stats()

    def _flush_now(self) -> list[WindowResult]:
        start = time.perf_counter()
        try:
            results = self._mapper.flush()
        except self._recoverable as err:
            with self._cond:
                self._failed += 1
                self._last_error = f'{type(err).__name__}: {err}'
            raise
        self._after_windows(results, time.perf_counter() - start)
        return results
