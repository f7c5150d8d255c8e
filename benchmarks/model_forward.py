"""
VGGT forward time, achieved GFLOP/s and memory: ours fp32 and int8 vs the reference, one run.

For S frames of 392×518 (H×W, what a 640×480 photo becomes), configurations are timed in turns
(round robin, so that a busy machine slows them alike), device synchronised inside the timed
region, and each reports the median, minimum and IQR of ``--repeats`` runs; a configuration whose
IQR exceeds 10 % of its median is flagged (the machine was busy: rerun it). Configurations:

* ``ours/mapping``: camera + depth heads (what the mapper runs), float32 (autocast on CUDA);
* ``ours/mapping-int8`` (CPU): the same with the aggregator in dynamic int8
  (``vggt_mapper.model.quantize_int8_``), and its output error against ``ours/mapping`` on the
  same input: depth relative error, rotation and camera-centre error, focal error;
* ``ours/all``: camera, depth, point and track heads (16 query points);
* ``reference/all``: the reference package ``vggt`` (facebookresearch/vggt) with the same
  synthetic weights, when it is importable; the ratios ``ours ÷ reference`` come from this run
  only. Without it the table says "reference not measured" and the reference's CPU timing
  from ``/work/shared/reference/TIMING.md`` (another machine, another run) is printed apart, as
  orientation, never as a ratio.

Speed against the machine's limit: the first untimed run of each configuration counts its FLOPs
from the model itself (``vggt_mapper.model.count_flops``), and the machine's own matrix-product
throughput is timed in the same turns and threads as ``limit/*`` rows (float32 ``torch.mm``, the
autocast dtype on CUDA; the dynamic int8 Linear on the CPU), so each row gives GFLOP/s and its
percentage of that limit, under the same load. Peak memory is the process RSS sampled every
10 ms (all resident models included) or ``torch.cuda.max_memory_allocated``. Weights are the
synthetic "vggt-synth-v1" ones: the geometry is meaningless and the int8 error only indicative of
real weights; the cost is real.

``--isa avx2`` re-runs the process with ATen, MKL, oneDNN and fbgemm limited to AVX2, to measure
what an AVX2-only CPU would get from a newer one. ``--smoke`` runs everything on the tiny model
with one repeat in seconds (CI runs it so that the benchmark keeps working).

Usage::

    nice python benchmarks/model_forward.py [--frames 1 2] [--repeats 5] [--isa avx2]
    python benchmarks/model_forward.py --smoke --out /tmp/bench
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import copy
from dataclasses import dataclass, field
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
import sys
import threading
import time
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation
import torch
from torch import nn

from vggt_mapper.geometry import inverse_se3, pose_encoding_to_extrinsics_intrinsics
from vggt_mapper.model import (
    count_flops,
    MAPPING_HEADS,
    quantize_int8_,
    quantize_linear_int8_,
    VGGTConfig,
    VGGTOutput,
)
from vggt_mapper.model.synthetic import build_vggt, fill_synthetic_
from vggt_mapper.predictor import select_device_and_dtype

SUITE = 'model_forward'
HEIGHT, WIDTH = 392, 518
SMOKE_HW = (56, 98)
NUM_QUERIES = 16
SEED = 0
SPREAD_LIMIT = 0.10
"""A configuration whose IQR exceeds this fraction of its median is flagged."""
MIN_TIMINGS_FOR_SPREAD = 3
# The 1B model's MLP product for one frame's tokens: (28·37 + 5) × 1024 @ 1024 × 4096.
GEMM_MNK = (1041, 1024, 4096)
GEMM_CALLS = 10
"""Products per timed call of a limit (one in a smoke run)."""
# Orientation only (TIMING.md: reference VGGT-1B, all heads, median of 2, 2 threads, AMD EPYC,
# torch 2.14.1): another machine and run, so it is printed apart and never divided by.
TIMING_MD_REFERENCE_ALL_S = {1: 20.29, 2: 38.63, 4: 83.54}
AVX2_ENV = {'ATEN_CPU_CAPABILITY': 'avx2', 'MKL_ENABLE_INSTRUCTIONS': 'AVX2',
            'ONEDNN_MAX_CPU_ISA': 'AVX2', 'FBGEMM_ENABLE_INSTRUCTIONS': 'AVX2'}


class PeakRss:
    """Sample the process's resident set size in a thread; ``peak`` is the maximum in bytes."""

    def __init__(self, period_s: float = 0.01) -> None:
        self.period_s = period_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.period_s)

    def __enter__(self) -> PeakRss:
        self.peak = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


