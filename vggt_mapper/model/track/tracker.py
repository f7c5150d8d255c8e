"""Iterative point tracker over dense feature maps (VGGT's tracker predictor)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vggt_mapper.model.layers.mlp import Mlp
from vggt_mapper.model.track.correlation import CorrelationPyramid
from vggt_mapper.model.track.embeddings import flow_embedding, sincos_position_grid
from vggt_mapper.model.track.sampling import sample_point_features
from vggt_mapper.model.track.update_former import EfficientUpdateFormer

__all__ = ['TrackerOutput', 'TrackerPredictor']


@dataclass(frozen=True)
class TrackerOutput:
    """
    Tracks of N query points through S frames, in input-image pixels.

    :param track_list: one [B, S, N, 2] tensor of (x, y) pixel positions per iteration; the last
        is the final answer. Frame 0 always equals the query points.
    :param vis: visibility probability [B, S, N] (after sigmoid).
    :param conf: confidence probability [B, S, N] (after sigmoid), None without a conf predictor.
    """

    track_list: list[torch.Tensor]
    vis: torch.Tensor
    conf: torch.Tensor | None


class TrackerPredictor(nn.Module):
    """
    Track query points of frame 0 through all frames by iterative refinement.

    Each iteration samples multi-scale correlations around the current positions, embeds the
    flow from frame 0, and lets an :class:`EfficientUpdateFormer` predict position and feature
    updates. Attribute names follow the reference ``BaseTrackerPredictor`` (checkpoint keys).

    :param stride: image pixels per feature-map pixel.
    :param corr_levels: correlation pyramid levels.
    :param corr_radius: correlation window half-size r ((2r+1)² samples per level).
    :param latent_dim: feature-map channels C (also the track-feature size).
    :param hidden_size: update-former and correlation-MLP hidden size.
    :param depth: update-former rounds (time blocks and space rounds).
    :param num_heads: update-former attention heads.
    :param num_virtual_tracks: update-former virtual tracks.
    :param mlp_ratio: update-former MLP ratio.
    :param max_scale: divisor of the raw flows appended to the flow embedding.
    :param predict_conf: whether to build a confidence predictor.
    :raises ValueError: if ``latent_dim`` is odd (the flow embedding needs C/2 even channels).
    """

    def __init__(
        self,
        stride: int = 2,
        corr_levels: int = 7,
        corr_radius: int = 4,
        latent_dim: int = 128,
        hidden_size: int = 384,
        depth: int = 6,
        num_heads: int = 8,
        num_virtual_tracks: int = 64,
        mlp_ratio: float = 4.0,
        max_scale: int = 518,
        predict_conf: bool = True,
    ) -> None:
        super().__init__()
        if latent_dim % 4 != 0:
            raise ValueError(f'latent_dim must be a multiple of 4, got {latent_dim}')
        self.stride = stride
        self.corr_levels = corr_levels
        self.corr_radius = corr_radius
        self.latent_dim = latent_dim
        self.max_scale = max_scale
        self.flows_emb_dim = latent_dim // 2
        # [flow embedding 2·(C/2) + 4 raw | correlation C | track features C]
        self.transformer_dim = 3 * latent_dim + 4
        corr_channels = corr_levels * (2 * corr_radius + 1) ** 2

        # Definition order = state-dict order of the reference.
        self.corr_mlp = Mlp(corr_channels, hidden_features=hidden_size, out_features=latent_dim)
        # Slot 0 marks the query frame, slot 1 every other frame.
        self.query_ref_token = nn.Parameter(torch.randn(1, 2, self.transformer_dim))
        self.updateformer = EfficientUpdateFormer(
            input_dim=self.transformer_dim, hidden_size=hidden_size, output_dim=latent_dim + 2,
            depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
            num_virtual_tracks=num_virtual_tracks)
        self.fmap_norm = nn.LayerNorm(latent_dim)
        self.ffeat_norm = nn.GroupNorm(1, latent_dim)
        self.ffeat_updater = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.GELU())
        self.vis_predictor = nn.Sequential(nn.Linear(latent_dim, 1))
        self.conf_predictor = (nn.Sequential(nn.Linear(latent_dim, 1)) if predict_conf else None)

    def forward(
        self, query_points: torch.Tensor, fmaps: torch.Tensor, iters: int = 4,
    ) -> TrackerOutput:
        """
        Track the query points.

        :param query_points: tensor [B, N, 2], (x, y) input-image pixels in frame 0.
        :param fmaps: feature maps [B, S, C, H, W] at 1/``stride`` of the image resolution.
        :param iters: refinement iterations (at least 1).
        :return: the tracks, visibility and confidence.
        :raises ValueError: on inconsistent shapes, ``iters`` < 1, or maps too small for the
            pyramid.
        """
        if query_points.ndim != 3 or query_points.shape[-1] != 2:
            raise ValueError(
                f'query_points must be [B, N, 2] (x, y), got {tuple(query_points.shape)}')
        if fmaps.ndim != 5 or fmaps.shape[2] != self.latent_dim:
            raise ValueError(f'fmaps must be [B, S, {self.latent_dim}, H, W], '
                             f'got {tuple(fmaps.shape)}')
        if fmaps.shape[0] != query_points.shape[0]:
            raise ValueError(f'batch size differs: query_points {query_points.shape[0]}, '
                             f'fmaps {fmaps.shape[0]}')
        if iters < 1:
            raise ValueError(f'iters must be at least 1, got {iters}')
        batch, num_points = query_points.shape[:2]
        frames, channels, height, width = fmaps.shape[1:]

        fmaps = self.fmap_norm(fmaps.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        pyramid = CorrelationPyramid(fmaps, self.corr_levels, self.corr_radius)

        queries = query_points / float(self.stride)  # feature-map pixels
        coords = queries.unsqueeze(1).repeat(1, frames, 1, 1)  # [B, S, N, 2]
        # Every frame's track features start as the query's feature in frame 0.
        query_feats = sample_point_features(fmaps[:, 0], queries)  # [B, N, C]
        track_feats = query_feats.unsqueeze(1).repeat(1, frames, 1, 1)  # [B, S, N, C]

        # Constant over iterations: the position embedding at the query, and the frame tokens.
        # Kept in at least float32 (as the reference does, also under autocast).
        position_grid = sincos_position_grid(
            self.transformer_dim, height, width, device=fmaps.device,
            dtype=torch.promote_types(fmaps.dtype, torch.float32))
        position = sample_point_features(position_grid.expand(batch, -1, -1, -1), queries)
        position = position.reshape(batch * num_points, 1, self.transformer_dim)
        frame_tokens = torch.cat(
            [self.query_ref_token[:, :1], self.query_ref_token[:, 1:].expand(-1, frames - 1, -1)],
            dim=1)

        track_list = []
        for _ in range(iters):
            coords = coords.detach()
            corr = pyramid.sample(track_feats, coords)  # [B, S, N, L·(2r+1)²]
            corr = corr.transpose(1, 2).reshape(batch * num_points, frames, pyramid.num_channels)
            corr = self.corr_mlp(corr)
            flows = (coords - coords[:, :1]).transpose(1, 2).reshape(batch * num_points, frames, 2)
            flow_feats = torch.cat([flow_embedding(flows, self.flows_emb_dim),
                                    flows / self.max_scale, flows / self.max_scale], dim=-1)
            feats = track_feats.transpose(1, 2).reshape(batch * num_points, frames, channels)
            x = torch.cat([flow_feats, corr, feats], dim=-1) + position
            x = x + frame_tokens.to(x.dtype)

            x = x.view(batch, num_points, frames, self.transformer_dim)
            delta = self.updateformer(x)  # [B, N, S, 2 + C]
            delta = delta.reshape(batch * num_points * frames, channels + 2)
            feats = feats.reshape(batch * num_points * frames, channels)
            feats = feats + self.ffeat_updater(self.ffeat_norm(delta[:, 2:]))
            track_feats = feats.view(batch, num_points, frames, channels).transpose(1, 2)
            coords = coords + delta[:, :2].view(batch, num_points, frames, 2).transpose(1, 2)
            # Frame 0 is the query frame: its position is given, not estimated.
            coords = torch.cat([queries.unsqueeze(1), coords[:, 1:]], dim=1)
            track_list.append(coords * self.stride)

        vis = torch.sigmoid(self.vis_predictor(track_feats).squeeze(-1))
        conf = None
        if self.conf_predictor is not None:
            conf = torch.sigmoid(self.conf_predictor(track_feats).squeeze(-1))
        return TrackerOutput(track_list=track_list, vis=vis, conf=conf)
