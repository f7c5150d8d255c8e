"""The int8 CPU option: spec validation, factory wiring, and a prediction close to float32."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vggt_mapper.model import count_int8_linear, VGGT, VGGTConfig
from vggt_mapper.model.synthetic import build_vggt
from vggt_mapper.predictor import (
    create_predictor,
    PredictorSpec,
    PredictorSpecError,
    VGGTPredictor,
)


def frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(count)
    return [rng.integers(0, 256, (48, 84, 3), dtype=np.uint8) for _ in range(count)]


def test_int8_predictor_quantises_the_aggregator_and_stays_close() -> None:
    model = build_vggt(VGGTConfig.tiny())
    window = frames(3)
    fp32 = VGGTPredictor(copy.deepcopy(model), device='cpu', target_size=98)
    int8 = VGGTPredictor(model, device='cpu', target_size=98, int8=True)

    expected, prediction = fp32.predict(window), int8.predict(window)

    assert count_int8_linear(model.aggregator) > 0 and count_int8_linear(model.camera_head) == 0
    assert 'int8=True' in repr(int8)
    relative = np.abs(prediction.depth - expected.depth) / expected.depth
    assert 1e-5 < float(np.median(relative)) < 2e-2


@pytest.mark.parametrize(('kwargs', 'message'), [
    ({'device': 'cuda'}, 'CPU mode'),
    ({'device': 'mps'}, 'CPU mode'),
    ({'remote_url': 'http://gpu:7860'}, 'local VGGT'),
    ({'predictor': 'pkg.mod:Predictor'}, 'local VGGT'),
])
def test_spec_refuses_int8_where_it_cannot_run(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(PredictorSpecError, match=message):
        PredictorSpec(int8=True, **kwargs)


def test_factory_builds_an_int8_predictor() -> None:
    predictor = create_predictor(PredictorSpec(model='tiny', device='cpu', int8=True))

    assert isinstance(predictor, VGGTPredictor) and predictor.int8
    assert count_int8_linear(predictor.model) > 0
    assert predictor.predict(frames(2)).num_frames == 2


def test_int8_needs_this_projects_vggt() -> None:
    class Other(torch.nn.Module):
        def forward(self, images: torch.Tensor, **kwargs: object) -> None:
            return None

    with pytest.raises(PredictorSpecError, match='vggt_mapper.model.VGGT'):
        VGGTPredictor(Other(), device='cpu', int8=True)


def test_float_predictor_is_left_alone() -> None:
    model: VGGT = build_vggt(VGGTConfig.tiny())

    VGGTPredictor(model, device='cpu')

    assert count_int8_linear(model) == 0
