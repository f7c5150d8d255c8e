"""
A map folder: the exports plus everything needed to load the map again (``map_state/``).

The CLI's output folder and the ROS node's saves are map folders::

    OUT/
      map.glb  map.ply  trajectory.tum  cameras.json  map_stats.json    (vggt_mapper.io.export)
      colmap/                        COLMAP sparse model + images, optional (vggt_mapper.io.colmap)
      map_state/
        manifest.json    format 'vggt_mapper.map_state/1', counts, and every file's size and
                         SHA-256 (a damaged or cut file is found before anything is loaded)
        config.json      the MapperConfig the map was built with (for the record)
        keyframes.npz    one row per keyframe: index, name, stamp_ns, intrinsics (model and
                         original pixels; the model's own K where a known K replaced it), image
                         sizes, median depth, number of points
        clouds.bin       the keyframes' local clouds one after another, 21 bytes a point
                         (xyz float32 in the camera frame and home depth unit, rgb uint8, model
                         pixel u, v uint16, confidence float16; little-endian)
        images/          each keyframe's model image, ``<index>.png`` (or ``.jpg``), as stored
        graph.npz        the pose graph: nodes (keys, segments, world_from_node as scale,
                         rotation, translation), edges (keys, loop ids, a_from_b, sigmas),
                         segment anchors
        places.npz       place descriptors (keys, rows; their space is in the manifest) and the
                         accepted loops

Arrays are numpy ``.npz`` files read with ``allow_pickle=False``. The whole folder is one entry
of the atomic file set (``write_file_set``): a save killed half-way leaves the previous map
folder or the new one, never a mix. ``read_map_folder`` refuses a folder of another format
version, with a missing or damaged file, or with inconsistent arrays, with a message that says
which; loading the state into a mapper (``Mapper.load_state``) then checks the graph itself.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass
import datetime
import hashlib
import json
import os
from pathlib import Path
import typing
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.config import MapperConfig
from vggt_mapper.engine.errors import ConfigError
from vggt_mapper.engine.keyframe_store import (
    image_extension,
    KeyframeCloud,
    KeyframeRecord,
    POINT_BYTES,
    StoreError,
)
from vggt_mapper.engine.map_state import MapState, PlaceDescriptors
from vggt_mapper.engine.pose_graph import GraphProblem, Sim3Array
from vggt_mapper.io.atomic import fsync_directory
from vggt_mapper.io.errors import MapFolderError

__all__ = ['MAP_STATE_DIR', 'MAP_STATE_FORMAT', 'read_map_folder', 'write_map_state']

MAP_STATE_DIR = 'map_state'
MAP_STATE_FORMAT = 'vggt_mapper.map_state/1'
_FORMAT_PREFIX = 'vggt_mapper.map_state/'
_MANIFEST = 'manifest.json'
_IMAGES = 'images'
_HASH_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_npz(path: Path, arrays: dict[str, Any]) -> None:
    with open(path, 'xb') as stream:
        np.savez(stream, **arrays)
        stream.flush()
        os.fsync(stream.fileno())


def _write(path: Path, data: bytes) -> None:
    # Plain writes: the folder is staged whole by write_file_set, which commits it only once
    # everything is written (each file fsynced here, the folders at the end).
    with open(path, 'xb') as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def _keyframe_columns(state: MapState) -> dict[str, NDArray[Any]]:
    records = state.records
    return {
        'index': np.array([r.index for r in records], np.int64),
        'name': np.array([r.name for r in records], dtype=str),
        'stamp_ns': np.array([r.stamp_ns for r in records], np.int64),
        'intrinsics': np.array([r.intrinsics for r in records], np.float64).reshape(-1, 3, 3),
        'model_hw': np.array([r.model_hw for r in records], np.int64).reshape(-1, 2),
        'intrinsics_original': np.array([r.intrinsics_original for r in records],
                                        np.float64).reshape(-1, 3, 3),
        'original_hw': np.array([r.original_hw for r in records], np.int64).reshape(-1, 2),
        'median_depth': np.array([r.median_depth for r in records], np.float64),
        'num_points': np.array([r.num_points for r in records], np.int64),
        # NaN where the model's K is the keyframe's K (no known K replaced it).
        'intrinsics_predicted': np.array(
            [np.full((3, 3), np.nan) if r.intrinsics_predicted is None
             else r.intrinsics_predicted for r in records], np.float64).reshape(-1, 3, 3),
    }


def _graph_columns(graph: GraphProblem) -> dict[str, NDArray[Any]]:
    return {
        'keys': graph.keys, 'segments': graph.segments,
        'node_scale': graph.world_from_node.scales,
        'node_rotation': graph.world_from_node.rotations,
        'node_translation': graph.world_from_node.translations,
        'edge_keys': graph.edge_keys, 'edge_loop_ids': graph.edge_loop_ids,
        'edge_scale': graph.a_from_b.scales, 'edge_rotation': graph.a_from_b.rotations,
        'edge_translation': graph.a_from_b.translations, 'edge_sigmas': graph.edge_sigmas,
        'anchors': graph.anchors,
    }


def _write_keyframe_data(folder: Path, state: MapState) -> None:
    images = folder / _IMAGES
    images.mkdir()
    with open(folder / 'clouds.bin', 'wb') as clouds:
        for record in state.records:
            clouds.write(state.keyframes.cloud(record.index).to_bytes())
            image = state.keyframes.encoded_image(record.index)
            _write(images / f'{record.index:06d}.{image_extension(image)}', image)
        clouds.flush()
        os.fsync(clouds.fileno())


def write_map_state(path: Path, state: MapState) -> Path:
    """
    Write a map state as a ``map_state`` folder (an ``EntryWriter`` of ``write_file_set``).

    :param path: the folder to create (must not exist).
    :param state: the map (its keyframe data is read once).
    :return: ``path``.
    :raises MapFolderError: if the keyframe data cannot be read.
    :raises OSError: if a file cannot be written.
    """
    folder = Path(path)
    folder.mkdir()
    try:
        _write_keyframe_data(folder, state)
    except StoreError as err:
        raise MapFolderError(f'cannot read the keyframes to save: {err}') from err
    _write_npz(folder / 'keyframes.npz', _keyframe_columns(state))
    _write_npz(folder / 'graph.npz', _graph_columns(state.graph))
    places = state.places
    if places is not None:
        _write_npz(folder / 'places.npz', {'keys': places.keys,
                                           'descriptors': places.descriptors,
                                           'accepted_loops': places.accepted_loops})
    config = json.dumps(dataclasses.asdict(state.config), indent=1, sort_keys=True)
    _write(folder / 'config.json', (config + '\n').encode('utf-8'))
    files = sorted(p for p in folder.rglob('*') if p.is_file())
    manifest = {
        'format': MAP_STATE_FORMAT,
        'created_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'keyframes': len(state.records),
        'segments': sorted(set(state.graph.segments.tolist())),
        'next_keyframe': state.next_keyframe,
        'segments_started': state.segments_started,
        'descriptor_space': None if places is None else places.space,
        'descriptor_dim': None if places is None else places.dim,
        'frames': 'world_from_node maps a keyframe camera frame (OpenCV axes, its home depth '
                  "unit) into its segment's world (the first keyframe camera of the segment)",
        'files': {str(p.relative_to(folder)): {'bytes': p.stat().st_size, 'sha256': _sha256(p)}
                  for p in files},
    }
    _write(folder / _MANIFEST, (json.dumps(manifest, indent=1) + '\n').encode('utf-8'))
    fsync_directory(folder / _IMAGES)
    fsync_directory(folder)
    return folder


# ---- reading -----------------------------------------------------------------------------


def _state_folder(path: Path) -> Path:
    folder = Path(path)
    if (folder / MAP_STATE_DIR / _MANIFEST).is_file():
        return folder / MAP_STATE_DIR
    if (folder / _MANIFEST).is_file() and folder.name == MAP_STATE_DIR:
        return folder
    if not folder.is_dir():
        raise MapFolderError(f'map folder {str(folder)!r} does not exist')
    raise MapFolderError(f'{str(folder)!r} is not a map folder: it has no {MAP_STATE_DIR}/'
                         f'{_MANIFEST} (map folders are written by vggt-mapper map and the '
                         "node's save_map)")


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / _MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise MapFolderError(f'{str(path)!r} cannot be read ({err}): the map folder is '
                             'damaged') from err
    fmt = manifest.get('format') if isinstance(manifest, dict) else None
    if not isinstance(fmt, str) or not fmt.startswith(_FORMAT_PREFIX):
        raise MapFolderError(f'{str(path)!r} is not a map manifest (format {fmt!r})')
    if fmt != MAP_STATE_FORMAT:
        raise MapFolderError(f'{str(folder.parent)!r} is a map of format {fmt!r}; this '
                             f'vggt_mapper reads {MAP_STATE_FORMAT!r}: use the version that '
                             'wrote it, or map the recording again')
    return dict(manifest)


def _check_files(folder: Path, manifest: Mapping[str, Any]) -> None:
    files = manifest.get('files')
    if not isinstance(files, dict) or not files:
        raise MapFolderError(f'{str(folder / _MANIFEST)!r} lists no files')
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise MapFolderError(f'the map folder is incomplete: {str(path)!r} is missing')
        size = path.stat().st_size
        if size != expected.get('bytes') or _sha256(path) != expected.get('sha256'):
            raise MapFolderError(f'the map folder is damaged: {str(path)!r} ({size} bytes) is '
                                 'not the file that was saved (size or SHA-256 differs)')


def _load_npz(folder: Path, name: str, fields: Mapping[str, tuple[str, int]]
              ) -> dict[str, NDArray[Any]]:
    """Load an npz and check each field's dtype kind and number of dimensions."""
    path = folder / name
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in fields}
    except (OSError, ValueError, KeyError) as err:
        raise MapFolderError(f'{str(path)!r} cannot be read: {err}') from err
    for key, (kinds, ndim) in fields.items():
        if arrays[key].dtype.kind not in kinds or arrays[key].ndim != ndim:
            raise MapFolderError(f'{str(path)!r}: {key} has dtype {arrays[key].dtype} and '
                                 f'shape {arrays[key].shape}, expected kind {kinds!r}, '
                                 f'{ndim} dimensions')
    return arrays


