"""Multi-head self-attention with optional per-head QK LayerNorm and 2-D RoPE."""

from __future__ import annotations

import os

import torch
from torch import nn
import torch.nn.functional as F

from vggt_mapper.model.layers.rope import RotaryPositionEmbedding2D, RotaryTables

__all__ = ['Attention', 'set_fused_attn', 'use_fused_attn']

# One switch for every attention layer (like timm's ``use_fused_attn``): SDPA by default, the
# explicit softmax(qkᵀ)v path when VGGT_MAPPER_FUSED_ATTN=0 (e.g. to debug or compare).
_FUSED_ATTN = os.environ.get('VGGT_MAPPER_FUSED_ATTN', '1') != '0'


def use_fused_attn() -> bool:
    """
    Tell whether new and existing attention layers use ``F.scaled_dot_product_attention``.

    :return: the current setting.
    """
    return _FUSED_ATTN


def set_fused_attn(enabled: bool) -> None:
    """
    Switch every attention layer between SDPA and the explicit softmax path.

    :param enabled: True for SDPA.
    """
    global _FUSED_ATTN
    _FUSED_ATTN = enabled


class Attention(nn.Module):
    """
    Multi-head self-attention: qkv → heads → (q/k LayerNorm) → (RoPE) → softmax attention → proj.

    :param dim: model width.
    :param num_heads: number of heads (``dim`` divisible by it).
    :param qkv_bias: bias on the qkv projection.
    :param proj_bias: bias on the output projection.
    :param qk_norm: LayerNorm(head_dim) on q and k (VGGT aggregator).
    :param norm_eps: eps of the q/k LayerNorms.
    :param rope: 2-D RoPE applied to q and k after their norm, or None.
    """

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True,
                 proj_bias: bool = True, qk_norm: bool = False, norm_eps: float = 1e-5,
                 rope: RotaryPositionEmbedding2D | None = None) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'attention width {dim} is not divisible by {num_heads} heads')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm: nn.Module = (nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm
                                  else nn.Identity())
        self.k_norm: nn.Module = (nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm
                                  else nn.Identity())
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.rope = rope

    def forward(self, x: torch.Tensor,
                pos: torch.Tensor | RotaryTables | None = None) -> torch.Tensor:
        """
        Attend over the token dimension.

        :param x: tokens [B, N, dim].
        :param pos: integer (row, col) positions [B, N, 2], or their precomputed RoPE tables;
            required when RoPE is on.
        :return: tokens [B, N, dim].
        :raises ValueError: when RoPE is configured but no positions are given.
        """
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            if pos is None:
                raise ValueError('attention with RoPE needs token positions (pos=None given)')
            q, k = self.rope(q, pos), self.rope(k, pos)
        if _FUSED_ATTN:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            out = attn.softmax(dim=-1) @ v
        projected: torch.Tensor = self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))
        return projected
