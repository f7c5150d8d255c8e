"""
Load VGGT weights from the Hugging Face Hub or a local checkpoint, strictly.

Checkpoints are plain state dicts with the official key names (``facebook/VGGT-1B``: 1,797 fp32
tensors). They are read with safetensors or ``torch.load(weights_only=True)`` (no arbitrary
pickles), passed through :func:`checkpoint_filter_fn` (the one place where keys are remapped)
and loaded with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
import importlib
import logging
import os
from pathlib import Path
import pickle
import re
import time

import torch

from vggt_mapper.model.config import VGGTConfig
from vggt_mapper.model.errors import WeightsError
from vggt_mapper.model.vggt import VGGT

__all__ = [
    'CHECKPOINT_FILENAMES',
    'DEFAULT_SOURCE',
    'checkpoint_filter_fn',
    'load_vggt',
    'read_state_dict',
    'resolve_checkpoint',
]

DEFAULT_SOURCE = 'facebook/VGGT-1B'
# Preferred first: safetensors needs no unpickling and loads faster.
CHECKPOINT_FILENAMES = ('model.safetensors', 'model.pt')
_LOCAL_SUFFIXES = ('.safetensors', '.pt', '.pth', '.bin')
_REPO_ID = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$')
_HINT = ('download the checkpoint elsewhere and pass the local file with --checkpoint PATH '
         '(ROS node: the checkpoint parameter), a .safetensors or .pt state dict')
_LOG = logging.getLogger(__name__)
_UNSUPPORTED_GLOBAL = re.compile(r'Unsupported global: GLOBAL ([\w.]+)')


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exception types meaning 'the Hub could not be reached' (HTTP client varies by version)."""
    errors: list[type[BaseException]] = [OSError, TimeoutError]
    for module, name in (('httpx2', 'HTTPError'), ('httpx', 'HTTPError'),
                         ('requests', 'RequestException')):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _is_local(source: str | os.PathLike[str]) -> bool:
    if isinstance(source, os.PathLike):
        return True
    return (os.path.exists(source) or source.endswith(_LOCAL_SUFFIXES)
            or source.startswith(('.', '/', '~')) or not _REPO_ID.match(source))


def _resolve_local(path: Path) -> Path:
    if path.is_dir():
        for name in CHECKPOINT_FILENAMES:
            if (path / name).is_file():
                return path / name
        raise WeightsError(f'no checkpoint in directory {str(path)!r}: expected one of '
                           f'{list(CHECKPOINT_FILENAMES)}')
    if not path.is_file():
        raise WeightsError(f'checkpoint file {str(path)!r} does not exist; pass an existing '
                           '.safetensors or .pt file with --checkpoint PATH (ROS node: the '
                           'checkpoint parameter)')
    return path


