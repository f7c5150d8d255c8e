"""Numerical parity of the tiny VGGT with the reference implementation's stored outputs."""

from __future__ import annotations

from intermediates import Captured, run_with_intermediates
import numpy as np
import pytest
from safetensors.torch import load_file
from tolerance import assert_close_ref, REFERENCE_DIR
import torch

from vggt_mapper.model import VGGT, VGGTConfig

CASES = ('s3', 'b2', 's1')
DENSE_KEYS = ('pose_enc', 'depth', 'depth_conf', 'world_points', 'world_points_conf')
TRACK_KEYS = ('track', 'vis', 'conf')


@pytest.fixture(scope='module')
def parity() -> dict[str, np.ndarray]:
    with np.load(REFERENCE_DIR / 'tiny_parity.npz') as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope='module')
def model() -> VGGT:
    model = VGGT(VGGTConfig.tiny())
    model.load_state_dict(load_file(REFERENCE_DIR / 'tiny_weights.safetensors'), strict=True)
    return model.eval()


def _inputs(parity: dict[str, np.ndarray], case: str,
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    images = torch.from_numpy(parity[f'{case}.in.images'])
    key = f'{case}.in.query_points'
    return images, (torch.from_numpy(parity[key]) if key in parity else None)


@pytest.fixture(scope='module')
def runs(model: VGGT, parity: dict[str, np.ndarray]) -> dict[str, Captured]:
    return {case: run_with_intermediates(model, *_inputs(parity, case)) for case in CASES}


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('key', DENSE_KEYS + TRACK_KEYS)
def test_outputs_match_reference(runs: dict[str, Captured], parity: dict[str, np.ndarray],
                                 case: str, key: str) -> None:
    out = getattr(runs[case].output, key)
    if f'{case}.out.{key}' not in parity:  # s1 has no queries → no tracks
        assert out is None
        return
    assert out.dtype == torch.float32
    assert_close_ref(out, parity[f'{case}.out.{key}'], key)
    # The reference's float64 run is a higher-precision target; ours is as close to it.
    assert_close_ref(out, parity[f'{case}.ref64.{key}'], key)


@pytest.mark.parametrize('case', CASES)
def test_pose_enc_list_and_images(runs: dict[str, Captured], parity: dict[str, np.ndarray],
                                  case: str) -> None:
    out = runs[case].output
    assert isinstance(out.pose_enc_list, list) and len(out.pose_enc_list) == 4
    assert_close_ref(torch.stack(out.pose_enc_list), parity[f'{case}.out.pose_enc_list'],
                     'pose_enc_list')
    assert out.pose_enc is out.pose_enc_list[-1]
    assert_close_ref(out.images, parity[f'{case}.out.images'], 'images')


@pytest.mark.parametrize('case', CASES)
def test_intermediates_match_reference(model: VGGT, runs: dict[str, Captured],
                                       parity: dict[str, np.ndarray], case: str) -> None:
    run = runs[case]
    start = model.aggregator.patch_start_idx
    assert_close_ref(run.dino_prenorm, parity[f'{case}.int.dino_x_prenorm'], 'int.prenorm')
    assert_close_ref(run.dino_normed[:, start:], parity[f'{case}.int.dino_x_norm_patchtokens'],
                     'int.patchtokens')
    assert len(run.aggregated) == model.config.aggregator.depth
    assert_close_ref(torch.stack(run.aggregated), parity[f'{case}.int.aggregated_tokens_all'],
                     'int.aggregated_tokens_all')
    assert_close_ref(torch.stack(run.camera_deltas),
                     parity[f'{case}.int.camera_pose_branch_deltas'], 'int.deltas')
    images = torch.from_numpy(parity[f'{case}.in.images'])
    grid_h, grid_w = images.shape[-2] // 14, images.shape[-1] // 14
    with torch.inference_mode():
        pos = model.aggregator.patch_embed.interpolate_pos_encoding(grid_h, grid_w,
                                                                    torch.float32)
    assert_close_ref(pos, parity[f'{case}.int.dino_pos_embed_interp'], 'int.pos_embed')
    if f'{case}.int.track_list' in parity:
        assert_close_ref(torch.stack(run.track_list), parity[f'{case}.int.track_list'],
                         'int.track_list')
        assert_close_ref(run.track_fmaps, parity[f'{case}.int.track_fmaps'], 'int.track_fmaps')


def test_tracks_start_at_the_queries(runs: dict[str, Captured],
                                     parity: dict[str, np.ndarray]) -> None:
    track = runs['b2'].output.track
    queries = torch.from_numpy(parity['b2.in.query_points'])
    assert torch.equal(track[:, 0], queries)


def test_parity_catches_a_perturbed_weight(model: VGGT, parity: dict[str, np.ndarray]) -> None:
    # The comparison must be able to fail: nudge one LayerScale of the last global block.
    gamma = model.aggregator.global_blocks[-1].ls1.gamma
    saved = gamma.detach().clone()
    try:
        with torch.no_grad():
            gamma.mul_(1.01)
        run = run_with_intermediates(model, *_inputs(parity, 's3'))
        with pytest.raises(AssertionError, match='pose_enc'):
            assert_close_ref(run.output.pose_enc, parity['s3.out.pose_enc'], 'pose_enc')
    finally:
        with torch.no_grad():
            gamma.copy_(saved)
