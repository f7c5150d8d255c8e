"""VGGTPredictor: preprocessing → model → pose decoding → WindowPrediction."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
import logging

import numpy as np
import pytest
import torch

from vggt_mapper.geometry import depth_to_points_cam, pose_encoding_to_extrinsics_intrinsics
from vggt_mapper.predictor import (
    FrameFormatError,
    Predictor,
    PredictorError,
    PredictorSpecError,
    preprocess_frames,
    VGGTPredictor,
    WindowPrediction,
)
from vggt_mapper.predictor.vggt_predictor import MIN_FOV_RAD


@dataclass(frozen=True)
class FakeOutput:
    pose_enc: torch.Tensor | None = None
    depth: torch.Tensor | None = None
    depth_conf: torch.Tensor | None = None
    world_points: torch.Tensor | None = None
    world_points_conf: torch.Tensor | None = None


class FakeVGGT(torch.nn.Module):
    """Returns a fixed pose encoding and depth = 1 + row/100; records what it was given."""

    def __init__(self, pose_enc: np.ndarray,
                 enabled: Collection[str] = ('camera', 'depth', 'point')) -> None:
        super().__init__()
        self.pose_enc = torch.as_tensor(pose_enc, dtype=torch.float32)
        self.enabled_heads = frozenset(enabled)
        self.calls: list[dict[str, object]] = []

    def forward(self, images: torch.Tensor, *, heads: Collection[str]) -> FakeOutput:
        self.calls.append({'images': images.clone(), 'heads': frozenset(heads),
                           'inference_mode': torch.is_inference_mode_enabled()})
        frames, _, height, width = images.shape
        rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
        depth = (1.0 + rows / 100.0).expand(1, frames, height, width)[..., None]
        out = {'pose_enc': self.pose_enc[None, :frames], 'depth': depth,
               'depth_conf': torch.full((1, frames, height, width), 2.0)}
        if 'point' in heads:
            out['world_points'] = torch.zeros((1, frames, height, width, 3))
            out['world_points_conf'] = torch.ones((1, frames, height, width))
        return FakeOutput(**out)


def pose_encoding(frames: int) -> np.ndarray:
    encoding = np.zeros((frames, 9), dtype=np.float32)
    encoding[:, 6] = 1.0
    encoding[:, 0] = np.arange(frames) * 0.1
    encoding[0, :7] = [0.001, -0.002, 0.003, 0.01, 0.0, 0.0, 1.0]  # near identity, not exactly
    encoding[:, 7] = 1.0
    encoding[:, 8] = 1.2
    return encoding


def frames_of_sizes(*sizes: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for height, width in sizes]


def test_predict_decodes_the_model_output() -> None:
    model = FakeVGGT(pose_encoding(2))
    predictor = VGGTPredictor(model, device='cpu')
    assert isinstance(predictor, Predictor)
    frames = frames_of_sizes((480, 640), (480, 640))
    prediction = predictor.predict(frames)

    call = model.calls[0]
    assert call['heads'] == {'camera', 'depth'}
    assert call['inference_mode'] is True
    window = preprocess_frames(frames)
    np.testing.assert_array_equal(call['images'].numpy(), window.images_chw_float32())
    np.testing.assert_array_equal(prediction.images_rgb, window.images_rgb)

    assert prediction.model_hw == (392, 518)
    expected_extrinsics, expected_intrinsics = pose_encoding_to_extrinsics_intrinsics(
        pose_encoding(2).astype(np.float64), (392, 518))
    assert prediction.cam_from_window.dtype == np.float64
    np.testing.assert_allclose(prediction.cam_from_window, expected_extrinsics, atol=1e-7)
    # Frame 0 is the model's own answer, not overwritten with identity.
    assert not np.allclose(prediction.cam_from_window[0], np.eye(3, 4), atol=1e-4)
    np.testing.assert_allclose(prediction.intrinsics, expected_intrinsics, rtol=1e-6)
    np.testing.assert_allclose(prediction.intrinsics[0, 1, 1], 196.0 / np.tan(0.5), rtol=1e-6)
    assert prediction.depth.shape == (2, 392, 518) and prediction.depth.dtype == np.float32
    np.testing.assert_allclose(prediction.depth[:, 10, 0], 1.1)
    assert prediction.points_window is None and prediction.points_conf is None
    assert [m.original_hw for m in prediction.mappings] == [(480, 640), (480, 640)]


def test_compute_points_runs_the_point_head() -> None:
    model = FakeVGGT(pose_encoding(1))
    prediction = VGGTPredictor(model, device='cpu', compute_points=True).predict(
        frames_of_sizes((100, 140)))
    assert model.calls[0]['heads'] == {'camera', 'depth', 'point'}
    assert prediction.points_window is not None and prediction.points_window.shape == (
        1, 364, 518, 3)
    assert prediction.points_conf is not None


def test_model_without_point_head_is_refused_up_front() -> None:
    model = FakeVGGT(pose_encoding(1), enabled=('camera', 'depth'))
    with pytest.raises(PredictorSpecError, match=r"lacks heads \['point'\]"):
        VGGTPredictor(model, device='cpu', compute_points=True)


def test_zero_field_of_view_is_raised_to_the_floor(caplog) -> None:
    encoding = pose_encoding(2)
    encoding[1, 8] = 0.0  # what the ReLU gives an untrained model
    with caplog.at_level(logging.WARNING):
        prediction = VGGTPredictor(FakeVGGT(encoding), device='cpu').predict(
            frames_of_sizes((480, 640), (480, 640)))
    assert np.all(np.isfinite(prediction.intrinsics))
    np.testing.assert_allclose(prediction.intrinsics[1, 0, 0], 259.0 / np.tan(MIN_FOV_RAD / 2))
    assert 'below' in caplog.text


def test_non_finite_pose_is_an_error() -> None:
    encoding = pose_encoding(1)
    encoding[0, 0] = np.nan
    with pytest.raises(PredictorError, match='non-finite pose'):
        VGGTPredictor(FakeVGGT(encoding), device='cpu').predict(frames_of_sizes((50, 60)))


def test_bad_settings_and_frames_are_refused() -> None:
    with pytest.raises(PredictorSpecError, match='preprocess_mode'):
        VGGTPredictor(FakeVGGT(pose_encoding(1)), device='cpu', preprocess_mode='stretch')
    with pytest.raises(PredictorSpecError, match='device'):
        VGGTPredictor(FakeVGGT(pose_encoding(1)), device='gpu')
    with pytest.raises(PredictorSpecError, match='multiple of 14'):
        VGGTPredictor(FakeVGGT(pose_encoding(1)), device='cpu', target_size=500)
    predictor = VGGTPredictor(FakeVGGT(pose_encoding(1)), device='cpu')
    with pytest.raises(FrameFormatError, match='at least one frame'):
        predictor.predict([])


@pytest.fixture(scope='module')
def tiny_model() -> torch.nn.Module:
    from vggt_mapper.model import VGGTConfig
    from vggt_mapper.model.synthetic import build_vggt

    return build_vggt(VGGTConfig.tiny())


def test_tiny_vggt_gives_a_valid_prediction_for_mixed_sizes(tiny_model) -> None:
    # A small target size keeps the tiny model fast; the pipeline is the one used at 518.
    predictor = VGGTPredictor(tiny_model, device='cpu', compute_points=True, target_size=112)
    frames = frames_of_sizes((480, 640), (300, 1000), (640, 480))
    prediction = predictor.predict(frames)
    assert isinstance(prediction, WindowPrediction)
    assert prediction.num_frames == 3
    assert prediction.model_hw == (112, 112)  # portrait crop is 112×112, others padded to it
    assert [m.original_hw for m in prediction.mappings] == [(480, 640), (300, 1000), (640, 480)]
    for array in (prediction.cam_from_window, prediction.intrinsics, prediction.depth,
                  prediction.depth_conf, prediction.points_window, prediction.points_conf):
        assert array is not None and np.all(np.isfinite(array))
    assert prediction.depth.min() > 0  # exp activation
    assert prediction.depth_conf.min() >= 1.0  # 1 + exp
    np.testing.assert_allclose(prediction.intrinsics[:, :2, 2], [[56.0, 56.0]] * 3)
    rotations = prediction.cam_from_window[:, :, :3]
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1),
                               np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-9)
    # Camera points from depth exist for every pixel (the mapper's path).
    points = np.stack([depth_to_points_cam(depth, intrinsics) for depth, intrinsics
                       in zip(prediction.depth, prediction.intrinsics, strict=True)])
    assert points.shape == (3, 112, 112, 3) and np.all(np.isfinite(points))
    # Deterministic: the same window gives the same answer.
    again = predictor.predict(frames)
    np.testing.assert_array_equal(again.depth, prediction.depth)
    np.testing.assert_array_equal(again.cam_from_window, prediction.cam_from_window)
