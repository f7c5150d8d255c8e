"""Small input checks shared by the geometry modules (private)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vggt_mapper.geometry.errors import GeometryError

__all__ = ['as_float_array', 'check_trailing_shape']


def as_float_array(value: ArrayLike, name: str) -> NDArray[np.floating[Any]]:
    """
    Return ``value`` as a floating numpy array, keeping float32/float64 and promoting the rest.

    :param value: array-like input.
    :param name: argument name used in error messages.
    :return: float32 array for float32 (and float16) input, float64 otherwise.
    :raises GeometryError: if the input is not numeric.
    """
    array = np.asarray(value)
    if array.dtype == np.float64 or array.dtype == np.float32:
        return array
    if array.dtype == np.float16:
        return array.astype(np.float32)
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.bool_)):
        raise GeometryError(f'{name} must be a numeric array, got dtype {array.dtype}')
    return array.astype(np.float64)


def check_trailing_shape(array: NDArray[Any], trailing: tuple[int, ...], name: str) -> None:
    """
    Check that the last dimensions of ``array`` are ``trailing``.

    :param array: the array to check.
    :param trailing: expected trailing shape, e.g. ``(3, 4)``.
    :param name: argument name used in error messages.
    :raises GeometryError: if the shape does not end with ``trailing``.
    """
    if array.ndim < len(trailing) or tuple(array.shape[-len(trailing):]) != trailing:
        expected = '(..., ' + ', '.join(str(size) for size in trailing) + ')'
        raise GeometryError(f'{name} must have shape {expected}, got {tuple(array.shape)}')
