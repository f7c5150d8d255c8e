"""Multi-scale correlation between track features and feature maps, sampled around each track."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vggt_mapper.model.track.sampling import sample_bilinear

__all__ = ['CHUNK_ELEMENTS', 'CorrelationPyramid', 'min_feature_map_size']

# Upper bound on the values of one chunk's full-resolution correlation volume (B·S·n·H·W,
# 2^26 = 256 MiB in float32); more tracks are correlated chunk by chunk.
CHUNK_ELEMENTS = 2 ** 26


def min_feature_map_size(num_levels: int) -> int:
    """
    Return the smallest feature-map side that still has one pixel at the coarsest level.

    :param num_levels: pyramid levels (each a 2×2 average pool of the one before).
    :return: minimum height and width of the finest level, in pixels.
    """
    return int(2 ** (num_levels - 1))


class CorrelationPyramid:
    """
    Feature maps at ``num_levels`` scales, correlated with track features on demand.

    Level l is the finest map average-pooled 2×2 l times. Correlation volumes are computed level
    by level and sampled at once, so the full (N × H × W) volumes never coexist.

    :param fmaps: feature maps [B, S, C, H, W].
    :param num_levels: number of pyramid levels.
    :param radius: half-size r of the (2r+1)² sampling window, in pixels of each level.
    :raises ValueError: if the maps are too small for ``num_levels``.
    """

    def __init__(self, fmaps: torch.Tensor, num_levels: int, radius: int) -> None:
        height, width = fmaps.shape[-2:]
        min_side = min_feature_map_size(num_levels)
        if min(height, width) < min_side:
            raise ValueError(
                f'feature maps of {height}x{width} px are too small for a {num_levels}-level '
                f'correlation pyramid: both sides must be at least {min_side} px; use larger '
                f'images or fewer levels')
        self.num_levels = num_levels
        self.radius = radius
        batch, frames = fmaps.shape[:2]
        self.levels = [fmaps]
        for _ in range(num_levels - 1):
            coarse = F.avg_pool2d(self.levels[-1].flatten(0, 1), kernel_size=2, stride=2)
            self.levels.append(coarse.view(batch, frames, *coarse.shape[1:]))
        # Window offsets as (x, y) pairs, x-offset-major: entry (i, j) is (dx_i, dy_j), so the
        # flattened index is (dx + r) * (2r + 1) + (dy + r). The checkpoint's corr_mlp expects
        # this order (it is the transpose of a row-major patch).
        steps = torch.arange(-radius, radius + 1, device=fmaps.device, dtype=fmaps.dtype)
        dx, dy = torch.meshgrid(steps, steps, indexing='ij')
        self.offsets_xy = torch.stack([dx, dy], dim=-1)  # [2r+1, 2r+1, 2]

    @property
    def num_channels(self) -> int:
        """Return the number of correlation values per track and frame, L·(2r+1)²."""
        return self.num_levels * (2 * self.radius + 1) ** 2

    def sample(self, track_feats: torch.Tensor, coords_xy: torch.Tensor) -> torch.Tensor:
        """
        Correlate each track's features with its frame and sample a window around the track.

        Correlations are ⟨feature, map pixel⟩ / √C; at level l the window is centred on
        coords / 2^l, sampled bilinearly (corner-aligned) with zeros outside the map. Tracks are
        processed in chunks so that a chunk's full-resolution volume stays below
        ``CHUNK_ELEMENTS`` values.

        :param track_feats: tensor [B, S, N, C], per-frame features of each track.
        :param coords_xy: tensor [B, S, N, 2], track positions (x, y) in finest-level pixels.
        :return: tensor [B, S, N, L·(2r+1)²], level-major.
        """
        batch, frames, num_tracks = track_feats.shape[:3]
        height, width = self.levels[0].shape[-2:]
        chunk = max(1, CHUNK_ELEMENTS // (batch * frames * height * width))
        if num_tracks <= chunk:
            return self._sample_chunk(track_feats, coords_xy)
        return torch.cat([
            self._sample_chunk(track_feats[:, :, start:start + chunk],
                               coords_xy[:, :, start:start + chunk])
            for start in range(0, num_tracks, chunk)], dim=2)

    def _sample_chunk(self, track_feats: torch.Tensor, coords_xy: torch.Tensor) -> torch.Tensor:
        batch, frames, num_tracks, channels = track_feats.shape
        side = 2 * self.radius + 1
        offsets = self.offsets_xy.to(device=coords_xy.device, dtype=coords_xy.dtype)
        centres = coords_xy.reshape(batch * frames * num_tracks, 1, 1, 2)
        sampled = []
        for level, maps in enumerate(self.levels):
            height, width = maps.shape[-2:]
            corr = torch.matmul(track_feats, maps.flatten(3)) / math.sqrt(channels)
            corr = corr.reshape(batch * frames * num_tracks, 1, height, width)
            window = centres / (2 ** level) + offsets.view(1, side, side, 2)
            # Like the reference, a 1-pixel axis maps every coordinate onto its only pixel.
            values = sample_bilinear(corr, window, padding_mode='zeros')
            sampled.append(values.reshape(batch, frames, num_tracks, side * side))
        return torch.cat(sampled, dim=-1)
