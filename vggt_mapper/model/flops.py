"""
Count the floating-point operations of a forward pass from the model itself.

``count_flops`` runs the forward under ``torch.utils.flop_counter.FlopCounterMode`` (one
multiply-add = 2 FLOPs, matrix products and convolutions; element-wise work is not counted), so
the figure follows the architecture, the input size and the heads actually run, with no hand
constant. Two formulas torch lacks are added: its CPU attention kernel
(``_scaled_dot_product_flash_attention_for_cpu``, otherwise counted as 0) and the dynamic int8
Linear (``quantized::linear_dynamic``, counted as the multiply-adds of the float Linear it
replaces, so int8 and float32 forwards report the same work).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import math
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

__all__ = ['FlopCount', 'count_flops']

T = TypeVar('T')


@dataclass(frozen=True)
class FlopCount:
    """
    Floating-point operations of one forward pass.

    :param total: all counted FLOPs (2 per multiply-add).
    :param by_child: FLOPs per top-level child module (e.g. ``aggregator``, ``depth_head``).
    """

    total: int
    by_child: dict[str, int]

    def share(self, child: str) -> float:
        """
        Return the fraction of the total spent in one top-level child.

        :param child: the child's attribute name.
        :return: a fraction in [0, 1] (0 for a child that did not run).
        """
        return self.by_child.get(child, 0) / self.total if self.total else 0.0


def _sdpa_flops(query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size,
                *args: Any, **kwargs: Any) -> int:
    flops: int = sdpa_flop_count(  # type: ignore[no-untyped-call]
        query_shape, key_shape, value_shape)
    return flops


def _linear_dynamic_flops(input_shape: torch.Size, *args: Any, out_shape: torch.Size,
                          **kwargs: Any) -> int:
    return 2 * math.prod(input_shape) * int(out_shape[-1])


def _extra_formulas() -> dict[Any, Callable[..., int]]:
    return {
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops,
        torch.ops.quantized.linear_dynamic: _linear_dynamic_flops,
    }


def count_flops(model: nn.Module, forward: Callable[[], T]) -> tuple[T, FlopCount]:
    """
    Run ``forward()`` once and count its floating-point operations.

    The forward really runs (on the model's device, at its cost). The model's parameters are
    marked as not requiring gradients for the duration (FlopCounterMode's module tracker fails
    on them under ``torch.inference_mode``), then restored.

    :param model: the module ``forward`` calls; its top-level children name ``by_child``.
    :param forward: a callable running the forward pass, e.g. ``lambda: model(images)``.
    :return: ``forward``'s result and the count.
    """
    requires_grad = [(p, p.requires_grad) for p in model.parameters()]
    counter = FlopCounterMode(display=False, depth=2, custom_mapping=_extra_formulas())
    try:
        model.requires_grad_(False)
        with counter:
            result = forward()
    finally:
        for parameter, flag in requires_grad:
            parameter.requires_grad_(flag)
    by_child: dict[str, int] = {}
    for path, per_op in counter.get_flop_counts().items():
        parts = path.split('.')
        if len(parts) == 2:  # '<RootClass>.<child>'
            by_child[parts[1]] = int(sum(per_op.values()))
    return result, FlopCount(total=int(counter.get_total_flops()), by_child=by_child)
