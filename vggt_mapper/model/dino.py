"""DINOv2 vision transformer with register tokens: the aggregator's per-frame patch embedding."""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from vggt_mapper.model.config import DinoConfig
from vggt_mapper.model.layers.block import Block
from vggt_mapper.model.layers.patch_embed import PatchEmbed

__all__ = ['DinoVisionTransformer']


class DinoVisionTransformer(nn.Module):
    """
    ViT with a cls token, register tokens and an interpolated learned positional embedding.

    Parameter and child names (``cls_token``, ``pos_embed``, ``register_tokens``, ``mask_token``,
    ``patch_embed.proj``, ``blocks.N``, ``norm``) match DINOv2 so that VGGT checkpoints load.

    :param config: architecture numbers.
    """

    def __init__(self, config: DinoConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_size = config.patch_size
        self.num_register_tokens = config.num_register_tokens
        grid = config.img_size // config.patch_size
        dim = config.embed_dim
        # Parameter order = state-dict order: cls, pos, registers, mask.
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, config.num_register_tokens, dim))
        # Unused at inference (masked-image pre-training) but part of the checkpoint.
        self.mask_token = nn.Parameter(torch.zeros(1, dim))
        self.patch_embed = PatchEmbed(config.patch_size, 3, dim)
        self.blocks = nn.ModuleList([
            Block(dim, config.num_heads, mlp_ratio=config.mlp_ratio, qkv_bias=config.qkv_bias,
                  proj_bias=config.proj_bias, ffn_bias=config.ffn_bias,
                  init_values=config.init_values, norm_eps=config.norm_eps)
            for _ in range(config.depth)])
        self.norm = nn.LayerNorm(dim, eps=config.norm_eps)

    def interpolate_pos_encoding(self, grid_h: int, grid_w: int, dtype: torch.dtype,
                                 ) -> torch.Tensor:
        """
        Resize the learned patch positional embedding to a grid_h × grid_w patch grid.

        Bicubic (PIL-style, antialiased when configured) to an explicit output size, computed in
        float32; skipped only when the grid already has the stored square size.

        :param grid_h: patch rows.
        :param grid_w: patch columns.
        :param dtype: dtype of the result.
        :return: [1, 1 + grid_h·grid_w, embed_dim] with the cls position first.
        """
        stored = self.pos_embed.shape[1] - 1
        side = int(math.sqrt(stored))
        if grid_h == side and grid_w == side:
            return self.pos_embed
        pos = self.pos_embed.float()
        dim = pos.shape[-1]
        patch_pos = pos[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
        offset = self.config.interpolate_offset
        if offset:
            # DINOv2's original scale-factor form (VGGT passes offset 0 → explicit size).
            scale = ((grid_h + offset) / side, (grid_w + offset) / side)
            patch_pos = F.interpolate(patch_pos, scale_factor=scale, mode='bicubic',
                                      antialias=self.config.interpolate_antialias)
        else:
            patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode='bicubic',
                                      antialias=self.config.interpolate_antialias)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)
        return torch.cat((pos[:, :1], patch_pos), dim=1).to(dtype)

    def prepare_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """
        Embed patches, prepend cls, add positions, insert registers after cls.

        :param images: normalized images [N, 3, H, W].
        :return: tokens [N, 1 + registers + (H/p)·(W/p), embed_dim].
        """
        n, _, height, width = images.shape
        x = self.patch_embed(images)
        x = torch.cat((self.cls_token.expand(n, -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(height // self.patch_size,
                                              width // self.patch_size, x.dtype)
        return torch.cat((x[:, :1], self.register_tokens.expand(n, -1, -1), x[:, 1:]), dim=1)

    def forward_prenorm(self, images: torch.Tensor) -> torch.Tensor:
        """
        Run the blocks without the final norm.

        :param images: normalized images [N, 3, H, W].
        :return: tokens [N, 1 + registers + patches, embed_dim] (cls, registers, patches).
        """
        x = self.prepare_tokens(images)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """
        Return the normalized patch tokens (cls and register outputs are dropped).

        :param images: normalized images [N, 3, H, W], H and W multiples of the patch size.
        :return: patch tokens [N, (H/p)·(W/p), embed_dim], row-major.
        """
        x: torch.Tensor = self.norm(self.forward_prenorm(images))
        return x[:, 1 + self.num_register_tokens:]
