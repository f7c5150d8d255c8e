"""Pre-norm transformer block with LayerScale, shared by DINO, aggregator and camera head."""

from __future__ import annotations

import torch
from torch import nn

from vggt_mapper.model.layers.attention import Attention
from vggt_mapper.model.layers.layer_scale import LayerScale
from vggt_mapper.model.layers.mlp import Mlp
from vggt_mapper.model.layers.rope import RotaryPositionEmbedding2D, RotaryTables

__all__ = ['Block']


class Block(nn.Module):
    """
    ``x = x + ls1(attn(norm1(x), pos)); x = x + ls2(mlp(norm2(x)))``.

    The reference's DINO, aggregator and camera-trunk blocks differ only in these arguments:
    LayerNorm eps (1e-6 in DINO, 1e-5 elsewhere), qk-norm and RoPE (aggregator only).

    :param dim: model width.
    :param num_heads: attention heads.
    :param mlp_ratio: MLP hidden width / ``dim``.
    :param qkv_bias: bias on the qkv projection.
    :param proj_bias: bias on the attention output projection.
    :param ffn_bias: biases in the MLP.
    :param init_values: LayerScale initial value; None disables LayerScale (no ``gamma`` keys).
    :param norm_eps: eps of every LayerNorm in the block (incl. q/k norms).
    :param qk_norm: per-head LayerNorm on q and k.
    :param rope: 2-D RoPE for q and k, or None.
    """

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, proj_bias: bool = True, ffn_bias: bool = True,
                 init_values: float | None = None, norm_eps: float = 1e-5,
                 qk_norm: bool = False, rope: RotaryPositionEmbedding2D | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias,
                              qk_norm=qk_norm, norm_eps=norm_eps, rope=rope)
        self.ls1: nn.Module = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), bias=ffn_bias)
        self.ls2: nn.Module = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: torch.Tensor,
                pos: torch.Tensor | RotaryTables | None = None) -> torch.Tensor:
        """
        Apply the block.

        :param x: tokens [B, N, dim].
        :param pos: integer (row, col) positions [B, N, 2] (or their RoPE tables), or None.
        :return: tokens [B, N, dim].
        """
        x = x + self.ls1(self.attn(self.norm1(x), pos=pos))
        out: torch.Tensor = x + self.ls2(self.mlp(self.norm2(x)))
        return out
