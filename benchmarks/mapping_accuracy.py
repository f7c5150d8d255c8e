"""
Mapping accuracy, back-end cost and memory of the engine on the synthetic room.

Figures (printed as tables and written as JSON with metadata, like kornia's benchmarks):

* ATE RMSE (evo APE after Sim(3) alignment, % of the path length) and map error (median
  distance of map points to the true surfaces) vs window size, overlap and noise preset (every
  preset of ``NOISE_LEVELS``), on a path of about 300 keyframes (``--quick``: about 60).
* What each noise preset does to the predictions themselves, before any back end: over 20
  windows of 16 keyframe-spaced frames on the orbit, the median focal error, depth error (after
  median scaling), rotation error of the last frame, and the share of wrong poses.
* The back end's own time per window (alignment + map update, ``WindowResult.align_s``) at the
  real model resolution (518 wide), next to the model's: this project's tiny VGGT on CPU
  (when ``vggt_mapper.model`` is importable) and the full-size CPU reference of
  ``/work/shared/reference/TIMING.md`` (VGGT-1B, 2 threads: 20.29 s per frame, median).
* Peak memory of a mapping run of 200, 1,000 and 5,000 frames, each in a fresh process
  (tracemalloc peak of Python/numpy allocations, and peak RSS).

Usage::

    python benchmarks/mapping_accuracy.py [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
import datetime
import json
import logging
import multiprocessing
import os
from pathlib import Path
import platform
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from vggt_mapper.engine import KeyframeConfig, Mapper, MapperConfig
from vggt_mapper.synthetic import (
    NOISE_LEVELS,
    NOISE_SEVERITY_ORDER,
    SyntheticPredictor,
    SyntheticSequence,
)
from vggt_mapper.synthetic.evaluation import feed, frame_name, map_error, trajectory_error
from vggt_mapper.synthetic.prediction_error import orbit_windows, summarise_noise

SUITE = 'mapping_accuracy'
# VGGT-1B on CPU, one frame, median of 2 timed forwards (reference TIMING.md, S = 1).
REFERENCE_S_PER_FRAME = 20.29
STEP_M = 0.02
ACCURACY_MODEL_WIDTH = 224
SEED = 0


def _metadata() -> dict[str, object]:
    try:
        commit = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                                check=False, cwd=Path(__file__).parent).stdout.strip()
        dirty = bool(subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'],
                                    capture_output=True, text=True, check=False,
                                    cwd=Path(__file__).parent).stdout.strip())
    except OSError:
        commit, dirty = '', False
    import torch

    return {
        'suite': SUITE,
        'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(),
        'commit': commit,
        'worktree_dirty': dirty,
        'python': platform.python_version(),
        'numpy': np.__version__,
        'torch': torch.__version__,
        'device': 'cpu',
        'cpu': platform.processor() or platform.machine(),
        'threads': torch.get_num_threads(),
        'cpu_count': os.cpu_count(),
        'seed': SEED,
    }


def frames_for_keyframes(num_keyframes: int) -> int:
    """Frames of the orbit path that give about ``num_keyframes`` with default settings."""
    # Measured: about 5.4 frames per keyframe at 2 cm per frame (min_parallax_px 12).
    return int(num_keyframes * 5.4)


def run_accuracy(num_frames: int, window_size: int, overlap: int, noise: str,
                 model_width: int = ACCURACY_MODEL_WIDTH) -> dict[str, object]:
    """Map one orbit sequence and measure ATE and map error."""
    sequence = SyntheticSequence.orbit(num_frames, step_m=STEP_M)
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS[noise], model_width=model_width,
                                   seed=SEED)
    mapper = Mapper(MapperConfig(window_size=window_size, overlap=overlap), predictor)
    start = time.perf_counter()
    results = feed(mapper, sequence)
    wall = time.perf_counter() - start
    error = trajectory_error(mapper.trajectory(), sequence)
    surface = map_error(mapper.map_snapshot(), sequence, error.gt_from_world)
    align = np.array([r.align_s for r in results])
    new_keyframes = sum(len(r.poses) for r in results)
    predicted = sum(len(r.keyframe_indices) for r in results)
    return {
        'window_size': window_size, 'overlap': overlap, 'noise': noise,
        'frames': num_frames, 'keyframes': mapper.stats.keyframes,
        'windows': len(results), 'rejected': mapper.stats.windows_rejected,
        'ate_rmse_m': error.rmse, 'path_m': error.path_length_m,
        'ate_percent': error.rmse_percent, 'map_median_m': surface.median_m,
        'map_p90_m': surface.p90_m, 'map_points': mapper.stats.map_points,
        'frames_predicted_per_keyframe': predicted / max(new_keyframes, 1),
        'align_s_median': float(np.median(align)), 'wall_s': wall,
    }


def run_prediction_errors(model_width: int = ACCURACY_MODEL_WIDTH) -> list[dict[str, object]]:
    """Errors of each noise preset's predictions against the truth (no back end)."""
    windows = orbit_windows(count=20, size=16)
    sequence = SyntheticSequence.orbit(max(max(w) for w in windows) + 1, step_m=STEP_M,
                                       cache_renders=2 * sum(len(w) for w in windows))
    rows: list[dict[str, object]] = []
    for name in NOISE_SEVERITY_ORDER:
        summary = summarise_noise(sequence, NOISE_LEVELS[name], windows, name,
                                  model_width=model_width, seed=SEED)
        rows.append({'noise': name, 'windows': summary.windows, 'frames': summary.frames,
                     'focal_error_median': summary.focal_error,
                     'depth_abs_rel_median': summary.depth_abs_rel,
                     'last_frame_rotation_deg_median': summary.last_rotation_deg,
                     'wrong_pose_share': summary.wrong_pose_share})
    return rows


