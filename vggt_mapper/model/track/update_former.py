"""Transformer predicting per-iteration updates of all tracks (CoTracker-style update-former)."""

from __future__ import annotations

import torch
from torch import nn

from vggt_mapper.model.track.attention import CrossAttentionBlock, SelfAttentionBlock

__all__ = ['EfficientUpdateFormer']


class EfficientUpdateFormer(nn.Module):
    """
    Alternate attention over time (per track) and over tracks (per frame, via virtual tracks).

    Tokens [B, N, S, C_in] are normalised and projected to ``hidden_size``; ``num_virtual_tracks``
    learned tokens are appended to the N tracks. Each of ``depth`` rounds runs one time block over
    the S frames of every track, then one space round per frame: virtual tracks attend to the point
    tracks, to each other, and the point tracks attend to the virtual ones (O(N·V), not O(N²)).
    The virtual tracks are dropped, the projected input is added back, and an output LayerNorm and
    ``flow_head`` give the update.

    :param input_dim: input channels C_in.
    :param hidden_size: transformer channels.
    :param output_dim: output channels (2 coordinate deltas + feature deltas).
    :param depth: number of time blocks and of space rounds.
    :param num_heads: attention heads.
    :param mlp_ratio: MLP hidden size as a multiple of ``hidden_size``.
    :param num_virtual_tracks: learned virtual tracks.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_size: int,
        output_dim: int,
        depth: int = 6,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        num_virtual_tracks: int = 64,
    ) -> None:
        super().__init__()
        self.num_virtual_tracks = num_virtual_tracks
        self.input_norm = nn.LayerNorm(input_dim)
        self.input_transform = nn.Linear(input_dim, hidden_size)
        self.output_norm = nn.LayerNorm(hidden_size)
        self.flow_head = nn.Linear(hidden_size, output_dim)
        # 'virual' (sic): the checkpoint's key is spelt this way.
        self.virual_tracks = nn.Parameter(torch.randn(1, num_virtual_tracks, 1, hidden_size))
        self.time_blocks = nn.ModuleList(
            SelfAttentionBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth))
        self.space_virtual_blocks = nn.ModuleList(
            SelfAttentionBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth))
        # point2virtual: points (queries) read from virtual tracks; virtual2point: the reverse.
        self.space_point2virtual_blocks = nn.ModuleList(
            CrossAttentionBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth))
        self.space_virtual2point_blocks = nn.ModuleList(
            CrossAttentionBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """
        Predict the update of every track in every frame.

        :param tokens: tensor [B, N, S, input_dim] (tracks, then frames).
        :return: tensor [B, N, S, output_dim].
        """
        init = self.input_transform(self.input_norm(tokens))
        batch, num_points, frames, channels = init.shape
        virtual = self.virual_tracks.expand(batch, -1, frames, -1)
        x = torch.cat([init, virtual], dim=1)
        num_all = x.shape[1]
        for time_block, virtual_from_points, virtual_self, points_from_virtual in zip(
                self.time_blocks, self.space_virtual2point_blocks, self.space_virtual_blocks,
                self.space_point2virtual_blocks, strict=True):
            x = time_block(x.reshape(batch * num_all, frames, channels))
            # [B·(N+V), S, C] -> [B·S, N+V, C]
            x = x.view(batch, num_all, frames, channels).transpose(1, 2)
            x = x.reshape(batch * frames, num_all, channels)
            points, virtual = x[:, :num_points], x[:, num_points:]
            virtual = virtual_from_points(virtual, points)
            virtual = virtual_self(virtual)
            points = points_from_virtual(points, virtual)
            x = torch.cat([points, virtual], dim=1)
            x = x.view(batch, frames, num_all, channels).transpose(1, 2)
        x = x[:, :num_points] + init
        update: torch.Tensor = self.flow_head(self.output_norm(x))
        return update
