"""
Choose the torch device and the autocast precision for VGGT inference.

Follows the VGGT README: bfloat16 autocast on CUDA devices of compute capability ≥ 8 (Ampere and
newer), float16 below, and plain float32 on the CPU (and MPS). The camera, depth and point heads
run in float32 whatever autocast says (the model disables it around them).
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
import re

import torch

from vggt_mapper.predictor.errors import PredictorSpecError

__all__ = ['DEVICE_PATTERN', 'autocast_context', 'select_device_and_dtype']

DEVICE_PATTERN = re.compile(r'^(auto|cpu|mps|cuda(:\d+)?)$')
"""Device names accepted by ``select_device_and_dtype``."""


def select_device_and_dtype(device: str = 'auto') -> tuple[torch.device, torch.dtype]:
    """
    Resolve a device name and pick the autocast dtype for it.

    :param device: ``'auto'`` (CUDA if available, else CPU), ``'cpu'``, ``'cuda'``,
        ``'cuda:N'`` or ``'mps'``.
    :return: ``(device, dtype)``: dtype is ``torch.bfloat16`` on CUDA with compute capability
        ≥ 8, ``torch.float16`` on older CUDA devices and ``torch.float32`` (no autocast) elsewhere.
    :raises PredictorSpecError: for an unknown name, or a CUDA/MPS device that is not available.
    """
    if not DEVICE_PATTERN.match(device):
        raise PredictorSpecError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', "
                                 f'got {device!r}')
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    resolved = torch.device(device)
    if resolved.type == 'cuda':
        if not torch.cuda.is_available():
            raise PredictorSpecError(f'device {device!r} was asked for but CUDA is not available '
                                     f"(torch {torch.__version__}); use device='cpu' or 'auto'")
        index = resolved.index if resolved.index is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise PredictorSpecError(f'device {device!r} does not exist: '
                                     f'{torch.cuda.device_count()} CUDA device(s) visible')
        major, _ = torch.cuda.get_device_capability(index)
        return resolved, torch.bfloat16 if major >= 8 else torch.float16
    if resolved.type == 'mps' and not torch.backends.mps.is_available():
        raise PredictorSpecError("device 'mps' was asked for but MPS is not available; "
                                 "use device='cpu'")
    return resolved, torch.float32


def autocast_context(device: torch.device, dtype: torch.dtype) -> AbstractContextManager[object]:
    """
    Return the autocast context for inference on ``device`` (none for float32).

    :param device: the inference device.
    :param dtype: the dtype from ``select_device_and_dtype``.
    :return: a context manager; ``torch.autocast`` for reduced precision, else a no-op.
    """
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
