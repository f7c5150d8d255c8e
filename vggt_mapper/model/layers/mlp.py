"""Two-layer perceptron used by every transformer block and the camera head's pose branch."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ['Mlp']


class Mlp(nn.Module):
    """
    Linear → activation → Linear (timm/DINOv2 ``Mlp``; children ``fc1``, ``act``, ``fc2``).

    :param in_features: input channels.
    :param hidden_features: hidden channels (default ``in_features``).
    :param out_features: output channels (default ``in_features``).
    :param act_layer: activation module class, instantiated without arguments (exact-erf GELU
        by default, as in VGGT).
    :param bias: whether both linear layers have a bias.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: type[nn.Module] = nn.GELU,
        bias: bool = True,
    ) -> None:
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Apply the perceptron on the last dimension.

        :param x: tensor [..., in_features].
        :return: tensor [..., out_features].
        """
        out: torch.Tensor = self.fc2(self.act(self.fc1(x)))
        return out