def _resolve_hub(repo_id: str, token: str | None, revision: str | None, timeout_s: float,
                 endpoint: str | None, cache_dir: str | os.PathLike[str] | None) -> Path:
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    network_errors: tuple[type[BaseException], ...] = (HfHubHTTPError, *_network_errors())
    cache = None if cache_dir is None else str(cache_dir)
    # A file already in the local cache needs no network.
    for name in CHECKPOINT_FILENAMES:
        try:
            return Path(hf_hub_download(repo_id, name, revision=revision, token=token,
                                        cache_dir=cache, local_files_only=True))
        except (LocalEntryNotFoundError, EntryNotFoundError, OfflineModeIsEnabled):
            continue
    # One HEAD request per candidate, without the hub client's retry loop (which takes ~25 s
    # to give up when offline), so a missing or unreachable source fails within seconds.
    started = time.monotonic()
    for name in CHECKPOINT_FILENAMES:
        url = hf_hub_url(repo_id, name, revision=revision, endpoint=endpoint)
        try:
            get_hf_file_metadata(url, token=token, timeout=timeout_s, endpoint=endpoint)
        except GatedRepoError as err:
            raise WeightsError(
                f'{repo_id!r} is gated: request access on https://huggingface.co/{repo_id} and '
                f'pass a token (--token or HF_TOKEN), or {_HINT}') from err
        except RepositoryNotFoundError as err:
            raise WeightsError(
                f'Hugging Face repository {repo_id!r} not found (or private: pass a token); '
                f'check the name, or {_HINT}') from err
        except RevisionNotFoundError as err:
            raise WeightsError(f'revision {revision!r} of {repo_id!r} not found') from err
        except EntryNotFoundError:
            continue
        except OfflineModeIsEnabled as err:
            raise WeightsError(f'cannot download {repo_id!r}: HF_HUB_OFFLINE is set and it is '
                               f'not in the local cache; {_HINT}') from err
        except network_errors as err:
            raise WeightsError(
                f'could not reach the Hugging Face Hub for {repo_id!r} after '
                f'{time.monotonic() - started:.1f} s ({type(err).__name__}: {err}); '
                f'{_HINT}') from err
        _LOG.info('downloading %s from %s (about 5 GB for VGGT-1B)', name, repo_id)
        try:
            return Path(hf_hub_download(repo_id, name, revision=revision, token=token,
                                        cache_dir=cache, endpoint=endpoint,
                                        etag_timeout=timeout_s))
        except network_errors as err:
            raise WeightsError(f'downloading {name} from {repo_id!r} failed '
                               f'({type(err).__name__}: {err}); {_HINT}') from err
    raise WeightsError(f'{repo_id!r} has none of {list(CHECKPOINT_FILENAMES)}; {_HINT}')


def resolve_checkpoint(source: str | os.PathLike[str] = DEFAULT_SOURCE, *,
                       token: str | None = None, revision: str | None = None,
                       timeout_s: float = 10.0, endpoint: str | None = None,
                       cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """
    Turn a weights source into a local checkpoint file, downloading it if needed.

    :param source: Hugging Face repo id (``owner/name``), or a local ``.safetensors`` / ``.pt``
        file, or a directory holding ``model.safetensors`` or ``model.pt``.
    :param token: Hugging Face token (gated repos such as ``facebook/VGGT-1B-Commercial``).
    :param revision: hub branch, tag or commit.
    :param timeout_s: timeout of each hub metadata request.
    :param endpoint: hub endpoint (default ``HF_ENDPOINT`` or https://huggingface.co).
    :param cache_dir: hub cache directory (default ``HF_HUB_CACHE``).
    :return: path of the checkpoint file.
    :raises WeightsError: when the source is missing, unreachable, gated or has no checkpoint.
    """
    if _is_local(source):
        return _resolve_local(Path(source).expanduser())
    return _resolve_hub(str(source), token, revision, timeout_s, endpoint, cache_dir)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """
    Read a checkpoint file into a CPU state dict without executing pickled code.

    :param path: ``.safetensors`` file, or a ``.pt``/``.pth``/``.bin`` file readable with
        ``torch.load(weights_only=True)``.
    :return: key → tensor (possibly still wrapped, see :func:`checkpoint_filter_fn`).
    :raises WeightsError: when the file cannot be read or holds arbitrary Python objects.
    """
    path = Path(path)
    if path.suffix == '.safetensors':
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device='cpu')
        except (SafetensorError, OSError) as err:
            raise WeightsError(f'cannot read safetensors checkpoint {str(path)!r}: {err}') from err
    try:
        state = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        # torch's message goes on to suggest weights_only=False: not advice to pass on.
        found = _UNSUPPORTED_GLOBAL.search(str(err))
        what = f'the Python object {found.group(1)}' if found else 'Python objects'
        raise WeightsError(
            f'refusing to load {str(path)!r}: it is not a plain checkpoint of tensors (it holds '
            f'{what}, which torch.load(weights_only=True) does not run, since unpickling can '
            'execute any code). Use the official weights, or a checkpoint from a trusted '
            'source saved as a plain state dict or .safetensors') from err
    except (RuntimeError, OSError) as err:
        raise WeightsError(f'cannot read checkpoint {str(path)!r}: {err}') from err
    if not isinstance(state, Mapping):
        raise WeightsError(f'checkpoint {str(path)!r} holds a {type(state).__name__}, '
                           'not a state dict')
    return dict(state)