_KEYFRAME_FIELDS = {'index': ('i', 1), 'name': ('U', 1), 'stamp_ns': ('i', 1),
                    'intrinsics': ('f', 3), 'model_hw': ('i', 2),
                    'intrinsics_original': ('f', 3), 'original_hw': ('i', 2),
                    'median_depth': ('f', 1), 'num_points': ('i', 1),
                    'intrinsics_predicted': ('f', 3)}
_GRAPH_FIELDS = {'keys': ('i', 1), 'segments': ('i', 1), 'node_scale': ('f', 1),
                 'node_rotation': ('f', 3), 'node_translation': ('f', 2),
                 'edge_keys': ('i', 2), 'edge_loop_ids': ('i', 1), 'edge_scale': ('f', 1),
                 'edge_rotation': ('f', 3), 'edge_translation': ('f', 2),
                 'edge_sigmas': ('f', 2), 'anchors': ('i', 1)}
_PLACE_FIELDS = {'keys': ('i', 1), 'descriptors': ('f', 2), 'accepted_loops': ('i', 2)}


def _records(columns: Mapping[str, NDArray[Any]]) -> tuple[KeyframeRecord, ...]:
    count = len(columns['index'])
    shapes = {'intrinsics': (count, 3, 3), 'intrinsics_original': (count, 3, 3),
              'intrinsics_predicted': (count, 3, 3), 'model_hw': (count, 2),
              'original_hw': (count, 2)}
    for key, column in columns.items():
        expected = shapes.get(key, (count,))
        if column.shape != expected:
            raise MapFolderError(f'keyframes.npz: {key} has shape {column.shape}, expected '
                                 f'{expected}')
    if np.any(columns['num_points'] < 0) or not np.all(np.isfinite(columns['intrinsics'])):
        raise MapFolderError('keyframes.npz holds negative point counts or non-finite '
                             'intrinsics')
    return tuple(
        KeyframeRecord(int(columns['index'][i]), str(columns['name'][i]),
                       int(columns['stamp_ns'][i]), columns['intrinsics'][i].copy(),
                       (int(columns['model_hw'][i, 0]), int(columns['model_hw'][i, 1])),
                       columns['intrinsics_original'][i].copy(),
                       (int(columns['original_hw'][i, 0]), int(columns['original_hw'][i, 1])),
                       float(columns['median_depth'][i]), int(columns['num_points'][i]),
                       _predicted_k(columns['intrinsics_predicted'][i]))
        for i in range(count))


