"""2-D rotary position embedding (RoPE) of the aggregator's attention, and patch positions."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ['RotaryPositionEmbedding2D', 'RotaryTables', 'patch_positions']


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


class RotaryTables:
    """
    Token positions with their cos/sin tables, gathered once per dtype and reused by all blocks.

    The tables are [B, 1, N, 2, d/4]: axis 3 is (row half, column half), the last axis the d/4
    frequencies shared by a rotation pair.

    :param rope: the embedding whose frequencies are used.
    :param pos: integer (row, col) positions [B, N, 2].
    :param head_dim: per-head feature size (divisible by 4).
    """

    def __init__(self, rope: RotaryPositionEmbedding2D, pos: torch.Tensor,
                 head_dim: int) -> None:
        if head_dim % 4:
            raise ValueError(f'2-D RoPE needs a head_dim divisible by 4, got {head_dim}')
        self.rope = rope
        self.pos = pos
        self.head_dim = head_dim
        self._tables: dict[torch.dtype, tuple[torch.Tensor, torch.Tensor]] = {}

    def get(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Return ``(cos, sin)`` for features of ``dtype`` (angles cast to it before cos/sin).

        :param dtype: the features' dtype.
        :return: the tables.
        """
        if dtype not in self._tables:
            self._tables[dtype] = self.rope.gather(self.pos, self.head_dim, dtype)
        return self._tables[dtype]


class RotaryPositionEmbedding2D(nn.Module):
    """
    Rotate per-head features by the token's row (first half) and column (second half).

    Each half of ``head_dim`` is rotated rotate-half style: dims i and i + d/4 of a half form a
    pair rotated by ``pos · base^(−2j/(head_dim/2))``, j = i mod d/4. Angles are computed in
    float32 and cast to the features' dtype before cos/sin, as in the reference; the rotation
    ``(a, b) → (a·cos − b·sin, b·cos + a·sin)`` gives the reference's values bit for bit.

    :param frequency: base of the frequency ladder (100 in VGGT).
    """

    def __init__(self, frequency: float = 100.0) -> None:
        super().__init__()
        self.base_frequency = frequency

    def gather(self, pos: torch.Tensor, head_dim: int,
               dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Return the cos/sin of every token's angles, [B, 1, N, 2 (row/col), head_dim/4].

        :param pos: integer (row, col) positions [B, N, 2].
        :param head_dim: per-head feature size.
        :param dtype: dtype in which the angles are taken before cos/sin (the features').
        :return: ``(cos, sin)``.
        """
        half = head_dim // 2
        exponents = torch.arange(0, half, 2, device=pos.device).float() / half
        inv_freq = 1.0 / (self.base_frequency**exponents)
        positions = torch.arange(int(pos.max()) + 1, device=pos.device, dtype=inv_freq.dtype)
        angles = (positions[:, None] * inv_freq[None, :]).to(dtype)
        cos_table, sin_table = angles.cos().to(dtype), angles.sin().to(dtype)
        return F.embedding(pos, cos_table)[:, None], F.embedding(pos, sin_table)[:, None]

    def tables(self, pos: torch.Tensor, head_dim: int) -> RotaryTables:
        """
        Wrap positions so that every block reuses the same gathered tables.

        :param pos: integer (row, col) positions [B, N, 2].
        :param head_dim: per-head feature size (divisible by 4).
        :return: the tables.
        """
        return RotaryTables(self, pos, head_dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | RotaryTables) -> torch.Tensor:
        """
        Apply the rotation.

        :param x: per-head features [B, heads, N, head_dim] (head_dim divisible by 4).
        :param pos: integer (row, col) positions [B, N, 2], or their precomputed
            :meth:`tables`.
        :return: rotated features, same shape and dtype as ``x``.
        """
        if isinstance(pos, torch.Tensor):
            pos = self.tables(pos, x.shape[-1])
        cos, sin = pos.get(x.dtype)
        quarter = x.shape[-1] // 4
        # [B, H, N, 2 halves, 2 quarters, d/4]: a = first quarter, b = second, of each half.
        parts = x.reshape(*x.shape[:-1], 2, 2, quarter)
        a, b = parts[..., 0, :], parts[..., 1, :]
        out = torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-2)
        return out.flatten(-3)
