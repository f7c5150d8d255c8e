"""Attention blocks of the tracker's update-former, key-compatible with nn.MultiheadAttention."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from vggt_mapper.model.layers.mlp import Mlp

__all__ = ['CrossAttentionBlock', 'PackedMultiheadAttention', 'SelfAttentionBlock']


class PackedMultiheadAttention(nn.Module):
    """
    Multi-head attention with packed q/k/v input projection (batch-first).

    State-dict keys equal those of ``nn.MultiheadAttention`` with equal q/k/v dims:
    ``in_proj_weight`` [3C, C] (rows q, then k, then v), ``in_proj_bias`` [3C], ``out_proj``.
    Runs on ``F.scaled_dot_product_attention``.

    :param dim: model channels C.
    :param num_heads: heads; must divide ``dim``.
    :raises ValueError: if ``num_heads`` does not divide ``dim``.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f'attention dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise like ``nn.MultiheadAttention`` (Xavier weights, zero biases)."""
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        # [B, L, C] -> [B, heads, L, C/heads]
        batch, length, channels = x.shape
        return x.view(batch, length, self.num_heads, channels // self.num_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """
        Attend from ``query`` tokens to ``context`` tokens (the same tensor for self-attention).

        :param query: tensor [B, Lq, C].
        :param context: tensor [B, Lk, C], used as keys and values.
        :return: tensor [B, Lq, C].
        """
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = self._split_heads(F.linear(query, w_q, b_q))
        k = self._split_heads(F.linear(context, w_k, b_k))
        v = self._split_heads(F.linear(context, w_v, b_v))
        out = F.scaled_dot_product_attention(q, k, v)
        projected: torch.Tensor = self.out_proj(out.transpose(1, 2).flatten(2))
        return projected


class SelfAttentionBlock(nn.Module):
    """
    Self-attention block whose residual stream starts from the normalised input.

    ``x = norm1(x); x = x + attn(x); x = x + mlp(norm2(x))``. Unlike a usual pre-norm block the
    un-normalised input is dropped: the reference tracker does this, and its weights expect it.

    :param dim: channels C.
    :param num_heads: attention heads.
    :param mlp_ratio: MLP hidden size as a multiple of ``dim`` (exact-erf GELU).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn = PackedMultiheadAttention(dim, num_heads)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Apply the block.

        :param x: tokens [B, L, C].
        :return: tokens [B, L, C].
        """
        x = self.norm1(x)
        x = x + self.attn(x, x)
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out


class CrossAttentionBlock(nn.Module):
    """
    Cross-attention block: tokens attend to a normalised context, residual from normalised tokens.

    ``x = norm1(x); c = norm_context(c); x = x + cross_attn(x, c); x = x + mlp(norm2(x))``.

    :param dim: channels C of tokens and context.
    :param num_heads: attention heads.
    :param mlp_ratio: MLP hidden size as a multiple of ``dim`` (exact-erf GELU).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = PackedMultiheadAttention(dim, num_heads)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """
        Apply the block.

        :param x: tokens [B, Lq, C].
        :param context: tokens [B, Lk, C] to attend to.
        :return: tokens [B, Lq, C].
        """
        x = self.norm1(x)
        x = x + self.cross_attn(x, self.norm_context(context))
        out: torch.Tensor = x + self.mlp(self.norm2(x))
        return out
