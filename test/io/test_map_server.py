"""map.pgm + map.yaml in the nav2 map_server format: written, checked by its rules, read back."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from vggt_mapper.engine import OccupancyGrid
from vggt_mapper.io import read_map_server, write_map_server
from vggt_mapper.io.errors import ExportError, InputError
from vggt_mapper.io.file_set import write_file_set
from vggt_mapper.io.map_server import (
    FREE_PIXEL,
    FREE_THRESH,
    map_server_entries,
    OCCUPIED_PIXEL,
    UNKNOWN_PIXEL,
)


def sample_grid(floor_z: float = -1.25) -> OccupancyGrid:
    """Make a 7 × 5 grid (5 rows) of every value, with a row and a column that tell the order."""
    rng = np.random.default_rng(0)
    cells = rng.choice(np.array([-1, 0, 100], np.int8), size=(5, 7))
    cells[0, :] = OccupancyGrid.OCCUPIED  # the lowest y
    cells[4, :] = OccupancyGrid.FREE  # the highest y
    cells[1:4, 0] = OccupancyGrid.UNKNOWN
    return OccupancyGrid(cells, 0.05, (-1.2345678901234567, 2.5), floor_z=floor_z)


def parse_pgm(data: bytes) -> np.ndarray:
    """Read a binary 8-bit PGM by its specification (netpbm), not with an image library."""
    fields = data.split(maxsplit=4)
    assert fields[0] == b'P5'
    width, height, maxval = int(fields[1]), int(fields[2]), int(fields[3])
    assert maxval == 255
    return np.frombuffer(fields[4], np.uint8).reshape(height, width)


def map_io_trinary(pixels: np.ndarray, document: dict[str, object]) -> np.ndarray:
    """nav2_map_server map_io.cpp ``loadMapFromFile`` in trinary mode, line by line."""
    height, width = pixels.shape
    data = np.empty(width * height, np.int8)
    for y in range(height):
        for x in range(width):
            shade = pixels[y, x] / 255.0
            occ = shade if document['negate'] else 1.0 - shade
            if document['occupied_thresh'] < occ:  # type: ignore[operator]
                cell = 100
            elif occ < document['free_thresh']:  # type: ignore[operator]
                cell = 0
            else:
                cell = -1
            data[width * (height - y - 1) + x] = cell
    return data.reshape(height, width)  # row 0 = the lowest y, as OccupancyGrid.data


def load_yaml(path: Path) -> dict[str, object]:
    import yaml  # here, not at the top: ruff and ament's import-order disagree on its place

    return yaml.safe_load(path.read_text(encoding='utf-8'))


def test_round_trip_gives_the_grid_back(tmp_path: Path) -> None:
    grid = sample_grid()
    yaml_path, image_path = write_map_server(tmp_path, grid)
    assert (yaml_path.name, image_path.name) == ('map.yaml', 'map.pgm')
    back = read_map_server(yaml_path)
    np.testing.assert_array_equal(back.cells, grid.cells)
    assert back.resolution == grid.resolution
    assert back.origin_xy == grid.origin_xy  # exact: floats are written with repr
    assert back.origin_yaw == 0.0


def test_files_follow_map_server_rules(tmp_path: Path) -> None:
    grid = sample_grid()
    yaml_path, image_path = write_map_server(tmp_path, grid)
    document = load_yaml(yaml_path)
    assert document['image'] == 'map.pgm'
    assert document['mode'] == 'trinary'
    assert document['negate'] == 0
    assert document['resolution'] == grid.resolution
    assert document['origin'] == [grid.origin_xy[0], grid.origin_xy[1], 0.0]
    pixels = parse_pgm(image_path.read_bytes())
    assert set(np.unique(pixels)) <= {OCCUPIED_PIXEL, FREE_PIXEL, UNKNOWN_PIXEL}
    assert pixels.shape == grid.cells.shape
    assert np.all(pixels[0] == FREE_PIXEL)  # the image's top row is the grid's highest y
    assert np.all(pixels[-1] == OCCUPIED_PIXEL)
    np.testing.assert_array_equal(map_io_trinary(pixels, document), grid.cells)
    text = yaml_path.read_text(encoding='utf-8')
    assert "levelled 'map' frame" in text and 'z = -1.25' in text


def test_unknown_stays_unknown_with_our_free_threshold_not_nav2s_default() -> None:
    # map_saver writes unknown as 205: occupancy (255 - 205) / 255 = 0.19608. Nav2's default
    # free_thresh (0.25) would load it as free; ours (0.196) keeps it unknown.
    unknown = np.array([[UNKNOWN_PIXEL]], np.uint8)
    document = {'negate': 0, 'occupied_thresh': 0.65, 'free_thresh': 0.25}
    assert map_io_trinary(unknown, document)[0, 0] == OccupancyGrid.FREE
    document['free_thresh'] = FREE_THRESH
    assert map_io_trinary(unknown, document)[0, 0] == OccupancyGrid.UNKNOWN
    free = np.array([[FREE_PIXEL]], np.uint8)
    assert map_io_trinary(free, document)[0, 0] == OccupancyGrid.FREE


def write_yaml(folder: Path, image: str, **fields: object) -> Path:
    document = {'image': image, 'resolution': 0.1, 'origin': [1.0, 2.0, 0.0], 'negate': 0,
                'occupied_thresh': 0.65, 'free_thresh': 0.196, **fields}
    lines = [f'{key}: {value}' for key, value in document.items() if value is not None]
    path = folder / 'other.yaml'
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return path


def test_reads_maps_of_other_tools_negated_coloured_and_turned(tmp_path: Path) -> None:
    # 2 × 3 pixels: black, white, grey / white, black, white (top row first).
    grey = np.array([[0, 255, 205], [255, 0, 255]], np.uint8)
    cv2.imwrite(str(tmp_path / 'plain.png'), grey)
    plain = read_map_server(write_yaml(tmp_path, 'plain.png'))
    np.testing.assert_array_equal(plain.cells, [[0, 100, 0], [100, 0, -1]])
    negated = read_map_server(write_yaml(tmp_path, 'plain.png', negate=1))
    np.testing.assert_array_equal(negated.cells, [[100, 0, 100], [0, 100, 100]])
    # A colour image: the mean of its channels, as map_server averages them.
    colour = np.stack([grey, grey, grey], axis=2)
    colour[0, 0] = (255, 255, 0)  # mean 170: occupancy 0.33, unknown
    cv2.imwrite(str(tmp_path / 'colour.png'), colour)
    coloured = read_map_server(write_yaml(tmp_path, 'colour.png'))
    assert coloured.cells[1, 0] == OccupancyGrid.UNKNOWN
    # A yaw turns the lattice about the origin: cell (row 0, col 1) is then up the y axis.
    turned = read_map_server(write_yaml(tmp_path, 'plain.png', origin=[1.0, 2.0, math.pi / 2]))
    assert turned.origin_yaw == pytest.approx(math.pi / 2)
    centre = np.array([1.0 - 0.05, 2.0 + 0.15])  # origin + R(90°) @ (1.5, 0.5) cells
    assert turned.values_at(centre[None])[0] == turned.cells[0, 1]


@pytest.mark.parametrize('fields, match', [
    ({'resolution': None}, 'lacks'),
    ({'mode': 'scale'}, 'trinary only'),
    ({'free_thresh': 0.8}, 'free_thresh < occupied_thresh'),
    ({'origin': [1.0, 2.0]}, r'\[x, y, yaw\]'),
    ({'resolution': 'fine'}, 'finite number'),
    ({'negate': 2}, 'negate'),
])
def test_malformed_yaml_is_refused_with_a_reason(tmp_path: Path, fields: dict[str, object],
                                                 match: str) -> None:
    cv2.imwrite(str(tmp_path / 'map.png'), np.zeros((2, 2), np.uint8))
    with pytest.raises(InputError, match=match):
        read_map_server(write_yaml(tmp_path, 'map.png', **fields))


def test_a_missing_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match='Cannot read the map image'):
        read_map_server(write_yaml(tmp_path, 'absent.pgm'))


def test_writing_never_replaces_a_map_unless_asked(tmp_path: Path) -> None:
    write_map_server(tmp_path, sample_grid())
    with pytest.raises(ExportError, match='already exist'):
        write_map_server(tmp_path, sample_grid(floor_z=0.0))
    grid = sample_grid(floor_z=0.0)
    yaml_path, _ = write_map_server(tmp_path, grid, overwrite=True)
    assert 'floor lies' not in yaml_path.read_text(encoding='utf-8')


def test_entries_join_a_larger_file_set(tmp_path: Path) -> None:
    # How a saved map folder takes the grid: two entries of its one-set save.
    entries = {**map_server_entries(sample_grid(), name='grid'),
               'notes.txt': lambda path: path.write_text('hello', encoding='utf-8')}
    write_file_set(tmp_path, entries)
    back = read_map_server(tmp_path / 'grid.yaml')
    np.testing.assert_array_equal(back.cells, sample_grid().cells)
    assert load_yaml(tmp_path / 'grid.yaml')['image'] == 'grid.pgm'
