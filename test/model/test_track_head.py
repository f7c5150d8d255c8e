"""Tests of the tracking head against the reference VGGT's stored tiny-model outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from safetensors.torch import load_file
from tolerance import assert_close_ref, REFERENCE_DIR
import torch

from vggt_mapper.model.config import TrackHeadConfig, VGGTConfig
from vggt_mapper.model.heads.track_head import TrackHead
from vggt_mapper.model.track import (
    correlation,
    CorrelationPyramid,
    flow_embedding,
    sincos_position_grid,
    TrackerPredictor,
)

PREFIX = 'track_head.'
# The aggregator's camera token and 4 registers precede the patch tokens.
PATCH_START_IDX = 5
CASES = ('s3', 'b2')


@pytest.fixture(scope='module')
def parity() -> dict[str, np.ndarray]:
    with np.load(REFERENCE_DIR / 'tiny_parity.npz') as data:
        return {key: data[key] for key in data.files if key.startswith(CASES)}


@pytest.fixture(scope='module')
def tiny_head() -> TrackHead:
    head = TrackHead(VGGTConfig.tiny().track).eval()
    weights = load_file(REFERENCE_DIR / 'tiny_weights.safetensors')
    head.load_state_dict(
        {key[len(PREFIX):]: value for key, value in weights.items() if key.startswith(PREFIX)},
        strict=True)
    return head


def reference_entries(filename: str) -> list[tuple[str, tuple[int, ...]]]:
    """Return the (key without prefix, shape) of the reference's track-head tensors, in order."""
    with (REFERENCE_DIR / filename).open() as f:
        entries = json.load(f)['state_dict']
    return [(e['key'][len(PREFIX):], tuple(e['shape'])) for e in entries
            if e['key'].startswith(PREFIX)]


