"""Device and autocast precision selection (VGGT README: bf16 on cc ≥ 8, fp16 below, fp32 CPU)."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
import torch

from vggt_mapper.predictor import PredictorSpecError, vggt_predictor
from vggt_mapper.predictor.device import autocast_context, select_device_and_dtype


def test_cpu_runs_in_float32_without_autocast() -> None:
    device, dtype = select_device_and_dtype('cpu')
    assert device == torch.device('cpu') and dtype == torch.float32
    with autocast_context(device, dtype):
        assert not torch.is_autocast_enabled('cpu')


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the no-CUDA fallback')
def test_auto_falls_back_to_cpu_and_cuda_is_refused_without_it() -> None:
    assert select_device_and_dtype('auto') == (torch.device('cpu'), torch.float32)
    with pytest.raises(PredictorSpecError, match='CUDA is not available'):
        select_device_and_dtype('cuda')


@pytest.mark.parametrize(('capability', 'expected'), [
    ((9, 0), torch.bfloat16), ((8, 0), torch.bfloat16), ((7, 5), torch.float16),
])
def test_cuda_precision_follows_compute_capability(capability, expected) -> None:
    with mock.patch.object(torch.cuda, 'is_available', return_value=True), \
            mock.patch.object(torch.cuda, 'device_count', return_value=2), \
            mock.patch.object(torch.cuda, 'current_device', return_value=0), \
            mock.patch.object(torch.cuda, 'get_device_capability', return_value=capability):
        assert select_device_and_dtype('auto') == (torch.device('cuda'), expected)
        assert select_device_and_dtype('cuda:1') == (torch.device('cuda:1'), expected)
        with pytest.raises(PredictorSpecError, match='does not exist'):
            select_device_and_dtype('cuda:2')


def test_unknown_device_name_is_refused() -> None:
    with pytest.raises(PredictorSpecError, match="device must be 'auto'"):
        select_device_and_dtype('tpu')


def test_reduced_precision_autocast_path_with_tiny_vggt() -> None:
    """Run the bf16 autocast branch (taken on Ampere+ GPUs) on the CPU with the tiny model."""
    from vggt_mapper.model import VGGTConfig
    from vggt_mapper.model.synthetic import build_vggt

    model = build_vggt(VGGTConfig.tiny())
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(2)]
    reference = vggt_predictor.VGGTPredictor(model, device='cpu', target_size=112).predict(frames)
    with mock.patch.object(vggt_predictor, 'select_device_and_dtype',
                           return_value=(torch.device('cpu'), torch.bfloat16)):
        predictor = vggt_predictor.VGGTPredictor(model, device='cpu', target_size=112)
    assert predictor.autocast_dtype == torch.bfloat16
    prediction = predictor.predict(frames)
    assert prediction.depth.dtype == np.float32
    assert prediction.cam_from_window.dtype == np.float64
    assert np.all(np.isfinite(prediction.depth)) and np.all(np.isfinite(prediction.intrinsics))
    # bf16 trunk, fp32 heads: close to the fp32 run, but not identical (the branch really ran).
    relative = np.abs(prediction.depth - reference.depth).max() / reference.depth.max()
    assert 0 < relative < 0.1
