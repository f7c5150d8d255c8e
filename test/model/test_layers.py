"""Building blocks: RoPE, positions, UV embedding, DPT residual units, pose activation."""

from __future__ import annotations

import math

import pytest
import torch

from vggt_mapper.model import VGGTConfig
from vggt_mapper.model.heads.camera_head import activate_pose
from vggt_mapper.model.heads.dpt_head import DPTHead, ResidualConvUnit
from vggt_mapper.model.layers import (
    Attention,
    patch_positions,
    RotaryPositionEmbedding2D,
    set_fused_attn,
    uv_grid,
    uv_sincos_embed,
)

ROPE = RotaryPositionEmbedding2D(100.0)


def test_patch_positions_are_row_major_plus_one_with_specials_at_origin() -> None:
    pos = patch_positions(2, 2, 3, 5, torch.device('cpu'))
    assert pos.shape == (2, 11, 2)
    assert pos[0, :5].eq(0).all()
    assert pos[0, 5:].tolist() == [[1, 1], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]


def test_rope_rows_drive_first_half_columns_second_half() -> None:
    x = torch.randn(1, 2, 3, 64)
    base = torch.tensor([[[1, 1], [2, 3], [4, 5]]])
    moved_col = base.clone()
    moved_col[..., 1] += 7
    a, b = ROPE(x, base), ROPE(x, moved_col)
    assert torch.equal(a[..., :32], b[..., :32])
    assert not torch.allclose(a[..., 32:], b[..., 32:])


def test_rope_pairs_dims_i_and_i_plus_16_and_keeps_their_norm() -> None:
    x = torch.zeros(1, 1, 1, 64)
    x[..., 1] = 1.0  # dim 1 rotates only into dim 17 (its pair), by pos·100^(-2·1/32)
    pos = torch.tensor([[[3, 0]]])
    out = ROPE(x, pos)
    angle = 3 * 100.0 ** (-2 / 32)
    assert out[0, 0, 0, 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert out[0, 0, 0, 17].item() == pytest.approx(math.sin(angle), abs=1e-6)
    nonzero = out.abs().gt(1e-7).nonzero()[:, -1].tolist()
    assert nonzero == [1, 17]


def test_rope_scores_depend_on_relative_position_only() -> None:
    q, k = torch.randn(1, 1, 1, 64), torch.randn(1, 1, 1, 64)

    def score(pq: list[int], pk: list[int]) -> float:
        rq = ROPE(q, torch.tensor([[pq]]))
        rk = ROPE(k, torch.tensor([[pk]]))
        return float((rq * rk).sum())

    assert score([2, 3], [1, 1]) == pytest.approx(score([7, 9], [6, 7]), rel=1e-4)
    assert score([2, 3], [1, 1]) != pytest.approx(score([2, 3], [1, 2]), rel=1e-4)


def test_rope_precomputed_tables_equal_direct_call() -> None:
    pos = patch_positions(2, 4, 7, 5, torch.device('cpu'))
    x = torch.randn(2, 4, pos.shape[1], 32)
    assert torch.equal(ROPE(x, pos), ROPE(x, ROPE.tables(pos, 32)))


def test_uv_grid_spans_the_normalized_diagonal() -> None:
    grid = uv_grid(4, 2, aspect_ratio=2.0, dtype=torch.float32, device=torch.device('cpu'))
    assert grid.shape == (2, 4, 2)
    span_x, span_y = 2 / math.sqrt(5), 1 / math.sqrt(5)
    assert grid[0, -1, 0].item() == pytest.approx(span_x * 3 / 4)
    assert grid[-1, 0, 1].item() == pytest.approx(span_y * 1 / 2)
    assert grid[0, 0, 0].item() == pytest.approx(-span_x * 3 / 4)


def test_uv_embedding_is_x_then_y_each_sin_then_cos() -> None:
    emb = uv_sincos_embed(3, 2, 8, 1.5, dtype=torch.float32, device=torch.device('cpu'))
    grid = uv_grid(3, 2, 1.5, dtype=torch.float32, device=torch.device('cpu'))
    u, v = grid[..., 0].double(), grid[..., 1].double()
    omega1 = 1 / 100.0**0.5
    assert torch.allclose(emb[0].double(), torch.sin(u), atol=1e-7)
    assert torch.allclose(emb[1].double(), torch.sin(u * omega1), atol=1e-7)
    assert torch.allclose(emb[2].double(), torch.cos(u), atol=1e-7)
    assert torch.allclose(emb[4].double(), torch.sin(v), atol=1e-7)
    assert torch.allclose(emb[7].double(), torch.cos(v * omega1), atol=1e-7)


def test_residual_conv_unit_adds_relu_of_input_without_mutating_it() -> None:
    unit = ResidualConvUnit(4)
    for conv in (unit.conv1, unit.conv2):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    x = torch.randn(1, 4, 3, 3)
    before = x.clone()
    out = unit(x)
    assert torch.equal(out, torch.relu(before))  # the reference's in-place ReLU quirk
    assert torch.equal(x, before)


def test_dpt_frame_chunks_do_not_change_the_result() -> None:
    head = DPTHead(VGGTConfig.tiny().depth).eval()
    tokens = [torch.randn(1, 3, 5 + 8, 64) for _ in range(6)]
    images = torch.rand(1, 3, 3, 28, 56)
    with torch.inference_mode():
        whole = head(tokens, images, 5, frames_chunk_size=None)
        chunked = head(tokens, images, 5, frames_chunk_size=2)
    assert whole[0].shape == (1, 3, 28, 56, 1) and whole[1].shape == (1, 3, 28, 56)
    torch.testing.assert_close(chunked[0], whole[0], rtol=1e-6, atol=0)
    torch.testing.assert_close(chunked[1], whole[1], rtol=1e-6, atol=0)


def test_dpt_feature_only_returns_downsampled_features() -> None:
    from dataclasses import replace
    config = replace(VGGTConfig.tiny().depth, feature_only=True, down_ratio=2, pos_embed=False)
    head = DPTHead(config).eval()
    assert not any('output_conv2' in k for k in head.state_dict())
    tokens = [torch.randn(2, 2, 5 + 8, 64) for _ in range(6)]
    with torch.inference_mode():
        feats = head(tokens, torch.rand(2, 2, 3, 28, 56), 5)
    assert feats.shape == (2, 2, 16, 14, 28)


def test_pose_activation_applies_relu_to_fov_only() -> None:
    raw = -torch.ones(1, 1, 9)
    out = activate_pose(raw)
    assert out[..., :7].eq(-1).all() and out[..., 7:].eq(0).all()
    with pytest.raises(ValueError, match='unknown pose activation'):
        activate_pose(raw, trans_act='tanh')


def test_attention_switch_explicit_matches_fused() -> None:
    attn = Attention(32, 2, qk_norm=True, rope=ROPE).eval()
    x = torch.randn(2, 13, 32)
    pos = patch_positions(2, 2, 4, 5, torch.device('cpu'))
    with torch.inference_mode():
        fused = attn(x, pos)
        set_fused_attn(False)
        try:
            explicit = attn(x, pos)
        finally:
            set_fused_attn(True)
    torch.testing.assert_close(explicit, fused, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match='needs token positions'):
        attn(x)
