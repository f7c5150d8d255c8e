"""VGGT's tracking head: a feature-only DPT extractor followed by the iterative tracker."""

from __future__ import annotations

import torch
from torch import nn

from vggt_mapper.model.config import DPTHeadConfig, TrackHeadConfig
from vggt_mapper.model.heads.dpt_head import DPTHead
from vggt_mapper.model.track.correlation import min_feature_map_size
from vggt_mapper.model.track.tracker import TrackerPredictor

__all__ = ['TrackHead']

# The feature extractor outputs maps at half the image resolution.
EXTRACTOR_DOWN_RATIO = 2


class TrackHead(nn.Module):
    """
    Track query points of frame 0 through every frame of a sequence.

    ``feature_extractor`` turns aggregated tokens into dense feature maps [B, S, C, H/2, W/2];
    ``tracker`` refines the tracks on them for ``config.iters`` iterations.

    :param config: head architecture (``TrackHeadConfig()`` for VGGT-1B).
    :raises ValueError: if the tracker's latent size differs from the extractor's features, or the
        tracker stride differs from the extractor's down ratio.
    """

    def __init__(self, config: TrackHeadConfig | None = None) -> None:
        super().__init__()
        config = config or TrackHeadConfig()
        if config.latent_dim != config.features:
            raise ValueError(
                f'TrackHeadConfig.latent_dim ({config.latent_dim}) must equal features '
                f"({config.features}): the tracker reads the extractor's feature maps")
        if config.stride != EXTRACTOR_DOWN_RATIO:
            raise ValueError(
                f"TrackHeadConfig.stride ({config.stride}) must equal the feature extractor's "
                f'down ratio ({EXTRACTOR_DOWN_RATIO})')
        self.config = config
        self.feature_extractor = DPTHead(DPTHeadConfig(
            dim_in=config.dim_in, patch_size=config.patch_size, features=config.features,
            feature_only=True, down_ratio=EXTRACTOR_DOWN_RATIO, pos_embed=False,
            out_channels=config.extractor_out_channels,
            intermediate_layer_idx=config.extractor_layer_idx))
        self.tracker = TrackerPredictor(
            stride=config.stride, corr_levels=config.corr_levels, corr_radius=config.corr_radius,
            latent_dim=config.latent_dim, hidden_size=config.hidden_size,
            depth=config.tracker_depth, num_heads=config.num_heads,
            num_virtual_tracks=config.num_virtual_tracks, mlp_ratio=config.mlp_ratio,
            max_scale=config.max_scale, predict_conf=config.predict_conf)

    @property
    def min_image_size(self) -> int:
        """Return the smallest image side (pixels) the correlation pyramid accepts."""
        return min_feature_map_size(self.config.corr_levels) * EXTRACTOR_DOWN_RATIO

    def forward(
        self,
        aggregated_tokens_list: list[torch.Tensor],
        images: torch.Tensor,
        patch_start_idx: int,
        query_points: torch.Tensor,
        iters: int | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """
        Track the query points.

        :param aggregated_tokens_list: aggregator outputs, each [B, S, P, dim_in].
        :param images: images [B, S, 3, H, W], RGB in [0, 1]; H and W multiples of the patch size
            and at least :attr:`min_image_size`.
        :param patch_start_idx: index of the first patch token in P.
        :param query_points: [B, N, 2], (x, y) pixel positions in frame 0.
        :param iters: refinement iterations (default ``config.iters``).
        :return: ``(track_list, vis, conf)``: one [B, S, N, 2] tensor of pixel (x, y) tracks per
            iteration (the last is final; frame 0 equals the queries), visibility [B, S, N] and
            confidence [B, S, N] (None if ``predict_conf`` is off), both after a sigmoid.
        :raises ValueError: if the images are smaller than :attr:`min_image_size` or the shapes
            are inconsistent.
        """
        height, width = images.shape[-2:]
        if min(height, width) < self.min_image_size:
            raise ValueError(
                f'images of {height}x{width} px are too small for tracking: with '
                f'{self.config.corr_levels} correlation levels both sides must be at least '
                f'{self.min_image_size} px; use larger images or no query points')
        fmaps = self.feature_extractor(aggregated_tokens_list, images, patch_start_idx)
        iters = self.config.iters if iters is None else iters
        out = self.tracker(query_points, fmaps, iters=iters)
        return out.track_list, out.vis, out.conf
