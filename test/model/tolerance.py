"""Pass criterion of the reference fixtures (``test/data/reference/tolerances.json``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

__all__ = ['REFERENCE_DIR', 'assert_close_ref', 'tolerance_for', 'worst_ratio']

REFERENCE_DIR = Path(__file__).resolve().parents[1] / 'data' / 'reference'
_PER_KEY: dict[str, dict[str, float]] = json.loads(
    (REFERENCE_DIR / 'tolerances.json').read_text())['per_key']


def tolerance_for(key: str) -> dict[str, float]:
    """
    Return ``rtol``, ``atol_frac_of_max`` and ``atol_abs`` for an output or intermediate key.

    :param key: e.g. ``'depth'``, ``'out.depth'``, ``'s3.out.track'`` or ``'int.track_list'``.
    :return: the tolerance entry.
    :raises KeyError: for a key the tolerance file does not cover.
    """
    parts = key.split('.')
    if 'int' in parts:
        return _PER_KEY['int.*']
    return _PER_KEY[parts[-1]]


def _as_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to('cpu', torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def worst_ratio(ours: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray,
                key: str) -> float:
    """
    Return max over elements of ``|ours − ref| / (atol_abs + atol_frac·max|ref| + rtol·|ref|)``.

    ≤ 1 passes. An exact tolerance (all zero) gives 0 when equal and inf otherwise.

    :param ours: our values.
    :param ref: reference values (same shape).
    :param key: tolerance key (see :func:`tolerance_for`).
    :return: the worst ratio.
    """
    a, b = _as_numpy(ours), _as_numpy(ref)
    assert a.shape == b.shape, f'{key}: shape {a.shape} != reference {b.shape}'
    tol = tolerance_for(key)
    bound = (tol['atol_abs'] + tol['atol_frac_of_max'] * np.abs(b).max()
             + tol['rtol'] * np.abs(b))
    err = np.abs(a - b)
    with np.errstate(divide='ignore', invalid='ignore'):
        ratio = np.where(err == 0, 0.0, err / bound)
    return float(ratio.max()) if ratio.size else 0.0


def assert_close_ref(ours: torch.Tensor | np.ndarray, ref: torch.Tensor | np.ndarray,
                     key: str) -> None:
    """
    Assert that ``ours`` matches the reference within the fixture's tolerance for ``key``.

    An element passes iff ``|ours − ref| ≤ atol_abs + atol_frac·max|ref| + rtol·|ref|``.

    :param ours: our values.
    :param ref: reference values (same shape).
    :param key: tolerance key, e.g. ``'pose_enc'`` or ``'int.track_list'``.
    """
    a, b = _as_numpy(ours), _as_numpy(ref)
    assert np.isfinite(a).all(), f'{key}: non-finite values'
    ratio = worst_ratio(a, b, key)
    assert ratio <= 1.0, (f'{key}: worst error/tolerance ratio {ratio:.3g} > 1 '
                          f'(max abs err {np.abs(a - b).max():.3g}, max|ref| '
                          f'{np.abs(b).max():.3g}, tolerance {tolerance_for(key)})')
