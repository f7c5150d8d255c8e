"""VGGT aggregator: per-frame DINO patch tokens refined by alternating frame/global attention."""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

import torch
from torch import nn
import torch.nn.functional as F

from vggt_mapper.model.config import AggregatorConfig
from vggt_mapper.model.dino import DinoVisionTransformer
from vggt_mapper.model.layers.block import Block
from vggt_mapper.model.layers.rope import patch_positions, RotaryPositionEmbedding2D

__all__ = ['Aggregated', 'Aggregator', 'pool_frame_descriptors']

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class Aggregated(NamedTuple):
    """
    What the aggregator computes for B sequences of S frames.

    :param layers: per depth i, [B, S, P, 2·dim] = channel concat of frame block i's and global
        block i's outputs (None for depths that were not kept), P = patch_start_idx + h·w.
    :param patch_start_idx: index of the first patch token in P (camera and register tokens
        come first).
    :param frame_descriptors: [B, S, dim] float32 L2-normalised mean of each frame's DINO patch
        tokens (see :func:`pool_frame_descriptors`).
    """

    layers: list[torch.Tensor | None]
    patch_start_idx: int
    frame_descriptors: torch.Tensor


def pool_frame_descriptors(patch_tokens: torch.Tensor) -> torch.Tensor:
    """
    Pool each frame's DINO patch tokens into one global descriptor for place recognition.

    Mean pooling, not GeM: the tokens leave DINO's final LayerNorm signed, and GeM's p-th power
    needs non-negative inputs (clamping them would drop half of each channel's range); the
    mean is GeM with p = 1. The tokens come from ``patch_embed``, before any cross-frame
    attention, so a frame's descriptor does not depend on the other frames of its window.

    :param patch_tokens: [N, h·w, dim] patch tokens of N frames (any float dtype).
    :return: [N, dim] float32, each row of unit L2 norm.
    """
    return F.normalize(patch_tokens.float().mean(dim=1), dim=-1)


