"""Sine-cosine embeddings of the tracker: flow offsets and the 2-D feature-map position grid."""

from __future__ import annotations

import torch

__all__ = ['flow_embedding', 'sincos_position_grid']

# Frequency spacing of the flow embedding: channel pair k uses k * (FLOW_FREQ_SPAN / dim).
FLOW_FREQ_SPAN = 1000.0
# Base of the geometric frequencies of the 2-D position embedding (transformer style).
POSITION_FREQ_BASE = 10000.0


def flow_embedding(flows_xy: torch.Tensor, dim: int) -> torch.Tensor:
    """
    Embed 2-D flows with linearly spaced frequencies, sine and cosine interleaved.

    For each axis the ``dim`` channels are [sin(v·f_0), cos(v·f_0), sin(v·f_1), ...] with
    f_k = 2k · (1000 / dim), k = 0 .. dim/2 - 1 (linear, not geometric, frequencies); the x block
    comes first, then the y block. The frequencies and products are float32 (or the input's
    dtype if wider), like the reference.

    :param flows_xy: tensor [..., 2], offsets (x, y) in feature-map pixels.
    :param dim: channels per axis (even).
    :return: tensor [..., 2 * dim].
    :raises ValueError: if ``dim`` is odd or the last axis of ``flows_xy`` is not 2.
    """
    if dim % 2 != 0:
        raise ValueError(f'flow embedding dim must be even, got {dim}')
    if flows_xy.shape[-1] != 2:
        raise ValueError(
            f'flows must end in an (x, y) axis of size 2, got {tuple(flows_xy.shape)}')
    dtype = torch.promote_types(flows_xy.dtype, torch.float32)
    freqs = torch.arange(0, dim, 2, device=flows_xy.device, dtype=dtype) * (FLOW_FREQ_SPAN / dim)
    blocks = []
    for axis in range(2):
        angles = flows_xy[..., axis:axis + 1].to(dtype) * freqs  # [..., dim/2]
        # stack(..., -1) then flatten interleaves: even channel sin, odd channel cos.
        blocks.append(torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2))
    return torch.cat(blocks, dim=-1)


def sincos_position_grid(
    dim: int, height: int, width: int, *, device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """
    Build the 2-D sine-cosine position embedding of every pixel of a feature map.

    The first ``dim/2`` channels encode the column x, the last ``dim/2`` the row y; each block is
    [sin(p·w_j) for all j, then cos(p·w_j) for all j], with w_j = 1 / 10000^(j / (dim/4)),
    j = 0 .. dim/4 - 1. Computed in float64, then cast to ``dtype``.

    :param dim: embedding channels (a multiple of 4).
    :param height: map height H in pixels.
    :param width: map width W in pixels.
    :param device: device of the result.
    :param dtype: dtype of the result.
    :return: tensor [1, dim, H, W].
    :raises ValueError: if ``dim`` is not a multiple of 4.
    """
    if dim % 4 != 0:
        raise ValueError(f'2-D sin-cos embedding dim must be a multiple of 4, got {dim}')
    quarter = dim // 4
    omega = 1.0 / POSITION_FREQ_BASE ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64),
                            torch.arange(width, dtype=torch.float64), indexing='ij')
    blocks = []
    for pos in (xs, ys):
        angles = pos[..., None] * omega  # [H, W, dim/4]
        blocks.extend([angles.sin(), angles.cos()])
    grid = torch.cat(blocks, dim=-1).permute(2, 0, 1).unsqueeze(0)
    return grid.to(device=device, dtype=dtype)
