"""The "vggt-synth-v1" synthetic weight rule: bit-identity with the reference's weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file
from tolerance import REFERENCE_DIR
import torch

from vggt_mapper.model import VGGT, VGGTConfig
from vggt_mapper.model.synthetic import (
    build_vggt,
    fill_synthetic_,
    state_dict_digest,
    synthetic_tensor,
    tensor_sha256,
)

# Whole-model digest of the tiny model's synthetic weights (fixture README §4).
TINY_DIGEST = 'd58b52335be6064595a6ba59361e0b818d3bb367e35b1a6a1eea9a5107a8aff4'


@pytest.fixture(scope='module')
def checksums() -> dict[str, object]:
    return json.loads((REFERENCE_DIR / 'synth_checksums_vggt1b.json').read_text())


def test_tiny_synthetic_weights_are_bit_identical_to_reference_file() -> None:
    reference = load_file(REFERENCE_DIR / 'tiny_weights.safetensors')
    model = fill_synthetic_(VGGT(VGGTConfig.tiny()))
    state = model.state_dict()
    assert set(state) == set(reference)
    for key, tensor in state.items():
        assert np.array_equal(tensor.numpy(), reference[key]), key
    digest = state_dict_digest({k: tensor_sha256(t) for k, t in state.items()})
    assert digest == TINY_DIGEST


def test_build_vggt_tiny_is_deterministic_and_in_eval_mode(caplog: pytest.LogCaptureFixture,
                                                           ) -> None:
    first = build_vggt(VGGTConfig.tiny())
    second = build_vggt(VGGTConfig.tiny())
    assert not first.training
    assert 'meaningless' in caplog.text
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values(),
                           strict=True):
        assert torch.equal(a, b), key
    assert torch.allclose(first.aggregator._resnet_std.flatten(),
                          torch.tensor([0.229, 0.224, 0.225]))


@pytest.mark.parametrize('key', [
    'aggregator.camera_token',                              # token
    'aggregator.patch_embed.pos_embed',                     # token, large
    'aggregator.frame_blocks.3.ls2.gamma',                  # LayerScale
    'aggregator.global_blocks.7.attn.q_norm.weight',        # norm weight
    'camera_head.trunk.0.mlp.fc2.bias',                     # bias
    'depth_head.resize_layers.0.weight',                    # ConvTranspose2d
    'track_head.tracker.updateformer.flow_head.weight',     # matrix ×0.1
    'track_head.tracker.updateformer.time_blocks.0.attn.in_proj_weight',
    'track_head.tracker.updateformer.virual_tracks',
    'track_head.tracker.ffeat_norm.weight',                 # GroupNorm weight
])
def test_vggt_1b_tensor_checksums_sample(checksums: dict[str, object], key: str) -> None:
    entry = checksums['tensors'][key]  # type: ignore[index]
    assert tensor_sha256(synthetic_tensor(key, entry['shape'])) == entry['sha256_f32le']


def test_rule_rejects_a_1d_weight_outside_a_norm() -> None:
    with pytest.raises(ValueError, match='1-D weight'):
        synthetic_tensor('camera_head.scale.weight', (4,))


def test_rule_depends_on_the_key() -> None:
    a = synthetic_tensor('x.bias', (8,))
    assert np.array_equal(a, synthetic_tensor('x.bias', (8,)))
    assert not np.array_equal(a, synthetic_tensor('y.bias', (8,)))


@pytest.mark.slow
def test_vggt_1b_whole_model_digest(checksums: dict[str, object]) -> None:
    # Regenerates all 1.26 G values, one tensor at a time (about 20 s, < 300 MB).
    manifest = json.loads((REFERENCE_DIR / 'vggt1b_manifest.json').read_text())['state_dict']
    tensors: dict[str, dict[str, object]] = checksums['tensors']  # type: ignore[assignment]
    digests = {}
    for entry in manifest:
        digests[entry['key']] = tensor_sha256(synthetic_tensor(entry['key'], entry['shape']))
        assert digests[entry['key']] == tensors[entry['key']]['sha256_f32le'], entry['key']
    assert state_dict_digest(digests) == checksums['model_digest']
