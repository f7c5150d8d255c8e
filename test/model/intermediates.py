"""Run VGGT once and capture the intermediates that the reference fixtures store."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vggt_mapper.model import VGGT, VGGTOutput

__all__ = ['Captured', 'run_with_intermediates']


@dataclass
class Captured:
    """One forward pass's output plus intermediates, all on the CPU."""

    output: VGGTOutput
    dino_normed: torch.Tensor | None = None  # final-norm DINO tokens [B·S, 1+reg+hw, C]
    dino_prenorm: torch.Tensor | None = None  # DINO tokens before the final norm
    aggregated: list[torch.Tensor] = field(default_factory=list)  # per layer [B, S, P, 2C]
    camera_deltas: list[torch.Tensor] = field(default_factory=list)  # per iteration [B, S, 9]
    track_list: list[torch.Tensor] = field(default_factory=list)  # per iteration [B, S, N, 2]
    track_fmaps: torch.Tensor | None = None  # [B, S, C, H/2, W/2]


def run_with_intermediates(model: VGGT, images: torch.Tensor,
                           query_points: torch.Tensor | None = None) -> Captured:
    """
    Run ``model(images, query_points)`` under inference mode with forward hooks recording.

    :param model: the model (eval mode).
    :param images: [S, 3, H, W] or [B, S, 3, H, W].
    :param query_points: [N, 2] or [B, N, 2], or None.
    :return: the output and the captured intermediates.
    """
    store: dict[str, object] = {'deltas': []}
    dino = model.aggregator.patch_embed

    def keep(name: str):  # noqa: ANN202 - hook factory
        def hook(module: torch.nn.Module, args: tuple, out: object) -> None:
            store[name] = out
        return hook

    def keep_prenorm(module: torch.nn.Module, args: tuple) -> None:
        store['dino_prenorm'] = args[0]

    def keep_delta(module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        store['deltas'].append(out)  # type: ignore[union-attr]

    handles = [dino.norm.register_forward_pre_hook(keep_prenorm),
               dino.norm.register_forward_hook(keep('dino_normed')),
               model.aggregator.register_forward_hook(keep('aggregator'))]
    if model.camera_head is not None:
        handles.append(model.camera_head.pose_branch.register_forward_hook(keep_delta))
    if model.track_head is not None:
        handles.append(model.track_head.register_forward_hook(keep('track')))
        handles.append(model.track_head.feature_extractor.register_forward_hook(keep('fmaps')))
    model.keep_all_layers = True
    try:
        with torch.inference_mode():
            output = model(images, query_points)
    finally:
        model.keep_all_layers = False
        for handle in handles:
            handle.remove()
    captured = Captured(output=output)
    captured.dino_normed = store.get('dino_normed')  # type: ignore[assignment]
    captured.dino_prenorm = store.get('dino_prenorm')  # type: ignore[assignment]
    captured.aggregated = store['aggregator'][0]  # type: ignore[index]
    captured.camera_deltas = store['deltas']  # type: ignore[assignment]
    if 'track' in store:
        captured.track_list = store['track'][0]  # type: ignore[index]
        captured.track_fmaps = store['fmaps']  # type: ignore[assignment]
    return captured
