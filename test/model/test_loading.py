"""Loading weights: local safetensors/.pt files, the Hub (offline here) and bad checkpoints."""

from __future__ import annotations

from pathlib import Path
import time

from hub_server import fake_hub
import pytest
from safetensors.torch import save_file
import torch

from vggt_mapper.model import VGGTConfig, WeightsError
from vggt_mapper.model.loading import checkpoint_filter_fn, load_vggt, resolve_checkpoint
from vggt_mapper.model.synthetic import build_vggt

TINY = VGGTConfig.tiny()


@pytest.fixture(scope='module')
def tiny_state() -> dict[str, torch.Tensor]:
    return build_vggt(TINY).state_dict()


def _assert_loaded(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    assert not model.training
    loaded = model.state_dict()
    assert list(loaded) == list(state)
    for key, tensor in state.items():
        assert torch.equal(loaded[key], tensor), key
    images = torch.rand(1, 3, 28, 42)
    with torch.inference_mode():
        out = model(images)
    assert torch.isfinite(out.depth).all()


def test_load_safetensors_file(tmp_path: Path, tiny_state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / 'tiny.safetensors'
    save_file(tiny_state, path)
    _assert_loaded(load_vggt(path, config=TINY), tiny_state)


def test_load_pt_file_and_directory(tmp_path: Path, tiny_state: dict[str, torch.Tensor]) -> None:
    torch.save(tiny_state, tmp_path / 'model.pt')
    _assert_loaded(load_vggt(str(tmp_path / 'model.pt'), config=TINY), tiny_state)
    _assert_loaded(load_vggt(tmp_path, config=TINY), tiny_state)


def test_wrapped_ddp_checkpoint_is_remapped(tmp_path: Path,
                                            tiny_state: dict[str, torch.Tensor]) -> None:
    wrapped = {'model': {f'module.{k}': v for k, v in tiny_state.items()}}
    assert list(checkpoint_filter_fn(wrapped)) == list(tiny_state)
    torch.save(wrapped, tmp_path / 'wrapped.pt')
    _assert_loaded(load_vggt(tmp_path / 'wrapped.pt', config=TINY), tiny_state)


def test_partial_checkpoint_lists_missing_and_unexpected_keys(
        tmp_path: Path, tiny_state: dict[str, torch.Tensor]) -> None:
    partial = dict(tiny_state)
    del partial['camera_head.empty_pose_tokens']
    del partial['depth_head.norm.weight']
    partial['depth_head.extra.weight'] = torch.zeros(2)
    partial['aggregator.camera_token'] = torch.zeros(1, 2, 1, 16)
    save_file(partial, tmp_path / 'partial.safetensors')
    with pytest.raises(WeightsError) as info:
        load_vggt(tmp_path / 'partial.safetensors', config=TINY)
    message = str(info.value)
    assert 'missing keys (2)' in message
    assert 'camera_head.empty_pose_tokens' in message and 'depth_head.norm.weight' in message
    assert 'unexpected keys (1)' in message and 'depth_head.extra.weight' in message
    assert 'aggregator.camera_token: checkpoint [1, 2, 1, 16] vs model [1, 2, 1, 32]' in message


def test_1b_checkpoint_into_tiny_config_is_refused(tmp_path: Path,
                                                   tiny_state: dict[str, torch.Tensor]) -> None:
    save_file(tiny_state, tmp_path / 'tiny.safetensors')
    with pytest.raises(WeightsError, match=r'shape mismatches \(\d+\)'):
        load_vggt(tmp_path / 'tiny.safetensors', config=VGGTConfig())


class _Payload:
    """A pickled Python object: torch.load(weights_only=True) must refuse it."""


def test_pickled_object_checkpoint_is_refused(tmp_path: Path,
                                              tiny_state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / 'evil.pt'
    torch.save({'state_dict': tiny_state, 'extra': _Payload()}, path)
    with pytest.raises(WeightsError, match='refusing to load.*weights_only=True') as info:
        load_vggt(path, config=TINY)
    message = str(info.value)
    # Says what the file is and where it must come from; never torch's weights_only=False.
    assert 'not a plain checkpoint' in message and 'trusted source' in message
    assert '_Payload' in message and 'weights_only=False' not in message


def test_missing_and_corrupt_local_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match='does not exist.*--checkpoint PATH'):
        load_vggt(tmp_path / 'nope.safetensors', config=TINY)
    (tmp_path / 'bad.safetensors').write_bytes(b'not a checkpoint' * 4)
    with pytest.raises(WeightsError, match='cannot read safetensors'):
        load_vggt(tmp_path / 'bad.safetensors', config=TINY)


@pytest.mark.parametrize('repo_id', ['facebook/VGGT-1B', 'facebook/VGGT-1B-Commercial'])
def test_unreachable_hub_fails_fast_with_a_hint(tmp_path: Path, repo_id: str) -> None:
    # Nothing listens on port 9 of localhost: the connection is refused at once, whether or not
    # this machine has internet access (so no 5 GB download can start).
    started = time.monotonic()
    with pytest.raises(WeightsError) as info:
        load_vggt(repo_id, config=TINY, timeout_s=2.0, endpoint='http://127.0.0.1:9',
                  cache_dir=tmp_path / 'cache')
    assert time.monotonic() - started < 10.0
    message = str(info.value)
    assert repo_id in message and '--checkpoint PATH' in message


def test_hub_download_falls_back_to_model_pt(tmp_path: Path,
                                             tiny_state: dict[str, torch.Tensor]) -> None:
    torch.save(tiny_state, tmp_path / 'model.pt')
    with fake_hub({'model.pt': tmp_path / 'model.pt'}) as endpoint:
        model = load_vggt('facebook/VGGT-1B', config=TINY, endpoint=endpoint,
                          cache_dir=tmp_path / 'cache')
    _assert_loaded(model, tiny_state)
    # Now cached: no network needed the second time.
    model = load_vggt('facebook/VGGT-1B', config=TINY, endpoint='http://127.0.0.1:9',
                      cache_dir=tmp_path / 'cache')
    _assert_loaded(model, tiny_state)


def test_hub_prefers_safetensors(tmp_path: Path, tiny_state: dict[str, torch.Tensor]) -> None:
    save_file(tiny_state, tmp_path / 'model.safetensors')
    (tmp_path / 'model.pt').write_bytes(b'not read')
    files = {name: tmp_path / name for name in ('model.safetensors', 'model.pt')}
    with fake_hub(files) as endpoint:
        path = resolve_checkpoint('facebook/VGGT-1B', endpoint=endpoint,
                                  cache_dir=tmp_path / 'cache')
    assert path.name == 'model.safetensors'


def test_gated_hub_repo_asks_for_a_token(tmp_path: Path) -> None:
    with fake_hub({}, gated=True) as endpoint, pytest.raises(WeightsError,
                                                             match='gated.*--token or HF_TOKEN'):
        load_vggt('facebook/VGGT-1B-Commercial', config=TINY, endpoint=endpoint,
                  cache_dir=tmp_path / 'cache')


def test_hub_repo_without_checkpoint(tmp_path: Path) -> None:
    with fake_hub({}) as endpoint, pytest.raises(WeightsError, match='has none of'):
        load_vggt('someone/empty', config=TINY, endpoint=endpoint, cache_dir=tmp_path / 'c')