def case_inputs(parity: dict[str, np.ndarray], case: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the case's images [B, S, 3, H, W] and queries [B, N, 2], batch dim added."""
    images = torch.from_numpy(parity[f'{case}.in.images'])
    queries = torch.from_numpy(parity[f'{case}.in.query_points'])
    if queries.ndim == 2:
        images, queries = images[None], queries[None]
    return images, queries


def test_tiny_state_dict_matches_reference_keys_shapes_and_order() -> None:
    head = TrackHead(VGGTConfig.tiny().track)
    ours = [(key, tuple(value.shape)) for key, value in head.state_dict().items()]
    assert ours == reference_entries('tiny_config.json')


def test_vggt_1b_state_dict_matches_manifest_on_meta_device() -> None:
    with torch.device('meta'):
        head = TrackHead(TrackHeadConfig())
    ours = [(key, tuple(value.shape)) for key, value in head.state_dict().items()]
    assert ours == reference_entries('vggt1b_manifest.json')
    with (REFERENCE_DIR / 'vggt1b_manifest.json').open() as f:
        expected_params = json.load(f)['parameters_by_part']['track_head']
    assert sum(p.numel() for p in head.parameters()) == expected_params


@pytest.mark.parametrize('case', CASES)
def test_tracker_on_stored_feature_maps_matches_reference(
        tiny_head: TrackHead, parity: dict[str, np.ndarray], case: str) -> None:
    _, queries = case_inputs(parity, case)
    fmaps = torch.from_numpy(parity[f'{case}.int.track_fmaps'])
    with torch.no_grad():
        out = tiny_head.tracker(queries, fmaps, iters=tiny_head.config.iters)
    assert len(out.track_list) == tiny_head.config.iters
    assert out.conf is not None
    ref_list = parity[f'{case}.int.track_list']
    # The per-iteration list holds pixel tracks: the track tolerance (2e-3 px) applies.
    assert_close_ref(torch.stack(out.track_list), ref_list, 'track')
    assert_close_ref(out.track_list[-1], parity[f'{case}.out.track'], 'track')
    assert_close_ref(out.vis, parity[f'{case}.out.vis'], 'vis')
    assert_close_ref(out.conf, parity[f'{case}.out.conf'], 'conf')


@pytest.mark.parametrize('case', CASES)
def test_head_on_stored_aggregated_tokens_matches_reference(
        tiny_head: TrackHead, parity: dict[str, np.ndarray], case: str) -> None:
    images, queries = case_inputs(parity, case)
    tokens = list(torch.from_numpy(parity[f'{case}.int.aggregated_tokens_all']))
    with torch.no_grad():
        fmaps = tiny_head.feature_extractor(tokens, images, PATCH_START_IDX)
        track_list, vis, conf = tiny_head(tokens, images, PATCH_START_IDX, queries)
    assert conf is not None
    assert_close_ref(fmaps, parity[f'{case}.int.track_fmaps'], 'int.track_fmaps')
    assert_close_ref(torch.stack(track_list), parity[f'{case}.int.track_list'], 'track')
    assert_close_ref(track_list[-1], parity[f'{case}.out.track'], 'track')
    assert_close_ref(vis, parity[f'{case}.out.vis'], 'vis')
    assert_close_ref(conf, parity[f'{case}.out.conf'], 'conf')


def test_first_frame_track_equals_query_points_exactly(
        tiny_head: TrackHead, parity: dict[str, np.ndarray]) -> None:
    images, queries = case_inputs(parity, 's3')
    tokens = list(torch.from_numpy(parity['s3.int.aggregated_tokens_all']))
    with torch.no_grad():
        track_list, _, _ = tiny_head(tokens, images, PATCH_START_IDX, queries)
    for track in track_list:
        assert torch.equal(track[:, 0], queries)
        # The other frames move: a tracker that copied the queries would not pass.
        assert not torch.equal(track[:, 1:], queries[:, None].expand_as(track[:, 1:]))


def test_fewer_iterations_change_the_tracks(
        tiny_head: TrackHead, parity: dict[str, np.ndarray]) -> None:
    _, queries = case_inputs(parity, 's3')
    fmaps = torch.from_numpy(parity['s3.int.track_fmaps'])
    with torch.no_grad():
        full = tiny_head.tracker(queries, fmaps, iters=3)
        short = tiny_head.tracker(queries, fmaps, iters=2)
    assert len(short.track_list) == 2
    torch.testing.assert_close(short.track_list[1], full.track_list[1], rtol=0, atol=0)
    assert not torch.equal(short.vis, full.vis)


def test_correlation_window_is_x_offset_major() -> None:
    # One channel whose value is the column index x: with a unit track feature the correlation
    # at (x, y) is x itself, so each window sample reveals its own x offset.
    radius, side = 2, 5
    height, width = 12, 16
    column = torch.arange(width, dtype=torch.float32).expand(height, width)
    pyramid = CorrelationPyramid(column.view(1, 1, 1, height, width), num_levels=1, radius=radius)
    centre_x, centre_y = 7.25, 5.5
    window = pyramid.sample(torch.ones(1, 1, 1, 1), torch.tensor([[[[centre_x, centre_y]]]]))
    window = window.view(side, side)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    expected = (centre_x + offsets)[:, None].expand(side, side)
    torch.testing.assert_close(window, expected)


def test_correlation_pyramid_levels_halve_and_zero_pad() -> None:
    fmaps = torch.ones(1, 2, 4, 8, 12)
    pyramid = CorrelationPyramid(fmaps, num_levels=3, radius=1)
    assert [tuple(level.shape[-2:]) for level in pyramid.levels] == [(8, 12), (4, 6), (2, 3)]
    feats = torch.ones(1, 2, 1, 4)
    values = pyramid.sample(feats, torch.zeros(1, 2, 1, 2))
    assert values.shape == (1, 2, 1, 27)
    values = values.view(2, 3, 3, 3)  # frame, level, x offset, y offset
    # ⟨1, 1⟩ / √4 = 2 inside the map; the corner's negative offsets fall outside (zeros).
    assert pyramid.num_channels == 27
    torch.testing.assert_close(values[:, :, 1:, 1:], torch.full((2, 3, 2, 2), 2.0))
    # Up to rounding of the pixel -> [-1, 1] mapping, which leaves ~1e-7 of the inside pixel.
    outside = torch.cat([values[:, :, 0, :], values[:, :, :, 0]])
    torch.testing.assert_close(outside, torch.zeros_like(outside), rtol=0, atol=1e-6)


def test_one_pixel_level_reads_its_only_pixel_everywhere() -> None:
    # grid_sample with align_corners=True maps any coordinate on a 1-pixel axis to that pixel,
    # so the coarsest level of a small map is never zero-padded (the reference does the same).
    fmaps = torch.ones(1, 1, 4, 2, 2)
    pyramid = CorrelationPyramid(fmaps, num_levels=2, radius=1)
    assert tuple(pyramid.levels[1].shape[-2:]) == (1, 1)
    values = pyramid.sample(torch.ones(1, 1, 1, 4), torch.tensor([[[[3.0, -2.0]]]]))
    torch.testing.assert_close(values[..., 9:], torch.full((1, 1, 1, 9), 2.0))


def test_chunked_correlation_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    generator = torch.Generator().manual_seed(0)
    fmaps = torch.randn(2, 3, 8, 20, 24, generator=generator)
    feats = torch.randn(2, 3, 50, 8, generator=generator)
    coords = torch.rand(2, 3, 50, 2, generator=generator) * torch.tensor([28.0, 24.0]) - 2.0
    pyramid = CorrelationPyramid(fmaps, num_levels=3, radius=2)
    whole = pyramid.sample(feats, coords)
    # Chunks of 7 tracks (the last one shorter).
    monkeypatch.setattr(correlation, 'CHUNK_ELEMENTS', 2 * 3 * 20 * 24 * 7)
    torch.testing.assert_close(pyramid.sample(feats, coords), whole, rtol=0, atol=1e-6)


def test_flow_embedding_interleaves_sin_and_cos_with_linear_frequencies() -> None:
    flows = torch.tensor([[0.3, -0.7]])
    emb = flow_embedding(flows, 8)
    freqs = [k * 1000.0 / 8 for k in (0, 2, 4, 6)]
    expected = []
    for value in (0.3, -0.7):
        for f in freqs:
            expected += [math.sin(value * f), math.cos(value * f)]
    torch.testing.assert_close(emb[0], torch.tensor(expected), atol=1e-4, rtol=0)


def test_position_grid_encodes_x_then_y() -> None:
    grid = sincos_position_grid(8, height=3, width=5)
    assert grid.shape == (1, 8, 3, 5)
    # Channels 0..1 are sin(x·w_j): constant down a column, varying along a row.
    assert torch.equal(grid[0, 1, 0], grid[0, 1, 2])
    torch.testing.assert_close(grid[0, 1, 0, 3], torch.tensor(math.sin(3 * 0.01)))
    torch.testing.assert_close(grid[0, 7, 2, 0], torch.tensor(math.cos(2 * 0.01)))


def test_rejects_images_too_small_for_the_pyramid() -> None:
    config = TrackHeadConfig()  # 7 levels need both sides >= 128 px
    with torch.device('meta'):
        head = TrackHead(config)
    assert head.min_image_size == 128
    images = torch.zeros(1, 2, 3, 126, 168, device='meta')
    with pytest.raises(ValueError, match='at least 128 px'):
        head([], images, PATCH_START_IDX, torch.zeros(1, 1, 2, device='meta'))


def test_tracker_rejects_bad_shapes() -> None:
    tracker = TrackerPredictor(stride=2, corr_levels=2, corr_radius=1, latent_dim=8,
                               hidden_size=16, depth=1)
    fmaps = torch.zeros(1, 2, 8, 6, 6)
    with pytest.raises(ValueError, match=r'\[B, N, 2\]'):
        tracker(torch.zeros(1, 3), fmaps)
    with pytest.raises(ValueError, match='fmaps must be'):
        tracker(torch.zeros(1, 3, 2), torch.zeros(1, 2, 4, 6, 6))
    with pytest.raises(ValueError, match='too small'):
        tracker(torch.zeros(1, 3, 2), torch.zeros(1, 2, 8, 1, 6))


def test_latent_dim_must_match_extractor_features() -> None:
    with pytest.raises(ValueError, match='latent_dim'):
        TrackHead(TrackHeadConfig(latent_dim=64))


def test_float64_tracker_stays_within_tolerance_of_the_fp32_reference(
        tiny_head: TrackHead, parity: dict[str, np.ndarray]) -> None:
    # Promotion must not silently drop to float32 anywhere (embeddings, position grid).
    tracker = TrackHead(VGGTConfig.tiny().track).tracker
    tracker.load_state_dict(tiny_head.tracker.state_dict())
    tracker = tracker.double().eval()
    _, queries = case_inputs(parity, 's3')
    fmaps = torch.from_numpy(parity['s3.int.track_fmaps']).double()
    with torch.no_grad():
        out = tracker(queries.double(), fmaps, iters=tiny_head.config.iters)
    assert out.track_list[-1].dtype == torch.float64 and out.vis.dtype == torch.float64
    assert_close_ref(out.track_list[-1], parity['s3.out.track'], 'track')
    assert_close_ref(out.vis, parity['s3.out.vis'], 'vis')


def test_no_queries_and_single_frame_give_empty_and_trivial_tracks(tiny_head: TrackHead) -> None:
    fmaps = torch.randn(1, 3, 16, 20, 24)
    with torch.no_grad():
        empty = tiny_head.tracker(torch.zeros(1, 0, 2), fmaps, iters=2)
        single = tiny_head.tracker(torch.tensor([[[10.5, 7.0]]]), fmaps[:, :1], iters=2)
    assert [t.shape for t in empty.track_list] == [(1, 3, 0, 2)] * 2
    assert empty.vis.shape == (1, 3, 0)
    assert torch.equal(single.track_list[-1], torch.tensor([[[[10.5, 7.0]]]]))
    assert single.vis.shape == (1, 1, 1) and torch.isfinite(single.vis).all()


def test_runs_under_bfloat16_autocast_with_float32_tracks(
        tiny_head: TrackHead, parity: dict[str, np.ndarray]) -> None:
    # The reference runs the track head under the caller's autocast; tracks must stay float32.
    images, queries = case_inputs(parity, 's3')
    tokens = list(torch.from_numpy(parity['s3.int.aggregated_tokens_all']))
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        track_list, vis, _ = tiny_head(tokens, images, PATCH_START_IDX, queries)
    assert track_list[-1].dtype == torch.float32
    assert torch.equal(track_list[-1][:, 0], queries)
    # bfloat16 noise only: well under a pixel from the fp32 reference.
    error_px = (track_list[-1] - torch.from_numpy(parity['s3.out.track'])).abs().max()
    assert error_px < 0.5
    assert torch.isfinite(vis.float()).all()
