"""
``vggt-mapper batch``: map many recordings on Ray workers, each exactly like ``map``.

``run(args)`` checks everything it can before Ray starts — the inputs (globs, folders,
manifests: ``vggt_mapper.cluster.recordings``), every recording's options (the ``map``
command's own checks, messages naming the flags and the manifest line), OUTROOT — then hands
the recordings to ``vggt_mapper.cluster.batch.run_batch`` with ``map_recording``, which runs
``vggt_mapper.cli.map.run`` on a worker, and prints the table. Ray is imported only then.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
import logging
from pathlib import Path
import sys
from typing import TYPE_CHECKING

from vggt_mapper.cli import map as map_command
from vggt_mapper.cli import map_parser
from vggt_mapper.cli.entry_points import known_exceptions
from vggt_mapper.cli.signals import StopSignals
from vggt_mapper.cluster.batch import (
    BatchJob,
    BatchOptions,
    format_table,
    RecordingResult,
    run_batch,
    Status,
    write_summary,
)
from vggt_mapper.cluster.errors import BatchInputError, RecordingFailed
from vggt_mapper.cluster.recordings import expand_inputs, Recording
from vggt_mapper.engine.errors import ConfigError, PredictorFailedError
from vggt_mapper.io.atomic import prepare_output_folder
from vggt_mapper.io.errors import InputError
from vggt_mapper.predictor.errors import PredictorSpecError

if TYPE_CHECKING:
    from vggt_mapper.predictor.base import Predictor
    from vggt_mapper.predictor.factory import PredictorSpec

__all__ = ['map_recording', 'recording_options', 'run']

_LOG = logging.getLogger(__name__)
# Options of the batch itself, not of each recording's map run.
_BATCH_ONLY = ('inputs', 'outroot', 'run', 'command', 'ray_address', 'workers',
               'cpus_per_worker', 'gpus_per_worker', 'retries')
# Failures a retry cannot fix: the input or the options are at fault.
_PERMANENT = (InputError, ConfigError, PredictorSpecError)


def _line_parser() -> argparse.ArgumentParser:
    """Parse a manifest line's options: only the options given appear in the result."""
    parser = argparse.ArgumentParser(prog='manifest line', add_help=False, exit_on_error=False)
    map_parser.add_options(parser)
    for action in parser._actions:  # set_defaults cannot: its defaults bypass SUPPRESS
        action.default = argparse.SUPPRESS
    return parser


def recording_options(args: argparse.Namespace, recording: Recording) -> argparse.Namespace:
    """
    Combine the command line's map options with a recording's own, checked as ``map`` would.

    A manifest line's options come after the command line's (the later value wins); the checks
    run before anything starts.

    :param args: the parsed ``batch`` arguments.
    :param recording: the recording.
    :return: the map options of this recording (no INPUT, no OUTDIR).
    :raises BatchInputError: for an unknown or malformed option or an out-of-range value; the
        message names the flag and where the recording was listed.
    """
    where = f'{recording.origin} ({recording.source})'
    try:
        own, unknown = _line_parser().parse_known_args(list(recording.options))
    except argparse.ArgumentError as err:
        raise BatchInputError(f'{where}: {err}') from err
    if unknown:
        raise BatchInputError(f'{where}: not a map option: {" ".join(unknown)}')
    merged = {key: value for key, value in vars(args).items() if key not in _BATCH_ONLY}
    options = argparse.Namespace(**{**merged, **vars(own)})
    try:
        map_command.build_config(options)
        map_command.predictor_spec(options)
    except (ConfigError, PredictorSpecError) as err:
        raise BatchInputError(f'{where}: {map_command.flag_message(str(err))}') from err
    return options


