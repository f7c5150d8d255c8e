"""
``vggt-mapper map``: read an input, map it with VGGT windows, write the map and trajectory.

``run(args)`` first checks everything it can without heavy imports — option values (messages
name the flags), the input, the output folder (created, probed for writability, a killed earlier
save finished or cleaned up, existing outputs refused) — so a mistake is reported in a second,
not after torch loaded or an hour of mapping; a ``--map`` folder is read and checked then too.
Then it builds the predictor and the engine (loading the map into it), shows a progress bar and
writes OUTDIR as a map folder with ``vggt_mapper.io.export.save_map``.

SIGINT (Ctrl-C) and SIGTERM (``docker stop``, systemd, Slurm, ``timeout``) stop the reading;
what was mapped is still written and the exit status is 130 or 143.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from importlib import resources
import logging
from pathlib import Path
import re
import shutil
import sys
from typing import Any, TYPE_CHECKING

from vggt_mapper.cli.signals import StopSignals
from vggt_mapper.engine.config import (
    KeyframeConfig,
    LoopConfig,
    MapConfig,
    MapperConfig,
    MetricScaleConfig,
    RecoveryConfig,
)
from vggt_mapper.engine.errors import ConfigError, PredictorFailedError
from vggt_mapper.io.atomic import check_writable, prepare_output_folder
from vggt_mapper.io.errors import ExportError, InputError
from vggt_mapper.io.export import map_paths, recover_map
from vggt_mapper.io.readers import detect_input_kind, InputKind, iter_input, ReadStats
from vggt_mapper.predictor.errors import PredictorSpecError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from vggt_mapper.cli.main_map import MappingOutcome
    from vggt_mapper.engine.map_state import MapState
    from vggt_mapper.engine.mapper import Mapper
    from vggt_mapper.engine.occupancy import OccupancyGrid
    from vggt_mapper.engine.places import PlaceDescriber
    from vggt_mapper.engine.types import InputFrame, MapperStats, WindowResult
    from vggt_mapper.io.calibration import CameraCalibration
    from vggt_mapper.predictor.base import Predictor, WindowPrediction
    from vggt_mapper.predictor.factory import PredictorSpec

__all__ = ['BAG_DIR_NAME', 'NO_WEIGHTS_HINT', 'NothingMappedError', 'VIDEO_FPS', 'build_config',
           'build_predictor', 'flag_message', 'load_calibration', 'predictor_spec', 'run',
           'sample_path']

_LOG = logging.getLogger(__name__)

BAG_DIR_NAME = 'map_bag'
EXIT_INTERRUPTED = 130
#: Default video decoding rate of the CLI: high enough for keyframe selection to choose from
#: (the video's own rate when lower). The web door keeps the official demo's 1 frame/s.
VIDEO_FPS = 10.0
SAMPLE_PREDICTOR = 'vggt_mapper.synthetic.sample:sample_predictor'
NO_WEIGHTS_HINT = ('to see the pipeline run without weights: --model tiny (random weights, '
                   'meaningless geometry) or, on the shipped sample, --predictor '
                   f'{SAMPLE_PREDICTOR} (its ground truth)')

# Engine and predictor field names → the flags that set them, for error messages.
_FIELD_FLAGS = {
    'window_size': '--window-size', 'overlap': '--overlap', 'min_parallax_px': '--keyframe-px',
    'min_gap': '--min-gap', 'max_gap': '--max-gap', 'conf_percentile': '--conf-percentile',
    'voxel_size': '--voxel-size', 'max_points': '--max-points', 'scale': '--scale',
    'model': '--model', 'checkpoint': '--checkpoint', 'device': '--device',
    'predictor': '--predictor', 'remote_url': '--remote', 'token': '--token',
    'overwrite': '--overwrite', 'max_frames': '--max-frames', 'every': '--every',
    'fps': '--fps', 'camera_height_m': '--camera-height',
}
_ASSIGNMENT = re.compile(r"\b([a-z_]+)=(?:'([^']*)'|(\w+))")
# A field name used as the subject of a message: "overlap must ...", "predictor ('x')".
_SUBJECT = re.compile(r"(?<![\w.'/-])([a-z_]+)(?= must\b| \(|:)")


class NothingMappedError(RuntimeError):
    """The run ended without a single mapped keyframe (no usable frame)."""


def flag_message(text: str) -> str:
    """
    Rewrite a library message for the command line: field names become the flags that set them.

    :param text: e.g. ``"overlap must be in [1, window_size - 1]"`` or ``"use device='cpu'"``.
    :return: e.g. ``"--overlap must be in [1, --window-size - 1]"``, ``"use --device cpu"``.
    """
    def assignment(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2) or match.group(3)
        if name not in _FIELD_FLAGS:
            return match.group(0)
        return _FIELD_FLAGS[name] if value == 'True' else f'{_FIELD_FLAGS[name]} {value}'

    def subject(match: re.Match[str]) -> str:
        return _FIELD_FLAGS.get(match.group(1), match.group(0))

    text = _ASSIGNMENT.sub(assignment, text).replace(' (CLI: --overwrite)', '')
    text = _SUBJECT.sub(subject, text)
    # Field names with an underscore are never English words: translate them anywhere.
    return re.sub(r"(?<![\w.'/-])([a-z]+_[a-z_]+)\b(?!\.)",
                  lambda match: _FIELD_FLAGS.get(match.group(1), match.group(1)), text)


@contextmanager
def _flag_names() -> Iterator[None]:
    """Re-raise option errors with flag names instead of field names."""
    try:
        yield
    except (ConfigError, PredictorSpecError, ExportError) as err:
        message = flag_message(str(err))
        if message == str(err):
            raise
        raise type(err)(message) from err


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
    consistency = getattr(args, 'min_frame_consistency', None)
    if consistency is None and args.model == 'tiny' and args.checkpoint is None \
            and args.predictor is None and args.remote is None:
        # Random weights predict geometry no check would accept: map it anyway (smoke runs).
        consistency = 0.0
    recovery = RecoveryConfig(**given(min_frame_consistency=consistency))
    loops = LoopConfig(enabled=getattr(args, 'loops', True))
    return MapperConfig(**given(window_size=args.window_size, overlap=args.overlap,
                                scale=args.scale), keyframes=keyframes, map=map_config,
                        recovery=recovery, loops=loops, metric=_metric_config(args))


def _metric_config(args: argparse.Namespace) -> MetricScaleConfig:
    """Return the metric scale source the flags choose (odometry by default)."""
    height = getattr(args, 'camera_height', None)
    if height is not None and args.scale is not None:
        raise ConfigError('--scale and --camera-height both set the metric scale; give one')
    if height is not None:
        return MetricScaleConfig(source='camera_height', camera_height_m=height)
    return MetricScaleConfig(source='fixed' if args.scale is not None else 'odometry')


def load_calibration(args: argparse.Namespace) -> CameraCalibration | None:
    """
    Read ``--calibration FILE`` or ``--fx --fy --cx --cy`` (before the model loads).

    :param args: parsed ``map`` arguments.
    :return: the calibration, or None when none was given.
    :raises ConfigError: if the flags are incomplete or both kinds are given.
    :raises InputError: if the file cannot be read or holds no usable calibration.
    """
    from vggt_mapper.io.calibration import pinhole_calibration, read_calibration

    values: dict[str, float | None] = {name: getattr(args, name, None)
                                       for name in ('fx', 'fy', 'cx', 'cy')}
    given = [f'--{name}' for name, value in values.items() if value is not None]
    calibration_file = getattr(args, 'calibration', None)
    if given and calibration_file is not None:
        raise ConfigError(f'--calibration and {" ".join(given)} both give the intrinsics; give '
                          'one')
    if given and len(given) < 4:
        missing = sorted({'--fx', '--fy', '--cx', '--cy'} - set(given))
        raise ConfigError(f'{" ".join(given)} given without {" ".join(missing)}: the '
                          'intrinsics need all four')
    if given:
        fx, fy, cx, cy = (float(value or 0.0) for value in values.values())
        return pinhole_calibration(fx, fy, cx, cy, source='--fx --fy --cx --cy')
    if calibration_file is not None:
        return read_calibration(calibration_file)
    return None


def predictor_spec(args: argparse.Namespace) -> PredictorSpec:
    """Check the model options (no torch: the factory module imports it only to build)."""
    from vggt_mapper.predictor.factory import PredictorSpec

    device = args.device if args.device is not None else 'auto'
    return PredictorSpec(model=args.model, checkpoint=args.checkpoint, device=device,
                         predictor=args.predictor, remote_url=args.remote, token=args.token,
                         int8=args.int8)


def build_predictor(spec: PredictorSpec) -> Predictor:
    """Build the predictor (imports torch for a local model); weights errors get the hint."""
    from vggt_mapper.model.errors import WeightsError
    from vggt_mapper.predictor.factory import create_predictor

    try:
        predictor: Predictor = create_predictor(spec)
    except WeightsError as err:
        raise WeightsError(f'{err}; {NO_WEIGHTS_HINT}') from err
    return predictor


class _InferenceWatch:
    """
    The predictor, watched: tells whether an interrupt arrived while a window was predicted.

    :param predictor: the real predictor.
    """

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.interrupted = False

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        """
        Predict one window (see ``Predictor``), noting a Ctrl-C or SIGTERM inside it.

        :param frames_rgb: the window's frames.
        :return: the prediction.
        """
        try:
            return self.predictor.predict(frames_rgb)
        except KeyboardInterrupt:
            self.interrupted = True
            raise


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


@dataclass
class _Plan:
    """Everything checked before the heavy work starts."""

    config: MapperConfig
    spec: PredictorSpec
    source: Path
    kind: InputKind
    outdir: Path
    fps: float
    created: list[Path] = field(default_factory=list)
    describer: PlaceDescriber | None = None
    loaded: MapState | None = None
    calibration: CameraCalibration | None = None


def _prepare(args: argparse.Namespace) -> _Plan:
    """Check options, input and output folder; create the output folder (quick, no torch)."""
    config = build_config(args)
    spec = predictor_spec(args)
    source = Path(args.input) if args.input is not None else sample_path()
    kind = detect_input_kind(source)
    if args.fps is not None and kind is not InputKind.VIDEO:
        _LOG.warning('--fps applies to videos only; ignored for the %s %s', kind.value, source)
    for flag, value in (('--topic', args.topic), ('--camera-info', args.camera_info)):
        if value is not None and kind is not InputKind.ROSBAG2:
            _LOG.warning('%s applies to rosbag2 inputs only; ignored for %s', flag, source)
    calibration = load_calibration(args)
    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ExportError(f'OUTDIR {str(outdir)!r} exists and is not a folder')
    describer = _load_describer(args.place_describer) if args.place_describer else None
    plan = _Plan(config, spec, source, kind, outdir,
                 args.fps if args.fps is not None else VIDEO_FPS, describer=describer,
                 loaded=_read_map(args.map) if args.map is not None else None,
                 calibration=calibration)
    # Found now, not after an hour of mapping: an unwritable folder, a killed earlier save,
    # outputs that would be overwritten.
    plan.created = prepare_output_folder(outdir)
    try:
        recover_map(outdir)
        outputs = map_paths(outdir, state=True, colmap=args.colmap, grid=not args.no_grid)
        check_writable(list(outputs.values()), overwrite=args.overwrite,
                       folders=[outputs[key] for key in ('map_state', 'colmap') if key in outputs])
        if args.bag_out:
            _prepare_bag_dir(outdir / BAG_DIR_NAME, overwrite=args.overwrite)
    except BaseException:
        _remove_if_empty(plan.created)
        if plan.loaded is not None:
            plan.loaded.close()
        raise
    return plan


def _read_map(folder: str) -> MapState:
    """Read and check ``--map`` (format, every file's hash) before any model loads."""
    from vggt_mapper.io.map_folder import read_map_folder

    return read_map_folder(folder)


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove folders this run created, deepest first, if nothing was written into them."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (or gone): leave it and its parents


def run(args: argparse.Namespace, *,
        create_predictor: Callable[[PredictorSpec], Predictor] | None = None) -> int:
    """
    Run ``vggt-mapper map``.

    :param args: parsed arguments (see ``vggt_mapper.cli.map_parser``).
    :param create_predictor: builds the predictor from the options' spec (default: a new one
        per call; ``vggt-mapper batch`` passes a cache, so a worker loads its model once).
    :return: the exit status: 0 done, 130 (SIGINT) or 143 (SIGTERM) if a signal stopped the
        reading (what was mapped is still written).
    :raises InputError: if the input cannot be read.
    :raises ExportError: if outputs exist without ``--overwrite`` or cannot be written.
    :raises ConfigError: if an option is out of range.
    :raises NothingMappedError: if no keyframe could be mapped (nothing is written then).
    """
    with StopSignals() as signals, _flag_names():
        plan = _prepare(args)
        try:
            return _map(args, plan, signals, create_predictor or build_predictor)
        except KeyboardInterrupt:
            _remove_if_empty(plan.created)
            print(f'vggt-mapper map: {signals.name} before mapping started; nothing written',
                  file=sys.stderr)
            return signals.exit_status
        except BaseException:
            _remove_if_empty(plan.created)
            raise


def _skip_reasons(read_stats: ReadStats, stats: MapperStats) -> ReadStats:
    """Merge the reader's and the engine's skipped frames into one count by reason."""
    merged = ReadStats(frames_skipped=read_stats.frames_skipped,
                       reasons=read_stats.reasons.copy())
    if stats.frames_skipped:
        merged.frames_skipped += stats.frames_skipped
        merged.reasons['refused by the engine'] += stats.frames_skipped
    # Counted by the keyframe selector once the engine reports it (MapperStats).
    untrackable = int(getattr(stats, 'frames_untrackable', 0))
    if untrackable:
        merged.frames_skipped += untrackable
        merged.reasons['untrackable (blank or over-exposed)'] += untrackable
    return merged


def _summary(outcome: MappingOutcome, read_stats: ReadStats, num_points: int,
             signals: StopSignals, loaded: int = 0) -> str:
    """Write the one-line report of a run."""
    stats = outcome.stats
    skipped = _skip_reasons(read_stats, stats).describe_skips()
    stopped = f' (interrupted by {signals.name})' if outcome.interrupted else ''
    cut = '; the input was cut short (see the warning above)' if read_stats.notes else ''
    lost = f', {stats.keyframes_lost} could not be mapped' if stats.keyframes_lost else ''
    segments = (f', {stats.segments} map segments (merged when a loop links them)'
                if stats.segments > 1 else '')
    loops = (f', {stats.loops_accepted} of {stats.loop_candidates} loop candidates closed'
             if stats.loop_candidates else '')
    metric = [scale for scale in stats.metric_scales.values() if scale.metric]
    units = (f', metric ({", ".join(sorted({scale.source for scale in metric}))})' if metric
             else ', not metric (arbitrary unit)')
    into = f' into a loaded map of {loaded}' if loaded else ''
    return (f'Mapped {len(outcome.trajectory) - loaded} keyframes{into}{lost} from '
            f'{outcome.frames_read} frames ({skipped}) in {stats.windows_done} windows '
            f'({stats.windows_rejected} refused attempts){segments}{loops}{units}, '
            f'{num_points} points, '
            f'{outcome.elapsed_s:.1f} s{stopped}{cut}')


def _map(args: argparse.Namespace, plan: _Plan, signals: StopSignals,
         create_predictor: Callable[[PredictorSpec], Predictor]) -> int:
    """Open the input, build predictor and engine, map, save, report."""
    from vggt_mapper.engine.mapper import Mapper

    read_stats = ReadStats()
    # Opened before the model is loaded: an unreadable input fails in a second.
    camera_info: bool | str = False if args.no_camera_info else (args.camera_info or True)
    frames = iter_input(plan.source, max_frames=args.max_frames, fps=plan.fps,
                        every=args.every, topic=args.topic, stats=read_stats,
                        calibration=plan.calibration, camera_info=camera_info,
                        odometry=not args.no_odometry and plan.config.metric.source != 'fixed',
                        odom_frame=args.odom_frame)
    predictor = _InferenceWatch(create_predictor(plan.spec))
    describer = plan.describer
    # The keyframe store spills to the output folder's disk, not a RAM-backed /tmp.
    with Mapper(plan.config, predictor, describer=describer, store_dir=plan.outdir) as mapper:
        loaded = _load_map(mapper, plan)
        _LOG.info('mapping %s %s with window_size=%d overlap=%d, loops %s', plan.kind.value,
                  plan.source, plan.config.window_size, plan.config.overlap,
                  'on' if plan.config.loops.enabled else 'off')
        outcome = _run_mapper(args, plan, signals, mapper, frames, read_stats, predictor)
        grid = None if args.no_grid else _occupancy_grid(mapper)
        # Its view of the keyframe store outlives the mapper's temporary files.
        state = mapper.map_state()
    with state:
        return _save(args, plan, signals, outcome, read_stats, state, loaded, grid)


def _occupancy_grid(mapper: Mapper) -> OccupancyGrid | None:
    """Build the main segment's 2D grid on its floor; None (logged) when there is none."""
    from vggt_mapper.engine.config import OccupancyConfig
    from vggt_mapper.engine.errors import OccupancyError
    from vggt_mapper.engine.occupancy import map_occupancy
    from vggt_mapper.io.glb import main_segment
    from vggt_mapper.io.ros_messages import MAP_FROM_WORLD

    trajectory = mapper.trajectory()
    if not trajectory:
        return None
    try:
        return map_occupancy(mapper, MAP_FROM_WORLD, OccupancyConfig(),
                             segment=main_segment(trajectory))
    except OccupancyError as err:
        _LOG.warning('no occupancy grid (map.pgm/map.yaml not written): %s', err)
        return None


def _load_map(mapper: Any, plan: _Plan) -> int:
    """Load ``--map`` into the mapper; the number of keyframes loaded."""
    if plan.loaded is None:
        return 0
    with plan.loaded as state:
        mapper.load_state(state)
        _LOG.info('loaded a map of %d keyframes', len(state.records))
        return len(state.records)


def _run_mapper(args: argparse.Namespace, plan: _Plan, signals: StopSignals, mapper: Any,
                frames: Any, read_stats: ReadStats, predictor: _InferenceWatch
                ) -> MappingOutcome:
    """Feed the frames with a progress bar (and the optional output bag)."""
    from tqdm import tqdm

    from vggt_mapper.cli.main_map import map_sequence

    bag_context = (_open_bag_writer(plan.outdir / BAG_DIR_NAME) if args.bag_out
                   else nullcontext(None))
    with bag_context as bag_writer, tqdm(desc='mapping', unit='frame', file=sys.stderr,
                                         total=read_stats.frames_expected,
                                         dynamic_ncols=True, disable=None) as progress:

        def show(stats: MapperStats) -> None:
            progress.set_postfix(keyframes=stats.keyframes, windows=stats.windows_done,
                                 segments=stats.segments, loops=stats.loops_accepted,
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
            during = ' during the inference of a window' if predictor.interrupted else ''
            progress.write(f'Interrupted by {signals.name}{during}: mapping the '
                           f'{stats.pending_keyframes} pending keyframes, then saving '
                           f'({signals.name} again to skip them)', file=sys.stderr)

        outcome = map_sequence(frames, mapper, on_frame=on_frame, on_window=on_window,
                               on_interrupt=on_interrupt)
        signals.protect()  # the save below runs to its end; a signal now is only remembered
        show(outcome.stats)
    return outcome


def _save(args: argparse.Namespace, plan: _Plan, signals: StopSignals, outcome: MappingOutcome,
          read_stats: ReadStats, state: MapState, loaded: int,
          grid: OccupancyGrid | None = None) -> int:
    """Write the outputs and the run's statistics; report; the exit status."""
    from vggt_mapper.cli.main_map import run_statistics
    from vggt_mapper.io.export import save_map

    config, stats = plan.config, outcome.stats
    if plan.kind is InputKind.VIDEO and outcome.frames_read < config.window_size \
            and not outcome.interrupted:
        _LOG.warning('the video gave only %d frames, fewer than one window of %d keyframes: '
                     'decode more with a higher --fps (or --every 1), or give a longer video',
                     outcome.frames_read, config.window_size)
    skipped = _skip_reasons(read_stats, stats)
    if len(outcome.trajectory) <= loaded:
        why = f'; the predictor failed: {outcome.failure}' if outcome.failure else ''
        # The cause tells a retry worth making (a predictor that failed) from an empty input.
        cause = PredictorFailedError(outcome.failure) if outcome.failure else None
        raise NothingMappedError(
            f'Nothing was mapped from {str(plan.source)!r}: {outcome.frames_read} frames read '
            f'({skipped.describe_skips()}), {stats.keyframes} keyframes, '
            f'{stats.windows_done} windows ({stats.windows_rejected} refused){why}; nothing '
            'written. Give frames with texture and camera motion, or lower --keyframe-px / '
            '--max-gap') from cause
    saved = save_map(plan.outdir, outcome.trajectory, outcome.snapshot,
                     overwrite=args.overwrite, show_cameras=not args.no_cameras,
                     stats=run_statistics(outcome, skipped.reasons),
                     camera=_camera_record(plan, read_stats),
                     units=stats.metric_scales, state=state, colmap=args.colmap, grid=grid)
    print(_summary(outcome, read_stats, saved.num_points, signals, loaded))
    written = [*saved.paths, *([plan.outdir / BAG_DIR_NAME] if args.bag_out else [])]
    print('Wrote ' + ', '.join(str(path) for path in written))
    if outcome.failure:
        raise PredictorFailedError(f'{outcome.failure}; the {len(outcome.trajectory)} keyframes '
                                   'mapped before were written')
    return signals.exit_status if outcome.interrupted else 0


def _camera_record(plan: _Plan, read_stats: ReadStats) -> dict[str, Any] | None:
    """Return the camera as this run knew it, for cameras.json (None: the model's K only)."""
    calibration = plan.calibration
    if calibration is None:
        return read_stats.camera  # a rosbag2's CameraInfo, when the reader used one
    return {'calibration': calibration.to_json_dict(), 'undistorted': calibration.distorted}


def _load_describer(reference: str) -> PlaceDescriber:
    """Load ``--place-describer MODULE:ATTR``: a describer, or a factory that makes one."""
    from vggt_mapper.engine.places import PlaceDescriber
    from vggt_mapper.predictor.factory import load_object

    found = load_object(reference)
    describer = found
    if isinstance(found, type) or (callable(found) and not hasattr(found, 'describe')):
        try:
            describer = found()
        except TypeError as err:
            raise ConfigError(f'--place-describer {reference} cannot be built without '
                              f'arguments: {err}') from err
    if not isinstance(describer, PlaceDescriber):
        raise ConfigError(f'--place-describer {reference} is not a place describer: it needs '
                          'name, dim and describe(images) (see vggt_mapper.engine.places)')
    return describer
