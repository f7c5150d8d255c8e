"""Small building blocks of VGGT, each named after what it computes (timm's ``layers``)."""

from __future__ import annotations

from vggt_mapper.model.layers.attention import Attention, set_fused_attn, use_fused_attn
from vggt_mapper.model.layers.block import Block
from vggt_mapper.model.layers.layer_scale import LayerScale
from vggt_mapper.model.layers.mlp import Mlp
from vggt_mapper.model.layers.patch_embed import PatchEmbed
from vggt_mapper.model.layers.pos_embed import sincos_embed_1d, uv_grid, uv_sincos_embed
from vggt_mapper.model.layers.rope import (
    patch_positions,
    RotaryPositionEmbedding2D,
    RotaryTables,
)

__all__ = [
    'Attention',
    'Block',
    'LayerScale',
    'Mlp',
    'PatchEmbed',
    'RotaryPositionEmbedding2D',
    'RotaryTables',
    'patch_positions',
    'set_fused_attn',
    'sincos_embed_1d',
    'use_fused_attn',
    'uv_grid',
    'uv_sincos_embed',
]
