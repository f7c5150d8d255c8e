"""Pick the device and compute dtype for inference: CUDA bf16/fp16 when present, else CPU fp32."""

from __future__ import annotations

import torch

__all__ = ['select_device_and_dtype']


def select_device_and_dtype(device: str = 'auto') -> tuple[torch.device, torch.dtype]:
    """
    Resolve a device request into a device and the autocast dtype to run VGGT in.

    ``auto`` picks CUDA when available, else the CPU. On CUDA the dtype is bfloat16 on compute
    capability ≥ 8 (Ampere and newer) and float16 below, as the VGGT authors recommend; the
    camera/depth/point heads still run in float32 inside the model. The CPU runs float32.

    :param device: ``'auto'``, ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.
    :return: ``(device, dtype)``.
    :raises ValueError: for an unknown device string or CUDA requested without CUDA.
    """
    if device == 'auto':
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'") from err
    if resolved.type == 'cpu':
        return resolved, torch.float32
    if resolved.type != 'cuda':
        raise ValueError(f"unsupported device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'")
    if not torch.cuda.is_available():
        raise ValueError(f'device {device!r} requested but CUDA is not available '
                         "(torch.cuda.is_available() is False); use 'cpu' or 'auto'")
    major, _ = torch.cuda.get_device_capability(resolved)
    return resolved, torch.bfloat16 if major >= 8 else torch.float16
