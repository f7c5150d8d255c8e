"""VGGT forward contract: head selection, input shapes, precision, errors (tiny model)."""

from __future__ import annotations

from dataclasses import replace
import warnings

import pytest
import torch

from vggt_mapper.model import MAPPING_HEADS, VGGT, VGGTConfig, VGGTOutput
from vggt_mapper.model.layers import set_fused_attn, use_fused_attn
from vggt_mapper.model.synthetic import build_vggt


@pytest.fixture(scope='module')
def model() -> VGGT:
    return build_vggt(VGGTConfig.tiny())


@pytest.fixture(scope='module')
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 56, 98, generator=generator)  # S=2 frames of 4×7 patches


QUERIES = torch.tensor([[10.0, 20.0], [70.5, 33.25]])  # pixel (x, y) in frame 0


def test_mapping_heads_skip_points_and_tracks(model: VGGT, images: torch.Tensor) -> None:
    with torch.inference_mode():
        full = model(images, QUERIES)
        mapping = model(images, QUERIES, heads=MAPPING_HEADS)
    assert mapping.world_points is None and mapping.track is None and mapping.vis is None
    assert torch.equal(mapping.pose_enc, full.pose_enc)
    assert torch.equal(mapping.depth, full.depth)
    assert mapping.depth.shape == (1, 2, 56, 98, 1)
    assert mapping.pose_enc.shape == (1, 2, 9)


def test_default_heads_run_track_only_with_queries(model: VGGT, images: torch.Tensor) -> None:
    with torch.inference_mode():
        without = model(images)
        with_queries = model(images, QUERIES)
    assert without.track is None and without.world_points is not None
    assert with_queries.track.shape == (1, 2, 2, 2)
    assert with_queries.vis.shape == with_queries.conf.shape == (1, 2, 2)
    assert torch.equal(with_queries.track[0, 0], QUERIES)


def test_point_and_track_only_when_asked(model: VGGT, images: torch.Tensor) -> None:
    with torch.inference_mode():
        out = model(images, QUERIES, heads={'track'})
    assert out.track is not None
    assert out.pose_enc is None and out.depth is None and out.world_points is None


