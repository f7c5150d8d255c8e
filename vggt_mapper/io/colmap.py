"""
A map as a COLMAP sparse model with its images (for COLMAP's GUI, gsplat, nerfstudio...).

Layout of the ``colmap/`` folder (a COLMAP project folder: gsplat and nerfstudio read it as
their ``data_dir``)::

    colmap/images/<index>.png               each keyframe's model image (the pixels the model saw)
    colmap/sparse/0/cameras.bin images.bin points3D.bin (+ rigs.bin frames.bin)
    colmap/sparse/1/...                     further map segments, if any

Written with pycolmap. Each map segment (its own frame and scale until a loop closure merges it)
is one model, like COLMAP's own ``sparse/0``, ``sparse/1``; ``0`` is the segment with the most
keyframes.

* Cameras: one undistorted ``PINHOLE`` camera per keyframe, the K its window predicted, in the
  pixels of the image written next to it. COLMAP puts the centre of the top-left pixel at
  (0.5, 0.5) where this project puts it at (0, 0): ``cx``, ``cy`` and every observation get
  +0.5.
* Images: ``cam_from_world`` is the inverse of the keyframe's ``world_from_cam`` in its segment.
* Points: the keyframes' stored points (each a real pixel of its keyframe), carried into the
  segment's world and merged on a voxel grid of ``MapConfig.voxel_size`` (the map's own); a
  point's position and colour are its members' means, and its track holds every keyframe with a
  member, at that member's pixel (the most confident one when a keyframe has several).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.keyframe_store import image_extension, KeyframeRecord, StoreError
from vggt_mapper.engine.map_state import MapState
from vggt_mapper.geometry.se3 import inverse_se3
from vggt_mapper.io.errors import ExportError

if TYPE_CHECKING:
    import pycolmap  # imported on use: the CLI's checks stay quick

__all__ = ['COLMAP_PIXEL_OFFSET', 'image_name', 'write_colmap']

COLMAP_PIXEL_OFFSET = 0.5
"""COLMAP pixel coordinates minus this project's (pixel centres at integers)."""


def image_name(index: int, encoded: bytes) -> str:
    """
    Return the file name of a keyframe's image in ``colmap/images``.

    :param index: the keyframe index.
    :param encoded: its image bytes (the extension follows their format).
    :return: e.g. ``000042.png``.
    """
    return f'{index:06d}.{image_extension(encoded)}'


@dataclass(frozen=True)
class _Observations:
    """The points of a segment's keyframes, one row per stored point."""

    points_world: NDArray[np.float64]
    colors_rgb: NDArray[np.uint8]
    keyframes: NDArray[np.int64]
    pixels_uv: NDArray[np.float64]
    conf: NDArray[np.float64]