def _iqr(values: np.ndarray) -> float:
    return float(np.percentile(values, 75) - np.percentile(values, 25))


def run_backend_timing(window_size: int, overlap: int, windows: int) -> dict[str, object]:
    """Back end time per window at model width 518, plus the model's reference time."""
    num_frames = frames_for_keyframes(window_size + (windows - 1) * (window_size - overlap))
    sequence = SyntheticSequence.orbit(num_frames, step_m=STEP_M, height=240, width=320)
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=518,
                                   seed=SEED)
    mapper = Mapper(MapperConfig(window_size=window_size, overlap=overlap), predictor)
    results = feed(mapper, sequence)
    # The first window is a warm-up (and needs no alignment); the flushed one is partial.
    steady = [r for r in results[1:] if len(r.keyframe_indices) == window_size]
    align = np.array([r.align_s for r in steady])
    reference = REFERENCE_S_PER_FRAME * window_size
    out: dict[str, object] = {
        'window_size': window_size, 'overlap': overlap, 'model_hw': [392, 518],
        'windows_timed': int(align.size),
        'backend_s_median': float(np.median(align)), 'backend_s_iqr': _iqr(align),
        'reference_model_s_per_window': reference,
        'backend_percent_of_reference': 100.0 * float(np.median(align)) / reference,
    }
    out.update(_tiny_model_timing(sequence, window_size))
    return out


def _tiny_model_timing(sequence: SyntheticSequence, window_size: int) -> dict[str, object]:
    try:
        from vggt_mapper.model import VGGTConfig
        from vggt_mapper.model.synthetic import build_vggt
        from vggt_mapper.predictor.vggt_predictor import VGGTPredictor
    except ImportError as err:
        return {'tiny_model_s_per_window': None, 'tiny_model_note': f'not available: {err}'}
    import torch

    logging.getLogger('vggt_mapper.model').setLevel(logging.ERROR)
    predictor = VGGTPredictor(build_vggt(VGGTConfig.tiny()), device='cpu')
    frames = [sequence.frame(i) for i in range(0, 6 * window_size, 6)][:window_size]
    times = []
    with torch.inference_mode():
        predictor.predict(frames)  # warm-up
        for _ in range(3):
            start = time.perf_counter()
            predictor.predict(frames)
            times.append(time.perf_counter() - start)
    return {'tiny_model_s_per_window': float(np.median(times)),
            'tiny_model_s_iqr': _iqr(np.array(times))}


def _peak_rss_mib() -> float:
    # VmHWM belongs to this process image (ru_maxrss survives exec and would report the
    # parent's peak in a spawned child on Linux).
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _memory_child(num_frames: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    sequence = SyntheticSequence.orbit(num_frames, step_m=STEP_M)
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS['default'],
                                   model_width=ACCURACY_MODEL_WIDTH, seed=SEED)
    mapper = Mapper(MapperConfig(), predictor)
    tracemalloc.start()
    start = time.perf_counter()
    # Like a door: each WindowResult is published and dropped, not kept (keeping them all
    # would measure the caller's list, which grows with the run).
    for index in range(num_frames):
        mapper.add_frame(sequence.frame(index), index * 33_333_333, frame_name(index))
    mapper.flush()
    wall = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    queue.put({
        'frames': num_frames, 'keyframes': mapper.stats.keyframes,
        'map_points': mapper.stats.map_points, 'tracemalloc_peak_mib': peak / 2**20,
        'map_store_mib': mapper.point_map.nbytes / 2**20,
        'peak_rss_mib': _peak_rss_mib(),
        'wall_s': wall,
    })


def run_memory(num_frames: int) -> dict[str, object]:
    """Peak memory of one mapping run, in a fresh process."""
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    process = context.Process(target=_memory_child, args=(num_frames, queue))
    process.start()
    result: dict[str, object] = queue.get()
    process.join()
    return result


