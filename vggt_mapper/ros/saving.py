"""
Where the node saves its maps, and what it refuses to save (no rclpy here).

* **Never an empty map**: stopping a node before its first window used to replace a saved map
  with an empty one. ``check_something_mapped`` refuses a map without keyframes or points;
  the node answers ``~/save_map`` with that reason and skips the shutdown save.
* **One folder per map** (``output_per_run``, the default): a map (from ``configure`` or
  ``~/reset`` on) is saved into ``output_dir/<YYYY-MM-DD_HH-MM-SS>/`` (its start time, local;
  ``_2``, ``_3``... if that folder already belongs to another map), and ``output_dir/latest``
  is a relative symbolic link to the newest, replaced atomically. Saving the same map again
  replaces its own files only (one set, ``io.export.save_map``). Without ``output_per_run`` the
  map goes into ``output_dir`` itself, as before.
* **The frame is said**: the files are in the published ``map`` frame; ``map_frame.json`` says
  which (axes, levelling, and each segment's ``map_from_world`` from the engine's frame).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
import json
import os
from pathlib import Path

import numpy as np

from vggt_mapper.engine.types import KeyframePose, MapSnapshot
from vggt_mapper.io.atomic import atomic_write_bytes
from vggt_mapper.io.errors import MapFolderError
from vggt_mapper.ros.errors import NothingToSaveError
from vggt_mapper.ros.frames import MapFrame

__all__ = ['FRAME_FILE_NAME', 'LATEST_LINK', 'RunFolders', 'check_something_mapped',
           'read_frame_note', 'write_frame_note']

LATEST_LINK = 'latest'
FRAME_FILE_NAME = 'map_frame.json'
FRAME_FORMAT = 'vggt_mapper.map_frame/1'
_NAME_FORMAT = '%Y-%m-%d_%H-%M-%S'


def check_something_mapped(trajectory: Sequence[KeyframePose], snapshot: MapSnapshot) -> None:
    """
    Refuse to save a map without keyframes or points.

    :param trajectory: the keyframes to save.
    :param snapshot: the points to save.
    :raises NothingToSaveError: saying what is missing; nothing is written then.
    """
    if not trajectory or snapshot.num_points == 0:
        raise NothingToSaveError(
            f'nothing mapped yet ({len(trajectory)} keyframes, {snapshot.num_points} points): '
            f'no map written, a saved map is never replaced by an empty one')


class RunFolders:
    """The folder of the current map under ``output_dir`` (see the module docstring)."""

    def __init__(self) -> None:
        """Start with no map (``start_map`` names the first)."""
        self._started: datetime | None = None
        self._folder: Path | None = None

    def start_map(self, now: datetime | None = None) -> None:
        """
        Begin a new map: its first save creates a new folder.

        :param now: the map's start time (default: the local time now).
        """
        self._started = now or datetime.now()
        self._folder = None

    def folder(self, output_dir: Path, per_run: bool) -> Path:
        """
        Return the folder the current map is saved into (not created here).

        :param output_dir: the ``output_dir`` parameter (``~`` expanded).
        :param per_run: the ``output_per_run`` parameter.
        :return: ``output_dir`` itself, or this map's own folder under it.
        """
        if not per_run:
            return output_dir
        if self._folder is not None and self._folder.parent == output_dir:
            return self._folder
        if self._started is None:
            self.start_map()
        assert self._started is not None
        name = self._started.strftime(_NAME_FORMAT)
        folder, number = output_dir / name, 1
        while folder.exists() or folder.is_symlink():  # another map's: keep it
            number += 1
            folder = output_dir / f'{name}_{number}'
        self._folder = folder
        return folder

    @staticmethod
    def link_latest(output_dir: Path, folder: Path) -> Path:
        """
        Point ``output_dir/latest`` at ``folder`` (relative link, replaced atomically).

        :param output_dir: the folder holding the maps.
        :param folder: the map folder just saved, a child of ``output_dir``.
        :return: the link.
        :raises OSError: if the link cannot be made, or ``latest`` is a real folder or file
            (it is left alone).
        """
        link = output_dir / LATEST_LINK
        if link.exists() and not link.is_symlink():
            raise FileExistsError(f'{link} exists and is not a symbolic link: left alone')
        temporary = output_dir / f'.{LATEST_LINK}.{os.getpid()}.tmp'
        temporary.unlink(missing_ok=True)
        os.symlink(folder.name, temporary)
        os.replace(temporary, link)
        return link


def write_frame_note(folder: Path, frame_id: str, frames: Mapping[int, MapFrame]) -> Path:
    """
    Write ``map_frame.json``: the frame of the saved files, and how it relates to the engine's.

    :param folder: the map folder.
    :param frame_id: the published map frame (``map_frame`` parameter).
    :param frames: the map frame of each segment.
    :return: the file written.
    :raises ExportError: if it cannot be written.
    """
    document = {
        'format': FRAME_FORMAT,
        'frame_id': frame_id,
        'files': 'map.ply, trajectory.tum and cameras.json (its "world") are in this '
                 'frame, cameras with their optical axes; map.glb is turned for glTF viewers '
                 "from the first camera, as the command line's",
        'segments': {str(segment): {'description': frame.describe(),
                                    'levelled_by': frame.levelled_by or None,
                                    'map_from_engine_world': frame.map_from_world.tolist()}
                     for segment, frame in sorted(frames.items())},
    }
    text = json.dumps(document, indent=1) + '\n'
    return atomic_write_bytes(folder / FRAME_FILE_NAME, text.encode('utf-8'), overwrite=True)


def read_frame_note(folder: Path) -> dict[int, MapFrame]:
    """
    Read the map frame of each segment back from a saved map's ``map_frame.json``.

    A map loaded again keeps the ``map`` frame it was saved in (its grid, its trajectory), so
    the node takes these frames for the loaded segments instead of levelling them anew.

    :param folder: the map folder.
    :return: segment → map frame; empty when the folder has no note (a map the command line
        saved, in the engine's frame).
    :raises MapFolderError: if the note exists but is not one this node wrote.
    """
    path = folder / FRAME_FILE_NAME
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding='utf-8'))
        if document.get('format') != FRAME_FORMAT:
            raise ValueError(f'format {document.get("format")!r}, expected {FRAME_FORMAT!r}')
        frames = {}
        for segment, entry in document['segments'].items():
            matrix = np.asarray(entry['map_from_engine_world'], dtype=np.float64)
            if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
                raise ValueError(f'segment {segment}: map_from_engine_world is not a 4×4 matrix')
            frames[int(segment)] = MapFrame(matrix, entry.get('levelled_by') or '')
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise MapFolderError(f'{path}: not a map frame note of this node: {err}') from err
    return frames
