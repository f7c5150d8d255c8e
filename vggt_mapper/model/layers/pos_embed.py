"""Fixed (non-learned) positional embeddings: the DPT heads' normalized UV sin-cos embedding."""

from __future__ import annotations

import torch

__all__ = ['sincos_embed_1d', 'uv_grid', 'uv_sincos_embed']


def sincos_embed_1d(embed_dim: int, pos: torch.Tensor, omega_0: float = 100.0) -> torch.Tensor:
    """
    Embed scalar positions as ``[sin(p·ω_j) for all j, cos(p·ω_j) for all j]``.

    ω_j = 1 / omega_0^(j / (embed_dim/2)), j = 0..embed_dim/2 − 1. Frequencies, products and
    sin/cos are computed in float64 (float32 on MPS, which has no float64), then cast to
    float32, like the reference.

    :param embed_dim: number of output channels (even).
    :param pos: positions, any shape; flattened.
    :param omega_0: base of the geometric frequency ladder.
    :return: float32 tensor [pos.numel(), embed_dim].
    """
    wide = torch.float32 if pos.device.type == 'mps' else torch.float64
    omega = torch.arange(embed_dim // 2, dtype=wide, device=pos.device)
    omega /= embed_dim / 2.0
    omega = 1.0 / omega_0**omega
    angles = pos.reshape(-1).to(wide)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).float()


def uv_grid(width: int, height: int, aspect_ratio: float, *, dtype: torch.dtype,
            device: torch.device) -> torch.Tensor:
    """
    Return a grid of normalized (u, v) coordinates whose diagonal has unit half-length.

    u spans ±(aspect/√(aspect²+1))·(width−1)/width, v spans ±(1/√(aspect²+1))·(height−1)/height.

    :param width: number of columns.
    :param height: number of rows.
    :param aspect_ratio: image width / height (of the *input image*, not of this grid).
    :param dtype: dtype of the coordinates (``linspace`` runs in it).
    :param device: device of the result.
    :return: tensor [height, width, 2] with (u, v) = (x, y) in the last dimension.
    """
    diag = (aspect_ratio**2 + 1.0) ** 0.5
    span_x = aspect_ratio / diag
    span_y = 1.0 / diag
    half_x = span_x * (width - 1) / width
    half_y = span_y * (height - 1) / height
    xs = torch.linspace(-half_x, half_x, steps=width, dtype=dtype, device=device)
    ys = torch.linspace(-half_y, half_y, steps=height, dtype=dtype, device=device)
    uu, vv = torch.meshgrid(xs, ys, indexing='xy')
    return torch.stack((uu, vv), dim=-1)


def uv_sincos_embed(width: int, height: int, channels: int, aspect_ratio: float, *,
                    dtype: torch.dtype, device: torch.device,
                    omega_0: float = 100.0) -> torch.Tensor:
    """
    Return the sin-cos embedding of :func:`uv_grid`: u in the first half of channels, v after.

    :param width: number of columns.
    :param height: number of rows.
    :param channels: number of channels (multiple of 4).
    :param aspect_ratio: image width / height.
    :param dtype: dtype in which the grid is laid out.
    :param device: device of the result.
    :param omega_0: frequency base.
    :return: float32 tensor [channels, height, width].
    """
    grid = uv_grid(width, height, aspect_ratio, dtype=dtype, device=device).reshape(-1, 2)
    emb = torch.cat([sincos_embed_1d(channels // 2, grid[:, 0], omega_0),
                     sincos_embed_1d(channels // 2, grid[:, 1], omega_0)], dim=-1)
    return emb.view(height, width, channels).permute(2, 0, 1)
