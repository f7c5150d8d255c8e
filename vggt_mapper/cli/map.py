"""
``vggt-mapper map``: read an input, map it with VGGT windows, write the map and trajectory.

``run(args)`` turns parsed arguments into typed configs, builds the predictor and the engine,
shows a progress bar and writes the outputs with ``vggt_mapper.io.export.save_map``. Heavy
modules (torch via the predictor factory, rosbags) are imported only here, when the command
runs.
"""

from __future__ import annotations

import argparse
from contextlib import AbstractContextManager, nullcontext
from importlib import resources
import logging
from pathlib import Path
import shutil
import sys
from typing import Any, TYPE_CHECKING

from vggt_mapper.engine.config import KeyframeConfig, MapConfig, MapperConfig
from vggt_mapper.engine.types import InputFrame, MapperStats, WindowResult
from vggt_mapper.io.atomic import check_writable
from vggt_mapper.io.errors import ExportError, InputError
from vggt_mapper.io.export import map_paths, save_map
from vggt_mapper.io.readers import (
    detect_input_kind,
    InputKind,
    iter_input,
    list_images,
    ReadStats,
)

if TYPE_CHECKING:
    from vggt_mapper.predictor.base import Predictor

__all__ = ['BAG_DIR_NAME', 'NothingMappedError', 'build_config', 'run', 'sample_path']

_LOG = logging.getLogger(__name__)

BAG_DIR_NAME = 'map_bag'
EXIT_INTERRUPTED = 130


class NothingMappedError(RuntimeError):
    """The run ended without a single mapped keyframe (too few frames or keyframes)."""


def sample_path() -> Path:
    """
    Locate the sample sequence shipped in the package (``vggt_mapper/data/sample``).

    :return: its folder.
    :raises InputError: if the installed package has no sample on the file system.
    """
    resource = resources.files('vggt_mapper').joinpath('data', 'sample')
    if not isinstance(resource, Path) or not resource.is_dir():
        raise InputError(f'The shipped sample {str(resource)!r} is missing from this '
                         'installation; give an INPUT folder, video or rosbag2')
    return resource


def build_config(args: argparse.Namespace) -> MapperConfig:
    """
    Build the engine config from the options given (the others keep the engine defaults).

    :param args: parsed ``map`` arguments.
    :return: the validated config.
    :raises ConfigError: if a value is out of range.
    """
    def given(**values: Any) -> dict[str, Any]:
        return {key: value for key, value in values.items() if value is not None}

    keyframes = KeyframeConfig(**given(min_parallax_px=args.keyframe_px,
                                       min_gap=args.min_gap, max_gap=args.max_gap))
    map_config = MapConfig(**given(conf_percentile=args.conf_percentile,
                                   voxel_size=args.voxel_size, max_points=args.max_points))
    return MapperConfig(**given(window_size=args.window_size, overlap=args.overlap,
                                scale=args.scale), keyframes=keyframes, map=map_config)


def _create_predictor(args: argparse.Namespace) -> Predictor:
    """Build the predictor through the predictor factory (imports torch)."""
    from vggt_mapper.predictor.factory import create_predictor, PredictorSpec

    device = args.device if args.device is not None else 'auto'
    spec = PredictorSpec(model=args.model, checkpoint=args.checkpoint, device=device,
                         predictor=args.predictor, remote_url=args.remote, token=args.token)
    predictor: Predictor = create_predictor(spec)
    return predictor


def _prepare_bag_dir(bag_dir: Path, *, overwrite: bool) -> None:
    """Refuse an existing bag folder, or remove it when ``--overwrite`` and it is a bag."""
    if not bag_dir.exists():
        return
    if not overwrite:
        raise ExportError(f'The output bag {str(bag_dir)!r} already exists; pass --overwrite '
                          'or choose another OUTDIR')
    if not bag_dir.is_dir() or not (bag_dir / 'metadata.yaml').is_file():
        raise ExportError(f'{str(bag_dir)!r} exists and does not look like a rosbag2 folder '
                          '(no metadata.yaml); not removing it, move it away')
    shutil.rmtree(bag_dir)


def _open_bag_writer(bag_dir: Path) -> AbstractContextManager[Any]:
    """Open the rosbag2 output writer of the ROS door's io module (imports rosbags)."""
    from vggt_mapper.io.rosbag2 import OutputBagWriter

    writer: AbstractContextManager[Any] = OutputBagWriter(bag_dir)
    return writer


