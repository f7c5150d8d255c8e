"""Device and dtype selection for inference."""

from __future__ import annotations

import pytest
import torch

from vggt_mapper.model import select_device_and_dtype


def test_cpu_runs_float32() -> None:
    assert select_device_and_dtype('cpu') == (torch.device('cpu'), torch.float32)


def test_auto_picks_cuda_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert select_device_and_dtype('auto') == (torch.device('cpu'), torch.float32)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    for capability, dtype in (((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16),
                              ((7, 5), torch.float16)):
        monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda d, c=capability: c)
        assert select_device_and_dtype('auto') == (torch.device('cuda'), dtype)


def test_cuda_without_cuda_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ValueError, match='CUDA is not available'):
        select_device_and_dtype('cuda')


@pytest.mark.parametrize('name', ['gpu', 'mps'])
def test_unknown_devices_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match='device'):
        select_device_and_dtype(name)
