"""
Occupancy grids as nav2 map_server files: ``map.pgm`` (the cells) and ``map.yaml`` (metadata).

The format, as ``nav2_map_server/src/map_io.cpp`` reads it (``loadMapYaml``,
``loadMapFromFile``) and its ``map_saver`` writes it (``mode: trinary``):

* ``image``: the image file, relative to the YAML file's folder (or absolute).
* ``resolution``: map units per pixel (metres when the map is metric).
* ``origin: [x, y, yaw]``: the map-frame pose of the lower-left corner of the lower-left pixel
  (``OccupancyGrid.info.origin``); yaw turns the image about it.
* Image rows run top-down: pixel row ``r`` is grid row ``height - 1 - r``.
* Trinary loading: a pixel's *occupancy* is ``(255 - v) / 255`` (``v / 255`` with ``negate``),
  the mean over its colour channels; above ``occupied_thresh`` it is occupied (100), below
  ``free_thresh`` free (0), otherwise unknown (-1). Both comparisons are strict.
* Writing, like ``map_saver``: occupied 0, free 254, unknown 205, ``negate: 0``.

``free_thresh`` is written as 0.196, ROS 1's value, not Nav2's default 0.25: an unknown pixel
(205) has occupancy 50/255 = 0.19608, which 0.25 would load as free (slam_toolbox issue #587), so
unknown space would reach the planner as free. With 0.196 the three values load back exactly.

The YAML says in comments which frame the grid is in (the levelled ``map`` frame, REP 103) and
the floor's height in it, which map_server has no key for (it loads ``z = 0``).
"""

from __future__ import annotations

from collections.abc import Mapping
import json
import math
from pathlib import Path
import re
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.occupancy import OccupancyGrid
from vggt_mapper.io.atomic import atomic_write_bytes
from vggt_mapper.io.errors import ExportError, InputError
from vggt_mapper.io.file_set import EntryWriter, write_file_set

__all__ = ['FREE_PIXEL', 'FREE_THRESH', 'OCCUPIED_PIXEL', 'OCCUPIED_THRESH', 'UNKNOWN_PIXEL',
           'encode_pgm', 'map_server_entries', 'map_yaml_text', 'read_map_server',
           'write_map_server']

#: Pixel values map_saver writes in trinary mode.
OCCUPIED_PIXEL = 0
FREE_PIXEL = 254
UNKNOWN_PIXEL = 205
#: Thresholds written into map.yaml (see the module docstring for why 0.196).
OCCUPIED_THRESH = 0.65
FREE_THRESH = 0.196

_REQUIRED_KEYS = ('image', 'resolution', 'origin', 'occupied_thresh', 'free_thresh')


def encode_pgm(grid: OccupancyGrid) -> bytes:
    """
    Encode the grid as a binary 8-bit PGM (P5) the way map_saver writes trinary maps.

    :param grid: the grid.
    :return: the PGM file's bytes: top image row = the grid's highest y.
    :raises ExportError: if OpenCV cannot encode it (an empty grid).
    """
    pixels = np.full(grid.cells.shape, UNKNOWN_PIXEL, np.uint8)
    pixels[grid.cells == OccupancyGrid.FREE] = FREE_PIXEL
    pixels[grid.cells == OccupancyGrid.OCCUPIED] = OCCUPIED_PIXEL
    ok, encoded = cv2.imencode('.pgm', np.ascontiguousarray(pixels[::-1]))
    if not ok:
        raise ExportError(f'OpenCV could not encode a {grid.cells.shape} grid as PGM')
    return encoded.tobytes()


def map_yaml_text(grid: OccupancyGrid, image: str) -> str:
    """
    Return the map_server YAML of a grid whose image is ``image``.

    :param grid: the grid.
    :param image: the image's path as the YAML names it (relative to the YAML's folder).
    :return: the YAML text (floats written exactly: ``repr``).
    """
    lines = ['# Occupancy grid by vggt_mapper in the nav2 map_server format.',
             "# Frame: the levelled 'map' frame (REP 103: x forward, y left, z up against "
             'gravity).']
    if grid.floor_z:
        lines.append(f'# The floor lies at z = {grid.floor_z!r} in that frame.')
    # A plain name as map_saver writes it; anything else as a JSON string (valid YAML).
    quoted = image if re.fullmatch(r'[A-Za-z0-9_][A-Za-z0-9_./-]*', image) else json.dumps(image)
    lines += [f'image: {quoted}',
              'mode: trinary',
              f'resolution: {float(grid.resolution)!r}',
              f'origin: [{float(grid.origin_xy[0])!r}, {float(grid.origin_xy[1])!r}, '
              f'{float(grid.origin_yaw)!r}]',
              'negate: 0',
              f'occupied_thresh: {OCCUPIED_THRESH!r}',
              f'free_thresh: {FREE_THRESH!r}']
    return '\n'.join(lines) + '\n'