def _observations(state: MapState, keys: list[int]) -> _Observations:
    values, row_of = state.graph.world_from_node, {
        int(key): row for row, key in enumerate(state.graph.keys.tolist())}
    parts = []
    for key in keys:
        cloud = state.keyframes.cloud(key)
        parts.append((values[row_of[key]].apply(cloud.points_local), cloud.colors_rgb,
                      np.full(cloud.num_points, key, np.int64),
                      cloud.pixels_uv.astype(np.float64), cloud.conf.astype(np.float64)))
    if not parts:
        return _Observations(np.zeros((0, 3)), np.zeros((0, 3), np.uint8),
                             np.zeros(0, np.int64), np.zeros((0, 2)), np.zeros(0))
    return _Observations(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def _merge(obs: _Observations, voxel: float) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """
    Group observations into points; keep one observation per (point, keyframe).

    :return: the kept observations' rows, sorted by point, and the point of each.
    """
    if voxel > 0:
        cells = np.floor(obs.points_world / voxel).astype(np.int64)
        _, point_of = np.unique(cells, axis=0, return_inverse=True)
        point_of = point_of.reshape(-1)
    else:
        point_of = np.arange(len(obs.keyframes))
    # By point, then keyframe, most confident first: the first row of each pair is kept.
    order = np.lexsort((-obs.conf, obs.keyframes, point_of))
    pairs = np.stack([point_of[order], obs.keyframes[order]], axis=1)
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(pairs[1:] != pairs[:-1], axis=1)
    kept = order[first]
    return kept, point_of[kept]


def _camera(record: KeyframeRecord, camera_id: int) -> pycolmap.Camera:
    import pycolmap

    k_matrix = record.intrinsics
    params = [k_matrix[0, 0], k_matrix[1, 1], k_matrix[0, 2] + COLMAP_PIXEL_OFFSET,
              k_matrix[1, 2] + COLMAP_PIXEL_OFFSET]
    height, width = record.model_hw
    return pycolmap.Camera(model='PINHOLE', width=width, height=height, params=params,
                           camera_id=camera_id)


def _segment_model(state: MapState, keys: list[int], folder: Path) -> None:
    """Write one segment's reconstruction into ``folder``."""
    import pycolmap

    records = {record.index: record for record in state.records}
    poses = {pose.index: pose for pose in state.trajectory() if pose.index in set(keys)}
    obs = _observations(state, keys)
    kept, point_of = _merge(obs, state.config.map.voxel_size)
    reconstruction = pycolmap.Reconstruction()
    point2d_idx = np.zeros(len(obs.keyframes), np.int64)
    for key in keys:
        image_id = key + 1  # COLMAP ids start at 1
        reconstruction.add_camera_with_trivial_rig(_camera(records[key], image_id))
        rows = kept[obs.keyframes[kept] == key]
        point2d_idx[rows] = np.arange(len(rows))
        image = pycolmap.Image(name=image_name(key, state.keyframes.encoded_image(key)),
                               keypoints=obs.pixels_uv[rows] + COLMAP_PIXEL_OFFSET,
                               camera_id=image_id, image_id=image_id)
        cam_from_world = inverse_se3(poses[key].world_from_cam)[:3, :]
        reconstruction.add_image_with_trivial_frame(image, pycolmap.Rigid3d(cam_from_world))
    boundaries = np.flatnonzero(np.diff(point_of)) + 1
    for members in np.split(np.arange(len(kept)), boundaries):
        if len(members) == 0:
            continue
        rows = kept[members]
        track = pycolmap.Track([pycolmap.TrackElement(int(obs.keyframes[row]) + 1,
                                                      int(point2d_idx[row])) for row in rows])
        colour = np.round(obs.colors_rgb[rows].mean(axis=0)).astype(np.uint8)
        reconstruction.add_point3D(obs.points_world[rows].mean(axis=0), track, colour)
    folder.mkdir(parents=True)
    reconstruction.write_binary(str(folder))


def _write_images(state: MapState, folder: Path) -> None:
    folder.mkdir(parents=True)
    for record in state.records:
        encoded = state.keyframes.encoded_image(record.index)
        (folder / image_name(record.index, encoded)).write_bytes(encoded)


def write_colmap(path: Path, state: MapState) -> Path:
    """
    Write a map as a COLMAP folder (an ``EntryWriter`` of ``write_file_set``).

    :param path: the ``colmap`` folder to create (must not exist).
    :param state: the map (module docstring).
    :return: ``path``.
    :raises ExportError: if the keyframe data cannot be read.
    """
    folder = Path(path)
    folder.mkdir()
    segments: dict[int, list[int]] = {}
    for key, segment in zip(state.graph.keys.tolist(), state.graph.segments.tolist(),
                            strict=True):
        segments.setdefault(int(segment), []).append(int(key))
    # The biggest segment is model 0 (what tools open by default), then by segment number.
    ordered = sorted(segments.items(), key=lambda item: (-len(item[1]), item[0]))
    try:
        _write_images(state, folder / 'images')
        for number, (_, keys) in enumerate(ordered):
            _segment_model(state, sorted(keys), folder / 'sparse' / str(number))
    except StoreError as err:
        raise ExportError(f'cannot read the keyframes for the COLMAP export: {err}') from err
    return folder
