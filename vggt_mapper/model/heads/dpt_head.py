"""
Dense Prediction Transformer (DPT) head: per-pixel maps from four aggregator layers.

Used three times in VGGT: the depth head (exp depth + confidence), the point head (world points
+ confidence) and, feature-only, the track head's feature extractor. Module and attribute names
(``projects``, ``resize_layers``, ``scratch.layerN_rn``, ``scratch.refinenetN``, ...) follow the
reference so that checkpoints load unchanged.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
import torch.nn.functional as F

from vggt_mapper.model.config import DPTHeadConfig
from vggt_mapper.model.layers.pos_embed import uv_sincos_embed

__all__ = ['DPTHead', 'FeatureFusionBlock', 'ResidualConvUnit', 'activate_dense']


class ResidualConvUnit(nn.Module):
    """
    Pre-activation residual unit: ``conv2(relu(conv1(relu(x)))) + relu(x)``.

    The skip connection adds relu(x), not x: the reference applies its ReLU in place to the
    input, and the checkpoints were trained with that behaviour, so it is reproduced here
    (without mutating the caller's tensor).

    :param features: number of channels.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Apply the unit.

        :param x: feature map [N, C, h, w].
        :return: feature map [N, C, h, w].
        """
        x = F.relu(x)
        out: torch.Tensor = self.conv2(F.relu(self.conv1(x), inplace=True))
        out += x
        return out


class FeatureFusionBlock(nn.Module):
    """
    RefineNet-style fusion: add the refined skip input, refine, resize, project 1×1.

    :param features: number of channels.
    :param has_residual: whether a skip input is fused (``resConfUnit1``); the deepest block
        has none.
    """

    def __init__(self, features: int, has_residual: bool = True) -> None:
        super().__init__()
        # Registration order fixes the state-dict order: out_conv first, as in the reference.
        self.out_conv = nn.Conv2d(features, features, kernel_size=1, stride=1, padding=0)
        self.has_residual = has_residual
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        """
        Fuse and upsample.

        :param x: coarser feature map [N, C, h, w].
        :param skip: same-resolution skip feature map [N, C, h, w] (only with a residual).
        :param size: output (height, width); None doubles the resolution.
        :return: feature map [N, C, *size].
        """
        if self.has_residual:
            if skip is None:
                raise ValueError('FeatureFusionBlock with a residual unit needs a skip input')
            res = self.resConfUnit1(skip)
            res += x
            x = res
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2.0, mode='bilinear', align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode='bilinear', align_corners=True)
        out: torch.Tensor = self.out_conv(x)
        return out


class _Scratch(nn.Module):
    """Container holding the DPT decoder's layers under the reference's ``scratch.*`` names."""

    def __init__(self, in_channels: tuple[int, int, int, int], features: int,
                 feature_only: bool, output_dim: int) -> None:
        super().__init__()

        def project(channels: int) -> nn.Conv2d:
            return nn.Conv2d(channels, features, kernel_size=3, stride=1, padding=1, bias=False)

        self.layer1_rn = project(in_channels[0])
        self.layer2_rn = project(in_channels[1])
        self.layer3_rn = project(in_channels[2])
        self.layer4_rn = project(in_channels[3])
        self.refinenet1 = FeatureFusionBlock(features)
        self.refinenet2 = FeatureFusionBlock(features)
        self.refinenet3 = FeatureFusionBlock(features)
        self.refinenet4 = FeatureFusionBlock(features, has_residual=False)
        if feature_only:
            self.output_conv1 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1)
            self.output_conv2: nn.Sequential | None = None
        else:
            hidden = features // 2
            self.output_conv1 = nn.Conv2d(features, hidden, kernel_size=3, stride=1, padding=1)
            self.output_conv2 = nn.Sequential(
                nn.Conv2d(hidden, 32, kernel_size=3, stride=1, padding=1),
                nn.ReLU(),
                nn.Conv2d(32, output_dim, kernel_size=1, stride=1, padding=0),
            )


@functools.lru_cache(maxsize=16)
def _scaled_uv_embed(width: int, height: int, channels: int, aspect_ratio: float,
                     dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """0.1 × the UV sin-cos embedding [C, h, w], cached: it depends on shapes only."""
    # A normal (not inference-mode) tensor, so the cached value also serves autograd callers.
    with torch.inference_mode(False), torch.no_grad():
        return uv_sincos_embed(width, height, channels, aspect_ratio, dtype=dtype,
                               device=device) * 0.1


def _inverse_log(y: torch.Tensor) -> torch.Tensor:
    return torch.sign(y) * torch.expm1(torch.abs(y))


def activate_dense(out: torch.Tensor, activation: str,
                   conf_activation: str) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Split a raw DPT output into activated predictions and confidence (last channel).

    :param out: raw output [N, C, H, W].
    :param activation: one of ``exp``, ``inv_log``, ``norm_exp``, ``norm``, ``relu``,
        ``sigmoid``, ``linear``.
    :param conf_activation: one of ``expp1`` (1 + exp), ``expp0`` (exp), ``sigmoid``.
    :return: predictions [N, H, W, C−1] and confidence [N, H, W].
    :raises ValueError: for an unknown activation name.
    """
    fmap = out.permute(0, 2, 3, 1)
    values, conf = fmap[..., :-1], fmap[..., -1]
    if activation == 'exp':
        preds = torch.exp(values)
    elif activation == 'inv_log':
        preds = _inverse_log(values)
    elif activation == 'norm_exp':
        norm = values.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        preds = values / norm * torch.expm1(norm)
    elif activation == 'norm':
        preds = values / values.norm(dim=-1, keepdim=True)
    elif activation == 'relu':
        preds = F.relu(values)
    elif activation == 'sigmoid':
        preds = torch.sigmoid(values)
    elif activation == 'linear':
        preds = values
    else:
        raise ValueError(f'unknown DPT activation {activation!r}')
    if conf_activation == 'expp1':
        conf = 1 + conf.exp()
    elif conf_activation == 'expp0':
        conf = conf.exp()
    elif conf_activation == 'sigmoid':
        conf = torch.sigmoid(conf)
    else:
        raise ValueError(f'unknown DPT confidence activation {conf_activation!r}')
    return preds, conf


class DPTHead(nn.Module):
    """
    DPT head over the aggregator's token list.

    :param config: head configuration (channels, selected layers, activations, ...).
    """

    def __init__(self, config: DPTHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_size = config.patch_size
        self.intermediate_layer_idx = tuple(config.intermediate_layer_idx)
        self.feature_only = config.feature_only
        self.down_ratio = config.down_ratio
        self.use_pos_embed = config.pos_embed
        oc = config.out_channels
        self.norm = nn.LayerNorm(config.dim_in)
        self.projects = nn.ModuleList(
            [nn.Conv2d(config.dim_in, c, kernel_size=1, stride=1, padding=0) for c in oc])
        # ×4, ×2, ×1, ×½ of the patch grid; Identity has no keys (index 2 is absent on disk).
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4, padding=0),
            nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2, padding=0),
            nn.Identity(),
            nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
        ])
        self.scratch = _Scratch(oc, config.features, config.feature_only, config.output_dim)

    def forward(self, aggregated_tokens_list: list[torch.Tensor], images: torch.Tensor,
                patch_start_idx: int, frames_chunk_size: int | None = 8,
                ) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        """
        Predict dense maps, processing at most ``frames_chunk_size`` frames at a time.

        :param aggregated_tokens_list: per aggregator layer, tokens [B, S, P, dim_in].
        :param images: input images [B, S, 3, H, W] (only their shape is used).
        :param patch_start_idx: index of the first patch token in P.
        :param frames_chunk_size: frames per chunk (memory only); None or ≥ S: one pass.
        :return: ``(preds [B, S, H, W, C], conf [B, S, H, W])``, or with ``feature_only`` the
            features [B, S, features, H/down_ratio, W/down_ratio].
        """
        num_frames = images.shape[1]
        if frames_chunk_size is None or frames_chunk_size >= num_frames:
            return self._forward(aggregated_tokens_list, images, patch_start_idx, 0, num_frames)
        chunks = [self._forward(aggregated_tokens_list, images, patch_start_idx, start,
                                min(start + frames_chunk_size, num_frames))
                  for start in range(0, num_frames, frames_chunk_size)]
        if self.feature_only:
            return torch.cat(chunks, dim=1)  # type: ignore[arg-type]
        return (torch.cat([c[0] for c in chunks], dim=1),
                torch.cat([c[1] for c in chunks], dim=1))

    @staticmethod
    def _add_pos_embed(x: torch.Tensor, image_w: int, image_h: int) -> torch.Tensor:
        emb = _scaled_uv_embed(x.shape[-1], x.shape[-2], x.shape[1], image_w / image_h,
                               x.dtype, x.device)
        return x.add_(emb[None])  # x is a fresh conv/resize output: update it in place

    def _forward(self, tokens_list: list[torch.Tensor], images: torch.Tensor,
                 patch_start_idx: int, start: int, end: int,
                 ) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        batch, _, _, height, width = images.shape
        frames = end - start
        patch_h, patch_w = height // self.patch_size, width // self.patch_size
        features = []
        for i, layer_idx in enumerate(self.intermediate_layer_idx):
            x = tokens_list[layer_idx][:, start:end, patch_start_idx:]
            x = self.norm(x.reshape(batch * frames, -1, x.shape[-1]))
            x = x.permute(0, 2, 1).reshape(batch * frames, x.shape[-1], patch_h, patch_w)
            x = self.projects[i](x)
            if self.use_pos_embed:
                x = self._add_pos_embed(x, width, height)
            features.append(self.resize_layers[i](x))
        out = self._fuse(features)
        out = F.interpolate(out, size=(patch_h * self.patch_size // self.down_ratio,
                                       patch_w * self.patch_size // self.down_ratio),
                            mode='bilinear', align_corners=True)
        if self.use_pos_embed:
            out = self._add_pos_embed(out, width, height)
        if self.feature_only:
            return out.reshape(batch, frames, *out.shape[1:])
        assert self.scratch.output_conv2 is not None
        preds, conf = activate_dense(self.scratch.output_conv2(out), self.config.activation,
                                     self.config.conf_activation)
        return (preds.reshape(batch, frames, *preds.shape[1:]),
                conf.reshape(batch, frames, *conf.shape[1:]))

    def _fuse(self, features: list[torch.Tensor]) -> torch.Tensor:
        s = self.scratch
        l1 = s.layer1_rn(features[0])
        l2 = s.layer2_rn(features[1])
        l3 = s.layer3_rn(features[2])
        l4 = s.layer4_rn(features[3])
        out = s.refinenet4(l4, size=l3.shape[2:])
        out = s.refinenet3(out, l3, size=l2.shape[2:])
        out = s.refinenet2(out, l2, size=l1.shape[2:])
        out = s.refinenet1(out, l1)
        fused: torch.Tensor = s.output_conv1(out)
        return fused
