"""FLOP counting from the model itself: matrix products, CPU attention, int8 Linear."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
import torch.nn.functional as F

from vggt_mapper.model import (
    count_flops,
    MAPPING_HEADS,
    quantize_int8_,
    VGGT,
    VGGTConfig,
)
from vggt_mapper.model.layers import set_fused_attn, use_fused_attn
from vggt_mapper.model.synthetic import build_vggt


@pytest.fixture(scope='module')
def model() -> VGGT:
    return build_vggt(VGGTConfig.tiny())


@pytest.fixture(scope='module')
def images() -> torch.Tensor:
    return torch.rand(2, 3, 56, 98, generator=torch.Generator().manual_seed(0))


class Attend(nn.Module):
    def forward(self, q: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, q, q)


def test_a_linear_counts_two_flops_per_multiply_add() -> None:
    model = nn.Sequential(nn.Linear(8, 4))
    x = torch.rand(3, 8)

    out, flops = count_flops(model, lambda: model(x))

    assert flops.total == 2 * 3 * 8 * 4
    assert flops.by_child == {'0': flops.total}
    assert out.shape == (3, 4)


def test_cpu_attention_kernel_is_counted() -> None:
    batch, heads, tokens, dim = 1, 2, 5, 8
    q = torch.rand(batch, heads, tokens, dim)
    model = Attend()

    with torch.inference_mode():
        _, flops = count_flops(model, lambda: model(q))

    # q·kᵀ and softmax·v: two products of tokens × tokens × dim per head.
    assert flops.total == 2 * 2 * batch * heads * tokens * tokens * dim


def test_fused_and_explicit_attention_count_the_same(model: VGGT, images: torch.Tensor) -> None:
    fused = use_fused_attn()
    try:
        set_fused_attn(True)
        with torch.inference_mode():
            _, with_sdpa = count_flops(model, lambda: model(images, heads=MAPPING_HEADS))
        set_fused_attn(False)
        with torch.inference_mode():
            _, explicit = count_flops(model, lambda: model(images, heads=MAPPING_HEADS))
    finally:
        set_fused_attn(fused)
    assert with_sdpa.total == explicit.total > 0


def test_split_by_top_level_module(model: VGGT, images: torch.Tensor) -> None:
    with torch.inference_mode():
        _, mapping = count_flops(model, lambda: model(images, heads=MAPPING_HEADS))
        heads = {'camera', 'depth', 'point'}
        _, with_points = count_flops(model, lambda: model(images, heads=heads))

    assert set(mapping.by_child) == {'aggregator', 'camera_head', 'depth_head'}
    assert sum(mapping.by_child.values()) == mapping.total
    assert with_points.total == mapping.total + with_points.by_child['point_head']
    assert 0 < mapping.share('aggregator') < 1 and mapping.share('point_head') == 0


def test_int8_counts_the_work_of_the_float_layers(model: VGGT, images: torch.Tensor) -> None:
    int8 = quantize_int8_(copy.deepcopy(model))

    with torch.inference_mode():
        _, float_count = count_flops(model, lambda: model(images, heads=MAPPING_HEADS))
        _, int8_count = count_flops(int8, lambda: int8(images, heads=MAPPING_HEADS))

    assert int8_count == float_count


def test_gradient_flags_are_restored() -> None:
    model = nn.Sequential(nn.Linear(8, 4), nn.Linear(4, 2))
    model[1].weight.requires_grad_(False)

    count_flops(model, lambda: model(torch.rand(1, 8)))

    assert [p.requires_grad for p in model.parameters()] == [True, True, False, True]
