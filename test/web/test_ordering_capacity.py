"""Ordering photo sets by similarity, the frame limit per pass, and the pass plan."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image
import pytest

from vggt_mapper.web import capacity
from vggt_mapper.web.capacity import derive_pass_capacity, GIB, PassCost
from vggt_mapper.web.ordering import (
    FrameOrder,
    GridHistogramDescriber,
    ImageDescriber,
    order_by_similarity,
)
from vggt_mapper.web.reconstruction import plan_passes
from vggt_mapper.web.settings import default_mapper_config

SAMPLE = Path(__file__).resolve().parents[2] / 'vggt_mapper' / 'data' / 'sample'


@pytest.fixture(scope='module')
def sample_descriptors() -> np.ndarray:
    """Descriptors of the shipped sample's 40 frames, in time order."""
    images = [np.asarray(Image.open(SAMPLE / f'frame_{i:03d}.jpg').convert('RGB'))
              for i in range(40)]
    return GridHistogramDescriber().describe(images)


def test_describer_rows_are_unit_and_batch_independent(sample_descriptors: np.ndarray) -> None:
    describer = GridHistogramDescriber()
    assert isinstance(describer, ImageDescriber)
    assert sample_descriptors.shape == (40, describer.dim)
    assert sample_descriptors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(sample_descriptors, axis=1), 1.0, atol=1e-5)
    alone = describer.describe([np.asarray(Image.open(SAMPLE / 'frame_007.jpg'))])
    np.testing.assert_allclose(alone[0], sample_descriptors[7], atol=1e-6)


def test_nearby_views_look_more_alike_than_distant_ones(sample_descriptors: np.ndarray) -> None:
    similarity = sample_descriptors @ sample_descriptors.T
    by_lag = [np.median(np.diag(similarity, lag)) for lag in (1, 5, 20)]
    assert by_lag[0] > by_lag[1] > by_lag[2]


def test_a_shuffled_sequence_is_chained_back(sample_descriptors: np.ndarray) -> None:
    shuffle = np.random.default_rng(0).permutation(40)
    order = order_by_similarity(sample_descriptors[shuffle])
    assert order.reordered and sorted(order.order) == list(range(40))
    chain = [int(shuffle[position]) for position in order.order]
    steps = np.abs(np.diff(chain))
    assert np.all(steps == 1), chain  # the path itself, forwards or backwards
    assert order.cost < order.cost_upload


def test_an_ordered_upload_is_kept(sample_descriptors: np.ndarray) -> None:
    order = order_by_similarity(sample_descriptors)
    assert not order.reordered and order.order == tuple(range(40))


def test_bad_descriptors_are_refused() -> None:
    with pytest.raises(ValueError, match='finite'):
        order_by_similarity(np.full((4, 3), np.nan))
    assert order_by_similarity(np.eye(2)).order == (0, 1)


def _vggt_like(device_type: str, name: str = 'vggt-1b') -> SimpleNamespace:
    return SimpleNamespace(device=SimpleNamespace(type=device_type),
                           model=SimpleNamespace(config=SimpleNamespace(name=name)),
                           compute_points=False)


def test_cpu_limit_is_available_memory_over_the_cost_per_frame(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(capacity.PASS_COSTS, ('vggt-1b', False),
                        PassCost(0.25 * GIB, 0.5 * GIB, 'test'))
    monkeypatch.setattr(capacity, 'available_cpu_bytes', lambda: 20 * GIB)
    limit = derive_pass_capacity(_vggt_like('cpu'), fallback_frames=16)
    per_frame = 0.25 * 518 * 518 / (392 * 518)  # GiB at the largest model image
    assert limit.frames == int((0.5 * 20 - 0.5) // per_frame)
    assert 'cpu: 20.0 GiB available' in limit.basis
    monkeypatch.setattr(capacity, 'available_cpu_bytes', lambda: 1 * GIB)
    assert derive_pass_capacity(_vggt_like('cpu'), fallback_frames=16).frames == 2


def test_cuda_limit_uses_the_free_gpu_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setitem(capacity.PASS_COSTS, ('vggt-1b', False),
                        PassCost(0.25 * GIB, 0.5 * GIB, 'test'))
    monkeypatch.setattr(torch.cuda, 'mem_get_info', lambda device: (100 * GIB, 140 * GIB))
    limit = derive_pass_capacity(_vggt_like('cuda'), fallback_frames=16)
    per_frame = 0.25 * 518 * 518 / (392 * 518)
    assert limit.frames == int((capacity.CUDA_MEMORY_FRACTION * 100 - 0.5) // per_frame)
    assert '100.0 GiB free' in limit.basis


def test_a_predictor_without_a_device_gets_the_window_size() -> None:
    assert derive_pass_capacity(object(), fallback_frames=12).frames == 12


def _never_ordered() -> FrameOrder:
    raise AssertionError('a set that fits, or a video, is never reordered')


def test_plan_one_pass_windows_and_videos() -> None:
    config = replace(default_mapper_config(), window_size=16, overlap=4)
    one = plan_passes(30, 'images', 40, config, _never_ordered)
    assert (one.config.window_size, one.order) == (30, None) and one.note.startswith('one pass')
    shuffle = FrameOrder((2, 0, 1, 3, 4), True, 3.0, 1.0)
    many = plan_passes(5, 'images', 3, config, lambda: shuffle)
    assert (many.config.window_size, many.config.overlap, many.order) == (3, 2, (2, 0, 1, 3, 4))
    video = plan_passes(100, 'video', 40, config, _never_ordered)
    assert (video.config.window_size, video.config.overlap, video.order) == (16, 4, None)
    small_device = plan_passes(100, 'video', 8, config, _never_ordered)
    assert small_device.config.window_size == 8  # a video window never exceeds the limit