def _predicted_k(column: NDArray[np.float64]) -> NDArray[np.float64] | None:
    return None if np.isnan(column).all() else column.copy()


def _graph(columns: Mapping[str, NDArray[Any]]) -> GraphProblem:
    nodes, edges = len(columns['keys']), len(columns['edge_keys'])
    shapes = {'segments': (nodes,), 'node_scale': (nodes,), 'node_rotation': (nodes, 3, 3),
              'node_translation': (nodes, 3), 'edge_keys': (edges, 2),
              'edge_loop_ids': (edges,), 'edge_scale': (edges,),
              'edge_rotation': (edges, 3, 3), 'edge_translation': (edges, 3),
              'edge_sigmas': (edges, 3)}
    for key, expected in shapes.items():
        if columns[key].shape != expected:
            raise MapFolderError(f'graph.npz: {key} has shape {columns[key].shape}, expected '
                                 f'{expected}')

    def floats(key: str) -> NDArray[np.float64]:
        return np.asarray(columns[key], dtype=np.float64)

    def ints(key: str) -> NDArray[np.int64]:
        return np.asarray(columns[key], dtype=np.int64)

    return GraphProblem(
        keys=ints('keys'), segments=ints('segments'),
        world_from_node=Sim3Array(floats('node_scale'), floats('node_rotation'),
                                  floats('node_translation')),
        edge_keys=ints('edge_keys'), edge_loop_ids=ints('edge_loop_ids'),
        a_from_b=Sim3Array(floats('edge_scale'), floats('edge_rotation'),
                           floats('edge_translation')),
        edge_sigmas=floats('edge_sigmas'), anchors=ints('anchors'), graph_id='loaded',
        revision=0, merge_count=0)


