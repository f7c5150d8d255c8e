"""
Out-of-memory handling of ``VGGTPredictor``: a retry, then a typed error.

The predictor retries once with one-frame head chunks, then raises an error that asks the
caller for fewer frames. The device's out-of-memory error is injected on the CPU: the depth head
is wrapped so that it raises ``torch.OutOfMemoryError`` (what CUDA raises) whenever it would
process more frames at once than the test allows.
"""

from __future__ import annotations

from collections.abc import Collection
import logging

import numpy as np
import pytest
import torch
from torch import nn

from vggt_mapper.model import DEFAULT_FRAMES_CHUNK_SIZE, VGGT, VGGTConfig
from vggt_mapper.model.synthetic import build_vggt
from vggt_mapper.predictor import PredictorError, PredictorOutOfMemoryError, VGGTPredictor
from vggt_mapper.predictor.vggt_predictor import OOM_RETRY_FRAMES_CHUNK_SIZE

OOM_MESSAGE = 'CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8.00 GiB total)'


class OomAboveChunk(nn.Module):
    """A DPT head that runs out of memory on more than ``max_frames`` frames at a time."""

    def __init__(self, head: nn.Module, max_frames: int) -> None:
        super().__init__()
        self.head = head
        self.max_frames = max_frames
        self.chunk_sizes: list[int | None] = []

    def forward(self, tokens: list[torch.Tensor], images: torch.Tensor, patch_start_idx: int,
                frames_chunk_size: int | None = DEFAULT_FRAMES_CHUNK_SIZE) -> object:
        self.chunk_sizes.append(frames_chunk_size)
        at_once = min(frames_chunk_size or images.shape[1], images.shape[1])
        if at_once > self.max_frames:
            raise torch.OutOfMemoryError(OOM_MESSAGE)
        return self.head(tokens, images, patch_start_idx, frames_chunk_size)


def frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(count)
    return [rng.integers(0, 256, (48, 84, 3), dtype=np.uint8) for _ in range(count)]


@pytest.fixture
def model() -> VGGT:
    return build_vggt(VGGTConfig.tiny())


def predictor_of(model: nn.Module) -> VGGTPredictor:
    return VGGTPredictor(model, device='cpu', target_size=98)


def test_oom_in_the_heads_is_retried_with_one_frame_chunks(
        model: VGGT, caplog: pytest.LogCaptureFixture) -> None:
    window = frames(3)
    expected = predictor_of(model).predict(window)
    head = OomAboveChunk(model.depth_head, max_frames=OOM_RETRY_FRAMES_CHUNK_SIZE)
    model.depth_head = head

    with caplog.at_level(logging.WARNING):
        prediction = predictor_of(model).predict(window)

    assert head.chunk_sizes == [DEFAULT_FRAMES_CHUNK_SIZE, OOM_RETRY_FRAMES_CHUNK_SIZE]
    np.testing.assert_allclose(prediction.depth, expected.depth, rtol=1e-5)
    np.testing.assert_allclose(prediction.cam_from_window, expected.cam_from_window, atol=1e-6)
    assert 'out of cpu memory on a window of 3 frames' in caplog.text
    assert 'retrying with 1-frame head chunks' in caplog.text


def test_oom_that_persists_asks_for_fewer_frames(model: VGGT) -> None:
    head = OomAboveChunk(model.depth_head, max_frames=0)
    model.depth_head = head
    predictor = predictor_of(model)

    with pytest.raises(PredictorOutOfMemoryError, match='fewer frames') as caught:
        predictor.predict(frames(3))

    assert isinstance(caught.value, PredictorError)
    assert caught.value.num_frames == 3
    assert caught.value.retry_chunk_size == OOM_RETRY_FRAMES_CHUNK_SIZE
    assert 'Tried to allocate 2.00 GiB' in str(caught.value)
    assert len(head.chunk_sizes) == 2
    # The predictor stays usable (its lock was released) once memory is available again.
    head.max_frames = 8
    assert predictor.predict(frames(3)).num_frames == 3


def test_one_frame_window_is_not_retried(model: VGGT) -> None:
    head = OomAboveChunk(model.depth_head, max_frames=0)
    model.depth_head = head

    with pytest.raises(PredictorOutOfMemoryError) as caught:
        predictor_of(model).predict(frames(1))

    assert caught.value.retry_chunk_size is None
    assert len(head.chunk_sizes) == 1


class AlwaysOom(nn.Module):
    """A model without a ``frames_chunk_size`` keyword: nothing to retry with."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, images: torch.Tensor, *, heads: Collection[str]) -> object:
        self.calls += 1
        raise torch.OutOfMemoryError(OOM_MESSAGE)


def test_model_without_chunking_is_refused_after_one_attempt() -> None:
    model = AlwaysOom()

    with pytest.raises(PredictorOutOfMemoryError) as caught:
        predictor_of(model).predict(frames(3))

    assert model.calls == 1 and caught.value.retry_chunk_size is None


def test_other_runtime_errors_are_not_taken_for_oom(model: VGGT) -> None:
    class Broken(nn.Module):
        def forward(self, *args: object, **kwargs: object) -> object:
            raise RuntimeError('shape mismatch')

    model.depth_head = Broken()

    with pytest.raises(RuntimeError, match='shape mismatch'):
        predictor_of(model).predict(frames(3))
