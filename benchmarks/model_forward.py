"""
Forward time and peak memory of full-size VGGT-1B (synthetic weights), ours vs the reference.

For S frames of 392×518 (H×W, what a 640×480 photo becomes), after a warm-up, each
configuration is timed ``--repeats`` times (device synchronised inside the timed region) and
the median, IQR and minimum are reported, with the peak memory during the timed runs (RSS on
CPU, sampled every 10 ms: the resident weights plus the forward's own peak;
``torch.cuda.max_memory_allocated`` on GPU). Configurations are timed in turns (round robin), so
that a busy machine slows them alike. Two configurations of ours:

* ``mapping``: camera + depth heads only (what the mapper runs);
* ``all``: camera, depth, point and track heads (16 query points).

If the reference package ``vggt`` (facebookresearch/vggt) is importable, its ``VGGT()`` is filled
with the same synthetic weights and timed in the same process and turns, and the ratios are
printed (its resident weights then count in every RSS figure: see ``forward_extra_rss_gib``).
Targets on CPU fp32: ours ``all`` ≤ 1.0× and ours ``mapping`` ≤ 0.8× the reference's ``all``
(reference figures without the package: ``/work/shared/reference/TIMING.md``).
Synthetic weights: the geometry is meaningless, the cost is real.

Usage::

    nice python benchmarks/model_forward.py [--frames 1 2] [--repeats 2] [--device auto]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import datetime
import functools
import gc
import json
import logging
import os
from pathlib import Path
import platform
import re
import statistics
import subprocess
import threading
import time

import torch

from vggt_mapper.model import MAPPING_HEADS, select_device_and_dtype, VGGTConfig
from vggt_mapper.model.synthetic import build_vggt, fill_synthetic_

SUITE = 'model_forward'
HEIGHT, WIDTH = 392, 518
NUM_QUERIES = 16
SEED = 0
# Reference VGGT-1B on this project's CPU machine type (TIMING.md; 2 threads, all heads,
# median of 2 forwards), for when the reference package is not installed.
REFERENCE_CPU_ALL_HEADS_S = {1: 20.29, 2: 38.63, 4: 83.54}


class PeakRss:
    """Sample the process's resident set size in a thread; ``peak_gib`` is the maximum."""

    def __init__(self, period_s: float = 0.01) -> None:
        self.period_s = period_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._page = os.sysconf('SC_PAGE_SIZE')

    def _current(self) -> int:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._current())
            time.sleep(self.period_s)

    def __enter__(self) -> PeakRss:
        self.peak = self._current()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._current())

    @property
    def peak_gib(self) -> float:
        return self.peak / 2**30


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _time_round_robin(fns: dict[str, Callable[[], object]], device: torch.device, warmup: int,
                      repeats: int) -> dict[str, dict[str, object]]:
    """Time several forwards in turns, so that a busy machine slows them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    extra_rss: dict[str, float] = dict.fromkeys(fns, 0.0)
    cuda_peak: dict[str, float] = dict.fromkeys(fns, 0.0)
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            with PeakRss() as rss:
                before = rss.peak
                start = time.perf_counter()
                fn()
                _sync(device)
                times[name].append(time.perf_counter() - start)
            extra_rss[name] = max(extra_rss[name], (rss.peak - before) / 2**30)
            if device.type == 'cuda':
                cuda_peak[name] = max(cuda_peak[name],
                                      torch.cuda.max_memory_allocated(device) / 2**30)
    results = {}
    for name, values in times.items():
        quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
        results[name] = {
            'times_s': [round(t, 4) for t in values],
            'median_s': statistics.median(values),
            'iqr_s': quartiles[2] - quartiles[0],
            'min_s': min(values),
            'peak_rss_gib': round(_rss_gib() + extra_rss[name], 3),
            'forward_extra_rss_gib': round(extra_rss[name], 3),
        }
        if device.type == 'cuda':
            results[name]['cuda_max_allocated_gib'] = round(cuda_peak[name], 3)
    return results


def _rss_gib() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**30


def _forward(model: torch.nn.Module, images: torch.Tensor, queries: torch.Tensor,
             device: torch.device, dtype: torch.dtype, **kwargs: object) -> object:
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype,
                                                enabled=dtype != torch.float32):
        return model(images, query_points=queries, **kwargs)


def _inputs(frames: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(SEED + frames)
    images = torch.rand(frames, 3, HEIGHT, WIDTH, generator=generator)
    queries = torch.rand(NUM_QUERIES, 2, generator=generator) * torch.tensor(
        [WIDTH - 1, HEIGHT - 1])
    return images.to(device), queries.to(device)


def _build_reference(device: torch.device) -> torch.nn.Module | None:
    try:
        from vggt.models.vggt import VGGT as ReferenceVGGT  # type: ignore[import-not-found]
    except ImportError:
        return None
    # The reference's constructor cannot run on the meta device (it calls .item()).
    model = ReferenceVGGT()
    fill_synthetic_(model)
    return model.to(device).eval()


def _run(config: VGGTConfig, frames_list: list[int], device: torch.device, dtype: torch.dtype,
         warmup: int, repeats: int, with_reference: bool) -> list[dict[str, object]]:
    ours = build_vggt(config, device=device)
    reference = _build_reference(device) if with_reference else None
    rows: list[dict[str, object]] = []
    for frames in frames_list:
        images, queries = _inputs(frames, device)
        fns: dict[str, Callable[[], object]] = {
            'ours/mapping': functools.partial(_forward, ours, images, queries, device, dtype,
                                              heads=MAPPING_HEADS),
            'ours/all': functools.partial(_forward, ours, images, queries, device, dtype),
        }
        if reference is not None:
            fns['reference/all'] = functools.partial(_forward, reference, images, queries,
                                                     device, dtype)
        for name, result in _time_round_robin(fns, device, warmup, repeats).items():
            impl, heads = name.split('/')
            rows.append({'impl': impl, 'heads': heads, 'frames': frames, **result})
            print(f"  {impl:9s} {heads:8s} S={frames}: {result['median_s']:.2f} s", flush=True)
    del ours, reference
    gc.collect()
    return rows


def _machine_name(device: torch.device) -> str:
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            cpuinfo = Path('/proc/cpuinfo').read_text()
            found = re.search(r'model name\s*:\s*(.+)', cpuinfo)
            name = found.group(1) if found else name
        except OSError:
            pass
        name = f'{name}-{os.cpu_count()}cpu'
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')[:60]


def _metadata(device: torch.device, dtype: torch.dtype, args: argparse.Namespace,
              ) -> dict[str, object]:
    def git(*cmd: str) -> str:
        try:
            return subprocess.run(['git', *cmd], capture_output=True, text=True, check=False,
                                  cwd=Path(__file__).parent).stdout.strip()
        except OSError:
            return ''
    return {
        'suite': SUITE,
        'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'commit': git('rev-parse', 'HEAD'),
        'dirty': bool(git('status', '--porcelain', '--', 'vggt_mapper/model')),
        'torch': torch.__version__,
        'python': platform.python_version(),
        'device': str(device),
        'device_name': _machine_name(device),
        'dtype': str(dtype).removeprefix('torch.'),
        'threads': torch.get_num_threads(),
        'image_hw': [HEIGHT, WIDTH],
        'num_queries': NUM_QUERIES,
        'warmup': args.warmup,
        'repeats': args.repeats,
        'weights': 'synthetic vggt-synth-v1 (meaningless geometry)',
        'config': 'tiny' if args.tiny else 'vggt-1b',
    }


def _table(rows: list[dict[str, object]], device: torch.device) -> str:
    lines = [f"{'impl':10s} {'heads':8s} {'S':>3s} {'median s':>9s} {'IQR s':>7s} "
             f"{'min s':>7s} {'peak GiB':>9s} {'vs ref all':>10s}"]
    reference = {r['frames']: r['median_s'] for r in rows if r['impl'] == 'reference'}
    source = 'measured in this run' if reference else 'none'
    if not reference and device.type == 'cpu':
        reference, source = dict(REFERENCE_CPU_ALL_HEADS_S), 'TIMING.md (2 threads, idle)'
    for r in rows:
        ref = reference.get(r['frames'])
        ratio = f"{r['median_s'] / ref:.2f}" if ref else '-'
        peak = r.get('cuda_max_allocated_gib', r['peak_rss_gib'])
        lines.append(f"{r['impl']:10s} {r['heads']:8s} {r['frames']:3d} {r['median_s']:9.2f} "
                     f"{r['iqr_s']:7.2f} {r['min_s']:7.2f} {peak:9.2f} {ratio:>10s}")
    lines.append(f'(reference all-heads time: {source})')
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, nargs='+', default=None,
                        help='frame counts S (default 1 2 4, plus 8 on GPU)')
    parser.add_argument('--repeats', type=int, default=3, help='timed runs per configuration')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs first')
    parser.add_argument('--device', default='auto', help="'auto', 'cpu' or 'cuda[:N]'")
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--tiny', action='store_true',
                        help='smoke run with the tiny config (figures mean nothing)')
    parser.add_argument('--no-reference', action='store_true',
                        help='skip the reference package even if importable')
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results')
    parser.add_argument('--machine', default=None, help='machine name for the JSON file name')
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = select_device_and_dtype(args.device)
    frames = args.frames or ([1, 2, 4, 8] if device.type == 'cuda' else [1, 2, 4])
    torch.manual_seed(SEED)
    print(f'VGGT {"tiny (smoke run)" if args.tiny else "1B"} forward, {HEIGHT}x{WIDTH}, '
          f'device {device} ({dtype}), '
          f'{torch.get_num_threads()} threads', flush=True)
    config = VGGTConfig.tiny() if args.tiny else VGGTConfig.vggt_1b()
    rows = _run(config, frames, device, dtype, args.warmup, args.repeats,
                with_reference=not (args.no_reference or args.tiny))
    table = _table(rows, device if not args.tiny else torch.device('meta'))
    print(table)
    meta = _metadata(device, dtype, args)
    machine = args.machine or meta['device_name']
    args.out.mkdir(parents=True, exist_ok=True)
    suite = f'{SUITE}-tiny' if args.tiny else SUITE
    path = args.out / f'{suite}--{machine}--{device.type}.json'
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps({'metadata': meta, 'results': rows}, indent=1) + '\n')
    tmp.replace(path)
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
