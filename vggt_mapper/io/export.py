"""
Save a mapped sequence as one set of files.

``map.glb``, ``map.ply``, ``trajectory.tum``, ``cameras.json``, and ``map_stats.json`` when
the caller has run statistics; with a ``MapState``, the folder becomes a *map folder* that loads
again: ``map_state/`` (``vggt_mapper.io.map_folder``) and, if asked, ``colmap/`` (a COLMAP
sparse model with its images, ``vggt_mapper.io.colmap``). ``save_map_folder`` is the one call
for a mapper's state.

A map of several segments (separate maps until a loop closure merges them): the GLB shows every
segment (see ``io.glb``), the PLY carries a ``segment`` property, ``cameras.json`` a ``segment``
per keyframe, and ``trajectory.tum`` holds the keyframes of the main segment (the one with the
most keyframes: a TUM file has one frame), the others being in ``cameras.json``.

The one export entry point of the CLI, the ROS node's save service and the web app. The four
files are one set, saved with ``vggt_mapper.io.file_set.write_file_set``: a save killed at any
point leaves the previous set or the new one, never a mix, and the next save (or
``recover_map``) finishes or cleans up what the killed one left. New outputs join the set by
adding an entry to ``_entries``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
import json
from pathlib import Path
from typing import Any, TYPE_CHECKING

from vggt_mapper.engine.types import KeyframePose, MapSnapshot, MetricScale
from vggt_mapper.io.atomic import atomic_write_bytes
from vggt_mapper.io.cameras_json import write_cameras_json
from vggt_mapper.io.errors import ExportError
from vggt_mapper.io.file_set import EntryWriter, recover_file_set, Recovery, write_file_set
from vggt_mapper.io.ply import write_ply
from vggt_mapper.io.tum import write_tum

if TYPE_CHECKING:
    from vggt_mapper.engine.map_state import MapState
    from vggt_mapper.engine.occupancy import OccupancyGrid

__all__ = ['COLMAP_DIR_NAME', 'MAP_FILE_NAMES', 'MAP_STATE_DIR_NAME', 'STATS_FILE_NAME',
           'SavedMap', 'map_paths', 'recover_map', 'save_map', 'save_map_folder',
           'write_map_stats']

MAP_FILE_NAMES = {'glb': 'map.glb', 'ply': 'map.ply', 'tum': 'trajectory.tum',
                  'cameras_json': 'cameras.json'}
STATS_FILE_NAME = 'map_stats.json'
STATS_FORMAT = 'vggt_mapper.map_stats/1'
MAP_STATE_DIR_NAME = 'map_state'  # = io.map_folder.MAP_STATE_DIR (not imported: numpy-light)
COLMAP_DIR_NAME = 'colmap'
GRID_FILE_NAMES = {'grid_yaml': 'map.yaml', 'grid_pgm': 'map.pgm'}  # io.map_server, stem 'map'


@dataclass(frozen=True)
class SavedMap:
    """
    Where ``save_map`` wrote each output.

    :param outdir: the output folder.
    :param glb: coloured points and camera frustums (binary glTF, y up).
    :param ply: coloured points (binary PLY, world frame).
    :param tum: keyframe trajectory (TUM format, world_from_cam).
    :param cameras_json: per-keyframe intrinsics and poses.
    :param num_points: points written.
    :param num_keyframes: keyframes written.
    :param stats_json: the run statistics, when they were written.
    :param map_state: the saved map state (``map_state/``), when written.
    :param colmap: the COLMAP model and images (``colmap/``), when written.
    :param grid_yaml: the occupancy grid's ``map.yaml`` (next to its ``map.pgm``), when written.
    """

    outdir: Path
    glb: Path
    ply: Path
    tum: Path
    cameras_json: Path
    num_points: int
    num_keyframes: int
    stats_json: Path | None = None
    map_state: Path | None = None
    colmap: Path | None = None
    grid_yaml: Path | None = None

    @property
    def paths(self) -> tuple[Path, ...]:
        """Return what was written: glb, ply, tum, cameras_json, then the optional outputs."""
        optional = (self.stats_json, self.map_state, self.colmap, self.grid_yaml)
        return (self.glb, self.ply, self.tum, self.cameras_json,
                *(path for path in optional if path is not None))


def map_paths(outdir: Path | str, *, state: bool = False, colmap: bool = False,
              grid: bool = False) -> dict[str, Path]:
    """
    Return the output paths ``save_map`` uses in ``outdir``.

    :param outdir: the output folder.
    :param state: include the map state folder (key ``map_state``).
    :param colmap: include the COLMAP folder (key ``colmap``).
    :param grid: include the occupancy grid's files (keys of ``GRID_FILE_NAMES``).
    :return: paths keyed like ``MAP_FILE_NAMES`` (and ``map_state``, ``colmap``, the grid's).
    """
    folder = Path(outdir)
    paths = {key: folder / name for key, name in MAP_FILE_NAMES.items()}
    if state:
        paths['map_state'] = folder / MAP_STATE_DIR_NAME
    if colmap:
        paths['colmap'] = folder / COLMAP_DIR_NAME
    if grid:
        paths.update({key: folder / name for key, name in GRID_FILE_NAMES.items()})
    return paths


def recover_map(outdir: Path | str) -> Recovery:
    """
    Finish or clean up a ``save_map`` into ``outdir`` that was killed (see ``file_set``).

    :param outdir: the output folder.
    :return: what was finished and removed.
    :raises ExportError: if the folder cannot be locked or a move fails.
    """
    return recover_file_set(outdir, [*MAP_FILE_NAMES.values(), STATS_FILE_NAME,
                                     MAP_STATE_DIR_NAME, COLMAP_DIR_NAME])


def write_map_stats(path: Path | str, stats: Mapping[str, Any], *,
                    overwrite: bool = False) -> Path:
    """
    Write run statistics as JSON (``format`` = ``vggt_mapper.map_stats/1`` first), atomically.

    :param path: output file (``map_stats.json``).
    :param stats: JSON-ready values (numbers, strings, lists, dicts).
    :param overwrite: replace an existing file.
    :return: the written path.
    :raises ExportError: if the file exists without ``overwrite`` or cannot be written.
    :raises ValueError: if a value is not JSON (or NaN).
    """
    text = json.dumps({'format': STATS_FORMAT, **stats}, indent=1, allow_nan=False) + '\n'
    return atomic_write_bytes(path, text.encode('utf-8'), overwrite=overwrite)


def _entries(trajectory: Sequence[KeyframePose], snapshot: MapSnapshot,
             show_cameras: bool, stats: Mapping[str, Any] | None,
             camera: Mapping[str, Any] | None, units: Mapping[int, MetricScale] | None,
             state: MapState | None, colmap: bool, world_frame: str | None,
             grid: OccupancyGrid | None) -> dict[str, EntryWriter]:
    """Return the writer of each file of the set, keyed by file name."""
    # Imported here: trimesh takes seconds to import, and map_paths/recover_map (the CLI's
    # checks before mapping) must stay quick.
    from vggt_mapper.io.glb import main_segment, write_glb

    poses = list(trajectory)
    main = main_segment(poses)
    entries: dict[str, EntryWriter] = {
        MAP_FILE_NAMES['glb']: partial(write_glb, points_world=snapshot.points_world,
                                       colors_rgb=snapshot.colors_rgb, poses=poses,
                                       show_cameras=show_cameras,
                                       segment_ids=snapshot.segments),
        MAP_FILE_NAMES['ply']: partial(write_ply, points_world=snapshot.points_world,
                                       colors_rgb=snapshot.colors_rgb,
                                       segment_ids=snapshot.segments),
        MAP_FILE_NAMES['tum']: partial(write_tum,
                                       poses=[p for p in poses if p.segment == main]),
        MAP_FILE_NAMES['cameras_json']: partial(write_cameras_json, poses=poses,
                                                camera=camera, units=units,
                                                world_frame=world_frame),
    }
    if stats is not None:
        entries[STATS_FILE_NAME] = partial(write_map_stats, stats=stats)
    if state is not None:
        from vggt_mapper.io.map_folder import write_map_state

        entries[MAP_STATE_DIR_NAME] = partial(write_map_state, state=state)
    if colmap:
        if state is None:
            raise ExportError('a COLMAP export needs the map state (keyframe clouds and '
                              'images): pass state=')
        from vggt_mapper.io.colmap import write_colmap

        entries[COLMAP_DIR_NAME] = partial(write_colmap, state=state)
    if grid is not None:
        from vggt_mapper.io.map_server import map_server_entries

        entries.update(map_server_entries(grid, 'map'))
    return entries


def save_map(outdir: Path | str, trajectory: Sequence[KeyframePose], snapshot: MapSnapshot, *,
             overwrite: bool = False, show_cameras: bool = True,
             stats: Mapping[str, Any] | None = None, camera: Mapping[str, Any] | None = None,
             units: Mapping[int, MetricScale] | None = None, state: MapState | None = None,
             colmap: bool = False, world_frame: str | None = None,
             grid: OccupancyGrid | None = None) -> SavedMap:
    """
    Write the map and trajectory into ``outdir`` (created if missing) as one set.

    Existing outputs are checked before anything is written, so a refused save changes nothing;
    a save that fails or is killed half-way leaves the previous set (see ``file_set``).

    :param outdir: the output folder.
    :param trajectory: keyframe poses in order (may be empty).
    :param snapshot: the merged map (may be empty).
    :param overwrite: replace existing outputs.
    :param show_cameras: draw a frustum per keyframe in the GLB.
    :param stats: run statistics for ``map_stats.json`` (not written when None).
    :param camera: the camera as the door knew it, for ``cameras.json`` (see
        ``write_cameras_json``).
    :param units: each segment's metric scale (``Mapper.metric_scales``), for ``cameras.json``.
    :param state: the map state (``Mapper.map_state()``) for ``map_state/``: the folder then
        loads again (``vggt_mapper.io.map_folder.read_map_folder``).
    :param colmap: also write ``colmap/`` (needs ``state``).
    :param world_frame: what "world" is in ``cameras.json`` when the poses and points are not in
        the engine's world (the ROS node saves in ``map``); None for the engine's.
    :param grid: the occupancy grid, written as ``map.pgm`` + ``map.yaml`` (nav2 map_server).
    :return: the written paths.
    :raises ExportError: if outputs exist without ``overwrite``, ``outdir`` is not a folder, or
        a write fails.
    """
    folder = Path(outdir)
    write_file_set(folder, _entries(trajectory, snapshot, show_cameras, stats, camera, units,
                                    state, colmap, world_frame, grid),
                   overwrite=overwrite)
    paths = map_paths(folder, state=state is not None, colmap=colmap, grid=grid is not None)
    return SavedMap(outdir=folder, glb=paths['glb'], ply=paths['ply'], tum=paths['tum'],
                    cameras_json=paths['cameras_json'], num_points=snapshot.num_points,
                    num_keyframes=len(trajectory),
                    stats_json=None if stats is None else folder / STATS_FILE_NAME,
                    map_state=paths.get('map_state'), colmap=paths.get('colmap'),
                    grid_yaml=paths.get('grid_yaml'))


def save_map_folder(outdir: Path | str, state: MapState, *, overwrite: bool = False,
                    show_cameras: bool = True, stats: Mapping[str, Any] | None = None,
                    colmap: bool = False) -> SavedMap:
    """
    Write a mapper's state as a map folder: the exports, ``map_state/`` (and ``colmap/``).

    The one call of the ROS node's ``~/save_map`` and the CLI: ``state`` comes from
    ``Mapper.map_state()`` (cheap, on the mapper's thread); this writes it, possibly from
    another thread, as one set (a save killed half-way leaves the previous folder).

    :param outdir: the output folder.
    :param state: the map (``state.snapshot`` must be set: a mapper's state has it).
    :param overwrite: replace existing outputs.
    :param show_cameras: draw a frustum per keyframe in the GLB.
    :param stats: run statistics for ``map_stats.json``.
    :param colmap: also write the COLMAP model.
    :return: the written paths.
    :raises ExportError: as ``save_map``, or for a state without a snapshot.
    """
    if state.snapshot is None:
        raise ExportError('this map state has no fused map (it was read from disk): load it '
                          "into a Mapper and save that mapper's map_state()")
    return save_map(outdir, state.trajectory(), state.snapshot, overwrite=overwrite,
                    show_cameras=show_cameras, stats=stats, state=state, colmap=colmap)
