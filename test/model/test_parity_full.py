"""Numerical parity of full-size VGGT-1B (synthetic weights, CPU, fp32) with the reference."""

from __future__ import annotations

from collections.abc import Iterator
import gc

from intermediates import Captured, run_with_intermediates
import numpy as np
import pytest
from tolerance import assert_close_ref, REFERENCE_DIR, worst_ratio
import torch

from vggt_mapper.model import VGGT, VGGTConfig
from vggt_mapper.model.synthetic import build_vggt

# Builds the 1B model (about 5 GB, ~20 s to fill) and runs 3 frames of 140×168 + 5 queries.
pytestmark = pytest.mark.slow

OUTPUT_KEYS = ('pose_enc', 'depth', 'depth_conf', 'world_points', 'world_points_conf',
               'track', 'vis', 'conf', 'images')


def _check(ours: torch.Tensor, ref: np.ndarray, key: str) -> None:
    # The worst error/tolerance ratio is printed (pytest -s) to document the headroom.
    print(f'{key}: worst error/tolerance ratio {worst_ratio(ours, ref, key):.3g}')
    assert_close_ref(ours, ref, key)


@pytest.fixture(scope='module')
def parity() -> dict[str, np.ndarray]:
    with np.load(REFERENCE_DIR / 'full_parity.npz') as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope='module')
def model() -> Iterator[VGGT]:
    model = build_vggt(VGGTConfig.vggt_1b())
    yield model
    del model
    gc.collect()


@pytest.fixture(scope='module')
def run(model: VGGT, parity: dict[str, np.ndarray]) -> Captured:
    return run_with_intermediates(model, torch.from_numpy(parity['in.images']),
                                  torch.from_numpy(parity['in.query_points']))


@pytest.mark.parametrize('key', OUTPUT_KEYS)
def test_outputs_match_reference(run: Captured, parity: dict[str, np.ndarray], key: str) -> None:
    out = getattr(run.output, key)
    assert out.dtype == torch.float32
    _check(out, parity[f'out.{key}'], key)
    if f'ref64.{key}' in parity:
        _check(out, parity[f'ref64.{key}'], f'ref64.{key}')


def test_pose_enc_list_matches_reference(run: Captured, parity: dict[str, np.ndarray]) -> None:
    _check(torch.stack(run.output.pose_enc_list), parity['out.pose_enc_list'],
           'pose_enc_list')


def test_intermediates_match_reference(model: VGGT, run: Captured,
                                       parity: dict[str, np.ndarray]) -> None:
    start = model.aggregator.patch_start_idx
    assert start == int(parity['int.patch_start_idx'])
    _check(run.dino_normed[:, start:], parity['int.dino_x_norm_patchtokens'],
           'int.patchtokens')
    _check(run.dino_normed[:, 0], parity['int.dino_x_norm_clstoken'], 'int.cls')
    _check(run.aggregated[0], parity['int.aggregated_tokens_00'], 'int.agg00')
    _check(run.aggregated[-1], parity['int.aggregated_tokens_23'], 'int.agg23')
    mean_abs = torch.stack([t.abs().double().mean() for t in run.aggregated])
    _check(mean_abs, parity['int.aggregated_tokens_mean_abs_per_layer'],
           'int.mean_abs')
    _check(torch.stack(run.camera_deltas), parity['int.camera_pose_branch_deltas'],
           'int.deltas')
    _check(torch.stack(run.track_list), parity['int.track_list'], 'int.track_list')
    assert list(run.track_fmaps.shape) == parity['int.track_fmaps_shape'].tolist()
    _check(run.track_fmaps[:, :, :8], parity['int.track_fmaps_ch0to7'],
           'int.track_fmaps')


def test_positional_embedding_interpolation(model: VGGT, parity: dict[str, np.ndarray]) -> None:
    dino = model.aggregator.patch_embed
    with torch.inference_mode():
        small = dino.interpolate_pos_encoding(10, 12, torch.float32)
        realistic = dino.interpolate_pos_encoding(28, 37, torch.float32)
    _check(small, parity['int.dino_pos_embed_interp'], 'int.pos_embed')
    _check(realistic[..., :16], parity['int.dino_pos_embed_interp_392x518_ch0to15'],
           'int.pos_embed')