def _table(title: str, rows: list[dict[str, object]], columns: list[str]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f'{value:.4g}'
        return str(value)

    lines = [f'\n## {title}', '| ' + ' | '.join(columns) + ' |',
             '|' + '---:|' * len(columns)]
    lines += ['| ' + ' | '.join(cell(row.get(c)) for c in columns) + ' |' for row in rows]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the tables and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true', help='short runs (a minute or two)')
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results',
                        help='folder of the JSON result')
    parser.add_argument('--sections', default='accuracy,errors,timing,memory',
                        help='comma-separated parts to run (accuracy, errors, timing, memory)')
    args = parser.parse_args(argv)
    sections = set(args.sections.split(','))
    logging.basicConfig(level=logging.WARNING)
    defaults = MapperConfig()
    window, overlap = defaults.window_size, defaults.overlap
    keyframes = 60 if args.quick else 300
    frames = frames_for_keyframes(keyframes)
    print(f'# {SUITE}: {frames} frames (~{keyframes} keyframes), model width '
          f'{ACCURACY_MODEL_WIDTH}, defaults window {window} / overlap {overlap}, '
          f'min_parallax {KeyframeConfig().min_parallax_px} px')

    windows = sorted({8, 16, 24, window}) if not args.quick else sorted({8, window})
    overlaps = sorted({1, 2, 4, 8, overlap}) if not args.quick else sorted({2, overlap})
    noises = list(NOISE_SEVERITY_ORDER)
    accuracy: list[dict[str, object]] = []
    if 'accuracy' not in sections:
        windows, overlaps, noises = [], [], []
    for size in windows:
        accuracy.append(run_accuracy(frames, size, min(overlap, size - 1), 'default'))
    for lap in overlaps:
        if lap != overlap and lap < window:
            accuracy.append(run_accuracy(frames, window, lap, 'default'))
    for noise in noises:
        if noise != 'default':
            accuracy.append(run_accuracy(frames, window, overlap, noise))
    columns = ['window_size', 'overlap', 'noise', 'keyframes', 'windows', 'rejected',
               'ate_percent', 'ate_rmse_m', 'map_median_m', 'map_p90_m',
               'frames_predicted_per_keyframe', 'align_s_median']
    if accuracy:
        print(_table('Accuracy (ATE % of path length, map error in metres)', accuracy,
                     columns))

    prediction_errors: list[dict[str, object]] = []
    if 'errors' in sections:
        prediction_errors = run_prediction_errors()
        print(_table('Prediction errors per noise preset (20 windows of 16 frames, orbit)',
                     prediction_errors,
                     ['noise', 'windows', 'frames', 'focal_error_median',
                      'depth_abs_rel_median', 'last_frame_rotation_deg_median',
                      'wrong_pose_share']))

    timing: dict[str, object] = {}
    if 'timing' in sections:
        timing = run_backend_timing(window, overlap, windows=3 if args.quick else 6)
        print(_table('Back end per window at 518x392 vs the model (seconds)', [timing],
                     ['window_size', 'overlap', 'windows_timed', 'backend_s_median',
                      'backend_s_iqr', 'tiny_model_s_per_window',
                      'reference_model_s_per_window', 'backend_percent_of_reference']))

    memory: list[dict[str, object]] = []
    if 'memory' in sections:
        for num in ((200, 1000) if args.quick else (200, 1000, 5000)):
            memory.append(run_memory(num))
        print(_table('Peak memory of a run (fresh process each)', memory,
                     ['frames', 'keyframes', 'map_points', 'map_store_mib',
                      'tracemalloc_peak_mib', 'peak_rss_mib', 'wall_s']))

    targets: dict[str, object] = {}
    if accuracy:
        targets['ate_percent_default'] = next(
            r['ate_percent'] for r in accuracy
            if r['window_size'] == window and r['overlap'] == overlap and r['noise'] == 'default')
        targets['ate_target_percent'] = 0.5
    if timing:
        targets['backend_percent_of_reference'] = timing['backend_percent_of_reference']
        targets['backend_target_percent'] = 5.0
    if len(memory) >= 3:
        targets['peak_memory_ratio_last_vs_1000'] = (
            float(memory[-1]['tracemalloc_peak_mib'])  # type: ignore[arg-type]
            / float(memory[1]['tracemalloc_peak_mib']))  # type: ignore[arg-type]
        targets['peak_memory_ratio_target'] = 1.10
    print('\n## Targets\n' + json.dumps(targets, indent=2))

    args.out.mkdir(parents=True, exist_ok=True)
    machine = platform.node() or 'machine'
    suffix = ('--quick' if args.quick else '') + (
        '' if sections >= {'accuracy', 'errors', 'timing', 'memory'}
        else '--' + '-'.join(sorted(sections)))
    path = args.out / f'{SUITE}--{machine}--cpu{suffix}.json'
    payload = {'metadata': _metadata(), 'config': asdict(defaults), 'accuracy': accuracy,
               'prediction_errors': prediction_errors, 'backend_timing': timing,
               'memory': memory, 'targets': targets}
    path.write_text(json.dumps(payload, indent=2) + '\n')
    print(f'\nwrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