def map_recording(recording: Recording, outdir: Path, options: argparse.Namespace,
                  create_predictor: Callable[[PredictorSpec], Predictor]) -> None:
    """
    Map one recording into ``outdir`` with the ``map`` command (runs on a batch worker).

    :param recording: the input.
    :param outdir: a new folder for the outputs.
    :param options: its map options (``recording_options``).
    :param create_predictor: the worker's predictor cache.
    :raises RecordingFailed: with ``retryable=False`` when the input or the options are at
        fault, True for other known errors (a predictor or server that failed) and a run
        stopped by a signal.
    """
    args = argparse.Namespace(**vars(options))
    args.input, args.outdir, args.overwrite = str(recording.source), str(outdir), False
    try:
        status = map_command.run(args, create_predictor=create_predictor)
    except _PERMANENT as err:
        raise RecordingFailed(str(err), retryable=False) from err
    except map_command.NothingMappedError as err:
        raise RecordingFailed(str(err), retryable=isinstance(err.__cause__,
                                                             PredictorFailedError)) from err
    except known_exceptions() as err:
        raise RecordingFailed(str(err) or type(err).__name__, retryable=True) from err
    if status != 0:
        raise RecordingFailed(f'stopped by a signal (exit status {status})', retryable=True)


def _wants_gpu(options: argparse.Namespace) -> tuple[bool, bool]:
    """Tell whether the predictor would use a GPU, and whether it cannot run without one."""
    spec = map_command.predictor_spec(options)
    if spec.kind != 'local':
        return False, False
    return spec.device in ('auto', 'cuda') or spec.device.startswith('cuda'), \
        spec.device.startswith('cuda')


class _Progress:
    """One progress bar over recordings, with counts and a line for each retry."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc='batch', unit='recording', file=sys.stderr,
                        dynamic_ncols=True, disable=None)
        self.counts: Counter[str] = Counter()

    def __call__(self, result: RecordingResult, final: bool) -> None:
        """Count a settled recording, or note a retry."""
        if not final:
            self.bar.write(f'{result.name}: attempt {result.attempts} failed ({result.error}); '
                           'retrying', file=sys.stderr)
            return
        self.counts[result.status] += 1
        self.bar.set_postfix({status: self.counts[status] for status in
                              (Status.DONE, Status.SKIPPED, Status.FAILED)}, refresh=False)
        self.bar.update(1)


def run(args: argparse.Namespace) -> int:
    """
    Run ``vggt-mapper batch``.

    :param args: parsed arguments (see ``vggt_mapper.cli.batch_parser``).
    :return: 0 when every recording is mapped (now or before), 1 when some failed, 130 or 143
        when a signal stopped the batch (finished recordings are kept).
    :raises BatchInputError: for inputs or options that cannot be mapped (before Ray starts).
    :raises vggt_mapper.cluster.errors.BatchError: when Ray is missing or the workers cannot
        run.
    """
    recordings = expand_inputs(args.inputs)
    jobs = [BatchJob(recording, recording_options(args, recording)) for recording in recordings]
    outroot = Path(args.outroot)
    prepare_output_folder(outroot)
    wants_gpu, needs_gpu = _wants_gpu(jobs[0].options)
    options = BatchOptions(
        outroot=outroot, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker, wants_gpu=wants_gpu, needs_gpu=needs_gpu,
        retries=args.retries, ray_address=args.ray_address, overwrite=args.overwrite,
        log_level=logging.DEBUG if args.verbose >= 2 else logging.INFO)
    progress = _Progress(len(jobs))
    with StopSignals() as signals:
        try:
            report = run_batch(jobs, options, map_recording, map_command.build_predictor,
                               on_result=progress)
        finally:
            progress.bar.close()
        signals.protect()
        summary = write_summary(report, outroot)
    print(format_table(report.results))
    counts = report.counts
    rate = report.keyframes_mapped / report.wall_s if report.wall_s else 0.0
    print(f'{counts[Status.DONE]} mapped, {counts[Status.SKIPPED]} skipped (done before), '
          f'{counts[Status.FAILED]} failed, {counts[Status.NOT_RUN]} not run of {len(jobs)} '
          f'recordings in {report.wall_s:.1f} s on {report.workers} workers '
          f'({report.keyframes_mapped} keyframes, {rate:.2f}/s); summary: {summary}')
    if report.interrupted:
        print(f'vggt-mapper batch: interrupted by {signals.name}; finished recordings are '
              'kept, run the same command again to map the rest', file=sys.stderr)
        return signals.exit_status
    return 1 if counts[Status.FAILED] else 0
