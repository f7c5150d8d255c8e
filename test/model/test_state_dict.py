"""State-dict compatibility with the official VGGT-1B checkpoint layout (meta device: no 5 GB)."""

from __future__ import annotations

import json

import pytest
from tolerance import REFERENCE_DIR
import torch

from vggt_mapper.model import VGGT, VGGTConfig


def _manifest(name: str) -> list[dict[str, object]]:
    return json.loads((REFERENCE_DIR / name).read_text())['state_dict']


def _layout(model: VGGT) -> list[tuple[str, list[int], str]]:
    return [(key, list(t.shape), str(t.dtype).removeprefix('torch.'))
            for key, t in model.state_dict().items()]


@pytest.fixture(scope='module')
def meta_1b() -> VGGT:
    with torch.device('meta'):
        return VGGT()


def test_vggt_1b_state_dict_matches_manifest_in_order(meta_1b: VGGT) -> None:
    expected = [(e['key'], e['shape'], e['dtype']) for e in _manifest('vggt1b_manifest.json')]
    ours = _layout(meta_1b)
    assert len(ours) == len(expected) == 1797
    for got, want in zip(ours, expected, strict=True):
        assert got == want


def test_vggt_1b_parameter_counts(meta_1b: VGGT) -> None:
    manifest = json.loads((REFERENCE_DIR / 'vggt1b_manifest.json').read_text())
    assert sum(p.numel() for p in meta_1b.parameters()) == manifest['total_parameters']
    parts = manifest['parameters_by_part']
    assert sum(p.numel() for p in meta_1b.camera_head.parameters()) == parts['camera_head']
    assert sum(p.numel() for p in meta_1b.depth_head.parameters()) == parts['depth_head']
    assert sum(p.numel() for p in meta_1b.point_head.parameters()) == parts['point_head']
    assert sum(p.numel() for p in meta_1b.track_head.parameters()) == parts['track_head']


def test_children_in_reference_order(meta_1b: VGGT) -> None:
    names = [name for name, _ in meta_1b.named_children()]
    assert names == ['aggregator', 'camera_head', 'point_head', 'depth_head', 'track_head']


def test_imagenet_buffers_are_not_in_the_state_dict() -> None:
    model = VGGT(VGGTConfig.tiny())
    assert not any('_resnet' in key for key in model.state_dict())
    arch = json.loads((REFERENCE_DIR / 'vggt1b_manifest.json').read_text())['architecture']
    buffers = arch['top_level']['non_persistent_buffers']
    assert model.aggregator._resnet_mean.flatten().tolist() == buffers['aggregator._resnet_mean']
    assert model.aggregator._resnet_std.flatten().tolist() == buffers['aggregator._resnet_std']


def test_tiny_state_dict_matches_reference_tiny_config() -> None:
    expected = [(e['key'], e['shape'], e['dtype']) for e in _manifest('tiny_config.json')]
    model = VGGT(VGGTConfig.tiny())
    assert _layout(model) == expected
    assert sum(p.numel() for p in model.parameters()) == 625_324


def test_disabled_heads_have_no_keys() -> None:
    from dataclasses import replace
    config = replace(VGGTConfig.tiny(), enable_point=False, enable_track=False)
    model = VGGT(config)
    keys = model.state_dict().keys()
    assert not any(k.startswith(('point_head.', 'track_head.')) for k in keys)
    assert any(k.startswith('depth_head.') for k in keys)
    assert model.enabled_heads == {'camera', 'depth'}
