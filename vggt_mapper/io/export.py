"""
Save a mapped sequence as one set of files.

``map.glb``, ``map.ply``, ``trajectory.tum``, ``cameras.json``, and ``map_stats.json`` when
the caller has run statistics.

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
from typing import Any

from vggt_mapper.engine.types import KeyframePose, MapSnapshot
from vggt_mapper.io.atomic import atomic_write_bytes
from vggt_mapper.io.cameras_json import write_cameras_json
from vggt_mapper.io.file_set import EntryWriter, recover_file_set, Recovery, write_file_set
from vggt_mapper.io.ply import write_ply
from vggt_mapper.io.tum import write_tum

__all__ = ['MAP_FILE_NAMES', 'STATS_FILE_NAME', 'SavedMap', 'map_paths', 'recover_map',
           'save_map', 'write_map_stats']

MAP_FILE_NAMES = {'glb': 'map.glb', 'ply': 'map.ply', 'tum': 'trajectory.tum',
                  'cameras_json': 'cameras.json'}
STATS_FILE_NAME = 'map_stats.json'
STATS_FORMAT = 'vggt_mapper.map_stats/1'


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
    """

    outdir: Path
    glb: Path
    ply: Path
    tum: Path
    cameras_json: Path
    num_points: int
    num_keyframes: int
    stats_json: Path | None = None

    @property
    def paths(self) -> tuple[Path, ...]:
        """Return the files written: glb, ply, tum, cameras_json (then stats_json)."""
        files = (self.glb, self.ply, self.tum, self.cameras_json)
        return files if self.stats_json is None else (*files, self.stats_json)


def map_paths(outdir: Path | str) -> dict[str, Path]:
    """
    Return the output paths ``save_map`` uses in ``outdir``.

    :param outdir: the output folder.
    :return: paths keyed like ``MAP_FILE_NAMES``.
    """
    folder = Path(outdir)
    return {key: folder / name for key, name in MAP_FILE_NAMES.items()}


def recover_map(outdir: Path | str) -> Recovery:
    """
    Finish or clean up a ``save_map`` into ``outdir`` that was killed (see ``file_set``).

    :param outdir: the output folder.
    :return: what was finished and removed.
    :raises ExportError: if the folder cannot be locked or a move fails.
    """
    return recover_file_set(outdir, [*MAP_FILE_NAMES.values(), STATS_FILE_NAME])


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
             world_frame: str | None) -> dict[str, EntryWriter]:
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
                                                world_frame=world_frame),
    }
    if stats is not None:
        entries[STATS_FILE_NAME] = partial(write_map_stats, stats=stats)
    return entries


def save_map(outdir: Path | str, trajectory: Sequence[KeyframePose], snapshot: MapSnapshot, *,
             overwrite: bool = False, show_cameras: bool = True,
             stats: Mapping[str, Any] | None = None,
             world_frame: str | None = None) -> SavedMap:
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
    :param world_frame: what "world" is in ``cameras.json`` when the poses and points are not in
        the engine's world (the ROS node saves in ``map``); None for the engine's.
    :return: the written paths.
    :raises ExportError: if outputs exist without ``overwrite``, ``outdir`` is not a folder, or
        a write fails.
    """
    folder = Path(outdir)
    write_file_set(folder, _entries(trajectory, snapshot, show_cameras, stats, world_frame),
                   overwrite=overwrite)
    paths = map_paths(folder)
    return SavedMap(outdir=folder, glb=paths['glb'], ply=paths['ply'], tum=paths['tum'],
                    cameras_json=paths['cameras_json'], num_points=snapshot.num_points,
                    num_keyframes=len(trajectory),
                    stats_json=None if stats is None else folder / STATS_FILE_NAME)