def _places(folder: Path, manifest: Mapping[str, Any]) -> PlaceDescriptors | None:
    space = manifest.get('descriptor_space')
    if space is None:
        return None
    if not (folder / 'places.npz').is_file():
        raise MapFolderError(f'the manifest names descriptor space {space!r} but '
                             f'{str(folder / "places.npz")!r} is missing')
    arrays = _load_npz(folder, 'places.npz', _PLACE_FIELDS)
    keys, descriptors = arrays['keys'], arrays['descriptors']
    if len(keys) != len(descriptors) or arrays['accepted_loops'].shape[1:] != (2,):
        raise MapFolderError(f'places.npz: {len(keys)} keys for descriptors of shape '
                             f'{descriptors.shape}, accepted loops of shape '
                             f'{arrays["accepted_loops"].shape}')
    return PlaceDescriptors(str(space), keys.astype(np.int64),
                            np.ascontiguousarray(descriptors, dtype=np.float32),
                            arrays['accepted_loops'].astype(np.int64))


def _config_from(cls: type[Any], values: Mapping[str, Any]) -> Any:
    """Rebuild a (nested) config dataclass from ``asdict`` output; unknown keys are ignored."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for item in dataclasses.fields(cls):
        if item.name not in values:
            continue
        value = values[item.name]
        kind = hints[item.name]
        nested = isinstance(kind, type) and dataclasses.is_dataclass(kind)
        kwargs[item.name] = (_config_from(kind, value) if nested and isinstance(value, dict)
                             else value)
    return cls(**kwargs)


def _config(folder: Path) -> MapperConfig:
    path = folder / 'config.json'
    try:
        config: MapperConfig = _config_from(MapperConfig,
                                            json.loads(path.read_text(encoding='utf-8')))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, ConfigError) as err:
        raise MapFolderError(f'{str(path)!r} is not a valid mapper config: {err}') from err
    return config


class FolderKeyframes:
    """
    Reads the keyframe clouds and images of a ``map_state`` folder (``KeyframeData``).

    :param folder: the ``map_state`` folder (checked by ``read_map_folder``).
    :param records: its keyframe records, in file order.
    :raises MapFolderError: if ``clouds.bin`` does not hold exactly the records' points.
    """

    def __init__(self, folder: Path, records: tuple[KeyframeRecord, ...]) -> None:
        self._folder = folder
        sizes = np.array([r.num_points for r in records], dtype=np.int64) * POINT_BYTES
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        self._where = {r.index: (int(offsets[i]), int(sizes[i]), r.num_points)
                       for i, r in enumerate(records)}
        path = folder / 'clouds.bin'
        if path.stat().st_size != int(offsets[-1]):
            raise MapFolderError(f'{str(path)!r} has {path.stat().st_size} bytes, the records '
                                 f'need {int(offsets[-1])}')
        self._images = {int(p.stem): p for p in (folder / _IMAGES).iterdir()
                        if p.stem.isdigit()}
        missing = [r.index for r in records if r.index not in self._images]
        if missing:
            raise MapFolderError(f'images of keyframes {missing[:5]} are missing from '
                                 f'{str(folder / _IMAGES)!r}')
        self._clouds = open(path, 'rb')  # noqa: SIM115 - closed by close()

    def cloud(self, index: int) -> KeyframeCloud:
        """
        Read a keyframe's cloud.

        :param index: keyframe index.
        :return: the cloud.
        :raises StoreError: if the bytes cannot be read.
        """
        offset, size, count = self._where[index]
        try:
            data = os.pread(self._clouds.fileno(), size, offset)
        except (OSError, ValueError) as err:
            raise StoreError(f'cannot read the cloud of keyframe {index}: {err}') from err
        return KeyframeCloud.from_bytes(data, count)

    def encoded_image(self, index: int) -> bytes:
        """
        Read a keyframe's image file.

        :param index: keyframe index.
        :return: the PNG or JPEG bytes.
        :raises StoreError: if the file cannot be read.
        """
        try:
            return self._images[index].read_bytes()
        except OSError as err:
            raise StoreError(f'cannot read the image of keyframe {index}: {err}') from err

    def close(self) -> None:
        """Close ``clouds.bin``."""
        self._clouds.close()


@dataclass(frozen=True)
class _Counts:
    next_keyframe: int
    segments_started: int


def _counts(manifest: Mapping[str, Any], records: tuple[KeyframeRecord, ...]) -> _Counts:
    next_keyframe, started = manifest.get('next_keyframe'), manifest.get('segments_started')
    if not isinstance(next_keyframe, int) or not isinstance(started, int):
        raise MapFolderError(f"the manifest's next_keyframe ({next_keyframe!r}) and "
                             f'segments_started ({started!r}) must be integers')
    if manifest.get('keyframes') != len(records):
        raise MapFolderError(f'the manifest lists {manifest.get("keyframes")} keyframes, '
                             f'keyframes.npz holds {len(records)}')
    return _Counts(next_keyframe, started)


def read_map_folder(path: Path | str) -> MapState:
    """
    Read and check a saved map (the map folder, or its ``map_state`` folder).

    Checks, before anything is returned: the format version, every file against the
    manifest's size and SHA-256, the arrays' types and shapes. The pose graph's own checks
    (finite values, proper rotations, segments) run when the state is loaded into a mapper.

    :param path: the map folder.
    :return: the state (reads clouds and images on demand: close it, or use ``with``).
    :raises MapFolderError: if the folder is not a map folder, of another format version,
        incomplete or damaged; the message names the file.
    """
    folder = _state_folder(Path(path))
    manifest = _read_manifest(folder)
    _check_files(folder, manifest)
    records = _records(_load_npz(folder, 'keyframes.npz', _KEYFRAME_FIELDS))
    counts = _counts(manifest, records)
    graph = _graph(_load_npz(folder, 'graph.npz', _GRAPH_FIELDS))
    places = _places(folder, manifest)
    config = _config(folder)
    return MapState(config, records, graph, places, counts.next_keyframe,
                    counts.segments_started, FolderKeyframes(folder, records))