def map_server_entries(grid: OccupancyGrid, name: str = 'map') -> dict[str, EntryWriter]:
    """
    Return the two files as entries of one file set (``io.file_set.write_file_set``).

    :param grid: the grid.
    :param name: the files' stem: ``<name>.pgm`` and ``<name>.yaml``.
    :return: entry name → writer.
    """
    image = f'{name}.pgm'
    pgm = encode_pgm(grid)
    text = map_yaml_text(grid, image).encode('utf-8')
    return {image: lambda path: atomic_write_bytes(path, pgm),
            f'{name}.yaml': lambda path: atomic_write_bytes(path, text)}


def write_map_server(folder: Path | str, grid: OccupancyGrid, *, name: str = 'map',
                     overwrite: bool = False) -> tuple[Path, Path]:
    """
    Write ``<name>.yaml`` and ``<name>.pgm`` into a folder, as one set (both or neither).

    :param folder: the folder (created if missing).
    :param grid: the grid.
    :param name: the files' stem.
    :param overwrite: replace existing files; otherwise an existing one is an error.
    :return: the YAML's path and the image's path.
    :raises ExportError: if a file exists without ``overwrite`` or cannot be written.
    """
    image_path, yaml_path = write_file_set(folder, map_server_entries(grid, name),
                                           overwrite=overwrite)
    return yaml_path, image_path


def _load_yaml(yaml_path: Path) -> Mapping[str, Any]:
    import yaml  # here, not at the top: ruff and ament's import-order disagree on its place

    try:
        document = yaml.safe_load(yaml_path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise InputError(f'Cannot read map YAML {str(yaml_path)!r}: {err}') from err
    if not isinstance(document, Mapping):
        raise InputError(f'{str(yaml_path)!r} is not a map_server YAML (no mapping)')
    missing = [key for key in _REQUIRED_KEYS if key not in document]
    if missing:
        raise InputError(f'{str(yaml_path)!r} lacks the map_server keys {missing!r}')
    return document


def _finite(value: object, what: str, yaml_path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value):
        raise InputError(f'{str(yaml_path)!r}: {what} must be a finite number, got {value!r}')
    return float(value)


def _shade(pixels: NDArray[Any]) -> NDArray[np.float64]:
    """
    Brightness in [0, 1] as map_server computes it in trinary mode.

    The mean over the channels, alpha included when the image has one (map_io.cpp averages
    ``MaxRGB - alphaQuantum``, GraphicsMagick's opacity, which is the file's alpha), scaled by
    the image's bit depth.
    """
    values = pixels.astype(np.float64) / float(np.iinfo(pixels.dtype).max)
    return values if values.ndim == 2 else np.asarray(values.mean(axis=2), dtype=np.float64)


def read_map_server(yaml_path: Path | str) -> OccupancyGrid:
    """
    Read a map_server map (``mode: trinary``) back into a grid, by map_io.cpp's rules.

    :param yaml_path: the YAML file.
    :return: the grid (``floor_z`` 0 and no ``map_from_world``: the files do not carry them).
    :raises InputError: for an unreadable or malformed YAML, a mode other than trinary,
        thresholds out of order, or an image that cannot be read.
    """
    path = Path(yaml_path)
    document = _load_yaml(path)
    mode = document.get('mode', 'trinary')
    if mode != 'trinary':
        raise InputError(f'{str(path)!r}: mode {mode!r} is not supported (trinary only)')
    keys = ('resolution', 'occupied_thresh', 'free_thresh')
    resolution, occupied_thresh, free_thresh = (_finite(document[key], key, path)
                                                for key in keys)
    origin = document['origin']
    if not (isinstance(origin, list) and len(origin) == 3):
        raise InputError(f'{str(path)!r}: origin must be [x, y, yaw], got {origin!r}')
    x, y, yaw = (_finite(value, 'origin', path) for value in origin)
    if not (resolution > 0 and 0 <= free_thresh < occupied_thresh <= 1):
        raise InputError(f'{str(path)!r}: needs resolution > 0 and 0 <= free_thresh < '
                         f'occupied_thresh <= 1, got {resolution}, {free_thresh}, '
                         f'{occupied_thresh}')
    negate = document.get('negate', 0)
    if negate not in (0, 1, True, False):
        raise InputError(f'{str(path)!r}: negate must be 0 or 1, got {negate!r}')
    image_path = path.parent / str(document['image'])
    pixels = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise InputError(f'Cannot read the map image {str(image_path)!r} named by '
                         f'{str(path)!r}')
    shade = _shade(pixels)
    occupancy = shade if negate else 1.0 - shade
    cells = np.full(occupancy.shape, OccupancyGrid.UNKNOWN, np.int8)
    cells[occupancy > occupied_thresh] = OccupancyGrid.OCCUPIED
    cells[occupancy < free_thresh] = OccupancyGrid.FREE
    return OccupancyGrid(np.ascontiguousarray(cells[::-1]), resolution, (x, y), yaw)
