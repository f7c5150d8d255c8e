"""Camera head: iterative refinement of the per-frame pose encoding ``absT_quaR_FoV``."""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from vggt_mapper.model.config import CameraHeadConfig
from vggt_mapper.model.layers.block import Block
from vggt_mapper.model.layers.mlp import Mlp

__all__ = ['CameraHead', 'activate_pose']

# Pose encoding: translation (3) | quaternion x, y, z, w (4) | fov_h, fov_w in radians (2).
POSE_ENCODING_DIM = 9


def _activate(x: torch.Tensor, name: str) -> torch.Tensor:
    if name == 'linear':
        return x
    if name == 'relu':
        return F.relu(x)
    if name == 'exp':
        return torch.exp(x)
    if name == 'inv_log':
        return torch.sign(x) * torch.expm1(torch.abs(x))
    raise ValueError(f'unknown pose activation {name!r}; use linear, relu, exp or inv_log')


def activate_pose(raw: torch.Tensor, trans_act: str = 'linear', quat_act: str = 'linear',
                  fl_act: str = 'relu') -> torch.Tensor:
    """
    Activate a raw pose encoding part by part.

    :param raw: raw encoding [..., 9] = translation | quaternion (xyzw) | FoV (h, w).
    :param trans_act: activation of the translation.
    :param quat_act: activation of the quaternion.
    :param fl_act: activation of the field of view (ReLU in VGGT).
    :return: activated encoding [..., 9].
    """
    return torch.cat([_activate(raw[..., :3], trans_act), _activate(raw[..., 3:7], quat_act),
                      _activate(raw[..., 7:], fl_act)], dim=-1)


class CameraHead(nn.Module):
    """
    Predict one pose encoding per frame from the last aggregator layer's camera tokens.

    Each iteration modulates the (fixed, normalized) camera tokens with adaLN conditioned on the
    current raw pose estimate, runs a small transformer across frames and adds a pose delta.

    :param config: architecture numbers.
    """

    def __init__(self, config: CameraHeadConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.dim_in
        # The only direct parameter: first in the state dict.
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_ENCODING_DIM))
        self.trunk = nn.Sequential(*[
            Block(dim, config.num_heads, mlp_ratio=config.mlp_ratio,
                  init_values=config.init_values, norm_eps=1e-5)
            for _ in range(config.trunk_depth)])
        self.token_norm = nn.LayerNorm(dim)
        self.trunk_norm = nn.LayerNorm(dim)
        self.embed_pose = nn.Linear(POSE_ENCODING_DIM, dim)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))
        self.adaln_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim, dim // 2, POSE_ENCODING_DIM)

    def forward(self, aggregated_tokens_list: list[torch.Tensor],
                num_iterations: int | None = None,
                deltas: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """
        Refine the pose encodings.

        :param aggregated_tokens_list: aggregator output; the camera token of the last layer,
            ``[:, :, 0]`` [B, S, dim_in], is used.
        :param num_iterations: refinement steps (default from the config, 4).
        :param deltas: if given, each iteration's raw pose delta [B, S, 9] is appended to it
            (for inspection and tests).
        :return: the activated pose encoding [B, S, 9] after every iteration.
        """
        iterations = self.config.num_iterations if num_iterations is None else num_iterations
        tokens = self.token_norm(aggregated_tokens_list[-1][:, :, 0])
        batch, frames, _ = tokens.shape
        raw: torch.Tensor | None = None
        out: list[torch.Tensor] = []
        for _ in range(iterations):
            if raw is None:
                cond = self.embed_pose(self.empty_pose_tokens.expand(batch, frames, -1))
            else:
                # The *raw* (pre-activation) accumulated pose is fed back, without gradient.
                cond = self.embed_pose(raw.detach())
            shift, scale, gate = self.poseLN_modulation(cond).chunk(3, dim=-1)
            x = gate * (self.adaln_norm(tokens) * (1 + scale) + shift) + tokens
            x = self.trunk(x)
            delta = self.pose_branch(self.trunk_norm(x))
            if deltas is not None:
                deltas.append(delta)
            raw = delta if raw is None else raw + delta
            out.append(activate_pose(raw, self.config.trans_act, self.config.quat_act,
                                     self.config.fl_act))
        return out
