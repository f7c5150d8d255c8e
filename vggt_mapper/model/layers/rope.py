"""2-D rotary position embedding (RoPE) of the aggregator's attention, and patch positions."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ['RotaryPositionEmbedding2D', 'patch_positions']


def patch_positions(batch: int, grid_h: int, grid_w: int, num_special: int,
                    device: torch.device) -> torch.Tensor:
    """
    Return integer (row, col) positions of a frame's tokens for :class:`RotaryPositionEmbedding2D`.

    Patches sit at (row + 1, col + 1) in row-major order; the ``num_special`` leading tokens
    (camera and registers) all sit at (0, 0).

    :param batch: number of frames (leading dimension of the result).
    :param grid_h: patch rows (H / patch size).
    :param grid_w: patch columns (W / patch size).
    :param num_special: number of tokens in front of the patches.
    :param device: device of the result.
    :return: int64 tensor [batch, num_special + grid_h·grid_w, 2] of (row, col).
    """
    rows = torch.arange(grid_h, device=device)
    cols = torch.arange(grid_w, device=device)
    grid = torch.cartesian_prod(rows, cols) + 1
    special = torch.zeros(num_special, 2, dtype=grid.dtype, device=device)
    return torch.cat([special, grid], dim=0)[None].expand(batch, -1, -1)


class RotaryPositionEmbedding2D(nn.Module):
    """
    Rotate per-head features by the token's row (first half) and column (second half).

    Each half of ``head_dim`` is rotated rotate-half style (dims i and i + d/4 form a pair)
    with angles ``pos · base^(−2j/(head_dim/2))``. Angles are computed in float32 and cast to
    the features' dtype before cos/sin, as in the reference.

    :param frequency: base of the frequency ladder (100 in VGGT).
    """

    def __init__(self, frequency: float = 100.0) -> None:
        super().__init__()
        self.base_frequency = frequency

    def _tables(self, dim: int, length: int, device: torch.device,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        exponents = torch.arange(0, dim, 2, device=device).float() / dim
        inv_freq = 1.0 / (self.base_frequency**exponents)
        positions = torch.arange(length, device=device, dtype=inv_freq.dtype)
        angles = (positions[:, None] * inv_freq[None, :]).to(dtype)
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos().to(dtype), angles.sin().to(dtype)

    @staticmethod
    def _rotate_half(x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

    def _rotate(self, x: torch.Tensor, pos: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor) -> torch.Tensor:
        cos_p = F.embedding(pos, cos)[:, None]
        sin_p = F.embedding(pos, sin)[:, None]
        return x * cos_p + self._rotate_half(x) * sin_p

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """
        Apply the rotation.

        :param x: per-head features [B, heads, N, head_dim] (head_dim divisible by 4).
        :param pos: integer (row, col) positions [B, N, 2].
        :return: rotated features, same shape and dtype as ``x``.
        """
        half = x.shape[-1] // 2
        cos, sin = self._tables(half, int(pos.max()) + 1, x.device, x.dtype)
        rows, cols = x.chunk(2, dim=-1)
        return torch.cat((self._rotate(rows, pos[..., 0], cos, sin),
                          self._rotate(cols, pos[..., 1], cos, sin)), dim=-1)
