"""Coloured point cloud as binary little-endian PLY: ``float x, y, z`` and ``uchar r, g, b``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.io.atomic import atomic_write
from vggt_mapper.io.cloud import check_colored_points
from vggt_mapper.io.errors import ExportError, InputError

__all__ = ['PLY_VERTEX_DTYPE', 'read_ply', 'write_ply']

PLY_VERTEX_DTYPE = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'),
                             ('red', 'u1'), ('green', 'u1'), ('blue', 'u1')])


def _header(count: int) -> bytes:
    """Make the PLY header for ``count`` vertices of ``PLY_VERTEX_DTYPE``."""
    lines = ['ply', 'format binary_little_endian 1.0', 'comment written by vggt_mapper',
             f'element vertex {count}', 'property float x', 'property float y',
             'property float z', 'property uchar red', 'property uchar green',
             'property uchar blue', 'end_header']
    return ('\n'.join(lines) + '\n').encode('ascii')


def write_ply(path: Path | str, points_world: NDArray[np.floating],
              colors_rgb: NDArray[np.uint8], *, overwrite: bool = False) -> Path:
    """
    Write points and colours as a binary PLY, atomically.

    :param path: output file (``.ply``).
    :param points_world: (N, 3) points (stored as float32).
    :param colors_rgb: (N, 3) uint8 RGB colours.
    :param overwrite: replace an existing file.
    :return: the written path.
    :raises ExportError: on mismatched shapes, non-finite points, an existing file without
        ``overwrite``, or a write error.
    """
    points, colors = check_colored_points(points_world, colors_rgb)
    if colors.dtype != np.uint8:
        raise ExportError(f'colors_rgb must be uint8, got {colors.dtype}')
    vertices = np.empty(len(points), dtype=PLY_VERTEX_DTYPE)
    for axis, name in enumerate(('x', 'y', 'z')):
        vertices[name] = points[:, axis]
    for channel, name in enumerate(('red', 'green', 'blue')):
        vertices[name] = colors[:, channel]
    target = Path(path)
    with atomic_write(target, overwrite=overwrite) as stream:
        try:
            stream.write(_header(len(points)))
            stream.write(vertices.tobytes())
        except OSError as err:
            raise ExportError(f'Cannot write {str(target)!r}: {err}') from err
    return target


def read_ply(path: Path | str) -> tuple[NDArray[np.float32], NDArray[np.uint8]]:
    """
    Read a PLY written by ``write_ply`` (binary little endian, x y z float, r g b uchar).

    :param path: the file.
    :return: (N, 3) float32 points and (N, 3) uint8 colours.
    :raises InputError: if the file is missing or not in that layout.
    """
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as err:
        raise InputError(f'Cannot read PLY {str(source)!r}: {err}') from err
    marker = b'end_header\n'
    end = data.find(marker)
    if not data.startswith(b'ply\n') or end < 0:
        raise InputError(f'{str(source)!r} is not a PLY file (no ply/end_header lines)')
    header = data[:end].decode('ascii', errors='replace').splitlines()
    count = None
    for line in header:
        fields = line.split()
        if fields[:2] == ['element', 'vertex'] and len(fields) == 3:
            count = int(fields[2])
    if count is None or _header(count) != data[:end + len(marker)].replace(
            b'\r\n', b'\n'):
        expected = _header(count or 0).decode('ascii')
        raise InputError(f'{str(source)!r} is not in the layout vggt_mapper writes; header must '
                         f'be:\n{expected}')
    body = data[end + len(marker):]
    if len(body) != count * PLY_VERTEX_DTYPE.itemsize:
        raise InputError(f'{str(source)!r} declares {count} vertices but holds '
                         f'{len(body)} bytes of data, not {count * PLY_VERTEX_DTYPE.itemsize}')
    vertices = np.frombuffer(body, dtype=PLY_VERTEX_DTYPE)
    points = np.stack([vertices['x'], vertices['y'], vertices['z']], axis=1).astype(np.float32)
    colors = np.stack([vertices['red'], vertices['green'], vertices['blue']],
                      axis=1).astype(np.uint8)
    return points, colors
