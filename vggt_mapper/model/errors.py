"""Exceptions of the model package."""

from __future__ import annotations

__all__ = ['ModelError', 'WeightsError']


class ModelError(Exception):
    """Base class of the model package's errors."""


class WeightsError(ModelError):
    """Weights could not be found, downloaded, read or matched to the architecture."""
