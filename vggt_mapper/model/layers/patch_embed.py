"""Image to patch tokens: a strided convolution (ViT ``PatchEmbed``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ['PatchEmbed']


class PatchEmbed(nn.Module):
    """
    Split an image into non-overlapping patches and project each to ``embed_dim``.

    :param patch_size: patch side in pixels (kernel = stride).
    :param in_chans: input channels.
    :param embed_dim: output width.
    """

    def __init__(self, patch_size: int = 14, in_chans: int = 3, embed_dim: int = 1024) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Embed patches.

        :param x: images [N, C, H, W], H and W multiples of ``patch_size``.
        :return: tokens [N, (H/p)·(W/p), embed_dim], row-major.
        """
        tokens: torch.Tensor = self.proj(x)
        return tokens.flatten(2).transpose(1, 2)
