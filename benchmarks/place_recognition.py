"""
Place recognition on the synthetic room: recall, similarity separation, time and memory.

Figures (printed as tables and written as JSON with metadata):

* Revisit recall: two laps of the orbit path (408 frames per lap), keyframes every 5 frames;
  the second lap passes beside the first one (offset, lower, turned) and, in the harder
  scenarios, darker. Each second-lap keyframe queries the index built online (search, then add;
  exclusion window 100 frames) and a candidate is right when its camera is within 40 cm and
  25° of the query's. Recall@1 / @5, and the median similarity of the best same-place pair
  against that of pairs more than 1.5 m apart. ``GradientGridDescriber``, four ablations of
  it, and a baseline: a 16 × 12 patch-normalised grey thumbnail (SeqSLAM-like).
* Describe time per image at 518 × 392 (VGGT's model images) and 160 × 120.
* ``PlaceIndex`` at 20,000 keyframes: add and search time (k = 5, exclusion 100) for the
  weight-free descriptor's length and VGGT-1B's (1024), and bytes per keyframe.

``--smoke`` runs every section at toy sizes in seconds (every scenario with keyframes every
17 frames, 3 timing repeats, an index of 1,000 keyframes; figures meaningless; CI runs it; the
JSON's name and metadata say ``smoke``).

Usage::

    python benchmarks/place_recognition.py [--quick | --smoke] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
import json
from pathlib import Path
import platform
import sys
import time

import cv2
import faiss
import numpy as np
from numpy.typing import NDArray
from reporting import metadata
from scipy.spatial.transform import Rotation

from vggt_mapper.engine.places import GradientGridDescriber, PlaceIndex
from vggt_mapper.synthetic import orbit_path, SyntheticSequence

SUITE = 'place_recognition'
LAP_FRAMES = 408  # 2π · 1.3 m / 0.02 m per frame
KEYFRAME_STRIDE = 5
SMOKE_KEYFRAME_STRIDE = 17  # 24 keyframes a lap, 34 cm apart: most queries have a same place
INDEX_KEYS = 20_000
SMOKE_INDEX_KEYS = 1_000
EXCLUSION = 100
SEED = 0
# name, metres aside, metres lower, yaw degrees, (gain, gamma) of the second lap
SCENARIOS = (
    ('same path', 0.0, 0.0, 0.0, (1.0, 1.0)),
    ('15 cm, 5 cm, 8°, darker', 0.15, 0.05, 8.0, (0.7, 1.2)),
    ('30 cm, 10 cm, 15°, darker (test)', 0.3, 0.1, 15.0, (0.7, 1.2)),
    ('30 cm, 10 cm, 20°, much darker', 0.3, 0.1, 20.0, (0.5, 1.3)),
)

Describe = Callable[[Sequence[NDArray[np.uint8]]], NDArray[np.float32]]


def thumbnail_describe(images_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
    """Baseline: 16 × 12 grey thumbnail, zero mean, unit norm (SeqSLAM-like)."""
    rows = []
    for image in images_rgb:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        small = cv2.resize(grey, (16, 12), interpolation=cv2.INTER_AREA).astype(np.float32)
        small -= small.mean()
        rows.append(small.ravel() / max(float(np.linalg.norm(small)), 1e-9))
    return np.asarray(rows, dtype=np.float32)


def ablation(**overrides: object) -> tuple[Describe, int]:
    """``GradientGridDescriber`` with some of its design constants changed."""
    variant = type('Ablation', (GradientGridDescriber,),
                   {f'_{name.upper()}': value for name, value in overrides.items()})
    describe = variant().describe
    # dim is derived from the constants in the class body: measure it instead.
    noise = np.random.default_rng(SEED).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    variant.dim = int(describe([noise]).shape[1])
    return describe, variant.dim


DESCRIBERS: dict[str, tuple[Describe, int]] = {
    GradientGridDescriber.name: (GradientGridDescriber().describe, GradientGridDescriber.dim),
    'ablation: hard cell borders': ablation(cell_sigma=1e-3),
    'ablation: 8x6 grid only': ablation(grids=((8, 6),)),
    'ablation: 4x3 grid only': ablation(grids=((4, 3),)),
    'ablation: no colour': ablation(colour_weight=0.0),
    'thumbnail-16x12 (baseline)': (thumbnail_describe, 192),
}


def _metadata(**extra: object) -> dict[str, object]:
    return metadata(SUITE, opencv=cv2.__version__, faiss_threads=faiss.omp_get_max_threads(),
                    opencv_threads=cv2.getNumThreads(), seed=SEED, **extra)


def two_laps(side_m: float, down_m: float, yaw_deg: float) -> NDArray[np.float64]:
    """Two laps; the second one moved in each camera's own frame."""
    poses = orbit_path(2 * LAP_FRAMES)
    offset = np.eye(4)
    offset[:3, :3] = Rotation.from_euler('y', yaw_deg, degrees=True).as_matrix()
    offset[:3, 3] = [side_m, down_m, 0.0]
    poses[LAP_FRAMES:] = poses[LAP_FRAMES:] @ offset
    return poses


