"""
Memory of one model pass against its frame count (the web server's frames-per-pass limit).

Each frame count runs in a fresh process: VGGT (synthetic weights: the cost is real, the geometry
is not) is built, its resident size noted, then ``VGGTPredictor.predict`` runs once on S frames of
640×480 (392×518 model pixels, what a 4:3 photo becomes) and the process's peak RSS
(``ru_maxrss``) is read. The extra over the loaded model is the pass's own memory; a line fitted
over S gives bytes per frame and a fixed part, which ``vggt_mapper/web/capacity.py`` uses
(the printed fit holds the constants to paste there).

``--smoke`` runs the tiny model on 1 and 2 frames (each in its own process, the fit included)
in seconds (figures meaningless; CI runs it; the JSON's name and metadata say ``smoke``).

Usage::

    nice python benchmarks/pass_memory.py --frames 1 2 4 8 [--config vggt-1b|tiny] [--points]
    python benchmarks/pass_memory.py --smoke [--points] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
from pathlib import Path
import platform
import resource
import subprocess
import sys
import time

import numpy as np

SUITE = 'pass_memory'


def _rss_bytes() -> int:
    with open('/proc/self/statm', encoding='ascii') as statm:
        return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def _child(config_name: str, frames: int, points: bool,
           queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    import torch

    from vggt_mapper.model import VGGTConfig
    from vggt_mapper.model.synthetic import build_vggt
    from vggt_mapper.predictor.vggt_predictor import VGGTPredictor

    config = VGGTConfig.tiny() if config_name == 'tiny' else VGGTConfig.vggt_1b()
    predictor = VGGTPredictor(build_vggt(config), device='cpu', compute_points=points)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(frames)]
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    resident = _rss_bytes()
    start = time.perf_counter()
    predictor.predict(images)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    queue.put({'frames': frames, 'rss_loaded_gib': resident / 2**30,
               'peak_before_gib': loaded / 2**30, 'peak_gib': peak / 2**30,
               'pass_gib': (peak - max(loaded, resident)) / 2**30, 'seconds': seconds,
               'threads': torch.get_num_threads()})


def measure(config_name: str, frames: int, points: bool) -> dict[str, float]:
    """
    Run one pass of ``frames`` frames in a fresh process.

    :param config_name: ``'vggt-1b'`` or ``'tiny'``.
    :param frames: frames in the pass.
    :param points: also run the point head.
    :return: resident size after loading, peak, the pass's extra (GiB) and its seconds.
    """
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    child = context.Process(target=_child, args=(config_name, frames, points, queue))
    child.start()
    row: dict[str, float] = queue.get()
    child.join()
    return row


def main(argv: list[str] | None = None) -> int:
    """Measure each frame count, fit bytes per frame, print a table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--frames', type=int, nargs='+', default=[1, 2, 4, 8])
    parser.add_argument('--config', choices=('vggt-1b', 'tiny'), default='vggt-1b')
    parser.add_argument('--points', action='store_true', help='also run the point head')
    parser.add_argument('--smoke', action='store_true',
                        help='tiny model, 1 and 2 frames, in seconds (CI); overrides the above')
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results',
                        help='folder of the JSON result')
    args = parser.parse_args(argv)
    if args.smoke:
        args.config, args.frames = 'tiny', [1, 2]
    rows = []
    for frames in args.frames:
        rows.append(measure(args.config, frames, args.points))
        row = rows[-1]
        print(f'S={frames}: loaded {row["rss_loaded_gib"]:.2f} GiB, peak {row["peak_gib"]:.2f} '
              f'GiB, pass {row["pass_gib"]:.3f} GiB, {row["seconds"]:.1f} s', flush=True)
    counts = np.array([r['frames'] for r in rows], dtype=np.float64)
    extra = np.array([r['pass_gib'] for r in rows])
    slope, intercept = np.polyfit(counts, extra, 1) if len(rows) > 1 else (extra[0], 0.0)
    print('\n| frames | pass memory (GiB) | seconds |\n|---:|---:|---:|')
    for row in rows:
        print(f'| {row["frames"]} | {row["pass_gib"]:.3f} | {row["seconds"]:.1f} |')
    print(f'\nfit: {slope:.4f} GiB per frame + {intercept:.3f} GiB '
          f'({args.config}, heads {"camera+depth+point" if args.points else "camera+depth"}, '
          f'392x518, fp32 CPU)')
    commit = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                            check=False, cwd=Path(__file__).parent).stdout.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    name = f'{SUITE}--{platform.node() or "machine"}--cpu--{args.config}'
    path = args.out / (f'{name}{"--points" if args.points else ""}'
                       f'{"--smoke" if args.smoke else ""}.json')
    path.write_text(json.dumps({
        'metadata': {'suite': SUITE, 'commit': commit, 'python': platform.python_version(),
                     'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(),
                     'mode': 'smoke' if args.smoke else 'full', 'frames': args.frames,
                     'config': args.config, 'points': args.points, 'image_hw': [392, 518],
                     'cpu_count': os.cpu_count(), 'load_average': os.getloadavg()},
        'rows': rows, 'gib_per_frame': slope, 'gib_fixed': intercept}, indent=2) + '\n')
    print(f'wrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
