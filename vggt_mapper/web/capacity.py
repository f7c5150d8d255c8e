"""
How many frames one model pass may hold on this server: the frame limit per pass.

An image set up to this size is reconstructed in one pass, like the official demo does; a larger
one is ordered by similarity and mapped in windows of this size. The limit is the memory a pass
may use divided by the memory one frame costs:

* **memory a pass may use**: on CUDA, ``CUDA_MEMORY_FRACTION`` of the device's free memory once
  the model is loaded (``torch.cuda.mem_get_info``); on the CPU (and MPS, which shares it),
  ``CPU_MEMORY_FRACTION`` of the memory the kernel reports available (``MemAvailable``), less a
  fixed part per pass;
* **memory per frame**: measured with ``benchmarks/pass_memory.py`` (peak RSS of one
  ``VGGTPredictor.predict`` in a fresh process, line fitted over 1–8 frames of 392×518 model
  pixels, fp32 on the CPU), scaled to the largest model image (518×518) so that portrait photos
  fit too. The same figure is used on CUDA: there the aggregator runs under bf16/fp16 autocast,
  which stores its activations at half the size, so it is an upper bound (the reference
  implementation's README gives about 0.2 GB per frame for its aggregator on an H100).

A predictor that is not this project's VGGT (a remote server, a custom one) has no device
here: its limit is the engine's window size. ``--frames-per-pass`` overrides all of this.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
import os
from typing import Any

__all__ = [
    'CPU_MEMORY_FRACTION',
    'CUDA_MEMORY_FRACTION',
    'PassCapacity',
    'PassCost',
    'available_cpu_bytes',
    'derive_pass_capacity',
]

_LOG = logging.getLogger(__name__)

GIB = 2 ** 30
CPU_MEMORY_FRACTION = 0.5
"""Share of the available RAM one pass may take (scenes, uploads, other programs: the rest)."""
CUDA_MEMORY_FRACTION = 0.8
"""Share of the free GPU memory one pass may take (the allocator needs some slack)."""
_MEASURED_PIXELS = 392 * 518
_LARGEST_PIXELS = 518 * 518
MAX_FRAMES_PER_PASS = 1000
"""Upper bound whatever the memory (the engine's per-window bookkeeping is not free either)."""


@dataclass(frozen=True)
class PassCost:
    """
    Memory of one model pass of S frames: ``fixed_bytes + S * bytes_per_frame``.

    :param bytes_per_frame: per frame of 392×518 model pixels.
    :param fixed_bytes: independent of S (heads' buffers, allocator slack).
    :param source: how it was measured.
    """

    bytes_per_frame: float
    fixed_bytes: float
    source: str


# Measured with benchmarks/pass_memory.py --frames 1 2 4 8 [--points] [--config tiny] (2-core AMD
# EPYC, torch 2.13 CPU, fp32, 392x518 model images; results in benchmarks/results/pass_memory--*).
# VGGT-1B per frame: 0.54, 0.77, 1.14, 2.07 GiB for 1, 2, 4, 8 frames (linear: the CPU attention
# kernel does not store the attention matrix). The point head adds little.
PASS_COSTS: dict[tuple[str, bool], PassCost] = {
    ('vggt-1b', False): PassCost(0.2172 * GIB, 0.312 * GIB, 'pass_memory.py, S = 1, 2, 4, 8'),
    ('vggt-1b', True): PassCost(0.2214 * GIB, 0.319 * GIB, 'pass_memory.py --points, S = 2, 4'),
    ('tiny', False): PassCost(0.0679 * GIB, 0.030 * GIB, 'pass_memory.py --config tiny'),
    ('tiny', True): PassCost(0.0661 * GIB, 0.053 * GIB, 'pass_memory.py --config tiny --points'),
}


@dataclass(frozen=True)
class PassCapacity:
    """
    The frame limit per pass and how it was obtained.

    :param frames: most frames in one model pass (>= 2).
    :param basis: a sentence for the log and the page (device, memory, cost per frame).
    """

    frames: int
    basis: str


def available_cpu_bytes() -> int:
    """
    Return the memory the kernel says can be used without swapping (``MemAvailable``).

    :return: bytes; on systems without ``/proc/meminfo``, the free physical pages.
    """
    try:
        with open('/proc/meminfo', encoding='ascii') as meminfo:
            for line in meminfo:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE'))


def _frames_for(budget_bytes: float, cost: PassCost) -> int:
    per_frame = cost.bytes_per_frame * _LARGEST_PIXELS / _MEASURED_PIXELS
    return int(max(2, min(MAX_FRAMES_PER_PASS, (budget_bytes - cost.fixed_bytes) // per_frame)))


def _vggt_parts(predictor: object) -> tuple[Any, str, bool] | None:
    """Return ``(torch device, model name, computes points)`` of a VGGT predictor, else None."""
    device = getattr(predictor, 'device', None)
    config = getattr(getattr(predictor, 'model', None), 'config', None)
    if device is None or config is None or not hasattr(device, 'type'):
        return None
    return device, str(getattr(config, 'name', 'vggt-1b')), bool(
        getattr(predictor, 'compute_points', False))


def derive_pass_capacity(predictor: object, fallback_frames: int) -> PassCapacity:
    """
    Derive the frame limit per pass from the predictor's device and model.

    :param predictor: the server's predictor (a ``VGGTPredictor`` has a device and a model).
    :param fallback_frames: the limit for predictors without a device here (remote, custom):
        the engine's window size.
    :return: the limit and its basis.
    """
    parts = _vggt_parts(predictor)
    if parts is None:
        return PassCapacity(max(2, fallback_frames), f'{fallback_frames} frames (the window '
                            'size: this predictor has no device here)')
    device, name, points = parts
    cost = PASS_COSTS.get((name, points), PASS_COSTS[('vggt-1b', points)])
    if device.type == 'cuda':
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        budget = CUDA_MEMORY_FRACTION * free
        where = f'{device}: {free / GIB:.1f} GiB free × {CUDA_MEMORY_FRACTION:g}'
    else:
        available = available_cpu_bytes()
        budget = CPU_MEMORY_FRACTION * available
        where = f'{device.type}: {available / GIB:.1f} GiB available × {CPU_MEMORY_FRACTION:g}'
    frames = _frames_for(budget, cost)
    per_frame = cost.bytes_per_frame * _LARGEST_PIXELS / _MEASURED_PIXELS
    basis = (f'{frames} frames ({where}, {name} at {per_frame / GIB:.2f} GiB per 518×518 frame '
             f'+ {cost.fixed_bytes / GIB:.2f} GiB per pass)')
    _LOG.info('frames per model pass: %s', basis)
    return PassCapacity(frames, basis)
