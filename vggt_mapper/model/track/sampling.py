"""Bilinear sampling of feature maps at pixel coordinates (x, y), corner-aligned."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ['sample_bilinear', 'sample_point_features']


def sample_bilinear(
    maps: torch.Tensor, points_xy: torch.Tensor, padding_mode: str = 'border',
) -> torch.Tensor:
    """
    Sample maps bilinearly at pixel coordinates with corner alignment.

    Pixel centres sit at integer coordinates: x = 0 is the centre of the left column and
    x = W - 1 that of the right one (``grid_sample`` with ``align_corners=True``).

    :param maps: tensor [B, C, H, W].
    :param points_xy: tensor [B, H_out, W_out, 2] of (x, y) = (column, row) pixel coordinates.
    :param padding_mode: ``'border'`` (clamp) or ``'zeros'`` outside the map.
    :return: tensor [B, C, H_out, W_out] in the wider of the two input dtypes.
    """
    height, width = maps.shape[-2:]
    # Sample in the wider dtype: pixel coordinates in bfloat16 would be off by up to 0.5 px.
    dtype = torch.promote_types(maps.dtype, points_xy.dtype)
    maps = maps.to(dtype)
    points_xy = points_xy.to(device=maps.device, dtype=dtype)
    # On a 1-pixel axis grid_sample (align_corners=True) puts every coordinate on that pixel,
    # whatever the scale, so no zero padding happens there (the reference behaves the same);
    # max(.., 1) only avoids dividing by zero.
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)],
                         device=maps.device, dtype=dtype)
    grid = points_xy * scale - 1.0
    return F.grid_sample(maps, grid, mode='bilinear', padding_mode=padding_mode,
                         align_corners=True)


def sample_point_features(maps: torch.Tensor, points_xy: torch.Tensor) -> torch.Tensor:
    """
    Sample one feature vector per point (bilinear, corner-aligned, border padding).

    :param maps: tensor [B, C, H, W].
    :param points_xy: tensor [B, N, 2] of (x, y) pixel coordinates in the map.
    :return: tensor [B, N, C].
    """
    sampled = sample_bilinear(maps, points_xy.unsqueeze(2), padding_mode='border')  # [B, C, N, 1]
    return sampled.squeeze(3).transpose(1, 2)
