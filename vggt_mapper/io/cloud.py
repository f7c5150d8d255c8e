"""Checks shared by the point-cloud exporters."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.io.errors import ExportError

__all__ = ['check_colored_points']


def check_colored_points(points_world: NDArray[np.floating], colors_rgb: NDArray[np.uint8]
                         ) -> tuple[NDArray[np.float64], NDArray[np.generic]]:
    """
    Check a coloured point cloud before it is written.

    :param points_world: (N, 3) points, N may be 0.
    :param colors_rgb: (N, 3) colours.
    :return: the points as float64 and the colours, as arrays.
    :raises ExportError: on wrong shapes or non-finite points (a file with NaNs would load as a
        silently broken map).
    """
    points = np.asarray(points_world, dtype=np.float64)
    colors = np.asarray(colors_rgb)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ExportError(f'points_world must be (N, 3), got shape {points.shape}')
    if colors.shape != points.shape:
        raise ExportError(f'colors_rgb must be (N, 3) like points_world {points.shape}, '
                          f'got shape {colors.shape}')
    if not np.isfinite(points).all():
        raise ExportError(f'points_world holds {int((~np.isfinite(points)).any(axis=1).sum())} '
                          'non-finite points')
    return points, colors