def exposed(image: NDArray[np.uint8], gain: float, gamma: float) -> NDArray[np.uint8]:
    """Apply a gain and a gamma, as auto exposure does."""
    return np.clip(255.0 * gain * (image / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)


def same_place(pose_a: NDArray[np.float64], pose_b: NDArray[np.float64]) -> bool:
    """Within 40 cm, optical axes within 25°."""
    close = np.linalg.norm(pose_a[:3, 3] - pose_b[:3, 3]) < 0.4
    return bool(close and pose_a[:3, 2] @ pose_b[:3, 2] > np.cos(np.radians(25.0)))


def run_revisit(scenario: tuple[str, float, float, float, tuple[float, float]],
                stride: int) -> list[dict[str, object]]:
    """Recall and similarity of every describer on one scenario."""
    name, side_m, down_m, yaw_deg, (gain, gamma) = scenario
    poses = two_laps(side_m, down_m, yaw_deg)
    sequence = SyntheticSequence(poses)
    keys = list(range(0, 2 * LAP_FRAMES, stride))
    images = [sequence.frame(k) if k < LAP_FRAMES else exposed(sequence.frame(k), gain, gamma)
              for k in keys]
    first = [i for i, k in enumerate(keys) if k < LAP_FRAMES]
    second = [i for i, k in enumerate(keys) if k >= LAP_FRAMES]
    rows = []
    for describer_name, (describe, dim) in DESCRIBERS.items():
        descriptors = describe(images)
        index = PlaceIndex(dim)
        top1, top5 = [], []
        for key, descriptor in zip(keys, descriptors, strict=True):
            candidates = index.search(descriptor, 5, query_key=key, exclusion=EXCLUSION)
            if key >= LAP_FRAMES:
                correct = [same_place(poses[key], poses[c.key]) for c in candidates]
                top1.append(bool(correct and correct[0]))
                top5.append(any(correct))
            index.add(key, descriptor)
        similarity = descriptors[second] @ descriptors[first].T
        same = np.array([[same_place(poses[keys[q]], poses[keys[d]]) for d in first]
                         for q in second])
        far = np.array([[np.linalg.norm(poses[keys[q]][:3, 3] - poses[keys[d]][:3, 3]) > 1.5
                         for d in first] for q in second])
        best_same = np.where(same, similarity, -np.inf).max(axis=1)
        best_same = best_same[np.isfinite(best_same)]  # queries with a same-place keyframe
        rows.append({'scenario': name, 'describer': describer_name, 'queries': len(top1),
                     'recall_at_1': float(np.mean(top1)), 'recall_at_5': float(np.mean(top5)),
                     'same_place_median': float(np.median(best_same)),
                     'far_median': float(np.median(similarity[far])),
                     # P(a query's best same-place pair beats a pair 1.5 m apart)
                     'separation_auc': float(np.mean(best_same[:, None] > similarity[far][None]))})
    return rows


def _timed_ms(call: Callable[[], object], repeats: int, warmup: int = 3) -> tuple[float, float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(1e3 * (time.perf_counter() - start))
    values = np.array(times)
    return float(np.median(values)), float(np.percentile(values, 75) - np.percentile(values, 25))


def run_describe_timing(repeats: int) -> list[dict[str, object]]:
    """Describe time per image at two resolutions."""
    rows = []
    for height, width in ((392, 518), (120, 160)):
        frame = SyntheticSequence.orbit(1, height=height, width=width).frame(0)
        for name, (describe, _) in DESCRIBERS.items():
            if name.startswith('ablation'):
                continue
            median, iqr = _timed_ms(lambda f=describe, x=frame: f([x]), repeats)
            rows.append({'image': f'{width}x{height}', 'describer': name,
                         'ms_median': median, 'ms_iqr': iqr})
    return rows


def run_index(num_keys: int, dim: int, searches: int) -> dict[str, object]:
    """Add ``num_keys`` random unit descriptors one by one, then time single queries."""
    rng = np.random.default_rng(SEED)
    rows = rng.normal(size=(num_keys, dim)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    index = PlaceIndex(dim)
    start = time.perf_counter()
    for key, row in enumerate(rows):
        index.add(key, row)
    add_us = 1e6 * (time.perf_counter() - start) / num_keys
    queries = iter(rng.integers(0, num_keys, size=searches + 3))

    def search() -> object:
        key = int(next(queries))
        return index.search(rows[key], 5, query_key=key, exclusion=EXCLUSION)

    median, iqr = _timed_ms(search, searches)
    return {'keys': num_keys, 'dim': dim, 'add_us_per_key': add_us, 'search_ms_median': median,
            'search_ms_iqr': iqr, 'bytes_per_key': index.nbytes / num_keys,
            'index_mib': index.nbytes / 2**20}


def _table(title: str, rows: list[dict[str, object]], columns: list[str]) -> str:
    def cell(value: object) -> str:
        return f'{value:.4g}' if isinstance(value, float) else str(value)

    lines = [f'\n## {title}', '| ' + ' | '.join(columns) + ' |',
             '|' + '---:|' * len(columns)]
    lines += ['| ' + ' | '.join(cell(row.get(c)) for c in columns) + ' |' for row in rows]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the tables and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument('--quick', action='store_true',
                       help='only the test scenario, fewer repeats (a minute)')
    sizes.add_argument('--smoke', action='store_true',
                       help='every section at toy sizes, in seconds (CI)')
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results',
                        help='folder of the JSON result')
    args = parser.parse_args(argv)
    mode = 'smoke' if args.smoke else 'quick' if args.quick else 'full'
    scenarios = SCENARIOS[2:3] if args.quick else SCENARIOS
    stride = SMOKE_KEYFRAME_STRIDE if args.smoke else KEYFRAME_STRIDE
    revisit = [row for scenario in scenarios for row in run_revisit(scenario, stride)]
    print(_table(f'Revisit (keyframes every {stride} frames, exclusion {EXCLUSION})',
                 revisit, ['scenario', 'describer', 'queries', 'recall_at_1', 'recall_at_5',
                           'same_place_median', 'far_median', 'separation_auc']))
    describe = run_describe_timing({'smoke': 3, 'quick': 20, 'full': 100}[mode])
    print(_table('Describe time per image (ms)', describe,
                 ['image', 'describer', 'ms_median', 'ms_iqr']))
    keys = SMOKE_INDEX_KEYS if args.smoke else INDEX_KEYS
    index = [run_index(keys, dim, {'smoke': 10, 'quick': 50, 'full': 300}[mode])
             for dim in (GradientGridDescriber.dim, 1024)]
    print(_table(f'PlaceIndex at {keys:,} keyframes (faiss IndexFlatIP, k = 5)', index,
                 ['keys', 'dim', 'add_us_per_key', 'search_ms_median', 'search_ms_iqr',
                  'bytes_per_key', 'index_mib']))
    args.out.mkdir(parents=True, exist_ok=True)
    machine = platform.node() or 'machine'
    path = args.out / f'{SUITE}--{machine}--cpu{"" if mode == "full" else f"--{mode}"}.json'
    payload = {'metadata': _metadata(mode=mode, keyframe_stride=stride, index_keys=keys),
               'revisit': revisit, 'describe': describe,
               'index': index}
    path.write_text(json.dumps(payload, indent=2) + '\n')
    print(f'\nwrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
