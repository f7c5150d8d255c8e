"""
Figures of the mapping back end on the synthetic room: accuracy, loops, recovery, cost, memory.

Sections (``--sections a,b,...``, all by default; each prints a table and goes into the JSON,
with metadata: commit, dirty flag, library versions, CPU, threads, seeds):

1. ``accuracy``: ATE RMSE (evo APE after Sim(3) alignment; % of the path length and metres) and
   map error (median distance of map points to the true surfaces) for window/overlap (8, 4),
   (16, 4), (24, 4) × every noise preset (``NOISE_SEVERITY_ORDER``), on the orbit (about 300
   keyframes; ``--quick`` 60), loops on (default config); keyframes mapped and lost, segments,
   refused attempts. When the map splits into segments, ATE and map error are taken over the
   largest one (``ate_over`` says so).
2. ``errors``: what each noise preset does to the predictions themselves, before any back end:
   over 20 windows of 16 keyframe-spaced frames on the orbit, the median focal error, depth error
   (after median scaling), rotation error of the last frame, and the share of wrong poses.
3. ``loops``: the loop path (``SyntheticSequence.loop``, 400 frames per 7.7 m lap) at the
   ``realistic`` preset for about 1.15, 3 and 5 laps (``--quick``: 1.3), seeds 0, 1, 2, with
   loop closure and without (``LoopConfig(enabled=False)``): ATE, end-point error, loops
   accepted and rejected, and the ratios with/without (ratio of the means over seeds) against
   the issue's targets, ATE ratio <= 1/4 and end-point ratio <= 1/5. **End-point error**: the
   last keyframe's position relative to the first keyframe, in the first keyframe's camera
   frame, scaled to metres with the scale of the evo ATE alignment, minus the same relative
   position from the ground-truth poses; its norm, in metres (``mapping_metrics``). On a path
   that comes back to its start it is the seam a user sees, which ATE averages away.
4. ``false_loops``: the corridor (``SyntheticSequence.corridor``: texture and furniture repeat
   every 2.4 m, nothing is revisited) at ``default`` and ``realistic``, with an honest predictor
   and with one fooled by look-alikes (``FooledByLookAlikes``): loop candidates verified,
   accepted, rejected by reason, and *false* accepted loops — accepted loop edges that place the
   query more than 0.2 m from where ground truth puts it relative to the candidate. Then one
   false candidate *forced through verification* (the first one proposed, claimed to be the same
   camera as its query): how far the map moves against the no-loop run (max and RMS keyframe
   displacement) and the relative pose error (evo RPE, translation, delta 1 keyframe; evo's ATE
   alignment is degenerate on a straight line) against the no-loop run, with the Cauchy kernel
   and, for contrast, ``loop_kernel='none'``. Target: the robust kernel keeps RPE within 10 % of
   the no-loop run. Both runs are in one unit (same per-window noise): the no-loop run's scale
   (least squares in the first keyframe's frame) converts both to metres.
5. ``recovery``: the loop path (1.3 laps) at ``realistic`` with three consecutive predictor calls
   failing mid first lap (``FaultyPredictor(fail_on={k, k+1, k+2}, mode='raise')``, ``k`` from
   the keyframes the selector makes before mid-lap), recovery on vs off
   (``RecoveryConfig(enabled=False)``), seeds 0, 1, 2: keyframes mapped (%), lost, segments
   started and at the end (merged back when the path revisits?), ATE of the largest segment.
   Targets: >= 95 % mapped, <= 2 segments started, one segment at the end.
6. ``cost``: the back end's own time per window (``WindowResult.align_s``: checks, alignment,
   store, map, place recognition, verification's own work — model time excluded), loop
   verification model time (``verify_s``) and count, and pose-graph optimisation seconds
   (``MapperStats.optimize_s``, another process) per window, at the model's real resolution
   (518×392, window 16/4, orbit), against the model's time per window measured in the same run:
   this project's tiny VGGT (``VGGTConfig.tiny()``, synthetic weights) on a 16-frame window on
   CPU, and with ``--full-model`` the full-size VGGT-1B architecture (synthetic weights, ≈5 GB
   of RAM) on a 2-frame window, extrapolated linearly to 16 frames (TIMING.md's reference
   grows a little faster than linearly, 19.3 s a frame at 2 frames and 20.9 at 4, and global
   attention is quadratic in the frames: the real 16-frame time is likely longer, the share
   smaller). Without ``--full-model``
   the CPU reference of ``/work/shared/reference/TIMING.md`` is printed apart, as orientation,
   never in a ratio. Target: back end <= 10 % of the model's time per window on CPU.
7. ``memory``: a fresh process per size, every frame a keyframe (60×80 images, model width 56,
   ``KeyframeConfig(min_parallax_px=0, duplicate_px=0)``: any finite parallax makes a keyframe),
   loops on, ``default`` preset: peak RSS (sampled every 0.2 s by a thread, and the kernel's
   ``VmHWM``), final RSS, the pose-graph worker process's peak RSS, ``MapperStats.store_bytes``
   (disk), ``store_memory_bytes``, ``map_bytes``, ``map_points`` and run time, for 1,000, 5,000
   and 20,000 keyframes (``--quick`` 200 and 1,000). The path is a straight walk along a long
   corridor that never repeats (walls only, 20 cm per frame): loop candidates are proposed and
   verified, none is a revisit. A revisiting path (the orbit) is measured at small sizes for
   contrast: there every window closes a loop, and each optimisation re-fuses every moved
   keyframe into the map, so its run time grows with the square of the keyframes. The bound:
   the keyframe store keeps clouds on disk beyond its hot set (64 keyframes), each segment's
   fused map is capped (``MapConfig.max_points``, 48 B a point), so what grows is a few hundred
   bytes to a few KB per keyframe (pose-graph node and edges, store record, place descriptor;
   the table gives the measured slope — it includes the harness's own per-frame registry).
   Target: peak RSS at 20,000 <= 1.5 × peak RSS at 1,000.

Every with/without comparison uses ``SyntheticPredictor(noise_per_window=True)``: two runs that
differ only by extra (loop verification) calls see the same odometry noise. Seeds are pinned.
``--smoke`` runs every section at toy sizes in seconds (figures meaningless; CI runs it).

Usage::

    nice python benchmarks/mapping_accuracy.py [--smoke | --quick] [--sections a,b]
        [--full-model] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
import json
import logging
import multiprocessing
from pathlib import Path
import platform
import queue
import sys
import time
from unittest import mock

from mapping_metrics import (
    displacement,
    end_point_error,
    first_keyframe_scale,
    largest_segment,
    loop_edge_errors,
    relative_pose_error,
)
import numpy as np
from reporting import metadata, quartiles, RssSampler, table, vm_hwm_bytes

from vggt_mapper.engine import KeyframeConfig, Mapper, MapperConfig
from vggt_mapper.engine import mapper as mapper_module
from vggt_mapper.engine.config import GraphConfig, LoopConfig, RecoveryConfig
from vggt_mapper.engine.keyframes import KeyframeSelector
from vggt_mapper.engine.loops import KeyframeSource, LoopEdge
from vggt_mapper.engine.pose_graph import Edge, EdgeKind, PoseGraphConfig
from vggt_mapper.engine.types import (
    KeyframePose,
    LoopOutcome,
    MapperStats,
    MapSnapshot,
    WindowResult,
)
from vggt_mapper.geometry.sim3 import Sim3
from vggt_mapper.predictor.base import Predictor
from vggt_mapper.synthetic import (
    Box,
    corridor_path,
    FaultyPredictor,
    FooledByLookAlikes,
    NOISE_LEVELS,
    NOISE_SEVERITY_ORDER,
    RepeatingRoom,
    SyntheticPredictor,
    SyntheticSequence,
)
from vggt_mapper.synthetic.evaluation import (
    feed,
    frame_name,
    FRAME_PERIOD_NS,
    map_error,
    trajectory_error,
    TrajectoryError,
)
from vggt_mapper.synthetic.prediction_error import orbit_windows, summarise_noise
from vggt_mapper.synthetic.world import CORRIDOR_LOOKAHEAD_M

SUITE = 'mapping_accuracy'
SECTIONS = ('accuracy', 'errors', 'loops', 'false_loops', 'recovery', 'cost', 'memory')
SEED = 0
STEP_M = 0.02
# Orbit at 2 cm per frame, 120x160, default keyframing: about 5.4 frames per keyframe.
FRAMES_PER_KEYFRAME = 5.4
CORRIDOR_STEP_M = 0.03
CORRIDOR_PERIOD_FRAMES = round(2.4 / CORRIDOR_STEP_M)
FALSE_LOOP_M = 0.2
# Memory runs: 20 cm per frame, so that a keyframe 30 keyframes back (the loop detector's
# exclusion) is 6 m behind, out of view: candidates are look-alikes, never revisits.
MEMORY_STEP_M = 0.2
COST_HW = (240, 320)  # VGGT's crop preprocessing makes 518x392 of it, like a 640x480 photo
# /work/shared/reference/TIMING.md: reference VGGT-1B on CPU, 2 threads, idle machine, all
# heads, median of 2 forwards, seconds per window of S frames.
REFERENCE_CPU_S = {1: 20.29, 2: 38.63, 4: 83.54}
TARGETS = {'ate_ratio': 0.25, 'end_point_ratio': 0.2, 'rpe_ratio': 1.10,
           'mapped_percent': 95.0, 'segments_started': 2, 'backend_percent': 10.0,
           'rss_ratio': 1.5}


@dataclass(frozen=True)
class Mode:
    """
    Sizes of one benchmark mode.

    :param name: ``full``, ``quick`` or ``smoke``.
    :param image_hw: rendered image size of the mapping sections (but ``cost``).
    :param model_width: model image width of the mapping sections (but ``cost``).
    :param accuracy_keyframes: keyframes of the accuracy orbit (about).
    :param windows: (window size, overlap) pairs of the accuracy section.
    :param presets: noise presets of the accuracy section.
    :param error_windows: windows of the errors section.
    :param seeds: seeds of the loops and recovery sections.
    :param frames_per_lap: frames per lap of the loop path.
    :param loop_laps: path lengths of the loops section, laps.
    :param corridor_frames: frames of the false-loop corridor.
    :param corridor_presets: noise presets of the false-loop section.
    :param corridor_loops: loop closure settings of the false-loop section.
    :param recovery_laps: path length of the recovery section, laps.
    :param recovery_windows: (window size, overlap) pairs of the recovery section.
    :param cost_keyframes: keyframes of the cost orbit (about).
    :param cost_hw: rendered image size of the cost section.
    :param cost_width: model image width of the cost section (518: VGGT's).
    :param model_frames: frames of the timed model window (16 = the mapper's window).
    :param model_repeats: timed forwards of the model.
    :param memory_walk: memory run sizes on the straight walk, keyframes.
    :param memory_orbit: memory run sizes on the orbit, keyframes.
    """

    name: str
    image_hw: tuple[int, int]
    model_width: int
    accuracy_keyframes: int
    windows: tuple[tuple[int, int], ...]
    presets: tuple[str, ...]
    error_windows: int
    seeds: tuple[int, ...]
    frames_per_lap: int
    loop_laps: tuple[float, ...]
    corridor_frames: int
    corridor_presets: tuple[str, ...]
    corridor_loops: LoopConfig
    recovery_laps: float
    recovery_windows: tuple[tuple[int, int], ...]
    cost_keyframes: int
    cost_hw: tuple[int, int]
    cost_width: int
    model_frames: int
    model_repeats: int
    memory_walk: tuple[int, ...]
    memory_orbit: tuple[int, ...]


_WINDOWS = ((8, 4), (16, 4), (24, 4))
# With 16/4 three failed calls are absorbed by bridges (12, 6, 3 new keyframes fail, 2 pass);
# with 8/3 they exhaust them (5, 2, then a new segment's first attempt): a segment starts.
_RECOVERY_WINDOWS = ((16, 4), (8, 3))
_PRESETS = ('default', 'realistic')
MODES = {
    'full': Mode('full', (120, 160), 224, 300, _WINDOWS, NOISE_SEVERITY_ORDER, 20, (0, 1, 2),
                 400, (1.15, 3.0, 5.0), 900, _PRESETS, LoopConfig(), 1.3, _RECOVERY_WINDOWS,
                 160, COST_HW, 518, 16, 5, (1000, 5000, 20000), (500, 1000)),
    'quick': Mode('quick', (120, 160), 224, 60, _WINDOWS, NOISE_SEVERITY_ORDER, 20, (0, 1, 2),
                  400, (1.3,), 600, _PRESETS, LoopConfig(), 1.3, _RECOVERY_WINDOWS, 100,
                  COST_HW, 518, 16, 3, (200, 1000), (200,)),
    # Toy sizes: every code path runs (loop candidates on a short corridor need a short
    # exclusion), no figure means anything.
    'smoke': Mode('smoke', (60, 80), 56, 12, ((8, 4),), ('default',), 2, (0,), 120, (1.3,),
                  150, ('default',), LoopConfig(min_similarity=0.5, exclusion_keyframes=2),
                  1.3, ((8, 3),), 32, (120, 160), 126, 2, 1, (30, 60), (30,)),
}


# -- running the mapper ----------------------------------------------------------------------


@dataclass(frozen=True)
class MapperRun:
    """
    What one mapping run left behind (the mapper itself is closed).

    :param trajectory: ``Mapper.trajectory()`` at the end.
    :param stats: ``Mapper.stats`` at the end.
    :param results: every window result.
    :param snapshot: the fused map, when asked for.
    :param loop_edges: the pose graph's loop edges.
    :param node_scale: ``world_from_node.scale`` of each loop edge's candidate.
    :param wall_s: seconds the run took.
    """

    trajectory: list[KeyframePose]
    stats: MapperStats
    results: list[WindowResult]
    snapshot: MapSnapshot | None
    loop_edges: list[Edge]
    node_scale: dict[int, float]
    wall_s: float


def run_mapper(sequence: SyntheticSequence, predictor: Predictor, config: MapperConfig,
               keep_map: bool = False) -> MapperRun:
    """Map a whole sequence and keep what the metrics need."""
    start = time.perf_counter()
    with Mapper(config, predictor) as mapper:
        results = feed(mapper, sequence)
        graph = mapper.pose_graph
        loops = [edge for edge in graph.edges() if edge.kind is EdgeKind.LOOP]
        return MapperRun(mapper.trajectory(), mapper.stats, results,
                         mapper.map_snapshot() if keep_map else None, loops,
                         {edge.a: graph.value(edge.a).scale for edge in loops},
                         time.perf_counter() - start)


def synthetic_predictor(sequence: SyntheticSequence, preset: str, seed: int,
                        model_width: int) -> SyntheticPredictor:
    """Return the stand-in with per-window noise (fair with/without comparisons)."""
    return SyntheticPredictor(sequence, NOISE_LEVELS[preset], model_width=model_width,
                              seed=seed, noise_per_window=True)


def counts(run: MapperRun) -> dict[str, object]:
    """Keyframes, segments, refusals and loops of a run."""
    stats = run.stats
    return {
        'keyframes': stats.keyframes, 'mapped': stats.keyframes_mapped,
        'mapped_percent': 100.0 * stats.keyframes_mapped / max(stats.keyframes, 1),
        'lost': stats.keyframes_lost, 'segments_started': stats.segments_started,
        'segments': stats.segments, 'refused_attempts': sum(stats.refusals.values()),
        'loop_candidates': stats.loop_candidates, 'loops_accepted': stats.loops_accepted,
        'loops_rejected': stats.loop_candidates - stats.loops_accepted,
        'wall_s': run.wall_s,
    }


@dataclass(frozen=True)
class SegmentAte:
    """
    ATE over the largest segment of a run.

    :param poses: the segment's keyframes.
    :param over: ``all`` or ``largest n/N`` (keyframes of the segment / mapped).
    :param error: evo's ATE, None with fewer than 3 keyframes.
    """

    poses: list[KeyframePose]
    over: str
    error: TrajectoryError | None

    def fields(self) -> dict[str, object]:
        """Table cells."""
        error = self.error
        return {'ate_over': self.over, 'ate_m': None if error is None else error.rmse,
                'ate_percent': None if error is None else error.rmse_percent,
                'path_m': None if error is None else error.path_length_m}


def segment_ate(run: MapperRun, sequence: SyntheticSequence) -> SegmentAte:
    """ATE of the largest segment (the whole trajectory when it is one)."""
    poses = largest_segment(run.trajectory)
    over = 'all' if len(poses) == len(run.trajectory) else \
        f'largest {len(poses)}/{len(run.trajectory)}'
    error = trajectory_error(poses, sequence) if len(poses) >= 3 else None
    return SegmentAte(poses, over, error)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _mean(values: Sequence[object]) -> float | None:
    numbers = [float(v) for v in values if isinstance(v, (int, float))]
    return float(np.mean(numbers)) if numbers and len(numbers) == len(values) else None


def _loop_settings(loops: LoopConfig) -> str:
    default = LoopConfig()
    names = ('min_similarity', 'exclusion_keyframes')
    changed = [f'{name}={getattr(loops, name)}' for name in names
               if getattr(loops, name) != getattr(default, name)]
    return ', '.join(changed) or 'default'


# -- 1. accuracy -----------------------------------------------------------------------------


def orbit(mode: Mode, keyframes: int, hw: tuple[int, int] | None = None) -> SyntheticSequence:
    """Return the orbit giving about ``keyframes`` keyframes with default keyframing."""
    height, width = hw or mode.image_hw
    return SyntheticSequence.orbit(int(keyframes * FRAMES_PER_KEYFRAME), step_m=STEP_M,
                                   height=height, width=width)


def accuracy_row(mode: Mode, sequence: SyntheticSequence, window: int, overlap: int,
                 preset: str) -> dict[str, object]:
    """Map the orbit with one window/overlap and preset; ATE and map error."""
    run = run_mapper(sequence, synthetic_predictor(sequence, preset, SEED, mode.model_width),
                     MapperConfig(window_size=window, overlap=overlap), keep_map=True)
    ate = segment_ate(run, sequence)
    row: dict[str, object] = {'window': window, 'overlap': overlap, 'noise': preset,
                              **counts(run), **ate.fields()}
    if ate.error is not None and run.snapshot is not None:
        segment = ate.poses[0].segment
        snapshot = run.snapshot
        keep = snapshot.segments == segment
        surface = map_error(MapSnapshot(snapshot.points_world[keep], snapshot.colors_rgb[keep]),
                            sequence, ate.error.gt_from_world)
        row.update(map_median_m=surface.median_m, map_p90_m=surface.p90_m)
    return row


def section_accuracy(mode: Mode, _args: argparse.Namespace) -> dict[str, object]:
    """Section 1: ATE and map error vs window/overlap and noise preset."""
    sequence = orbit(mode, mode.accuracy_keyframes)
    rows = []
    for window, overlap in mode.windows:
        for preset in mode.presets:
            rows.append(accuracy_row(mode, sequence, window, overlap, preset))
            print(f'  window {window}/{overlap} {preset}: ATE {rows[-1]["ate_percent"]}',
                  flush=True)
    print(table(f'Accuracy on the orbit ({len(sequence)} frames, model width '
                f'{mode.model_width}, loops on; ATE and map error over the largest segment '
                f'when the map split: ate_over)', rows,
                ['window', 'overlap', 'noise', 'keyframes', 'mapped', 'lost',
                 'segments_started', 'segments', 'refused_attempts', 'loops_accepted',
                 'ate_over', 'ate_percent', 'ate_m', 'map_median_m', 'map_p90_m', 'wall_s']))
    return {'frames': len(sequence), 'seed': SEED, 'rows': rows}


# -- 2. errors -------------------------------------------------------------------------------


def section_errors(mode: Mode, _args: argparse.Namespace) -> dict[str, object]:
    """Section 2: what each noise preset does to the predictions (no back end)."""
    windows = orbit_windows(count=mode.error_windows, size=16)
    sequence = SyntheticSequence.orbit(max(max(w) for w in windows) + 1, step_m=STEP_M,
                                       cache_renders=2 * sum(len(w) for w in windows))
    rows: list[dict[str, object]] = []
    for name in NOISE_SEVERITY_ORDER:
        summary = summarise_noise(sequence, NOISE_LEVELS[name], windows, name,
                                  model_width=mode.model_width, seed=SEED)
        rows.append({'noise': name, 'windows': summary.windows, 'frames': summary.frames,
                     'focal_error_median': summary.focal_error,
                     'depth_abs_rel_median': summary.depth_abs_rel,
                     'last_frame_rotation_deg_median': summary.last_rotation_deg,
                     'wrong_pose_share': summary.wrong_pose_share})
    print(table(f'Prediction errors per noise preset ({len(windows)} windows of 16 frames, '
                f'orbit)', rows,
                ['noise', 'windows', 'frames', 'focal_error_median', 'depth_abs_rel_median',
                 'last_frame_rotation_deg_median', 'wrong_pose_share']))
    return {'seed': SEED, 'rows': rows}


# -- 3. loops --------------------------------------------------------------------------------


def loop_row(mode: Mode, sequence: SyntheticSequence, laps: float, seed: int,
             loops: bool) -> dict[str, object]:
    """Map the loop path with or without loop closure; ATE and end-point error."""
    run = run_mapper(sequence, synthetic_predictor(sequence, 'realistic', seed,
                                                   mode.model_width),
                     MapperConfig(loops=LoopConfig(enabled=loops)))
    ate = segment_ate(run, sequence)
    end = None if ate.error is None else end_point_error(ate.poses, sequence, ate.error)
    return {'laps': laps, 'seed': seed, 'loops': loops, **counts(run), **ate.fields(),
            'end_point_m': end, 'loop_rejections': dict(run.stats.loop_rejections)}


def loop_summary(laps: float, rows: Sequence[dict[str, object]]) -> dict[str, object]:
    """Ratios with/without loops for one path length (ratio of the means over seeds)."""
    summary: dict[str, object] = {'laps': laps, 'seeds': len(rows) // 2}
    for key, target in (('ate_m', 'ate_ratio'), ('end_point_m', 'end_point_ratio')):
        with_loops = _mean([r[key] for r in rows if r['loops']])
        without = _mean([r[key] for r in rows if not r['loops']])
        ratio = _ratio(with_loops, without)
        per_seed = [_ratio(on[key], off[key])
                    for on in rows if on['loops']
                    for off in rows if not off['loops'] and off['seed'] == on['seed']]
        known = [value for value in per_seed if value is not None]
        name = key.removesuffix('_m')
        summary.update({
            f'{name}_with_m': with_loops, f'{name}_without_m': without,
            f'{name}_ratio': ratio,
            f'{name}_ratio_seeds': (f'{min(known):.3g}..{max(known):.3g}' if known else None),
            f'{name}_target': TARGETS[target],
            f'{name}_meets': None if ratio is None else ratio <= TARGETS[target]})
    return summary


def section_loops(mode: Mode, _args: argparse.Namespace) -> dict[str, object]:
    """Section 3: the loop path with and without loop closure, per path length."""
    height, width = mode.image_hw
    rows: list[dict[str, object]] = []
    for laps in mode.loop_laps:
        sequence = SyntheticSequence.loop(mode.frames_per_lap, laps, height=height, width=width)
        for seed in mode.seeds:
            for loops in (True, False):
                rows.append(loop_row(mode, sequence, laps, seed, loops))
                print(f'  {laps} laps seed {seed} loops {loops}: ATE {rows[-1]["ate_m"]}',
                      flush=True)
    summary = [loop_summary(laps, [r for r in rows if r['laps'] == laps])
               for laps in mode.loop_laps]
    print(table('Loop path at realistic, with and without loop closure (per seed)', rows,
                ['laps', 'seed', 'loops', 'keyframes', 'mapped', 'segments_started',
                 'segments', 'ate_over',
                 'ate_m', 'ate_percent', 'end_point_m', 'loops_accepted', 'loops_rejected',
                 'loop_rejections', 'wall_s']))
    print(table('Loop closure: ratios with/without (means over seeds; targets ATE <= 1/4, '
                'end point <= 1/5)', summary,
                ['laps', 'seeds', 'ate_with_m', 'ate_without_m', 'ate_ratio',
                 'ate_ratio_seeds', 'ate_meets', 'end_point_with_m', 'end_point_without_m',
                 'end_point_ratio', 'end_point_ratio_seeds', 'end_point_meets']))
    return {'frames_per_lap': mode.frames_per_lap, 'seeds': list(mode.seeds), 'rows': rows,
            'summary': summary}


# -- 4. false loops --------------------------------------------------------------------------


def _loop_scale(run: MapperRun, sequence: SyntheticSequence) -> float:
    return first_keyframe_scale(largest_segment(run.trajectory), sequence)


def verification_row(mode: Mode, sequence: SyntheticSequence, preset: str,
                     fooled: bool) -> dict[str, object]:
    """Map the corridor with default loop closure; count what verification let through."""
    honest = synthetic_predictor(sequence, preset, SEED, mode.model_width)
    fooling = FooledByLookAlikes(honest, CORRIDOR_PERIOD_FRAMES) if fooled else None
    run = run_mapper(sequence, fooling or honest, MapperConfig(loops=mode.corridor_loops))
    errors = loop_edge_errors(run.loop_edges, run.node_scale, run.trajectory, sequence,
                              _loop_scale(run, sequence)) if run.loop_edges else []
    return {'noise': preset, 'predictor': 'fooled by look-alikes' if fooled else 'honest',
            **counts(run), 'loop_rejections': dict(run.stats.loop_rejections),
            'false_accepted': sum(error.error_m > FALSE_LOOP_M for error in errors),
            'max_loop_error_m': max((error.error_m for error in errors), default=None),
            'fooled_windows': None if fooling is None else fooling.fooled}


@contextmanager
def forced_false_loop() -> Iterator[list[tuple[int, int]]]:
    """
    Make the mapper's first loop candidate pass verification as the query's own camera.

    Replaces the mapper's ``verify_loop`` (the one way past every check, as
    ``test/engine/test_loops.py`` does): the first candidate comes back as an accepted loop
    that claims query and candidate are one camera, with a confident edge; every later
    candidate is rejected. Yields the forced ``(query, candidate)`` pairs.
    """
    forced: list[tuple[int, int]] = []

    def verify(query: int, candidate: int, similarity: float, source: KeyframeSource,
               *_args: object) -> LoopEdge | LoopOutcome:
        if forced:
            return LoopOutcome(query, candidate, similarity, False, 'forced: one loop only')
        forced.append((query, candidate))
        world_from_c = source.world_from_node(candidate)
        world_from_q = source.world_from_node(query)
        c_from_q = Sim3(world_from_q.scale / world_from_c.scale, np.eye(3), np.zeros(3))
        correction = world_from_c.compose(c_from_q).compose(world_from_q.inverse())
        outcome = LoopOutcome(query, candidate, similarity, True, '', 1.0, correction)
        return LoopEdge(outcome, c_from_q, correction, 0.01, 0.5)

    with mock.patch.object(mapper_module, 'verify_loop', verify):
        yield forced


def forced_rows(mode: Mode, sequence: SyntheticSequence, preset: str
                ) -> list[dict[str, object]]:
    """One false loop forced through verification, per kernel, against the no-loop run."""
    def predictor() -> SyntheticPredictor:
        return synthetic_predictor(sequence, preset, SEED, mode.model_width)

    baseline = run_mapper(sequence, predictor(), MapperConfig(loops=LoopConfig(enabled=False)))
    base_poses = largest_segment(baseline.trajectory)
    scale = first_keyframe_scale(base_poses, sequence)
    rpe_without = relative_pose_error(base_poses, sequence, scale)
    rows: list[dict[str, object]] = []
    for kernel in ('cauchy', 'none'):
        graph = GraphConfig(solver=PoseGraphConfig(loop_kernel=kernel))
        with forced_false_loop() as forced:
            run = run_mapper(sequence, predictor(),
                             MapperConfig(loops=mode.corridor_loops, graph=graph))
        row: dict[str, object] = {'noise': preset, 'kernel': kernel,
                                  'rpe_without_m': rpe_without}
        if not forced:
            rows.append({**row, 'forced': 'no candidate was proposed'})
            continue
        edge = loop_edge_errors(run.loop_edges, run.node_scale, run.trajectory, sequence,
                                scale)[0]
        poses = largest_segment(run.trajectory)
        moved_max, moved_rms = displacement(poses, base_poses, scale)
        rpe = relative_pose_error(poses, sequence, scale)
        ratio = rpe / rpe_without
        rows.append({**row, 'forced': f'{edge.query} -> {edge.candidate}',
                     'true_gap_m': edge.true_gap_m, 'loop_error_m': edge.error_m,
                     'verdicts': dict(run.stats.loop_verdicts), 'moved_max_m': moved_max,
                     'moved_rms_m': moved_rms, 'rpe_m': rpe, 'rpe_ratio': ratio,
                     'meets': ratio <= TARGETS['rpe_ratio'] if kernel != 'none' else None})
    return rows


def section_false_loops(mode: Mode, _args: argparse.Namespace) -> dict[str, object]:
    """Section 4: look-alike places on the corridor; a false loop forced into the graph."""
    height, width = mode.image_hw
    sequence = SyntheticSequence.corridor(mode.corridor_frames, step_m=CORRIDOR_STEP_M,
                                          height=height, width=width)
    verification, forced = [], []
    for preset in mode.corridor_presets:
        for fooled in (False, True):
            verification.append(verification_row(mode, sequence, preset, fooled))
        forced += forced_rows(mode, sequence, preset)
        print(f'  corridor {preset} done', flush=True)
    print(table(f'Loop verification on the corridor ({len(sequence)} frames, '
                f'{len(sequence) * CORRIDOR_STEP_M:.0f} m, repeats every 2.4 m, no revisit; '
                f'loops {_loop_settings(mode.corridor_loops)}; false = edge error > '
                f'{FALSE_LOOP_M} m)', verification,
                ['noise', 'predictor', 'keyframes', 'loop_candidates', 'loops_accepted',
                 'loop_rejections', 'false_accepted', 'max_loop_error_m', 'fooled_windows']))
    print(table('A false loop forced through verification vs the no-loop run (metres; '
                'target: RPE within 10 % with the robust kernel; none = contrast)', forced,
                ['noise', 'kernel', 'forced', 'true_gap_m', 'loop_error_m', 'verdicts',
                 'moved_max_m', 'moved_rms_m', 'rpe_m', 'rpe_without_m', 'rpe_ratio',
                 'meets']))
    return {'frames': len(sequence), 'step_m': CORRIDOR_STEP_M, 'seed': SEED,
            'verification': verification, 'forced': forced}


# -- 5. recovery -----------------------------------------------------------------------------


def mid_lap_call(sequence: SyntheticSequence, frames_per_lap: int,
                 config: MapperConfig) -> int:
    """
    Return the mapping call whose new keyframes reach mid first lap.

    Counts the keyframes the selector makes before frame ``frames_per_lap / 2``; the first
    window holds ``window_size`` keyframes, each later one ``window_size - overlap`` new ones
    (assuming no refusal or verification call before it: the table reports the frames that
    actually failed).
    """
    selector = KeyframeSelector(config.keyframes)
    before = sum(selector.offer(sequence.frame(index)).is_keyframe
                 for index in range(frames_per_lap // 2))
    if before < config.window_size:
        return 0
    return 1 + (before - config.window_size) // (config.window_size - config.overlap)


def recovery_row(mode: Mode, sequence: SyntheticSequence, window: tuple[int, int],
                 seed: int, recovery: bool) -> dict[str, object]:
    """Map the loop path with three failing calls mid first lap, recovery on or off."""
    # Three failed calls are a transient fault, not a dead model: the run must not stop on them
    # (max_failed_windows counts windows of which every attempt failed).
    config = MapperConfig(window_size=window[0], overlap=window[1],
                          recovery=RecoveryConfig(enabled=recovery, max_failed_windows=4))
    first = mid_lap_call(sequence, mode.frames_per_lap, config)
    inner = synthetic_predictor(sequence, 'realistic', seed, mode.model_width)
    predictor = FaultyPredictor(inner, fail_on={first, first + 1, first + 2}, mode='raise')
    run = run_mapper(sequence, predictor, config)
    failed = [index for record in predictor.records for index in record.frame_indices]
    merges = [loop.merged for result in run.results for loop in result.loops if loop.merged]
    stats = run.stats
    row: dict[str, object] = {
        'window': f'{window[0]}/{window[1]}', 'seed': seed, 'recovery': recovery,
        'failed_calls': f'{first}-{first + 2}',
        'failed_lap': (f'{min(failed) / mode.frames_per_lap:.2f}-'
                       f'{max(failed) / mode.frames_per_lap:.2f}' if failed else None),
        **counts(run), 'merges': len(merges), **segment_ate(run, sequence).fields()}
    row['meets'] = (100.0 * stats.keyframes_mapped >= TARGETS['mapped_percent'] * stats.keyframes
                    and stats.segments_started <= TARGETS['segments_started']
                    and stats.segments == 1)
    return row


def section_recovery(mode: Mode, _args: argparse.Namespace) -> dict[str, object]:
    """Section 5: three failed predictor calls mid-lap, recovery on vs off."""
    height, width = mode.image_hw
    sequence = SyntheticSequence.loop(mode.frames_per_lap, mode.recovery_laps, height=height,
                                      width=width)
    rows = []
    for window in mode.recovery_windows:
        for seed in mode.seeds:
            for recovery in (True, False):
                rows.append(recovery_row(mode, sequence, window, seed, recovery))
                print(f'  window {window} seed {seed} recovery {recovery}: '
                      f'{rows[-1]["mapped_percent"]:.1f} % mapped', flush=True)
    print(table(f'Recovery: 3 consecutive predictor calls fail (raise) mid first lap of the '
                f'loop path ({mode.recovery_laps} laps, realistic; failed_lap: where the failed '
                f'windows were, in laps); targets >= 95 % mapped, <= 2 segments started, 1 at '
                f'the end', rows,
                ['window', 'seed', 'recovery', 'failed_calls', 'failed_lap', 'keyframes',
                 'mapped_percent', 'lost', 'segments_started', 'segments', 'merges',
                 'refused_attempts', 'loops_accepted', 'ate_over', 'ate_m', 'ate_percent',
                 'meets']))
    return {'seeds': list(mode.seeds), 'rows': rows}


# -- 6. cost ---------------------------------------------------------------------------------


def _camera_frames(count: int, hw: tuple[int, int]) -> list[np.ndarray]:
    # Any pixels will do for timing: the model's cost does not depend on them.
    rng = np.random.default_rng(SEED)
    return list(rng.integers(0, 256, (count, *hw, 3), dtype=np.uint8))


def time_model(config_name: str, frames: int, repeats: int, hw: tuple[int, int],
               width: int) -> dict[str, object]:
    """
    Time this project's VGGT (synthetic weights) on one window on CPU: median and IQR.

    :param config_name: ``tiny`` or ``vggt_1b``.
    :param frames: frames in the window.
    :param repeats: timed forwards (after one warm-up).
    :param hw: camera image size.
    :param width: model image width (VGGT's crop preprocessing).
    :return: seconds per window.
    """
    import torch

    from vggt_mapper.model import VGGTConfig
    from vggt_mapper.model.synthetic import build_vggt
    from vggt_mapper.predictor.vggt_predictor import VGGTPredictor

    logging.getLogger('vggt_mapper.model').setLevel(logging.ERROR)
    predictor = VGGTPredictor(build_vggt(getattr(VGGTConfig, config_name)()), device='cpu',
                              target_size=width)
    window = _camera_frames(frames, hw)
    times = []
    with torch.inference_mode():
        predictor.predict(window)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            predictor.predict(window)
            times.append(time.perf_counter() - start)
    median, iqr = quartiles(times)
    return {'model': config_name, 'frames': frames, 'repeats': repeats, 'median_s': median,
            'iqr_s': iqr, 'times_s': times}


def _model_child(config_name: str, frames: int, repeats: int, hw: tuple[int, int], width: int,
                 results: multiprocessing.Queue) -> None:
    results.put(time_model(config_name, frames, repeats, hw, width))


def in_fresh_process(target: Callable[..., None], *args: object) -> dict[str, object]:
    """
    Run ``target(*args, queue)`` in a spawned process and return what it puts on the queue.

    :raises RuntimeError: if the process dies without an answer (out of memory, a crash).
    """
    context = multiprocessing.get_context('spawn')
    results = context.Queue()
    process = context.Process(target=target, args=(*args, results))
    process.start()
    try:
        while True:
            try:
                answer: dict[str, object] = results.get(timeout=5.0)
                break
            except queue.Empty:
                if not process.is_alive():
                    raise RuntimeError(f'{target.__name__}{args} died without an answer (exit '
                                       f'code {process.exitcode})') from None
    finally:
        process.join()
    return answer


def backend_cost(mode: Mode) -> dict[str, object]:
    """Map the orbit at the model's resolution, window 16/4; the back end's time per window."""
    sequence = orbit(mode, mode.cost_keyframes, mode.cost_hw)
    config = MapperConfig()
    run = run_mapper(sequence, synthetic_predictor(sequence, 'default', SEED,
                                                   mode.cost_width), config)
    if not run.trajectory:
        raise RuntimeError(f'the cost run mapped no keyframe ({dict(run.stats.refusals)})')
    # The first window needs no alignment; the flushed one is partial.
    steady = [r for r in run.results[1:] if len(r.keyframe_indices) == config.window_size]
    if not steady:
        raise RuntimeError(f'the cost run has no full window after the first ({len(sequence)} '
                           f'frames, {run.stats.keyframes} keyframes): map more frames')
    align_median, align_iqr = quartiles([r.align_s for r in steady])
    verified = [r.verify_s for r in run.results if r.loops]
    stats = run.stats
    return {
        'frames': len(sequence), 'model_hw': list(run.trajectory[0].model_hw),
        'window': config.window_size, 'overlap': config.overlap,
        'windows': stats.windows_done, 'windows_timed': len(steady),
        'backend_s': align_median, 'backend_s_iqr': align_iqr,
        'backend_s_max': max((r.align_s for r in steady), default=None),
        'verification_calls': stats.verification_calls,
        'verify_s_median': quartiles(verified)[0] if verified else None,
        'optimizations': stats.optimizations,
        'optimize_s_per_window': stats.optimize_s / max(stats.windows_done, 1),
    }


def _share(backend: dict[str, object], model: dict[str, object], window: int,
           extrapolated: bool) -> dict[str, object]:
    per_window = float(model['median_s']) * (
        window / int(model['frames']) if extrapolated else 1.0)
    share = 100.0 * float(backend['backend_s']) / per_window
    with_optimiser = 100.0 * (float(backend['backend_s'])
                              + float(backend['optimize_s_per_window'])
                              ) / per_window
    return {'model': model['model'], 'measured_frames': model['frames'],
            'model_s_per_window': per_window,
            'how': (f'{model["frames"]}-frame window x {window}/{model["frames"]} '
                    '(extrapolated)') if extrapolated else f'{window}-frame window measured',
            'backend_percent': share, 'with_optimiser_percent': with_optimiser,
            'meets': share <= TARGETS['backend_percent']}


def section_cost(mode: Mode, args: argparse.Namespace) -> dict[str, object]:
    """Section 6: back end, verification and optimisation per window vs the model's time."""
    backend = backend_cost(mode)
    window = int(backend['window'])
    hw, width = mode.cost_hw, mode.cost_width
    models = [in_fresh_process(_model_child, 'tiny', mode.model_frames, mode.model_repeats, hw,
                               width)]
    if args.full_model:
        models.append(in_fresh_process(_model_child, 'vggt_1b', 2, 2, hw, width))
    shares = [_share(backend, model, window, extrapolated=model['frames'] != window)
              for model in models]
    height, width = backend['model_hw']
    print(table(f'Back end per window at {width}x{height}, window {window}/'
                f'{backend["overlap"]} (seconds; align_s excludes model time)', [backend],
                ['windows', 'windows_timed', 'backend_s', 'backend_s_iqr', 'backend_s_max',
                 'verification_calls', 'verify_s_median', 'optimizations',
                 'optimize_s_per_window']))
    print(table('Model time per window on CPU, this run (synthetic weights)', models,
                ['model', 'frames', 'repeats', 'median_s', 'iqr_s']))
    print(table('Back end as a share of the model time per window (target <= 10 %)', shares,
                ['model', 'how', 'model_s_per_window', 'backend_percent',
                 'with_optimiser_percent', 'meets']))
    if not args.full_model:
        print('\norientation only (not measured here, not in a ratio): reference VGGT-1B on '
              'CPU, 2 threads, idle machine, all heads (TIMING.md): ' + ', '.join(
                  f'{s} frame(s) {t} s' for s, t in REFERENCE_CPU_S.items()))
    return {'backend': backend, 'models': models, 'shares': shares,
            'reference_timing_md_s': None if args.full_model else REFERENCE_CPU_S}


# -- 7. memory -------------------------------------------------------------------------------


def memory_sequence(path: str, frames: int, hw: tuple[int, int]) -> SyntheticSequence:
    """
    Return the memory run's path: ``walk`` (a corridor that never repeats) or ``orbit``.

    The walk's corridor has ``corridor_room``'s cross-section, walls only, and one period as
    long as the corridor without colour drift: every place looks different, so no two frames
    are alike (the stand-in tells frames apart by their pixels).
    """
    height, width = hw
    if path == 'orbit':
        return SyntheticSequence.orbit(frames, step_m=STEP_M, height=height, width=width)
    length = 2.0 + (frames - 1) * MEMORY_STEP_M + CORRIDOR_LOOKAHEAD_M
    room = RepeatingRoom(Box((-1.5, -1.3, 0.0), (1.5, 1.2, length)), period_m=length,
                         drift_per_m=0.0)
    return SyntheticSequence(corridor_path(frames, room, MEMORY_STEP_M), room, height=height,
                             width=width)


def _memory_child(path: str, frames: int, model_width: int,
                  results: multiprocessing.Queue) -> None:
    logging.basicConfig(level=logging.ERROR)
    sequence = memory_sequence(path, frames, (60, 80))
    predictor = synthetic_predictor(sequence, 'default', SEED, model_width)
    config = MapperConfig(keyframes=KeyframeConfig(min_parallax_px=0.0, duplicate_px=0.0))
    start = time.perf_counter()
    with RssSampler(period_s=0.2) as rss, Mapper(config, predictor) as mapper:
        # Like a door: each WindowResult is published and dropped, not kept.
        for index in range(frames):
            mapper.add_frame(sequence.frame(index), index * FRAME_PERIOD_NS, frame_name(index))
        mapper.flush()
        wall = time.perf_counter() - start
        rss.sample()
        final, worker, stats = rss.rss_bytes(), rss.worker_bytes(), mapper.stats
    mib = 2.0 ** -20
    hwm = vm_hwm_bytes()
    results.put({
        'path': path, 'frames': frames, 'keyframes': stats.keyframes,
        'windows': stats.windows_done, 'loop_candidates': stats.loop_candidates,
        'loops_accepted': stats.loops_accepted, 'optimizations': stats.optimizations,
        'peak_rss_mib': rss.peak_bytes * mib, 'vm_hwm_mib': None if hwm is None else hwm * mib,
        'final_rss_mib': final * mib, 'optimizer_peak_rss_mib': rss.peak_worker_bytes * mib,
        'optimizer_final_rss_mib': worker * mib, 'store_disk_mib': stats.store_bytes * mib,
        'store_memory_mib': stats.store_memory_bytes * mib, 'map_mib': stats.map_bytes * mib,
        'map_points': stats.map_points, 'rss_samples': rss.samples, 'wall_s': wall})


def memory_bound(rows: Sequence[dict[str, object]]) -> dict[str, object]:
    """Ratio of the largest to the 1,000-keyframe run (or the smallest), and the slope."""
    first = next((r for r in rows if r['keyframes'] == 1000), rows[0])
    last = rows[-1]
    slope = ((float(last['peak_rss_mib']) - float(first['peak_rss_mib']))
             * 2 ** 20 / max(int(last['keyframes']) - int(first['keyframes']), 1))
    ratio = float(last['peak_rss_mib']) / float(first['peak_rss_mib'])
    return {'from_keyframes': first['keyframes'], 'to_keyframes': last['keyframes'],
            'peak_rss_ratio': ratio, 'target': TARGETS['rss_ratio'],
            'meets': ratio <= TARGETS['rss_ratio'],
            'peak_rss_bytes_per_keyframe': slope}


def section_memory(mode: Mode, _args: argparse.Namespace) -> dict[str, object]:
    """Section 7: memory vs keyframes, each run in a fresh process."""
    rows = []
    for path, sizes in (('walk', mode.memory_walk), ('orbit', mode.memory_orbit)):
        for size in sizes:
            rows.append(in_fresh_process(_memory_child, path, size, 56))
            print(f'  {path} {size}: peak RSS {rows[-1]["peak_rss_mib"]:.0f} MiB, '
                  f'{rows[-1]["wall_s"]:.0f} s', flush=True)
    walk = [r for r in rows if r['path'] == 'walk']
    bound = memory_bound(walk)
    print(table('Memory, every frame a keyframe (60x80, model width 56, loops on; MiB; walk: '
                'no revisit, orbit: a loop every window)', rows,
                ['path', 'keyframes', 'windows', 'loop_candidates', 'loops_accepted',
                 'optimizations', 'peak_rss_mib', 'vm_hwm_mib', 'final_rss_mib',
                 'optimizer_peak_rss_mib', 'store_disk_mib', 'store_memory_mib', 'map_mib',
                 'map_points', 'wall_s']))
    print(table('Memory bound on the walk (target: peak RSS ratio <= 1.5)', [bound],
                ['from_keyframes', 'to_keyframes', 'peak_rss_ratio', 'meets',
                 'peak_rss_bytes_per_keyframe']))
    return {'rows': rows, 'bound': bound, 'image_hw': [60, 80], 'model_width': 56,
            'walk_step_m': MEMORY_STEP_M, 'orbit_step_m': STEP_M}


# -- main ------------------------------------------------------------------------------------


RUNNERS: dict[str, Callable[[Mode, argparse.Namespace], dict[str, object]]] = {
    'accuracy': section_accuracy, 'errors': section_errors, 'loops': section_loops,
    'false_loops': section_false_loops, 'recovery': section_recovery, 'cost': section_cost,
    'memory': section_memory,
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument('--quick', action='store_true', help='smaller runs (minutes)')
    sizes.add_argument('--smoke', action='store_true',
                       help='toy sizes, one seed, every section in seconds (CI)')
    parser.add_argument('--sections', default=','.join(SECTIONS),
                        help=f'comma-separated sections (default all: {",".join(SECTIONS)})')
    parser.add_argument('--full-model', action='store_true',
                        help='cost: also time full-size VGGT-1B on 2 frames (about 5 GB RAM)')
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results',
                        help='folder of the JSON result')
    parser.add_argument('--machine', default=platform.node() or 'machine',
                        help='machine name in the JSON file name')
    args = parser.parse_args(argv)
    args.sections = [name.strip() for name in args.sections.split(',') if name.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown or not args.sections:
        parser.error(f'unknown sections {unknown}; choose from {", ".join(SECTIONS)}')
    return args


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f'{type(value).__name__} is not JSON serialisable')


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections, print their tables and write the JSON."""
    args = _parse(argv)
    mode = MODES['smoke' if args.smoke else 'quick' if args.quick else 'full']
    logging.basicConfig(level=logging.ERROR)  # refusals and segments are counted in tables
    print(f'# {SUITE} ({mode.name}): sections {", ".join(args.sections)}', flush=True)
    sections: dict[str, object] = {}
    for name in [s for s in SECTIONS if s in args.sections]:
        print(f'\n# {name}', flush=True)
        start = time.perf_counter()
        result = RUNNERS[name](mode, args)
        result['section_wall_s'] = time.perf_counter() - start
        sections[name] = result
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = '' if mode.name == 'full' else f'--{mode.name}'
    if set(args.sections) != set(SECTIONS):
        suffix += '--' + '-'.join(s for s in SECTIONS if s in args.sections)
    path = args.out / f'{SUITE}--{args.machine}--cpu{suffix}.json'
    payload = {'metadata': metadata(SUITE, mode=asdict(mode), seed=SEED,
                                    full_model=args.full_model, argv=sys.argv[1:]),
               'config': asdict(MapperConfig()), 'targets': TARGETS, 'sections': sections}
    path.write_text(json.dumps(payload, indent=1, default=_json_default) + '\n')
    print(f'\nwrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