def checkpoint_filter_fn(state_dict: Mapping[str, object],
                         model: VGGT | None = None) -> dict[str, torch.Tensor]:
    """
    Bring a checkpoint's state dict to this implementation's key names (the one remapping).

    Unwraps ``{'model': ...}`` / ``{'state_dict': ...}`` containers, strips a DDP ``module.``
    prefix and drops the reference's non-persistent ImageNet buffers if a checkpoint stored
    them. Official VGGT checkpoints need no change.

    :param state_dict: the checkpoint's mapping.
    :param model: the target model (unused; kept for timm's signature).
    :return: key → tensor.
    :raises WeightsError: for entries that are not tensors.
    """
    del model
    for wrapper in ('model', 'state_dict'):
        inner = state_dict.get(wrapper)
        if isinstance(inner, Mapping) and len(state_dict) == 1:
            state_dict = inner
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith('module.'):
            key = key[len('module.'):]
        if key in ('aggregator._resnet_mean', 'aggregator._resnet_std'):
            continue
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f'checkpoint entry {key!r} is a {type(value).__name__}, '
                               'not a tensor')
        out[key] = value
    return out


def _check_keys(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor],
                source: str) -> None:
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    mismatched = [f'{k}: checkpoint {list(got[k].shape)} vs model {list(v.shape)}'
                  for k, v in expected.items() if k in got and got[k].shape != v.shape]
    if not (missing or unexpected or mismatched):
        return

    def listing(title: str, items: list[str]) -> str:
        if not items:
            return ''
        shown = ''.join(f'\n  {item}' for item in items[:20])
        more = f'\n  ... and {len(items) - 20} more' if len(items) > 20 else ''
        return f'\n{title} ({len(items)}):{shown}{more}'

    raise WeightsError(
        f'checkpoint {source!r} does not match the VGGT architecture'
        + listing('missing keys', missing) + listing('unexpected keys', unexpected)
        + listing('shape mismatches', mismatched)
        + '\nIs it a VGGT-1B checkpoint (or one of the given config)?')


def load_vggt(source: str | os.PathLike[str] = DEFAULT_SOURCE, *,
              config: VGGTConfig | None = None, token: str | None = None,
              revision: str | None = None, device: str | torch.device = 'cpu',
              dtype: torch.dtype = torch.float32, timeout_s: float = 10.0,
              endpoint: str | None = None,
              cache_dir: str | os.PathLike[str] | None = None) -> VGGT:
    """
    Build VGGT and load real weights strictly; the result is in eval mode.

    The modules are created on the meta device and take the checkpoint's tensors directly, so
    VGGT-1B costs one copy of its weights in memory.

    :param source: Hugging Face repo id (default ``facebook/VGGT-1B``, non-commercial;
        ``facebook/VGGT-1B-Commercial`` needs a token), or a local ``.safetensors``/``.pt``
        file or directory.
    :param config: architecture (default VGGT-1B).
    :param token: Hugging Face token.
    :param revision: hub branch, tag or commit.
    :param device: device of the model.
    :param dtype: floating-point dtype of the weights.
    :param timeout_s: timeout of each hub metadata request.
    :param endpoint: hub endpoint (default ``HF_ENDPOINT`` or https://huggingface.co).
    :param cache_dir: hub cache directory (default ``HF_HUB_CACHE``).
    :return: the loaded model.
    :raises WeightsError: when the weights cannot be found, read or matched (keys listed).
    """
    config = config or VGGTConfig()
    path = resolve_checkpoint(source, token=token, revision=revision, timeout_s=timeout_s,
                              endpoint=endpoint, cache_dir=cache_dir)
    state = checkpoint_filter_fn(read_state_dict(path))
    with torch.device('meta'):
        model = VGGT(config)
    _check_keys(model.state_dict(), state, str(source))
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    model.aggregator.reset_buffers('cpu')
    model.to(device=device, dtype=dtype)
    model.eval()
    _LOG.info('loaded VGGT %r from %s', config.name, path)
    return model