def _per_frame_tokens(token: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """Expand a [1, 2, n, C] token: slot 0 for each sequence's first frame, slot 1 for the rest."""
    first = token[:, 0:1].expand(batch, 1, *token.shape[2:])
    others = token[:, 1:].expand(batch, frames - 1, *token.shape[2:])
    return torch.cat([first, others], dim=1).reshape(batch * frames, *token.shape[2:])


class Aggregator(nn.Module):
    """
    Alternating-attention transformer over the frames of a sequence.

    :param config: architecture numbers.
    """

    def __init__(self, config: AggregatorConfig) -> None:
        super().__init__()
        if config.depth % config.aa_block_size:
            raise ValueError(f'aggregator depth {config.depth} is not a multiple of '
                             f'aa_block_size {config.aa_block_size}')
        if sorted(config.aa_order) != ['frame', 'global']:
            raise ValueError(f'aa_order must hold frame and global once each, got '
                             f'{config.aa_order}')
        if config.rope_freq <= 0:
            raise ValueError(f'rope_freq must be > 0 (got {config.rope_freq}): VGGT needs RoPE')
        self.config = config
        self.patch_size = config.patch_size
        self.patch_start_idx = 1 + config.num_register_tokens
        dim = config.embed_dim
        # Parameters first (state-dict order): camera token, then register tokens.
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, dim))
        self.register_token = nn.Parameter(torch.zeros(1, 2, config.num_register_tokens, dim))
        self.patch_embed = DinoVisionTransformer(config.patch_embed)
        self.rope = RotaryPositionEmbedding2D(frequency=config.rope_freq)

        def make_block() -> Block:
            return Block(dim, config.num_heads, mlp_ratio=config.mlp_ratio,
                         qkv_bias=config.qkv_bias, proj_bias=config.proj_bias,
                         ffn_bias=config.ffn_bias, init_values=config.init_values,
                         norm_eps=config.norm_eps, qk_norm=config.qk_norm, rope=self.rope)

        self.frame_blocks = nn.ModuleList([make_block() for _ in range(config.depth)])
        self.global_blocks = nn.ModuleList([make_block() for _ in range(config.depth)])
        self._resnet_mean: torch.Tensor
        self._resnet_std: torch.Tensor
        self.register_buffer('_resnet_mean', torch.empty(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer('_resnet_std', torch.empty(1, 1, 3, 1, 1), persistent=False)
        self.reset_buffers()

    def reset_buffers(self, device: torch.device | str | None = None) -> None:
        """
        (Re)create the non-persistent ImageNet mean/std buffers (they are not in the state dict).

        Needed after ``to_empty()`` or ``load_state_dict(assign=True)`` of a model built on the
        meta device.

        :param device: device of the buffers (default: that of ``camera_token``, or the CPU if
            it is on the meta device).
        """
        if device is None:
            device = self.camera_token.device
            if device.type == 'meta':
                device = 'cpu'
        self._resnet_mean = torch.tensor(_IMAGENET_MEAN, device=device).view(1, 1, 3, 1, 1)
        self._resnet_std = torch.tensor(_IMAGENET_STD, device=device).view(1, 1, 3, 1, 1)

    def forward(self, images: torch.Tensor, keep_layers: Collection[int] | None = None,
                ) -> Aggregated:
        """
        Aggregate a batch of frame sequences.

        :param images: RGB in [0, 1], [B, S, 3, H, W], H and W multiples of the patch size.
        :param keep_layers: depths whose output is kept (None: all); the others are None in
            the list, which saves memory when the heads read only a few layers.
        :return: ``(layers, patch_start_idx, frame_descriptors)`` (see :class:`Aggregated`);
            the descriptors cost one mean over patch tokens already in memory.
        :raises ValueError: for a wrong shape or a size that is not a multiple of the patch.
        """
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(f'images must be [B, S, 3, H, W], got {list(images.shape)}')
        batch, frames, _, height, width = images.shape
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f'image size {height}x{width} (HxW) is not a multiple of the '
                             f'patch size {self.patch_size}; resize or crop it first')
        images = (images - self._resnet_mean) / self._resnet_std
        patches = self.patch_embed(images.reshape(batch * frames, 3, height, width))
        descriptors = pool_frame_descriptors(patches).reshape(batch, frames, -1)
        tokens = torch.cat([_per_frame_tokens(self.camera_token, batch, frames),
                            _per_frame_tokens(self.register_token, batch, frames),
                            patches], dim=1)
        num_tokens, dim = tokens.shape[1:]
        pos = patch_positions(batch * frames, height // self.patch_size,
                              width // self.patch_size, self.patch_start_idx, images.device)
        # Gather the RoPE tables once for all blocks (the same positions in every frame).
        head_dim = dim // self.config.num_heads
        pos_frame = self.rope.tables(pos, head_dim)
        pos_global = self.rope.tables(pos.reshape(batch, frames * num_tokens, 2), head_dim)
        output: list[torch.Tensor | None] = []
        step = self.config.aa_block_size
        for start in range(0, self.config.depth, step):
            inter: dict[str, list[torch.Tensor]] = {}
            for kind in self.config.aa_order:
                outs = []
                if kind == 'frame':
                    tokens = tokens.reshape(batch * frames, num_tokens, dim)
                    blocks, p = self.frame_blocks, pos_frame
                else:
                    tokens = tokens.reshape(batch, frames * num_tokens, dim)
                    blocks, p = self.global_blocks, pos_global
                for i in range(start, start + step):
                    tokens = blocks[i](tokens, pos=p)
                    outs.append(tokens.reshape(batch, frames, num_tokens, dim))
                inter[kind] = outs
            for frame_out, global_out in zip(inter['frame'], inter['global'], strict=True):
                keep = keep_layers is None or len(output) in keep_layers
                output.append(torch.cat([frame_out, global_out], dim=-1) if keep else None)
        return Aggregated(output, self.patch_start_idx, descriptors)
