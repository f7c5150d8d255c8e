"""VGGT's per-frame place descriptors: pooled DINO patch tokens, free with every forward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vggt_mapper.model import MAPPING_HEADS, VGGT, VGGTConfig
from vggt_mapper.model.synthetic import build_vggt


@pytest.fixture(scope='module')
def model() -> VGGT:
    return build_vggt(VGGTConfig.tiny())


@pytest.fixture(scope='module')
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(3, 3, 56, 98, generator=generator)  # S=3 frames of 4×7 patches


def test_every_forward_gives_one_unit_descriptor_per_frame(model: VGGT,
                                                           images: torch.Tensor) -> None:
    out = model.infer(images, heads={'camera'})
    assert out.frame_descriptors is not None
    assert out.frame_descriptors.shape == (1, 3, model.config.aggregator.patch_embed.embed_dim)
    assert out.frame_descriptors.dtype == torch.float32
    torch.testing.assert_close(out.frame_descriptors.norm(dim=-1), torch.ones(1, 3))


def test_descriptors_are_the_mean_of_the_dino_patch_tokens(model: VGGT,
                                                           images: torch.Tensor) -> None:
    aggregator = model.aggregator
    with torch.inference_mode():
        normalised = (images[None] - aggregator._resnet_mean) / aggregator._resnet_std
        patches = aggregator.patch_embed(normalised[0])
        out = model(images, heads=MAPPING_HEADS)
    torch.testing.assert_close(out.frame_descriptors[0], F.normalize(patches.mean(dim=1), dim=-1))


def test_a_frames_descriptor_does_not_depend_on_its_window(model: VGGT,
                                                           images: torch.Tensor) -> None:
    together = model.infer(images, heads={'camera'})
    alone = model.infer(images[2:], heads={'camera'})
    batched = model.infer(torch.stack([images, images.flip(0)]), heads={'camera'})
    torch.testing.assert_close(alone.frame_descriptors[0, 0], together.frame_descriptors[0, 2],
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(batched.frame_descriptors[1, 0], together.frame_descriptors[0, 2],
                               atol=1e-6, rtol=0)
    # The camera tokens, in contrast, attend across frames: the pose depends on the window.
    assert not torch.allclose(alone.pose_enc[0, 0], together.pose_enc[0, 2], atol=1e-4)


def test_descriptors_stay_float32_under_autocast(model: VGGT, images: torch.Tensor) -> None:
    exact = model.infer(images, heads={'camera'})
    low = model.infer(images, heads={'camera'}, autocast_dtype=torch.bfloat16)
    assert low.frame_descriptors.dtype == torch.float32
    torch.testing.assert_close(low.frame_descriptors, exact.frame_descriptors, atol=0.05,
                               rtol=0)