def _expected_frames(source: Path, kind: InputKind, args: argparse.Namespace) -> int | None:
    """Count the frames an image folder will give (for the progress bar); None if unknown."""
    if kind is not InputKind.IMAGE_FOLDER:
        return None
    count = -(-len(list_images(source)) // (args.every or 1))
    return min(count, args.max_frames) if args.max_frames is not None else count


def run(args: argparse.Namespace) -> int:
    """
    Run ``vggt-mapper map``.

    :param args: parsed arguments (see ``vggt_mapper.cli.map_parser``).
    :return: the exit status: 0 done, 130 interrupted by Ctrl-C (outputs still written).
    :raises InputError: if the input cannot be read.
    :raises ExportError: if outputs exist without ``--overwrite`` or cannot be written.
    :raises ConfigError: if an option is out of range.
    :raises NothingMappedError: if no keyframe could be mapped (nothing is written then).
    """
    from tqdm import tqdm

    from vggt_mapper.cli.main_map import map_sequence
    from vggt_mapper.engine.mapper import Mapper

    config = build_config(args)
    source = Path(args.input) if args.input is not None else sample_path()
    kind = detect_input_kind(source)
    if args.fps is not None and kind is not InputKind.VIDEO:
        _LOG.warning('--fps applies to videos only; ignored for the %s %s', kind.value, source)
    if args.topic is not None and kind is not InputKind.ROSBAG2:
        _LOG.warning('--topic applies to rosbag2 inputs only; ignored for %s', source)
    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ExportError(f'OUTDIR {str(outdir)!r} exists and is not a folder')
    # Refuse existing outputs now, not after an hour of mapping.
    check_writable(list(map_paths(outdir).values()), overwrite=args.overwrite)
    bag_dir = outdir / BAG_DIR_NAME
    if args.bag_out:
        _prepare_bag_dir(bag_dir, overwrite=args.overwrite)

    read_stats = ReadStats()
    fps = args.fps if args.fps is not None else 1.0
    frames = iter_input(source, max_frames=args.max_frames, fps=fps, every=args.every,
                        topic=args.topic, stats=read_stats)
    predictor = _create_predictor(args)
    mapper = Mapper(config, predictor)
    _LOG.info('mapping %s %s with window_size=%d overlap=%d', kind.value, source,
              config.window_size, config.overlap)

    if args.bag_out:
        outdir.mkdir(parents=True, exist_ok=True)
    bag_context = _open_bag_writer(bag_dir) if args.bag_out else nullcontext(None)
    with bag_context as bag_writer, tqdm(desc='mapping', unit='frame', file=sys.stderr,
                                         total=_expected_frames(source, kind, args),
                                         dynamic_ncols=True, disable=None) as progress:

        def show(stats: MapperStats) -> None:
            progress.set_postfix(keyframes=stats.keyframes, windows=stats.windows_done,
                                 points=stats.map_points,
                                 skipped=read_stats.frames_skipped + stats.frames_skipped,
                                 refresh=False)

        def on_frame(frame: InputFrame, stats: MapperStats) -> None:
            progress.update(1)
            show(stats)

        def on_window(result: WindowResult) -> None:
            if bag_writer is not None:
                bag_writer.write_window(result, mapper.map_snapshot(), mapper.trajectory())

        def on_interrupt(stats: MapperStats) -> None:
            progress.write(f'Interrupted: mapping the {stats.pending_keyframes} pending '
                           'keyframes, then saving (Ctrl-C again to skip them)',
                           file=sys.stderr)

        outcome = map_sequence(frames, mapper, on_frame=on_frame, on_window=on_window,
                               on_interrupt=on_interrupt)
        show(outcome.stats)

    stats = outcome.stats
    if not outcome.trajectory:
        raise NothingMappedError(
            f'Nothing was mapped from {str(source)!r}: {outcome.frames_read} frames read, '
            f'{stats.keyframes} keyframes, {stats.windows_done} windows '
            f'({stats.windows_rejected} refused); nothing written. Give more frames with '
            'camera motion, or lower --keyframe-px / --max-gap')
    saved = save_map(outdir, outcome.trajectory, outcome.snapshot, overwrite=args.overwrite,
                     show_cameras=not args.no_cameras)
    skipped = read_stats.frames_skipped + stats.frames_skipped
    print(f'Mapped {len(outcome.trajectory)} keyframes from {outcome.frames_read} frames '
          f'({skipped} skipped) in {stats.windows_done} windows ({stats.windows_rejected} '
          f'refused), {saved.num_points} points, {outcome.elapsed_s:.1f} s'
          f'{" (interrupted)" if outcome.interrupted else ""}')
    written = [*saved.paths, *([bag_dir] if args.bag_out else [])]
    print('Wrote ' + ', '.join(str(path) for path in written))
    return EXIT_INTERRUPTED if outcome.interrupted else 0
