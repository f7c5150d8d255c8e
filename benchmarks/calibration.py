"""
What known intrinsics and a metric odometry buy, on the synthetic orbit.

Figures (printed as tables, written as JSON with metadata):

* **Known intrinsics**: ATE (evo APE after Sim(3) alignment, % of the path) and map error at the
  ``realistic`` preset (3 % focal error per window, 0.5 % per frame, among VGGT's other
  systematic errors) for: the model's own K; the known K in place of the model's (what the
  engine does: alignment, consistency check, keyframe clouds and loop verification
  back-project with it); and the known K plus each frame's depth rescaled by its focal ratio
  relative to its window's median (``rescale``, applied by a wrapper around the predictor: the
  other use the issue asked to measure). The same runs without the focal error
  (``realistic`` with ``focal_rel = focal_jitter_rel = 0``) give the floor the known K can
  reach. Several seeds, per-window noise (``noise_per_window``) so every mode sees the same
  model answers.
* **Metric scale from odometry**: the same runs fed a synthetic odometry with a 2 % scale error
  and noise (``synthetic.odometry``); after each window, the map's scale error (the mapped
  trajectory's lengths over the true ones, minus 1, from the Sim(3) fit to the truth) and
  against the odometry's own scale (what the estimator controls), with the estimate's spread.

``--smoke`` runs every preset and mode once (first seed) on a 120-frame orbit in seconds
(figures meaningless; CI runs it; the JSON's name and metadata say ``smoke``).

Usage::

    python benchmarks/calibration.py [--seeds 0 1 2] [--quick | --smoke] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import dataclasses
import json
import logging
from pathlib import Path
import platform
import time

import numpy as np
from numpy.typing import NDArray
from reporting import metadata

from vggt_mapper.engine import Mapper, MapperConfig
from vggt_mapper.engine.calibration import focal_ratio
from vggt_mapper.predictor.base import WindowPrediction
from vggt_mapper.synthetic import (
    NOISE_LEVELS,
    OdometryNoise,
    PredictionNoise,
    simulate_odometry,
    SyntheticPredictor,
    SyntheticSequence,
)
from vggt_mapper.synthetic.evaluation import feed, map_error, trajectory_error

SUITE = 'calibration'
STEP_M = 0.02
MODEL_WIDTH = 224
MODES = ('predicted', 'known', 'rescale')
SMOKE_FRAMES = 120


def _metadata(seeds: Sequence[int], mode: str, frames: int) -> dict[str, object]:
    return metadata(SUITE, seeds=list(seeds), model_width=MODEL_WIDTH, step_m=STEP_M, mode=mode,
                    frames=frames)


class RescaledDepth:
    """
    A predictor wrapper: each frame's depth times its focal ratio over its window's median.

    The known-K use (b) of the issue, measured here only: with a window-wide focal error the
    rescale is uniform (a Sim(3) scale the alignment absorbs), so it only acts on the per-frame
    part of the focal error.

    :param inner: the synthetic predictor.
    :param known_k: the true K of the sequence's images.
    """

    def __init__(self, inner: SyntheticPredictor, known_k: NDArray[np.float64]) -> None:
        self.inner = inner
        self.known_k = known_k

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        """Predict, then rescale each frame's depth (see the class docstring)."""
        prediction = self.inner.predict(frames_rgb)
        ratios = np.array([
            focal_ratio(k_model, mapping.model_from_original @ self.known_k)
            for k_model, mapping in zip(prediction.intrinsics, prediction.mappings, strict=True)])
        # A wider predicted field of view (ratio < 1) put the frame's points too far sideways;
        # the depth correction of (b) brings the depth along instead: z · r_ref / r.
        factors = (np.median(ratios) / ratios).astype(np.float32)
        return dataclasses.replace(prediction, depth=prediction.depth * factors[:, None, None])


