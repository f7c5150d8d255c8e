"""Per-channel learned residual scaling (CaiT / DINOv2 ``LayerScale``)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ['LayerScale']


class LayerScale(nn.Module):
    """
    Multiply the last dimension by a learned vector ``gamma``.

    :param dim: number of channels.
    :param init_values: initial value of every entry of ``gamma``.
    """

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Scale ``x``.

        :param x: tensor [..., dim].
        :return: ``x * gamma``.
        """
        return x * self.gamma