def rss_bytes() -> int:
    """Return the process's current resident set size in bytes."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


@dataclass(frozen=True)
class Spread:
    """
    Median, minimum and IQR of repeated timings, and whether the spread is acceptable.

    With fewer than ``MIN_TIMINGS_FOR_SPREAD`` timings the IQR is unknown (None).

    :param times_s: the timings in seconds.
    """

    times_s: tuple[float, ...]
    median_s: float = field(init=False)
    min_s: float = field(init=False)
    iqr_s: float | None = field(init=False)

    def __post_init__(self) -> None:
        if not self.times_s:
            raise ValueError('no timings to summarise')
        values = sorted(self.times_s)
        object.__setattr__(self, 'median_s', statistics.median(values))
        object.__setattr__(self, 'min_s', values[0])
        iqr = None
        if len(values) >= MIN_TIMINGS_FOR_SPREAD:
            quartiles = statistics.quantiles(values, n=4)
            iqr = quartiles[2] - quartiles[0]
        object.__setattr__(self, 'iqr_s', iqr)

    @property
    def iqr_fraction(self) -> float | None:
        """IQR as a fraction of the median (None when unknown)."""
        return None if self.iqr_s is None else self.iqr_s / self.median_s

    @property
    def too_noisy(self) -> bool:
        """Tell whether the IQR exceeds ``SPREAD_LIMIT`` of the median."""
        return self.iqr_fraction is not None and self.iqr_fraction > SPREAD_LIMIT


def difference_resolved(a: Spread, b: Spread) -> bool | None:
    """
    Tell whether two medians differ by more than the two spreads together.

    :param a: one configuration's timings.
    :param b: the other's.
    :return: ``|median_a − median_b| > IQR_a + IQR_b``, or None when a spread is unknown.
    """
    if a.iqr_s is None or b.iqr_s is None:
        return None
    return abs(a.median_s - b.median_s) > a.iqr_s + b.iqr_s


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@dataclass
class Config:
    """One timed configuration: a model, its call, and the arithmetic it does."""

    name: str
    model: nn.Module
    call: Callable[[], object]
    limit_key: str
    flops: int = 0
    by_child: dict[str, int] = field(default_factory=dict)
    first_output: object = None


def _limit_configs(device: torch.device, dtype: torch.dtype, calls: int) -> list[Config]:
    """
    Return this machine's matrix-product limits as configurations timed with the models.

    Timed in the same turns as the models, they see the same load. Each call runs
    ``calls`` products of the 1B model's MLP shape: float (the autocast dtype on CUDA)
    ``torch.mm``, and on the CPU the dynamic int8 Linear that ``quantize_int8_`` makes.
    """
    m, k, n = GEMM_MNK
    generator = torch.Generator().manual_seed(SEED)
    a = torch.randn(m, k, generator=generator).to(device, dtype)
    b = torch.randn(k, n, generator=generator).to(device, dtype)

    def gemm() -> None:
        for _ in range(calls):
            torch.mm(a, b)

    dtype_name = str(dtype).removeprefix('torch.')
    configs = [Config(f'limit/{dtype_name}-gemm', nn.Module(), gemm, '')]
    if device.type == 'cpu':
        int8 = quantize_linear_int8_(nn.Sequential(nn.Linear(k, n)))

        def int8_linear() -> None:
            with torch.inference_mode():
                for _ in range(calls):
                    int8(a)

        configs.append(Config('limit/int8-linear', int8, int8_linear, ''))
    return configs


def _inputs(frames: int, image_hw: tuple[int, int],
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(SEED + frames)
    height, width = image_hw
    images = torch.rand(frames, 3, height, width, generator=generator)
    queries = torch.rand(NUM_QUERIES, 2, generator=generator) * torch.tensor(
        [width - 1, height - 1])
    return images.to(device), queries.to(device)


def _forward(model: nn.Module, images: torch.Tensor, queries: torch.Tensor,
             device: torch.device, dtype: torch.dtype, **kwargs: object) -> object:
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype,
                                                enabled=dtype != torch.float32):
        return model(images, query_points=queries, **kwargs)


def _build_reference(device: torch.device) -> nn.Module | None:
    try:
        from vggt.models.vggt import VGGT as ReferenceVGGT  # type: ignore[import-not-found]
    except ImportError:
        return None
    # The reference's constructor cannot run on the meta device (it calls .item()).
    model = ReferenceVGGT()
    fill_synthetic_(model)
    return model.to(device).eval()


def _int8_copy(model: nn.Module) -> nn.Module:
    """
    Return an int8 twin of ``model`` that shares every float tensor with it.

    The deep copy takes the parameters and buffers from ``memo`` instead of copying them, so the
    twin costs only its int8 weights; quantising it swaps its own Linear modules, not the
    original's.
    """
    memo: dict[int, Any] = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    twin = copy.deepcopy(model, memo)
    return quantize_int8_(twin)


def _time_round_robin(configs: list[Config], device: torch.device, warmup: int,
                      repeats: int) -> dict[str, dict[str, Any]]:
    """Count FLOPs on each first run, warm up, then time the configurations in turns."""
    for config in configs:
        config.first_output, count = count_flops(config.model, config.call)
        config.flops, config.by_child = count.total, count.by_child
    for _ in range(warmup - 1):
        for config in configs:
            config.call()
    _sync(device)
    times: dict[str, list[float]] = {c.name: [] for c in configs}
    extra_rss: dict[str, int] = dict.fromkeys(times, 0)
    cuda_peak: dict[str, int] = dict.fromkeys(times, 0)
    for _ in range(repeats):
        for config in configs:
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            with PeakRss() as rss:
                before = rss.peak
                start = time.perf_counter()
                config.call()
                _sync(device)
                times[config.name].append(time.perf_counter() - start)
            extra_rss[config.name] = max(extra_rss[config.name], rss.peak - before)
            if device.type == 'cuda':
                cuda_peak[config.name] = max(cuda_peak[config.name],
                                             torch.cuda.max_memory_allocated(device))
    return {c.name: {'spread': Spread(tuple(times[c.name])),
                     'forward_extra_rss_gib': extra_rss[c.name] / 2**30,
                     'cuda_max_allocated_gib': cuda_peak[c.name] / 2**30}
            for c in configs}


def output_error(test: VGGTOutput, baseline: VGGTOutput,
                 image_hw: tuple[int, int]) -> dict[str, float]:
    """
    Compare a forward's camera and depth outputs with a baseline forward on the same input.

    :param test: e.g. the int8 output.
    :param baseline: e.g. the float32 output.
    :param image_hw: model image (H, W), to decode the pose encoding.
    :return: depth relative error (median, 99th percentile, max of ``|Δd| / d``), rotation error
        (degrees, max over frames), camera-centre error (max over frames, as a fraction of the
        baseline's median depth: the scene scale) and focal-length relative error (max).
    """
    def cameras(out: VGGTOutput) -> tuple[np.ndarray, np.ndarray]:
        assert out.pose_enc is not None
        pose = out.pose_enc[0].detach().cpu().double().numpy()
        pose[:, 7:] = np.maximum(pose[:, 7:], 1e-6)  # ReLU-clamped FoV of an untrained model
        return pose_encoding_to_extrinsics_intrinsics(pose, image_hw)

    assert test.depth is not None and baseline.depth is not None
    depth = baseline.depth[0, ..., 0].detach().cpu().double().numpy()
    depth_test = test.depth[0, ..., 0].detach().cpu().double().numpy()
    relative = np.abs(depth_test - depth) / depth
    cam_from_window, intrinsics = cameras(baseline)
    cam_from_window_test, intrinsics_test = cameras(test)
    rotation = (Rotation.from_matrix(cam_from_window_test[:, :, :3])
                * Rotation.from_matrix(cam_from_window[:, :, :3]).inv())
    centres = np.linalg.norm(inverse_se3(cam_from_window_test)[..., :3, 3]
                             - inverse_se3(cam_from_window)[..., :3, 3], axis=-1)
    focal = np.abs(intrinsics_test[:, 0, 0] / intrinsics[:, 0, 0] - 1.0)
    return {
        'depth_rel_median': float(np.median(relative)),
        'depth_rel_p99': float(np.percentile(relative, 99)),
        'depth_rel_max': float(relative.max()),
        'rotation_deg_max': float(np.degrees(rotation.magnitude()).max()),
        'centre_err_of_median_depth_max': float(centres.max() / np.median(depth)),
        'focal_rel_max': float(focal.max()),
    }


def _configs(ours: nn.Module, ours_int8: nn.Module | None, reference: nn.Module | None,
             images: torch.Tensor, queries: torch.Tensor, device: torch.device,
             dtype: torch.dtype) -> list[Config]:
    forward = functools.partial(_forward, images=images, queries=queries, device=device,
                                dtype=dtype)
    float_limit = f"limit/{str(dtype).removeprefix('torch.')}-gemm"
    configs = [Config('ours/mapping', ours, functools.partial(forward, ours, heads=MAPPING_HEADS),
                      float_limit)]
    if ours_int8 is not None:
        configs.append(Config('ours/mapping-int8', ours_int8,
                              functools.partial(forward, ours_int8, heads=MAPPING_HEADS),
                              'limit/int8-linear'))
    configs.append(Config('ours/all', ours, functools.partial(forward, ours), float_limit))
    if reference is not None:
        configs.append(Config('reference/all', reference, functools.partial(forward, reference),
                              float_limit))
    return configs


def run(args: argparse.Namespace, device: torch.device,
        dtype: torch.dtype) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """
    Build the models once and time every configuration for each frame count.

    :return: timing rows and int8 error rows.
    """
    config = VGGTConfig.tiny() if args.smoke else VGGTConfig.vggt_1b()
    image_hw = SMOKE_HW if args.smoke else (HEIGHT, WIDTH)
    ours = build_vggt(config, device=device)
    ours_int8 = _int8_copy(ours) if device.type == 'cpu' and not args.no_int8 else None
    reference = None if args.no_reference or args.smoke else _build_reference(device)
    limits = _limit_configs(device, dtype, _gemm_calls(args))
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for frames in args.frames:
        images, queries = _inputs(frames, image_hw, device)
        configs = _configs(ours, ours_int8, reference, images, queries, device, dtype) + limits
        timed = _time_round_robin(configs, device, args.warmup, args.repeats)
        throughput = {c.name: c.flops / timed[c.name]['spread'].median_s / 1e9 for c in configs}
        for c in configs:
            spread: Spread = timed[c.name]['spread']
            gflops = throughput[c.name]
            rows.append({
                'config': c.name, 'frames': frames, 'times_s': list(spread.times_s),
                'median_s': spread.median_s, 'min_s': spread.min_s, 'iqr_s': spread.iqr_s,
                'iqr_fraction': spread.iqr_fraction, 'too_noisy': spread.too_noisy,
                'gflop': c.flops / 1e9, 'gflop_by_child': {k: v / 1e9 for k, v in
                                                           c.by_child.items()},
                'gflops': gflops, 'limit': c.limit_key or None,
                'fraction_of_limit': gflops / throughput[c.limit_key] if c.limit_key else None,
                'peak_rss_gib': rss_bytes() / 2**30 + timed[c.name]['forward_extra_rss_gib'],
                **{k: v for k, v in timed[c.name].items() if k != 'spread'},
            })
            print(f'  {c.name:18s} S={frames}: median {spread.median_s:.3f} s', flush=True)
        outputs = {c.name: c.first_output for c in configs}
        if 'ours/mapping-int8' in outputs:
            errors.append({'frames': frames, **output_error(
                outputs['ours/mapping-int8'], outputs['ours/mapping'], image_hw)})
        del configs, outputs
        gc.collect()
    return rows, errors


def _timing_table(rows: list[dict[str, Any]], device: torch.device) -> str:
    lines = [f"{'config':18s} {'S':>2s} {'median s':>9s} {'min s':>8s} {'IQR %':>6s} "
             f"{'GFLOP':>7s} {'GFLOP/s':>8s} {'% limit':>8s} {'peak GiB':>9s}"]
    for r in rows:
        peak = r['cuda_max_allocated_gib'] if device.type == 'cuda' else r['peak_rss_gib']
        iqr = '-' if r['iqr_fraction'] is None else f"{100 * r['iqr_fraction']:.1f}"
        fraction = ('-' if r['fraction_of_limit'] is None
                    else f"{100 * r['fraction_of_limit']:.1f}")
        lines.append(f"{r['config']:18s} {r['frames']:2d} {r['median_s']:9.3f} "
                     f"{r['min_s']:8.3f} {iqr:>6s} {r['gflop']:7.1f} "
                     f"{r['gflops']:8.1f} {fraction:>8s} {peak:9.2f}"
                     + ('  (IQR > 10 %)' if r['too_noisy'] else ''))
    return '\n'.join(lines)


def _ratio_lines(rows: list[dict[str, Any]], smoke: bool) -> list[str]:
    by = {(r['config'], r['frames']): r for r in rows}
    frames = sorted({r['frames'] for r in rows})
    lines = []

    def compare(label: str, test: str, base: str) -> None:
        for s in frames:
            if (test, s) in by and (base, s) in by:
                a, b = by[test, s], by[base, s]
                resolved = difference_resolved(Spread(tuple(a['times_s'])),
                                               Spread(tuple(b['times_s'])))
                verdict = {True: 'difference larger than the two IQRs together',
                           False: 'WITHIN THE SPREAD: not resolved, rerun with more repeats',
                           None: f'spread unknown with < {MIN_TIMINGS_FOR_SPREAD} repeats'}
                lines.append(f'{label} S={s}: {a["median_s"] / b["median_s"]:.2f} '
                             f'(medians {a["median_s"]:.3f} / {b["median_s"]:.3f} s; '
                             f'{verdict[resolved]})')

    if any(r['config'] == 'reference/all' for r in rows):
        compare('ours/all ÷ reference/all', 'ours/all', 'reference/all')
        compare('ours/mapping ÷ reference/all', 'ours/mapping', 'reference/all')
    else:
        lines.append('reference not measured (package `vggt` not importable'
                     + (', or smoke run)' if smoke else ')'))
        if not smoke:
            orientation = ', '.join(f'S={s}: {TIMING_MD_REFERENCE_ALL_S[s]} s' for s in frames
                                    if s in TIMING_MD_REFERENCE_ALL_S)
            lines.append(f'  orientation only, another machine and run (TIMING.md, reference '
                         f'all heads, AMD EPYC, 2 threads, torch 2.14.1): {orientation}')
    compare('int8 ÷ fp32 time (mapping heads)', 'ours/mapping-int8', 'ours/mapping')
    return lines


def _error_table(errors: list[dict[str, Any]]) -> str:
    lines = ['int8 vs fp32 output, same input (ours/mapping-int8 against ours/mapping):',
             f"{'S':>2s} {'depth |Δd|/d median':>20s} {'p99':>9s} {'max':>9s} "
             f"{'rot ° max':>10s} {'centre/med.depth':>17s} {'focal rel':>10s}"]
    for e in errors:
        lines.append(f"{e['frames']:2d} {e['depth_rel_median']:20.2e} {e['depth_rel_p99']:9.2e} "
                     f"{e['depth_rel_max']:9.2e} {e['rotation_deg_max']:10.3f} "
                     f"{e['centre_err_of_median_depth_max']:17.2e} {e['focal_rel_max']:10.2e}")
    lines.append('(synthetic weights: indicative only; real weights have outlier activations '
                 'that per-tensor int8 handles worse)')
    return '\n'.join(lines)


def _machine_name(device: torch.device) -> str:
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            found = re.search(r'model name\s*:\s*(.+)', Path('/proc/cpuinfo').read_text())
            name = found.group(1) if found else name
        except OSError:
            pass
        name = f'{name}-{os.cpu_count()}cpu'
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')[:60]


def _metadata(device: torch.device, dtype: torch.dtype,
              args: argparse.Namespace) -> dict[str, object]:
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
        'dirty': bool(git('status', '--porcelain', '--', '../vggt_mapper', '.')),
        'torch': torch.__version__,
        'python': platform.python_version(),
        'device': str(device),
        'device_name': _machine_name(device),
        'cpu_capability': torch.backends.cpu.get_cpu_capability(),
        'isa_limit': args.isa,
        'dtype': str(dtype).removeprefix('torch.'),
        'threads': torch.get_num_threads(),
        'image_hw': list(SMOKE_HW if args.smoke else (HEIGHT, WIDTH)),
        'num_queries': NUM_QUERIES,
        'warmup': args.warmup,
        'repeats': args.repeats,
        'gemm_mnk': list(GEMM_MNK),
        'gemm_calls': _gemm_calls(args),
        'weights': 'synthetic vggt-synth-v1 (meaningless geometry)',
        'config': 'tiny' if args.smoke else 'vggt-1b',
    }


def _gemm_calls(args: argparse.Namespace) -> int:
    return 1 if args.smoke else GEMM_CALLS


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or '').strip().splitlines()[0])
    parser.add_argument('--frames', type=int, nargs='+', default=None,
                        help='frame counts S (default 1 2, plus 4 8 on GPU)')
    parser.add_argument('--repeats', type=int, default=None,
                        help='timed runs per configuration (default 5; smoke 1)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed runs first, >= 1 (the first one counts the FLOPs)')
    parser.add_argument('--device', default='auto', help="'auto', 'cpu' or 'cuda[:N]'")
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--isa', choices=('native', 'avx2'), default='native',
                        help='avx2: limit ATen, MKL, oneDNN and fbgemm to AVX2 (re-executes)')
    parser.add_argument('--smoke', action='store_true',
                        help='tiny model, one repeat, seconds: checks that the benchmark runs '
                             '(figures mean nothing)')
    parser.add_argument('--no-int8', action='store_true', help='skip the int8 configuration')
    parser.add_argument('--no-reference', action='store_true',
                        help='skip the reference package even if importable')
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results')
    parser.add_argument('--machine', default=None, help='machine name for the JSON file name')
    args = parser.parse_args(argv)
    if args.warmup < 1:
        parser.error('--warmup must be >= 1: the first untimed run counts the FLOPs')
    if args.repeats is None:
        args.repeats = 1 if args.smoke else 5
    if args.repeats < 1:
        parser.error('--repeats must be >= 1')
    return args


def _limit_isa(isa: str) -> None:
    """Re-execute this process with the libraries limited to AVX2, unless they already are."""
    if isa != 'avx2' or all(os.environ.get(k) == v for k, v in AVX2_ENV.items()):
        return
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_ENV})


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark: print the tables, write the JSON."""
    args = _parse(argv)
    _limit_isa(args.isa)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = select_device_and_dtype(args.device)
    if args.frames is None:
        args.frames = [1, 2] if device.type == 'cpu' or args.smoke else [1, 2, 4, 8]
    torch.manual_seed(SEED)
    print(f'VGGT {"tiny (smoke run: figures mean nothing)" if args.smoke else "1B"} forward, '
          f'device {device} ({dtype}, CPU kernels {torch.backends.cpu.get_cpu_capability()}'
          f'{", ISA limited to AVX2" if args.isa == "avx2" else ""}), '
          f'{torch.get_num_threads()} threads', flush=True)
    meta = _metadata(device, dtype, args)  # the code and machine as they are at the start
    rows, errors = run(args, device, dtype)
    print(_timing_table(rows, device))
    print(f'(GFLOP counted from the model; limit/*: {_gemm_calls(args)} products '
          f'{GEMM_MNK[0]}×{GEMM_MNK[1]} @ {GEMM_MNK[1]}×{GEMM_MNK[2]} per call, timed in the '
          f'same turns; % limit: of the float GEMM, for int8 of the int8 Linear)')
    for line in _ratio_lines(rows, args.smoke):
        print(line)
    for r in rows:
        if r['config'] == 'ours/mapping':
            split = ', '.join(f'{child} {100 * gflop / r["gflop"]:.1f} %'
                              for child, gflop in r['gflop_by_child'].items())
            print(f"FLOP split, ours/mapping S={r['frames']}: {split}")
    noisy = [f"{r['config']} S={r['frames']}" for r in rows if r['too_noisy']]
    if noisy:
        print(f'WARNING: IQR > {SPREAD_LIMIT:.0%} of the median for {", ".join(noisy)}: the '
              f'machine was busy or the repeats too few; rerun at a quiet moment with more '
              f'--repeats before quoting these')
    if errors:
        print(_error_table(errors))
    machine = args.machine or str(meta['device_name'])
    suite = f'{SUITE}-smoke' if args.smoke else SUITE
    isa = '-avx2' if args.isa == 'avx2' else ''
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f'{suite}--{machine}--{device.type}{isa}.json'
    tmp = path.with_suffix('.json.tmp')
    tmp.write_text(json.dumps({'metadata': meta, 'results': rows, 'int8_error': errors},
                              indent=1) + '\n')
    tmp.replace(path)
    print(f'wrote {path}')


if __name__ == '__main__':
    main()