def run(noise: PredictionNoise, mode: str, seed: int, num_frames: int,
        odometry: OdometryNoise) -> dict[str, object]:
    """Map the orbit once; ATE, map error and the scale after each window."""
    sequence = SyntheticSequence.orbit(num_frames, step_m=STEP_M)
    inner = SyntheticPredictor(sequence, noise, model_width=MODEL_WIDTH, seed=seed,
                               noise_per_window=True)
    predictor = RescaledDepth(inner, sequence.intrinsics) if mode == 'rescale' else inner
    odom = simulate_odometry(sequence.poses_world_from_cam, odometry, seed=seed)
    scale_rows: list[dict[str, float]] = []
    start = time.perf_counter()
    with Mapper(MapperConfig(), predictor) as mapper:
        for index in range(num_frames):
            results = feed(mapper, sequence, index, index + 1, flush=False,
                           known_intrinsics=mode != 'predicted',
                           odom_from_camera=odom.odom_from_camera)
            if any(r.accepted for r in results):
                scale_rows.append(_scale_row(mapper, sequence, odometry.scale_error))
        mapper.flush()
        error = trajectory_error(mapper.trajectory(), sequence)
        surface = map_error(mapper.map_snapshot(), sequence, error.gt_from_world)
        stats = mapper.stats
    ratios = np.array(stats.focal_ratios)
    return {'mode': mode, 'seed': seed, 'keyframes': stats.keyframes,
            'refused': stats.windows_rejected, 'ate_percent': error.rmse_percent,
            'map_median_mm': 1000 * surface.median_m,
            'focal_ratio_abs_log_median': float(np.median(np.abs(np.log(ratios))))
            if ratios.size else float('nan'),
            'scale_error_final': error.scale_error, 'scale': scale_rows,
            'wall_s': time.perf_counter() - start}


def _scale_row(mapper: Mapper, sequence: SyntheticSequence, odom_scale_error: float
               ) -> dict[str, float]:
    trajectory = mapper.trajectory()
    scale = mapper.metric_scales.get(trajectory[0].segment)
    row = {'keyframes': float(len(trajectory)), 'metric': float(bool(scale and scale.metric)),
           'spread_rel': scale.spread_rel if scale else float('nan'),
           'samples': float(scale.samples) if scale else 0.0}
    if len(trajectory) >= 3 and scale is not None and scale.metric:
        error = trajectory_error(trajectory, sequence).scale_error
        row['vs_truth'] = error
        row['vs_odometry'] = (1.0 + error) / (1.0 + odom_scale_error) - 1.0
    return row


def _table(title: str, rows: list[dict[str, object]], columns: list[str]) -> str:
    def cell(value: object) -> str:
        return f'{value:.4g}' if isinstance(value, float) else str(value)

    lines = [f'\n## {title}', '| ' + ' | '.join(columns) + ' |', '|' + '---:|' * len(columns)]
    lines += ['| ' + ' | '.join(cell(row.get(c)) for c in columns) + ' |' for row in rows]
    return '\n'.join(lines)


def _summaries(runs: list[dict[str, object]]) -> list[dict[str, object]]:
    rows = []
    for preset in sorted({str(r['preset']) for r in runs}):
        for mode in MODES:
            chosen = [r for r in runs if r['preset'] == preset and r['mode'] == mode]
            if not chosen:
                continue
            ate = np.array([float(r['ate_percent']) for r in chosen])  # type: ignore[arg-type]
            mapped = np.array([float(r['map_median_mm']) for r in chosen])  # type: ignore
            rows.append({'preset': preset, 'mode': mode, 'runs': len(chosen),
                         'ate_percent_mean': float(ate.mean()),
                         'ate_percent_per_seed': ' '.join(f'{v:.3f}' for v in ate),
                         'map_median_mm_mean': float(mapped.mean()),
                         'refused': sum(int(r['refused']) for r in chosen)})  # type: ignore
    return rows


