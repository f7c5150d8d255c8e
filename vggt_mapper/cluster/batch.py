"""
Batch mapping on Ray: one mapping job per recording, on workers that keep their model.

A recording is a stateful chain of windows, so parallelism is across recordings, never inside
one. ``run_batch`` (the driver) connects to Ray — a new local instance on this machine or an
existing cluster (``address='auto'``, ``'ray://head:10001'``), the same code both ways —
starts ``workers`` actors (``MappingWorker``), each asking for a GPU when its predictor needs
one, and hands them recordings as they become free: Ray Data's actor pattern, the model is
loaded once per worker and reused across recordings. The driver owns retries and the summary:

* a recording is mapped into a staging folder under ``OUTROOT/.batch/staging``; its done
  marker is written last, then one rename publishes ``OUTROOT/<name>`` (``recordings.py``);
* finished recordings are skipped on a re-run; a failed attempt (an error, a worker that
  crashed or was killed) is retried up to ``retries`` times unless the input or its options
  are at fault, then reported; one recording never stops the others;
* what each attempt printed and logged is appended to ``OUTROOT/.batch/logs/<name>.log``.

The mapping itself is injected (``map_fn``, ``build_predictor``: the ``map`` command's), so this
module knows Ray and folders, not argparse. Ray is imported when ``run_batch`` runs
(``pip install 'vggt_mapper[cluster]'``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
import contextlib
from dataclasses import asdict, dataclass, field, replace
import fcntl
import json
import logging
import os
from pathlib import Path
import shutil
import socket
import sys
import time
import traceback
from typing import Any, Protocol
import uuid

from vggt_mapper.cluster.errors import BatchError, RecordingFailed
from vggt_mapper.cluster.recordings import (
    publish,
    read_done_marker,
    Recording,
    STATE_DIR,
    write_done_marker,
)
from vggt_mapper.io.atomic import atomic_write_bytes
from vggt_mapper.predictor.base import Predictor
from vggt_mapper.predictor.factory import PredictorSpec

__all__ = [
    'BatchJob',
    'BatchOptions',
    'BatchReport',
    'MapFunction',
    'MappingWorker',
    'PredictorCache',
    'RecordingResult',
    'SUMMARY_FORMAT',
    'SUMMARY_NAME',
    'Status',
    'format_table',
    'plan_batch',
    'run_batch',
    'write_summary',
]

_LOG = logging.getLogger(__name__)

SUMMARY_NAME = 'batch_summary.json'
SUMMARY_FORMAT = 'vggt_mapper.batch_summary/1'
BuildPredictor = Callable[[PredictorSpec], Predictor]


class Status:
    """What became of a recording."""

    DONE = 'done'
    SKIPPED = 'skipped'  # done by an earlier run
    FAILED = 'failed'
    NOT_RUN = 'not run'  # the batch was interrupted first


class MapFunction(Protocol):
    """Maps one recording into ``outdir`` (all outputs and ``map_stats.json``)."""

    def __call__(self, recording: Recording, outdir: Path, options: Any,
                 create_predictor: BuildPredictor) -> None:
        """
        Map ``recording``; raise ``RecordingFailed`` when it cannot be mapped.

        :param recording: what to map.
        :param outdir: a folder that does not exist yet.
        :param options: the map options of this recording (opaque here).
        :param create_predictor: returns the worker's predictor for a spec.
        """


@dataclass(frozen=True)
class BatchJob:
    """
    A recording with the map options it is mapped with.

    :param recording: the input and its output name.
    :param options: the map options (opaque to the driver, passed to ``map_fn``).
    """

    recording: Recording
    options: Any


@dataclass
class RecordingResult:
    """
    One line of the summary.

    :param name: the output folder's name.
    :param source: the recording's path (the input).
    :param status: a ``Status`` value.
    :param attempts: attempts made by this run (0: skipped or refused before mapping).
    :param frames: frames read.
    :param keyframes: keyframes mapped.
    :param windows_refused: refused window attempts.
    :param segments: map segments at the end.
    :param loops: loops closed.
    :param time_s: seconds of the last attempt (of the finishing run, for a skipped one).
    :param error: why it failed (empty otherwise).
    :param retryable: whether another attempt could help (failed ones).
    :param worker: ``host:pid`` of the worker of the last attempt.
    :param output: the output folder (done and skipped ones).
    :param log: the log file of its attempts.
    """

    name: str
    source: str
    status: str
    attempts: int = 0
    frames: int = 0
    keyframes: int = 0
    windows_refused: int = 0
    segments: int = 0
    loops: int = 0
    time_s: float = 0.0
    error: str = ''
    retryable: bool = False
    worker: str = ''
    output: str = ''
    log: str = ''


@dataclass(frozen=True)
class BatchOptions:
    """
    How a batch runs.

    :param outroot: the folder that receives ``<name>/`` per recording and the summary.
    :param workers: mapping workers (None: as many as the cluster's GPUs, or CPUs, allow).
    :param cpus_per_worker: CPUs each worker asks Ray for.
    :param gpus_per_worker: GPUs each worker asks for (None: 1 when ``wants_gpu`` and the
        cluster has GPUs, else 0; a fraction shares a GPU).
    :param wants_gpu: the predictor runs a local model that uses a GPU when it has one.
    :param needs_gpu: it cannot run without one (``--device cuda``).
    :param retries: further attempts after a failed one.
    :param ray_address: None (Ray's default: ``RAY_ADDRESS``, a cluster started on this machine
        with ``ray start``, else a new local instance), ``'local'``, ``'auto'``,
        ``'host:6379'`` or ``'ray://host:10001'``.
    :param overwrite: map finished recordings again and replace their folders.
    :param log_level: level of the per-recording log files.
    """

    outroot: Path
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    wants_gpu: bool = False
    needs_gpu: bool = False
    retries: int = 2
    ray_address: str | None = None
    overwrite: bool = False
    log_level: int = logging.INFO

    def __post_init__(self) -> None:
        """Check the numbers; raise ``BatchError``."""
        if self.workers is not None and self.workers < 1:
            raise BatchError(f'workers must be >= 1, got {self.workers}')
        if not self.cpus_per_worker >= 0 or (self.gpus_per_worker is not None
                                             and not self.gpus_per_worker >= 0):
            raise BatchError('cpus_per_worker and gpus_per_worker must be >= 0, got '
                             f'{self.cpus_per_worker}, {self.gpus_per_worker}')
        if self.retries < 0:
            raise BatchError(f'retries must be >= 0, got {self.retries}')


@dataclass
class BatchReport:
    """
    What a batch did.

    :param results: one per recording, in input order.
    :param wall_s: seconds from the start to the last result.
    :param workers: workers started (0 when nothing needed mapping).
    :param cpus_per_worker: CPUs per worker.
    :param gpus_per_worker: GPUs per worker.
    :param ray_address: where the workers ran (empty when Ray was not needed).
    :param interrupted: True when Ctrl-C or SIGTERM stopped the batch.
    """

    results: list[RecordingResult]
    wall_s: float = 0.0
    workers: int = 0
    cpus_per_worker: float = 0.0
    gpus_per_worker: float = 0.0
    ray_address: str = ''
    interrupted: bool = False
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        """Count the results by status."""
        self.counts = {status: sum(result.status == status for result in self.results)
                       for status in (Status.DONE, Status.SKIPPED, Status.FAILED,
                                      Status.NOT_RUN)}

    @property
    def keyframes_mapped(self) -> int:
        """Keyframes mapped by this run (skipped recordings left out)."""
        return sum(result.keyframes for result in self.results if result.status == Status.DONE)


class PredictorCache:
    """
    The worker's predictor: built on first use, reused while the spec stays the same.

    Only the last spec's predictor is kept, so a manifest that switches models frees the
    previous one (GPU memory) instead of holding both.

    :param build: makes a predictor from a spec (the ``map`` command's, with its hints).
    """

    def __init__(self, build: BuildPredictor) -> None:
        self._build = build
        self._spec: PredictorSpec | None = None
        self._predictor: Predictor | None = None
        self.builds = 0

    def __call__(self, spec: PredictorSpec) -> Predictor:
        """
        Return the predictor for ``spec``.

        :param spec: the recording's predictor spec.
        :return: the cached predictor, or a new one.
        """
        if self._predictor is None or spec != self._spec:
            self.close()
            self._predictor = self._build(spec)
            self._spec = spec
            self.builds += 1
        return self._predictor

    def close(self) -> None:
        """Drop the predictor (closing it when it can be closed: a remote connection)."""
        close = getattr(self._predictor, 'close', None)
        if callable(close):
            close()
        self._predictor, self._spec = None, None


@contextlib.contextmanager
def _logged_to(path: Path, level: int, header: str) -> Iterator[None]:
    """Send prints and log records of the block to ``path`` (appended)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    previous_level = root.level
    with path.open('a', encoding='utf-8') as stream:
        stream.write(f'==== {header} ====\n')
        stream.flush()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter('%(levelname)s %(name)s: %(message)s'))
        handler.setLevel(level)
        root.addHandler(handler)
        root.setLevel(min(level, previous_level) if previous_level else level)
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        finally:
            root.removeHandler(handler)
            root.setLevel(previous_level)


def _stats_of(outdir: Path) -> dict[str, Any]:
    """Read the figures of the summary from a mapped folder's ``map_stats.json``."""
    try:
        stats = json.loads((outdir / 'map_stats.json').read_text(encoding='utf-8'))
    except (OSError, ValueError) as err:
        raise RecordingFailed(f'the mapped folder has no readable map_stats.json: {err}',
                              retryable=True) from err
    return {'frames': int(stats['frames']['read']),
            'keyframes': int(stats['keyframes']['mapped']),
            'windows_refused': int(stats['windows']['refused_attempts']),
            'segments': int(stats['segments']['now']),
            'loops': int(stats['loops']['accepted'])}


def _paths(outroot: Path, name: str) -> tuple[Path, Path]:
    """Return a recording's final folder and log file."""
    return outroot / name, outroot / STATE_DIR / 'logs' / f'{name}.log'


class MappingWorker:
    """
    A mapping worker (a Ray actor): maps recordings one after another with one predictor.

    :param map_fn: maps one recording (the ``map`` command's library side).
    :param build_predictor: builds a predictor from a spec (once per worker and spec).
    :param log_level: level of the per-recording log files.
    """

    def __init__(self, map_fn: MapFunction, build_predictor: BuildPredictor,
                 log_level: int = logging.INFO) -> None:
        self._map = map_fn
        self._predictors = PredictorCache(build_predictor)
        self._log_level = log_level
        self.identity = f'{socket.gethostname()}:{os.getpid()}'

    def map_recording(self, job: BatchJob, outroot: Path, attempt: int,
                      overwrite: bool) -> RecordingResult:
        """
        Map one recording into ``outroot/<name>``: staging folder, done marker, one rename.

        :param job: the recording and its options.
        :param outroot: the batch's output root (a shared file system on a cluster).
        :param attempt: 1 for the first attempt.
        :param overwrite: replace a finished folder.
        :return: the result, done or failed (``RecordingFailed``); any other error is raised
            (Ray hands it to the driver) after its traceback is logged.
        """
        recording = job.recording
        final, log_path = _paths(outroot, recording.name)
        staging = (outroot / STATE_DIR / 'staging'
                   / f'{recording.name}.{attempt}.{uuid.uuid4().hex[:8]}')
        result = RecordingResult(recording.name, str(recording.source), Status.FAILED,
                                 attempts=attempt, worker=self.identity, log=str(log_path))
        start = time.perf_counter()
        header = (f'{recording.source} attempt {attempt} on {self.identity} at '
                  f'{time.strftime("%Y-%m-%d %H:%M:%S")}')
        with _logged_to(log_path, self._log_level, header):
            try:
                self._map(recording, staging, job.options, self._predictors)
                figures = _stats_of(staging)
                result.time_s = round(time.perf_counter() - start, 3)
                result.status, result.output = Status.DONE, str(final)
                result = replace(result, **figures)
                write_done_marker(staging, {'input': str(recording.source.resolve()),
                                            'options': list(recording.options),
                                            'result': asdict(result)})
                publish(staging, final, overwrite=overwrite)
            except RecordingFailed as err:
                result.error, result.retryable = str(err), err.retryable
                result.status, result.output = Status.FAILED, ''
                print(f'FAILED: {err}', file=sys.stderr)
            except BaseException:
                traceback.print_exc(file=sys.stderr)
                raise
            finally:
                result.time_s = round(time.perf_counter() - start, 3)
                shutil.rmtree(staging, ignore_errors=True)
        return result


def plan_batch(jobs: Sequence[BatchJob], outroot: Path, *, overwrite: bool
               ) -> tuple[list[BatchJob], dict[str, RecordingResult]]:
    """
    Sort recordings into those to map and those already settled (finished, or blocked).

    :param jobs: every recording of the batch.
    :param outroot: the output root.
    :param overwrite: map finished recordings again.
    :return: the jobs to run, and a result for each recording that needs no worker: skipped
        (its folder has a done marker for this input) or failed at once (its folder exists
        and is not a finished output, or holds another input's map).
    """
    pending: list[BatchJob] = []
    settled: dict[str, RecordingResult] = {}
    for job in jobs:
        recording = job.recording
        final, log_path = _paths(outroot, recording.name)
        marker = read_done_marker(final) if final.is_dir() else None
        if overwrite or not final.exists():
            pending.append(job)
        elif marker is None:
            settled[recording.name] = RecordingResult(
                recording.name, str(recording.source), Status.FAILED, retryable=False,
                error=f'{str(final)!r} exists and is not a finished batch output; move it '
                      'away or pass --overwrite')
        elif marker.get('input') != str(recording.source.resolve()):
            settled[recording.name] = RecordingResult(
                recording.name, str(recording.source), Status.FAILED, retryable=False,
                error=f'{str(final)!r} holds the map of another input '
                      f'({marker.get("input")!r}); rename one of them or pass --overwrite')
        else:
            before = marker.get('result', {})
            fields = {key: before[key] for key in ('frames', 'keyframes', 'windows_refused',
                                                   'segments', 'loops', 'time_s', 'worker')
                      if key in before}
            settled[recording.name] = RecordingResult(
                recording.name, str(recording.source), Status.SKIPPED, output=str(final),
                log=str(log_path), **fields)
    return pending, settled


@contextlib.contextmanager
def _batch_lock(outroot: Path) -> Iterator[None]:
    """Hold ``OUTROOT/.batch/lock``: one batch at a time writes into an OUTROOT."""
    state = outroot / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    with (state / 'lock').open('a') as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise BatchError(f'another vggt-mapper batch is writing into {str(outroot)!r}; '
                             'wait for it or choose another OUTROOT') from err
        # Staging folders left by a batch that was killed: no batch is using them now.
        shutil.rmtree(state / 'staging', ignore_errors=True)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _import_ray() -> Any:
    """Import Ray, or say how to install it."""
    try:
        import ray
    except ImportError as err:
        raise BatchError("vggt-mapper batch needs Ray: pip install 'vggt_mapper[cluster]' "
                         '(or pip install ray)') from err
    return ray


def _connect(ray: Any, address: str | None) -> tuple[bool, str]:
    """Connect to Ray (or start a local instance); return (started here, where)."""
    if ray.is_initialized():
        return False, 'the Ray instance of this process'
    kwargs: dict[str, Any] = {'address': address}
    if address is None or address == 'local':
        kwargs.update(include_dashboard=False, log_to_driver=False)
    elif not address.startswith('ray://'):
        kwargs['log_to_driver'] = False
    try:
        context = ray.init(**kwargs)
    except ConnectionError as err:
        raise BatchError(f'cannot connect to the Ray cluster at {address!r}: {err}; start '
                         'one with `ray start --head` or leave --ray-address out for a local '
                         'instance') from err
    return True, str(getattr(context, 'address_info', {}).get('address', address or 'local'))


def _worker_shape(ray: Any, options: BatchOptions, pending: int) -> tuple[int, float, float]:
    """Decide how many workers, with how many CPUs and GPUs each; refuse what cannot run."""
    resources = ray.cluster_resources()
    cpus, gpus = float(resources.get('CPU', 0)), float(resources.get('GPU', 0))
    gpw = options.gpus_per_worker
    if gpw is None:
        gpw = 1.0 if options.wants_gpu and gpus > 0 else 0.0
    if options.needs_gpu and (gpw == 0 or gpus == 0):
        raise BatchError(f'the predictor needs a GPU (--device cuda) but the Ray cluster has '
                         f'{gpus:g} GPUs and workers ask for {gpw:g}; use --device auto or '
                         'cpu, or a cluster with GPUs')
    cpw = options.cpus_per_worker
    fit = []
    if gpw > 0:
        fit.append(int(gpus // gpw))
    if cpw > 0:
        fit.append(int(cpus // cpw))
    most = min(fit) if fit else pending
    workers = options.workers if options.workers is not None else max(1, most)
    if workers > most:
        raise BatchError(f'{workers} workers with {cpw:g} CPUs and {gpw:g} GPUs each do not '
                         f'fit the Ray cluster ({cpus:g} CPUs, {gpus:g} GPUs): at most {most}')
    return min(workers, pending), cpw, gpw


def run_batch(jobs: Sequence[BatchJob], options: BatchOptions, map_fn: MapFunction,
              build_predictor: BuildPredictor, *,
              on_result: Callable[[RecordingResult, bool], None] | None = None) -> BatchReport:
    """
    Map every recording on Ray workers; finished ones are skipped, failures retried, reported.

    :param jobs: the recordings with their options, in order (names unique).
    :param options: workers, resources, retries, Ray address, overwrite.
    :param map_fn: maps one recording (runs on the workers; must be importable there).
    :param build_predictor: builds a predictor from a spec, once per worker and spec.
    :param on_result: called with each result as it comes, and whether it is final (False: a
        failed attempt that will be retried).
    :return: one result per recording, in the order given, and the run's figures.
    :raises BatchError: when Ray is missing or unreachable, the workers do not fit the cluster
        or another batch holds OUTROOT.
    """
    start = time.perf_counter()
    outroot = options.outroot
    with _batch_lock(outroot):
        pending, settled = plan_batch(jobs, outroot, overwrite=options.overwrite)
        for result in settled.values():
            if on_result is not None:
                on_result(result, True)
        report = BatchReport([], workers=0)
        if pending:
            report = _run_on_ray(pending, options, map_fn, build_predictor, settled, on_result)
    results = [settled[job.recording.name] for job in jobs]
    return BatchReport(results, wall_s=round(time.perf_counter() - start, 3),
                       workers=report.workers, cpus_per_worker=report.cpus_per_worker,
                       gpus_per_worker=report.gpus_per_worker, ray_address=report.ray_address,
                       interrupted=report.interrupted)


class _Workers:
    """The batch's actors; a worker that died is replaced by a new one (its model reloaded)."""

    def __init__(self, ray: Any, options: BatchOptions, map_fn: MapFunction,
                 build_predictor: BuildPredictor, count: int, cpus: float, gpus: float) -> None:
        # No restarts by Ray: a restarting actor refuses the tasks sent meanwhile, so the
        # driver, which owns the retries, starts a fresh worker instead.
        self._ray = ray
        self._actor_class = ray.remote(MappingWorker).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_task_retries=0)
        self._arguments = (map_fn, build_predictor, options.log_level)
        self.actors: list[Any] = [self._make() for _ in range(count)]
        self.replaced = 0

    def _make(self) -> Any:
        """Start one worker."""
        return self._actor_class.remote(*self._arguments)

    def replace(self, actor: Any) -> Any:
        """Kill a lost worker (if anything is left of it) and start another."""
        self._ray.kill(actor, no_restart=True)
        self.actors.remove(actor)
        fresh = self._make()
        self.actors.append(fresh)
        self.replaced += 1
        return fresh

    def kill_all(self) -> None:
        """Stop every worker (frees their GPUs on a cluster that goes on)."""
        for actor in self.actors:
            self._ray.kill(actor, no_restart=True)


def _run_on_ray(pending: list[BatchJob], options: BatchOptions, map_fn: MapFunction,
                build_predictor: BuildPredictor, settled: dict[str, RecordingResult],
                on_result: Callable[[RecordingResult, bool], None] | None) -> BatchReport:
    """Start the workers, feed them, retry, collect into ``settled``; always clean up."""
    ray = _import_ray()
    started, where = _connect(ray, options.ray_address)
    workers: _Workers | None = None
    interrupted = False
    try:
        count, cpw, gpw = _worker_shape(ray, options, len(pending))
        workers = _Workers(ray, options, map_fn, build_predictor, count, cpw, gpw)
        try:
            _dispatch(ray, workers, pending, options, settled, on_result)
        except KeyboardInterrupt:
            interrupted = True
    finally:
        if workers is not None:
            workers.kill_all()
        if started:
            ray.shutdown()
    for job in pending:
        name = job.recording.name
        if name not in settled:
            settled[name] = RecordingResult(name, str(job.recording.source), Status.NOT_RUN,
                                            error='the batch was interrupted first')
    return BatchReport([], workers=count, cpus_per_worker=cpw, gpus_per_worker=gpw,
                       ray_address=where, interrupted=interrupted)


def _dispatch(ray: Any, workers: _Workers, pending: list[BatchJob], options: BatchOptions,
              settled: dict[str, RecordingResult],
              on_result: Callable[[RecordingResult, bool], None] | None) -> None:
    """Give each free worker the next attempt until every recording is settled."""
    queue: deque[tuple[BatchJob, int]] = deque((job, 1) for job in pending)
    idle = list(workers.actors)
    running: dict[Any, tuple[Any, BatchJob, int]] = {}
    while queue or running:
        while queue and idle:
            actor, (job, attempt) = idle.pop(), queue.popleft()
            reference = actor.map_recording.remote(job, options.outroot, attempt,
                                                   options.overwrite)
            running[reference] = (actor, job, attempt)
        ready, _ = ray.wait(list(running), num_returns=1)
        for reference in ready:
            actor, job, attempt = running.pop(reference)
            result, worker_lost = _result_of(ray, reference, job, attempt, options.outroot)
            idle.append(workers.replace(actor) if worker_lost else actor)
            final = (result.status != Status.FAILED or not result.retryable
                     or attempt > options.retries)
            if final:
                settled[job.recording.name] = result
            else:
                _LOG.warning('%s: attempt %d failed (%s); retrying', job.recording.name,
                             attempt, result.error)
                queue.append((job, attempt + 1))
            if on_result is not None:
                on_result(result, final)


def _result_of(ray: Any, reference: Any, job: BatchJob, attempt: int, outroot: Path
               ) -> tuple[RecordingResult, bool]:
    """Fetch an attempt's result, and whether its worker was lost (crashed, killed)."""
    try:
        result: RecordingResult = ray.get(reference)
        return result, False
    except ray.exceptions.RayError as err:
        # Any failure Ray reports for this one task (the worker raised, crashed, ran out of
        # memory or its node went away): this recording failed, the batch goes on.
        cause = getattr(err, 'cause', None)
        first_line = str(err).splitlines()[0] if str(err) else ''
        reason = (f'{type(cause).__name__}: {cause}' if isinstance(cause, BaseException)
                  else f'{type(err).__name__}: {first_line}')
        _, log_path = _paths(outroot, job.recording.name)
        lost = isinstance(err, ray.exceptions.RayActorError)
        return RecordingResult(job.recording.name, str(job.recording.source), Status.FAILED,
                               attempts=attempt, error=reason, retryable=True,
                               log=str(log_path)), lost


def format_table(results: Sequence[RecordingResult]) -> str:
    """
    Lay the results out as a fixed-width table (input, status, keyframes, ..., time).

    :param results: the summary's results.
    :return: the table, one line per recording, then the error of each failed one.
    """
    header = ('input', 'status', 'keyframes', 'refused', 'segments', 'loops', 'time_s',
              'tries')
    rows = [(result.source, result.status, str(result.keyframes),
             str(result.windows_refused), str(result.segments), str(result.loops),
             f'{result.time_s:.1f}', str(result.attempts)) for result in results]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ['  '.join(cell.ljust(width) if column < 2 else cell.rjust(width)
                       for column, (cell, width) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *rows]]
    lines.insert(1, '  '.join('-' * width for width in widths))
    lines += [f'{result.source}: {result.error} (log: {result.log})' for result in results
              if result.status == Status.FAILED and result.error]
    return '\n'.join(lines)


def write_summary(report: BatchReport, outroot: Path) -> Path:
    """
    Write ``OUTROOT/batch_summary.json`` atomically.

    :param report: the batch's report.
    :param outroot: the output root.
    :return: the file written.
    """
    mapped_s = report.wall_s or 1e-9
    content = {
        'format': SUMMARY_FORMAT,
        'finished': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
        'wall_s': report.wall_s,
        'ray_address': report.ray_address,
        'workers': report.workers,
        'cpus_per_worker': report.cpus_per_worker,
        'gpus_per_worker': report.gpus_per_worker,
        'interrupted': report.interrupted,
        'counts': report.counts,
        'keyframes_mapped': report.keyframes_mapped,
        'keyframes_per_s': round(report.keyframes_mapped / mapped_s, 3),
        'recordings': [asdict(result) for result in report.results],
    }
    data = json.dumps(content, indent=1).encode('utf-8') + b'\n'
    return atomic_write_bytes(outroot / SUMMARY_NAME, data, overwrite=True)
