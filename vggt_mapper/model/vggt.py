"""VGGT: aggregator plus camera, depth, point and track heads, with a typed output."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from vggt_mapper.model.aggregator import Aggregator
from vggt_mapper.model.config import VGGTConfig
from vggt_mapper.model.heads.camera_head import CameraHead
from vggt_mapper.model.heads.dpt_head import DPTHead
from vggt_mapper.model.heads.track_head import TrackHead

__all__ = ['HEAD_NAMES', 'MAPPING_HEADS', 'VGGT', 'VGGTOutput']

HEAD_NAMES = frozenset({'camera', 'depth', 'point', 'track'})
# What the mapper needs: poses and depth (points are unprojected from depth).
MAPPING_HEADS = frozenset({'camera', 'depth'})


@dataclass(frozen=True)
class VGGTOutput:
    """
    Predictions of one forward pass; a field is None when its head did not run.

    Shapes use B sequences of S frames of H×W pixels and N query points. Pose encodings are
    ``absT_quaR_FoV``: camera-from-world translation (3) | quaternion x, y, z, w (4) |
    fov_h, fov_w in radians (2), in the first frame's camera coordinates, up to scale.

    :param pose_enc: final pose encoding [B, S, 9].
    :param pose_enc_list: pose encoding after each refinement iteration, each [B, S, 9].
    :param depth: depth along the camera z axis [B, S, H, W, 1] (same unknown scale).
    :param depth_conf: depth confidence [B, S, H, W] (> 1).
    :param world_points: point-head points in the first camera's frame [B, S, H, W, 3].
    :param world_points_conf: point confidence [B, S, H, W] (> 1).
    :param track: final tracks, pixel (x, y) [B, S, N, 2]; ``track[:, 0]`` are the queries.
    :param vis: visibility probability [B, S, N].
    :param conf: track confidence probability [B, S, N].
    :param images: the (batched) input images [B, S, 3, H, W], RGB in [0, 1].
    :param frame_descriptors: one global descriptor per frame for place recognition [B, S, C]
        float32, L2-normalised: the mean of the frame's DINO patch tokens, C = DINO's embed_dim
        (1024 for VGGT-1B). Filled on every forward (it costs one mean over tokens already in
        memory); it depends on the frame only, not on the other frames of its window.
    """

    pose_enc: torch.Tensor | None = None
    pose_enc_list: list[torch.Tensor] | None = None
    depth: torch.Tensor | None = None
    depth_conf: torch.Tensor | None = None
    world_points: torch.Tensor | None = None
    world_points_conf: torch.Tensor | None = None
    track: torch.Tensor | None = None
    vis: torch.Tensor | None = None
    conf: torch.Tensor | None = None
    images: torch.Tensor | None = None
    frame_descriptors: torch.Tensor | None = None


class VGGT(nn.Module):
    """
    Visual Geometry Grounded Transformer (Wang et al., CVPR 2025), checkpoint-compatible.

    Children, in state-dict order: ``aggregator``, ``camera_head``, ``point_head``,
    ``depth_head``, ``track_head`` (a disabled head is None and has no keys).

    :param config: architecture (default VGGT-1B).
    """

    def __init__(self, config: VGGTConfig | None = None) -> None:
        super().__init__()
        config = config or VGGTConfig()
        self.config = config
        self.aggregator = Aggregator(config.aggregator)
        self.camera_head = CameraHead(config.camera) if config.enable_camera else None
        self.point_head = DPTHead(config.point) if config.enable_point else None
        self.depth_head = DPTHead(config.depth) if config.enable_depth else None
        self.track_head = TrackHead(config.track) if config.enable_track else None
        # Keep every aggregator layer's output, not only those the selected heads read (for
        # inspection; costs [B, S, P, 2·dim] per layer).
        self.keep_all_layers = False

    @property
    def enabled_heads(self) -> frozenset[str]:
        """Return the names of the heads this model has."""
        present = {'camera': self.camera_head, 'depth': self.depth_head,
                   'point': self.point_head, 'track': self.track_head}
        return frozenset(name for name, head in present.items() if head is not None)

    def _select_heads(self, heads: Collection[str] | None, has_queries: bool) -> frozenset[str]:
        if heads is None:
            selected = set(self.enabled_heads)
            if not has_queries:
                selected.discard('track')
            return frozenset(selected)
        selected = set(heads)
        unknown = selected - HEAD_NAMES
        if unknown:
            raise ValueError(f'unknown heads {sorted(unknown)}; choose from {sorted(HEAD_NAMES)}')
        missing = selected - self.enabled_heads
        if missing:
            raise ValueError(f'heads {sorted(missing)} are disabled in this model '
                             f'(enabled: {sorted(self.enabled_heads)})')
        if 'track' in selected and not has_queries:
            raise ValueError("the 'track' head needs query_points")
        return frozenset(selected)

    def _layers_read(self, selected: frozenset[str]) -> set[int]:
        config = self.config
        depth = config.aggregator.depth
        layers: set[int] = set()
        if 'camera' in selected:
            layers.add(depth - 1)
        if 'depth' in selected:
            layers.update(config.depth.intermediate_layer_idx)
        if 'point' in selected:
            layers.update(config.point.intermediate_layer_idx)
        if 'track' in selected:
            layers.update(config.track.extractor_layer_idx)
        return {i % depth for i in layers}  # negative indices count from the end

    def forward(self, images: torch.Tensor, query_points: torch.Tensor | None = None, *,
                heads: Collection[str] | None = None) -> VGGTOutput:
        """
        Predict cameras, depth, points and tracks for one or more frame sequences.

        Camera, depth and point heads run in float32 with autocast disabled, whatever autocast
        the caller set (the reference does the same); the aggregator and track head follow it.

        :param images: RGB in [0, 1], [S, 3, H, W] or [B, S, 3, H, W]; H and W multiples of 14.
        :param query_points: pixel (x, y) in frame 0, [N, 2] or [B, N, 2], or None.
        :param heads: subset of ``{'camera', 'depth', 'point', 'track'}`` to run; None runs
            every enabled head (track only when query points are given).
        :return: the predictions; fields of heads that did not run are None.
        :raises ValueError: for bad shapes or a head that is unknown, disabled or lacks queries.
        """
        if images.dim() == 4:
            images = images.unsqueeze(0)
        if images.dim() != 5:
            raise ValueError(f'images must be [S, 3, H, W] or [B, S, 3, H, W], '
                             f'got {list(images.shape)}')
        if query_points is not None:
            if query_points.dim() == 2:
                query_points = query_points.unsqueeze(0)
            if (query_points.dim() != 3 or query_points.shape[-1] != 2
                    or query_points.shape[0] != images.shape[0]):
                raise ValueError(f'query_points must be [N, 2] or [B, N, 2] pixel (x, y) with '
                                 f'B = {images.shape[0]}, got {list(query_points.shape)}')
        selected = self._select_heads(heads, query_points is not None)

        aggregated = self.aggregator(
            images, keep_layers=None if self.keep_all_layers else self._layers_read(selected))
        patch_start_idx = aggregated.patch_start_idx
        # Only the layers that the selected heads read are filled in.
        tokens = cast(list[torch.Tensor], aggregated.layers)
        fields: dict[str, object] = {'images': images,
                                     'frame_descriptors': aggregated.frame_descriptors}
        with torch.autocast(device_type=images.device.type, enabled=False):
            if 'camera' in selected:
                assert self.camera_head is not None
                pose_enc_list = self.camera_head(tokens)
                fields['pose_enc'] = pose_enc_list[-1]
                fields['pose_enc_list'] = pose_enc_list
            if 'depth' in selected:
                assert self.depth_head is not None
                fields['depth'], fields['depth_conf'] = self.depth_head(
                    tokens, images, patch_start_idx)
            if 'point' in selected:
                assert self.point_head is not None
                fields['world_points'], fields['world_points_conf'] = self.point_head(
                    tokens, images, patch_start_idx)
        if 'track' in selected:
            assert self.track_head is not None and query_points is not None
            track_list, fields['vis'], fields['conf'] = self.track_head(
                tokens, images, patch_start_idx, query_points)
            fields['track'] = track_list[-1]
        return VGGTOutput(**fields)  # type: ignore[arg-type]

    @torch.inference_mode()
    def infer(self, images: torch.Tensor, query_points: torch.Tensor | None = None, *,
              heads: Collection[str] | None = None,
              autocast_dtype: torch.dtype | None = None) -> VGGTOutput:
        """
        Run :meth:`forward` for inference: ``torch.inference_mode()``, optional autocast.

        :param images: RGB in [0, 1], [S, 3, H, W] or [B, S, 3, H, W], on the model's device.
        :param query_points: pixel (x, y) in frame 0, [N, 2] or [B, N, 2], or None.
        :param heads: heads to run (see :meth:`forward`), e.g. :data:`MAPPING_HEADS`.
        :param autocast_dtype: run the aggregator (and track head) under autocast in this dtype,
            e.g. bfloat16 on CUDA (see ``select_device_and_dtype``); None or float32: no autocast.
        :return: the predictions (inference tensors: clone them to modify in place).
        """
        enabled = autocast_dtype is not None and autocast_dtype != torch.float32
        with torch.autocast(device_type=images.device.type, dtype=autocast_dtype,
                            enabled=enabled):
            out: VGGTOutput = self(images, query_points, heads=heads)
        return out
