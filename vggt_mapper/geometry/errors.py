"""Exceptions of the geometry package."""

from __future__ import annotations

__all__ = ['GeometryError']


class GeometryError(ValueError):
    """An array given to a geometry function has the wrong shape, dtype or a degenerate value."""
