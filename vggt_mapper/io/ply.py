"""
Coloured point cloud as binary little-endian PLY: ``float x, y, z``, ``uchar r, g, b``.

A map of several segments (each in its own frame until a loop closure merges them) adds a
``ushort segment`` property per vertex; a one-segment map is written without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.io.atomic import atomic_write
from vggt_mapper.io.cloud import check_colored_points
from vggt_mapper.io.errors import ExportError, InputError

__all__ = ['PLY_SEGMENT_VERTEX_DTYPE', 'PLY_VERTEX_DTYPE', 'read_ply', 'read_ply_segments',
           'write_ply']

PLY_VERTEX_DTYPE = np.dtype([('x', '<f4'), ('y', '<f4'), ('z', '<f4'),
                             ('red', 'u1'), ('green', 'u1'), ('blue', 'u1')])
PLY_SEGMENT_VERTEX_DTYPE = np.dtype(PLY_VERTEX_DTYPE.descr + [('segment', '<u2')])
_PLY_TYPES = {'<f4': 'float', '|u1': 'uchar', '<u2': 'ushort'}


def _header(count: int, dtype: np.dtype = PLY_VERTEX_DTYPE) -> bytes:
    """Make the PLY header for ``count`` vertices of ``dtype``."""
    properties = [f'property {_PLY_TYPES[dtype[name].str]} {name}' for name in dtype.names or ()]
    lines = ['ply', 'format binary_little_endian 1.0', 'comment written by vggt_mapper',
             f'element vertex {count}', *properties, 'end_header']
    return ('\n'.join(lines) + '\n').encode('ascii')


def write_ply(path: Path | str, points_world: NDArray[np.floating],
              colors_rgb: NDArray[np.uint8], *, overwrite: bool = False,
              segment_ids: NDArray[np.integer] | None = None) -> Path:
    """
    Write points and colours as a binary PLY, atomically.

    :param path: output file (``.ply``).
    :param points_world: (N, 3) points (stored as float32).
    :param colors_rgb: (N, 3) uint8 RGB colours.
    :param overwrite: replace an existing file.
    :param segment_ids: (N,) map segment of each point; written as a ``segment`` property when
        the points belong to more than one segment.
    :return: the written path.
    :raises ExportError: on mismatched shapes, non-finite points, an existing file without
        ``overwrite``, or a write error.
    """
    points, colors = check_colored_points(points_world, colors_rgb)
    if colors.dtype != np.uint8:
        raise ExportError(f'colors_rgb must be uint8, got {colors.dtype}')
    several = segment_ids is not None and len(np.unique(segment_ids)) > 1
    dtype = PLY_SEGMENT_VERTEX_DTYPE if several else PLY_VERTEX_DTYPE
    vertices = np.empty(len(points), dtype=dtype)
    if several:
        assert segment_ids is not None
        vertices['segment'] = np.asarray(segment_ids).reshape(-1)
    for axis, name in enumerate(('x', 'y', 'z')):
        vertices[name] = points[:, axis]
    for channel, name in enumerate(('red', 'green', 'blue')):
        vertices[name] = colors[:, channel]
    target = Path(path)
    with atomic_write(target, overwrite=overwrite) as stream:
        try:
            stream.write(_header(len(points), dtype))
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
    vertices = _read_vertices(Path(path))
    points = np.stack([vertices['x'], vertices['y'], vertices['z']], axis=1).astype(np.float32)
    colors = np.stack([vertices['red'], vertices['green'], vertices['blue']],
                      axis=1).astype(np.uint8)
    return points, colors


def read_ply_segments(path: Path | str) -> NDArray[np.int32]:
    """
    Read the map segment of each vertex of a PLY written by ``write_ply``.

    :param path: the file.
    :return: (N,) int32 segment ids (zeros for a one-segment map, written without them).
    :raises InputError: if the file is missing or not in ``write_ply``'s layout.
    """
    vertices = _read_vertices(Path(path))
    if vertices.dtype.names is not None and 'segment' in vertices.dtype.names:
        return vertices['segment'].astype(np.int32)
    return np.zeros(len(vertices), np.int32)


def _read_vertices(source: Path) -> NDArray[np.void]:
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
    layout = data[:end + len(marker)].replace(b'\r\n', b'\n')
    dtypes = [d for d in (PLY_VERTEX_DTYPE, PLY_SEGMENT_VERTEX_DTYPE)
              if count is not None and _header(count, d) == layout]
    if not dtypes:
        expected = _header(count or 0).decode('ascii')
        raise InputError(f'{str(source)!r} is not in the layout vggt_mapper writes; header must '
                         f'be:\n{expected}(optionally with "property ushort segment" last)')
    dtype = dtypes[0]
    assert count is not None
    body = data[end + len(marker):]
    if len(body) != count * dtype.itemsize:
        raise InputError(f'{str(source)!r} declares {count} vertices but holds '
                         f'{len(body)} bytes of data, not {count * dtype.itemsize}')
    return np.frombuffer(body, dtype=dtype)
