"""
Save a mapped sequence: ``map.glb``, ``map.ply``, ``trajectory.tum``, ``cameras.json``.

The one export entry point of the CLI, the ROS node's save service and the web app.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vggt_mapper.engine.types import KeyframePose, MapSnapshot
from vggt_mapper.io.atomic import check_writable
from vggt_mapper.io.cameras_json import write_cameras_json
from vggt_mapper.io.errors import ExportError
from vggt_mapper.io.glb import write_glb
from vggt_mapper.io.ply import write_ply
from vggt_mapper.io.tum import write_tum

__all__ = ['MAP_FILE_NAMES', 'SavedMap', 'map_paths', 'save_map']

MAP_FILE_NAMES = {'glb': 'map.glb', 'ply': 'map.ply', 'tum': 'trajectory.tum',
                  'cameras_json': 'cameras.json'}


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
    """

    outdir: Path
    glb: Path
    ply: Path
    tum: Path
    cameras_json: Path
    num_points: int
    num_keyframes: int

    @property
    def paths(self) -> tuple[Path, Path, Path, Path]:
        """Return the four files, in the order glb, ply, tum, cameras_json."""
        return self.glb, self.ply, self.tum, self.cameras_json


def map_paths(outdir: Path | str) -> dict[str, Path]:
    """
    Return the output paths ``save_map`` uses in ``outdir``.

    :param outdir: the output folder.
    :return: paths keyed like ``MAP_FILE_NAMES``.
    """
    folder = Path(outdir)
    return {key: folder / name for key, name in MAP_FILE_NAMES.items()}


def save_map(outdir: Path | str, trajectory: Sequence[KeyframePose], snapshot: MapSnapshot, *,
             overwrite: bool = False, show_cameras: bool = True) -> SavedMap:
    """
    Write the map and trajectory into ``outdir`` (created if missing).

    Every file is written atomically (temporary file, fsync, rename), and existing outputs are
    checked before anything is written, so a refused save changes nothing.

    :param outdir: the output folder.
    :param trajectory: keyframe poses in order (may be empty).
    :param snapshot: the merged map (may be empty).
    :param overwrite: replace existing outputs.
    :param show_cameras: draw a frustum per keyframe in the GLB.
    :return: the written paths.
    :raises ExportError: if outputs exist without ``overwrite``, ``outdir`` is not a folder, or
        a write fails.
    """
    folder = Path(outdir)
    if folder.exists() and not folder.is_dir():
        raise ExportError(f'Output folder {str(folder)!r} exists and is not a folder')
    paths = map_paths(folder)
    check_writable(list(paths.values()), overwrite=overwrite)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExportError(f'Cannot create output folder {str(folder)!r}: {err}') from err
    poses = list(trajectory)
    write_glb(paths['glb'], snapshot.points_world, snapshot.colors_rgb, poses,
              show_cameras=show_cameras, overwrite=overwrite)
    write_ply(paths['ply'], snapshot.points_world, snapshot.colors_rgb, overwrite=overwrite)
    write_tum(paths['tum'], poses, overwrite=overwrite)
    write_cameras_json(paths['cameras_json'], poses, overwrite=overwrite)
    return SavedMap(outdir=folder, glb=paths['glb'], ply=paths['ply'], tum=paths['tum'],
                    cameras_json=paths['cameras_json'], num_points=snapshot.num_points,
                    num_keyframes=len(poses))
