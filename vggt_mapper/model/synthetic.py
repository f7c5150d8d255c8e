"""
Deterministic synthetic weights, rule "vggt-synth-v1", and the model factory.

Each tensor is a pure function of its state-dict key and shape (independent of module order,
torch's RNG and every other tensor), so the same weights are regenerated bit-identically for
the tiny test model and for full-size VGGT-1B without storing 5 GB. Synthetic weights give a
finite, image-dependent forward pass with **meaningless geometry**: for tests, smoke runs and
timing only.

The rule (per key, in float64, cast once to float32, C order)::

    seed = little-endian uint64 of sha256(b'vggt-synth-v1:' + key)[:8]
    u    = (((PCG64(seed).random_raw(n) >> 11) + 0.5) · 2⁻⁵² − 1) · √3  # uniform, var 1
    gamma (LayerScale)                 ((u·0.1) + 1)·0.1
    1-D weight inside a *norm* module  (u·0.1) + 1
    bias, in_proj_bias                 u·0.02
    ≥2-D weight, in_proj_weight        u / √prod(shape[1:])   (·0.1 for *flow_head.weight)
    anything else (tokens, pos_embed)  u·0.02
"""

from __future__ import annotations

import hashlib
import logging
import math

import numpy as np
import torch
from torch import nn

from vggt_mapper.model.config import VGGTConfig
from vggt_mapper.model.vggt import VGGT

__all__ = [
    'RULE_VERSION',
    'build_vggt',
    'fill_synthetic_',
    'state_dict_digest',
    'synthetic_tensor',
    'tensor_sha256',
]

RULE_VERSION = 'vggt-synth-v1'
_LOG = logging.getLogger(__name__)


def _seed(key: str) -> int:
    digest = hashlib.sha256(f'{RULE_VERSION}:{key}'.encode()).digest()
    return int.from_bytes(digest[:8], 'little')


def _unit_uniform(key: str, n: int) -> np.ndarray:
    raw = np.random.PCG64(_seed(key)).random_raw(n)
    raw >>= np.uint64(11)
    u = raw.astype(np.float64)
    del raw
    # Same float64 operations, in the same order, as the rule's definition (bit-exactness).
    u += 0.5
    u *= 2.0**-52
    u -= 1.0
    u *= math.sqrt(3.0)
    return u


def synthetic_tensor(key: str, shape: tuple[int, ...] | list[int] | torch.Size) -> np.ndarray:
    """
    Return the synthetic value of one state-dict entry.

    :param key: full state-dict key, e.g. ``'aggregator.frame_blocks.0.ls1.gamma'``.
    :param shape: tensor shape.
    :return: float32 array of ``shape``.
    :raises ValueError: for a 1-D ``weight`` outside a norm module (no rule covers it).
    """
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    parts = key.split('.')
    leaf = parts[-1]
    v = _unit_uniform(key, n)
    if leaf == 'gamma':
        v *= 0.1
        v += 1.0
        v *= 0.1
    elif leaf == 'weight' and len(shape) == 1:
        if not any('norm' in part for part in parts[:-1]):
            raise ValueError(f'no synthetic rule for the 1-D weight {key!r} {list(shape)}: '
                             'only norm modules have 1-D weights')
        v *= 0.1
        v += 1.0
    elif leaf in ('bias', 'in_proj_bias'):
        v *= 0.02
    elif leaf in ('weight', 'in_proj_weight') and len(shape) >= 2:
        v /= math.sqrt(math.prod(shape[1:]))
        if key.endswith('flow_head.weight'):
            v *= 0.1
    else:
        v *= 0.02
    return v.astype(np.float32).reshape(shape)


@torch.no_grad()
def fill_synthetic_(model: nn.Module) -> nn.Module:
    """
    Overwrite every state-dict tensor of ``model`` in place with its synthetic value.

    Tensor by tensor, so peak memory is the model plus one tensor's float64 scratch.

    :param model: module whose state-dict keys are the rule's keys (e.g. :class:`VGGT`).
    :return: ``model``.
    :raises ValueError: for a non-floating-point state entry.
    """
    for key, tensor in model.state_dict(keep_vars=True).items():
        if not tensor.is_floating_point():
            raise ValueError(f'cannot fill the non-float state entry {key!r} ({tensor.dtype})')
        tensor.copy_(torch.from_numpy(synthetic_tensor(key, tensor.shape)))
    return model


def tensor_sha256(tensor: torch.Tensor | np.ndarray) -> str:
    """
    Return the sha256 of a tensor's float32 little-endian bytes (C order).

    :param tensor: tensor or array.
    :return: hex digest.
    """
    array = tensor.detach().cpu().numpy() if isinstance(tensor, torch.Tensor) else tensor
    return hashlib.sha256(np.ascontiguousarray(array, dtype='<f4').tobytes()).hexdigest()


def state_dict_digest(items: dict[str, str]) -> str:
    """
    Return the whole-model digest: sha256 over the lines ``key:sha256`` + newline, in order.

    :param items: key → per-tensor sha256 (:func:`tensor_sha256`), in state-dict order.
    :return: hex digest.
    """
    text = ''.join(f'{key}:{digest}\n' for key, digest in items.items())
    return hashlib.sha256(text.encode()).hexdigest()


def build_vggt(config: VGGTConfig | None = None, *, device: str | torch.device = 'cpu',
               dtype: torch.dtype = torch.float32) -> VGGT:
    """
    Build VGGT with synthetic weights (rule "vggt-synth-v1") in eval mode.

    The modules are created on the meta device and materialised once, so building VGGT-1B
    needs no throwaway random initialisation and no second copy of its 5 GB. The result's
    geometry is **meaningless** (a warning says so): use it for tests, smoke runs and timing,
    and :func:`vggt_mapper.model.loading.load_vggt` for real predictions.

    :param config: architecture (default VGGT-1B; ``VGGTConfig.tiny()`` for a small model).
    :param device: device of the weights.
    :param dtype: floating-point dtype of the weights (filled in float32, then converted).
    :return: the model, in eval mode.
    """
    config = config or VGGTConfig()
    with torch.device('meta'):
        model = VGGT(config)
    model.to_empty(device='cpu')
    model.aggregator.reset_buffers()
    fill_synthetic_(model)
    model.to(device=device, dtype=dtype)
    model.eval()
    _LOG.warning('VGGT %r built with synthetic weights (%s): its geometry is meaningless; '
                 'load real weights for real predictions', config.name, RULE_VERSION)
    return model