@pytest.mark.parametrize(('heads', 'queries', 'match'), [
    ({'camera', 'normals'}, None, 'unknown heads'),
    ({'track'}, None, 'needs query_points'),
])
def test_bad_head_selection_is_refused(model: VGGT, images: torch.Tensor, heads: set[str],
                                       queries: torch.Tensor | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        model(images, queries, heads=heads)


def test_disabled_head_cannot_be_selected(images: torch.Tensor) -> None:
    model = build_vggt(replace(VGGTConfig.tiny(), enable_point=False, enable_track=False))
    with pytest.raises(ValueError, match='disabled'):
        model(images, heads={'point'})
    with torch.inference_mode():
        out = model(images, QUERIES)  # queries are ignored without a track head
    assert out.track is None and out.depth is not None


def test_batched_input_equals_unbatched(model: VGGT, images: torch.Tensor) -> None:
    with torch.inference_mode():
        single = model(images, heads=MAPPING_HEADS)
        batched = model(torch.stack([images, images.flip(-1)]), heads=MAPPING_HEADS)
    assert batched.depth.shape[:2] == (2, 2)
    torch.testing.assert_close(batched.depth[:1], single.depth, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batched.pose_enc[:1], single.pose_enc, rtol=1e-5, atol=1e-5)
    assert batched.images.shape == (2, 2, 3, 56, 98)


@pytest.mark.parametrize('shape', [(2, 3, 56, 99), (2, 3, 55, 98), (3, 56, 98)])
def test_bad_image_shapes_are_refused(model: VGGT, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match='multiple of the patch size|images must be'):
        model(torch.rand(*shape))


def test_heads_run_in_float32_under_autocast(model: VGGT, images: torch.Tensor) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter('error', FutureWarning)  # no deprecated autocast API
        with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(images, heads={'camera', 'depth', 'point'})
    assert out.pose_enc.dtype == out.depth.dtype == out.world_points.dtype == torch.float32
    assert torch.isfinite(out.depth).all()


def test_explicit_attention_matches_sdpa(model: VGGT, images: torch.Tensor) -> None:
    assert use_fused_attn()
    with torch.inference_mode():
        fused = model(images, heads=MAPPING_HEADS)
        set_fused_attn(False)
        try:
            explicit = model(images, heads=MAPPING_HEADS)
        finally:
            set_fused_attn(True)
    torch.testing.assert_close(explicit.depth, fused.depth, rtol=1e-4, atol=0)
    torch.testing.assert_close(explicit.pose_enc, fused.pose_enc, rtol=1e-4, atol=1e-4)


def test_output_is_frozen(model: VGGT, images: torch.Tensor) -> None:
    with torch.inference_mode():
        out = model(images[:1], heads={'camera'})
    assert isinstance(out, VGGTOutput)
    with pytest.raises(AttributeError):
        out.depth = out.pose_enc  # type: ignore[misc]


def test_infer_runs_in_inference_mode_with_optional_autocast(
        model: VGGT, images: torch.Tensor) -> None:
    out = model.infer(images, heads=MAPPING_HEADS)
    assert out.depth.is_inference() and out.world_points is None
    with torch.inference_mode():
        expected = model(images, heads=MAPPING_HEADS)
    assert torch.equal(out.depth, expected.depth)
    low = model.infer(images, heads=MAPPING_HEADS, autocast_dtype=torch.bfloat16)
    assert low.depth.dtype == torch.float32
    assert not torch.equal(low.depth, expected.depth)  # the aggregator did run in bfloat16
    torch.testing.assert_close(low.depth, expected.depth, rtol=0.1, atol=0)


def test_only_layers_read_by_the_selected_heads_are_kept(
        model: VGGT, images: torch.Tensor) -> None:
    kept: list[list[int]] = []

    def hook(module: torch.nn.Module, args: tuple, out: tuple) -> None:
        kept.append([i for i, t in enumerate(out[0]) if t is not None])

    handle = model.aggregator.register_forward_hook(hook)
    try:
        with torch.inference_mode():
            model(images, heads={'camera'})
            model(images, heads=MAPPING_HEADS)
            model.keep_all_layers = True
            model(images, heads={'camera'})
    finally:
        model.keep_all_layers = False
        handle.remove()
    depth = model.config.aggregator.depth
    assert kept[0] == [depth - 1]
    assert kept[1] == sorted({*model.config.depth.intermediate_layer_idx, depth - 1})
    assert kept[2] == list(range(depth))


def test_query_batch_must_match_images(model: VGGT, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match='query_points must be'):
        model(torch.stack([images, images]), QUERIES[None])


def test_heads_in_smaller_frame_chunks_give_the_same_result(
        model: VGGT, images: torch.Tensor, monkeypatch: pytest.MonkeyPatch) -> None:
    spans: list[tuple[int, int]] = []
    run_span = model.depth_head._forward

    def recording(tokens: list[torch.Tensor], frames: torch.Tensor, patch_start_idx: int,
                  start: int, end: int) -> object:
        spans.append((start, end))
        return run_span(tokens, frames, patch_start_idx, start, end)

    with torch.inference_mode():
        whole = model(images, heads=MAPPING_HEADS)
        monkeypatch.setattr(model.depth_head, '_forward', recording)
        chunked = model(images, heads=MAPPING_HEADS, frames_chunk_size=1)

    assert spans == [(0, 1), (1, 2)]
    torch.testing.assert_close(chunked.depth, whole.depth, rtol=1e-5, atol=0)
    torch.testing.assert_close(chunked.pose_enc, whole.pose_enc, rtol=0, atol=0)


def test_frames_chunk_size_below_one_is_refused(model: VGGT, images: torch.Tensor) -> None:
    with pytest.raises(ValueError, match='frames_chunk_size'):
        model(images, heads=MAPPING_HEADS, frames_chunk_size=0)
