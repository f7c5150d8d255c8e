"""VGGT's own place descriptors: pooled DINO patch tokens, carried by ``WindowPrediction``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vggt_mapper.model import VGGTConfig
from vggt_mapper.model.synthetic import build_vggt
from vggt_mapper.predictor import VGGTPredictor, WindowPrediction
from vggt_mapper.predictor.remote import load_window_prediction, save_window_prediction
from vggt_mapper.synthetic import SyntheticSequence


@pytest.fixture(scope='module')
def predictor() -> VGGTPredictor:
    # A small target size keeps the tiny model fast; the pipeline is the one used at 518.
    return VGGTPredictor(build_vggt(VGGTConfig.tiny()), device='cpu', target_size=112)


@pytest.fixture(scope='module')
def frames() -> list[np.ndarray]:
    sequence = SyntheticSequence.orbit(40)
    return [sequence.frame(i) for i in range(0, 40, 8)]


def test_each_frame_gets_a_unit_descriptor(predictor: VGGTPredictor, frames) -> None:
    prediction = predictor.predict(frames[:3])
    descriptors = prediction.descriptors
    assert descriptors is not None
    embed_dim = VGGTConfig.tiny().aggregator.patch_embed.embed_dim
    assert descriptors.shape == (3, embed_dim) and descriptors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(predictor.predict(frames[:3]).descriptors, descriptors)


def test_a_frame_has_the_same_descriptor_in_any_window(predictor: VGGTPredictor,
                                                       frames) -> None:
    # Frame 2 is the last of one window and the first (the reference frame) of another.
    early = predictor.predict(frames[0:3]).descriptors
    late = predictor.predict(frames[2:5]).descriptors
    assert early is not None and late is not None
    np.testing.assert_allclose(early[2], late[0], atol=1e-6)
    # ... and different frames are told apart.
    assert not np.allclose(early[0], early[1], atol=1e-3)


def test_descriptors_survive_the_remote_round_trip(predictor: VGGTPredictor, frames,
                                                   tmp_path: Path) -> None:
    prediction = predictor.predict(frames[:2])
    loaded = load_window_prediction(save_window_prediction(tmp_path / 'window', prediction))
    assert loaded.descriptors is not None
    np.testing.assert_array_equal(loaded.descriptors, prediction.descriptors)
    assert loaded.descriptors.dtype == np.float32


def test_a_prediction_file_without_descriptors_still_loads(
        predictor: VGGTPredictor, frames, tmp_path: Path) -> None:
    older = replace(predictor.predict(frames[:2]), descriptors=None)
    path = save_window_prediction(tmp_path / 'older', older)
    with np.load(path) as data:
        assert 'descriptors' not in data.files  # as files written before descriptors existed
    loaded = load_window_prediction(path)
    assert loaded.descriptors is None
    np.testing.assert_array_equal(loaded.depth, older.depth)


@pytest.mark.parametrize('shape', [(2, 8), (3,), (3, 0), (3, 4, 1)])
def test_descriptors_of_the_wrong_shape_are_refused(predictor: VGGTPredictor, frames,
                                                    shape: tuple[int, ...]) -> None:
    prediction = predictor.predict(frames[:3])
    with pytest.raises(ValueError, match=r'descriptors must have shape \(S, D\)'):
        replace(prediction, descriptors=np.ones(shape, np.float32))


def test_a_model_without_descriptors_gives_none(predictor: VGGTPredictor, frames) -> None:
    class WithoutDescriptors(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.enabled_heads = inner.enabled_heads

        def forward(self, images: torch.Tensor, *, heads) -> object:
            return replace(self.inner(images, heads=heads), frame_descriptors=None)

    other = VGGTPredictor(WithoutDescriptors(predictor.model), device='cpu', target_size=112)
    prediction = other.predict(frames[:2])
    assert isinstance(prediction, WindowPrediction) and prediction.descriptors is None
