"""Exceptions of the synthetic package."""

from __future__ import annotations

__all__ = ['SyntheticFailure', 'UnknownFrameError']


class UnknownFrameError(KeyError):
    """The predictor was given an image its sequence never rendered."""


class SyntheticFailure(RuntimeError):
    """
    A predictor failure injected on purpose by ``FaultyPredictor``.

    A ``RuntimeError``, like the failures a real model raises (CUDA out of memory, a cuDNN
    error), so callers treat it as they would treat those.
    """