def _scale_table(runs: list[dict[str, object]]) -> list[dict[str, object]]:
    by_keyframes: dict[int, list[dict[str, float]]] = {}
    for run_ in runs:
        if run_['mode'] != 'known' or run_['preset'] != 'realistic':
            continue
        for row in run_['scale']:  # type: ignore[attr-defined]
            if 'vs_truth' in row:
                by_keyframes.setdefault(int(row['keyframes']), []).append(row)
    table = []
    for keyframes, rows in sorted(by_keyframes.items()):
        truth = np.array([r['vs_truth'] for r in rows])
        odom = np.array([r['vs_odometry'] for r in rows])
        table.append({'keyframes': keyframes, 'runs': len(rows),
                      'vs_truth_percent_mean': 100 * float(truth.mean()),
                      'vs_truth_percent_max_abs': 100 * float(np.abs(truth).max()),
                      'vs_odometry_percent_max_abs': 100 * float(np.abs(odom).max()),
                      'spread_percent_median': 100 * float(np.median([r['spread_rel']
                                                                      for r in rows])),
                      'samples_median': float(np.median([r['samples'] for r in rows]))})
    return table


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the tables and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument('--quick', action='store_true', help='one seed, known vs predicted')
    sizes.add_argument('--smoke', action='store_true',
                       help=f'every preset and mode, first seed, {SMOKE_FRAMES} frames (CI)')
    parser.add_argument('--frames', type=int, default=330, help='orbit frames (~60 keyframes)')
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results',
                        help='folder of the JSON result')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    mode_name = 'smoke' if args.smoke else 'quick' if args.quick else 'full'
    seeds = args.seeds if mode_name == 'full' else args.seeds[:1]
    # The smoke orbit still reaches a metric scale (16 keyframes), so every table has rows.
    frames = SMOKE_FRAMES if args.smoke else args.frames
    realistic = NOISE_LEVELS['realistic']
    presets = {'realistic': realistic}
    if not args.quick:
        presets['realistic_no_focal_error'] = dataclasses.replace(
            realistic, focal_rel=0.0, focal_jitter_rel=0.0)
    odometry = OdometryNoise()
    runs: list[dict[str, object]] = []
    for seed in seeds:
        for preset, noise in presets.items():
            modes = MODES if preset == 'realistic' and not args.quick else \
                ('predicted', 'known') if preset == 'realistic' else ('predicted',)
            for mode in modes:
                result = run(noise, mode, seed, frames, odometry)
                result['preset'] = preset
                runs.append(result)
                print(f'{preset} {mode} seed {seed}: ATE {result["ate_percent"]:.3f} %, map '
                      f'{result["map_median_mm"]:.1f} mm, final scale error '
                      f'{100 * float(result["scale_error_final"]):+.2f} %', flush=True)
    summary = _summaries(runs)
    print(_table('ATE with and without the known K (realistic preset)', summary,
                 ['preset', 'mode', 'runs', 'ate_percent_mean', 'ate_percent_per_seed',
                  'map_median_mm_mean', 'refused']))
    scale = _scale_table(runs)
    print(_table(f'Map scale error vs keyframes mapped (odometry: '
                 f'{100 * odometry.scale_error:+.0f} % scale error and noise)', scale,
                 ['keyframes', 'runs', 'vs_truth_percent_mean', 'vs_truth_percent_max_abs',
                  'vs_odometry_percent_max_abs', 'spread_percent_median', 'samples_median']))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f'{SUITE}--{platform.node() or "machine"}--cpu.json'
    if mode_name != 'full':
        path = path.with_name(f'{path.stem}--{mode_name}.json')
    document = {'metadata': _metadata(seeds, mode_name, frames),
                'odometry_noise': dataclasses.asdict(odometry), 'summary': summary,
                'scale_vs_keyframes': scale, 'runs': runs}
    path.write_text(json.dumps(document, indent=1) + '\n')
    print(f'\nwrote {path}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
