"""Int8 CPU mode: the aggregator's Linear layers become dynamic int8; the heads stay float."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from vggt_mapper.model import (
    count_int8_linear,
    MAPPING_HEADS,
    ModelError,
    quantize_int8_,
    quantize_linear_int8_,
    VGGT,
    VGGTConfig,
)
from vggt_mapper.model.synthetic import build_vggt


@pytest.fixture(scope='module')
def model() -> VGGT:
    return build_vggt(VGGTConfig.tiny())


def _linears(module: nn.Module) -> int:
    return sum(isinstance(sub, nn.Linear) for sub in module.modules())


def test_only_the_aggregator_linears_are_quantised(model: VGGT) -> None:
    aggregator_linears = _linears(model.aggregator)
    int8 = quantize_int8_(copy.deepcopy(model))

    assert count_int8_linear(int8.aggregator) == aggregator_linears > 0
    assert _linears(int8.aggregator) == 0
    assert count_int8_linear(int8.camera_head) == 0
    assert _linears(int8.camera_head) == _linears(model.camera_head)


def test_int8_output_is_close_to_float(model: VGGT) -> None:
    images = torch.rand(3, 3, 56, 98, generator=torch.Generator().manual_seed(1))
    int8 = quantize_int8_(copy.deepcopy(model))

    with torch.inference_mode():
        reference = model(images, heads=MAPPING_HEADS)
        quantised = int8(images, heads=MAPPING_HEADS)

    relative = (quantised.depth - reference.depth).abs() / reference.depth
    # Measured 4e-3 on this model; float-vs-float op-order noise is ~1e-6.
    assert 1e-5 < relative.median().item() < 2e-2
    assert torch.isfinite(quantised.pose_enc).all()


def test_quantising_twice_changes_nothing(model: VGGT) -> None:
    int8 = quantize_int8_(copy.deepcopy(model))
    images = torch.rand(1, 3, 56, 98, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        once = int8(images, heads=MAPPING_HEADS).depth
        quantize_int8_(int8)
        twice = int8(images, heads=MAPPING_HEADS).depth

    assert torch.equal(once, twice)


def test_off_cpu_is_refused() -> None:
    with torch.device('meta'):
        linear = nn.Sequential(nn.Linear(4, 4))

    with pytest.raises(ModelError, match='CPU only'):
        quantize_linear_int8_(linear)
