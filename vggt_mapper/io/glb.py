"""
Coloured point map and camera frustums as a GLB (binary glTF) scene.

Orientation follows the official VGGT demo's GLB (``visual_util.py``: the scene is moved by
``inv(extrinsics[0]) @ diag(1, -1, -1) @ Ry(180°)``) so the map opens upright in glTF viewers:
with the world being the first camera's OpenCV frame, glTF coordinates are the first camera's
coordinates turned 180° about its optical axis, ``(x, y, z)_gltf = (-x, -y, z)_cam0``: y up
(glTF's up axis), the scene in front of the first camera lies along +z, towards a default
viewer looking down -z, and left and right are not mirrored.

A map of several segments (separate maps, each in its own first keyframe's frame and scale,
until a loop closure merges them): the segment with the most keyframes is placed as above, node
``map_points``; every other segment is oriented the same way from its own first keyframe and set
beside it along +x (nodes ``map_points_segment_<k>``), since their relative placement is unknown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
import colorsys
from dataclasses import replace
import json
from pathlib import Path
import struct

import numpy as np
from numpy.typing import NDArray
import trimesh

from vggt_mapper.engine.types import KeyframePose
from vggt_mapper.geometry.se3 import transform_points
from vggt_mapper.geometry.unproject import unproject_pixels
from vggt_mapper.io.atomic import atomic_write_bytes
from vggt_mapper.io.cloud import check_colored_points
from vggt_mapper.io.errors import ExportError

__all__ = [
    'GLTF_FROM_CAM0', 'build_scene', 'empty_glb', 'gltf_from_world', 'main_segment',
    'scene_scale', 'write_glb',
]

# (x, y, z)_gltf = (-x, -y, z)_cam0: diag(1, -1, -1) (OpenCV to OpenGL) then a 180° turn about
# y, the product of the two matrices in the official demo's apply_scene_alignment.
GLTF_FROM_CAM0: NDArray[np.float64] = np.diag([-1.0, -1.0, 1.0, 1.0])

# Frustum depth as a fraction of the scene size (the official demo draws cameras 0.1 deep).
_FRUSTUM_DEPTH_FRACTION = 0.1


def gltf_from_world(poses: Sequence[KeyframePose]) -> NDArray[np.float64]:
    """
    Return the 4×4 transform from the map's world frame to glTF coordinates.

    :param poses: the trajectory; its first pose defines the view (identity world if empty).
    :return: 4×4 float64 ``GLTF_FROM_CAM0 @ cam0_from_world``.
    """
    if not poses:
        return GLTF_FROM_CAM0.copy()
    return GLTF_FROM_CAM0 @ poses[0].cam_from_world


def scene_scale(points_world: NDArray[np.floating], poses: Sequence[KeyframePose]) -> float:
    """
    Measure the scene robustly: the diagonal of the 5th-95th percentile box of the points.

    Falls back to the spread of the camera centres, then to 1, so frustums always get a size.

    :param points_world: (N, 3) points.
    :param poses: the trajectory.
    :return: a positive length in world units.
    """
    for cloud in (np.asarray(points_world, dtype=np.float64).reshape(-1, 3),
                  np.array([pose.position_world for pose in poses]).reshape(-1, 3)):
        finite = cloud[np.isfinite(cloud).all(axis=1)]
        if len(finite) >= 2:
            low, high = np.percentile(finite, [5, 95], axis=0)
            size = float(np.linalg.norm(high - low))
            if size > 0:
                return size
    return 1.0


def _camera_color(index: int, count: int) -> NDArray[np.uint8]:
    """Pick a rainbow colour per camera, first red to last violet (like the demo's colormap)."""
    hue = 0.8 * index / max(count - 1, 1)
    red, green, blue = colorsys.hsv_to_rgb(hue, 1.0, 1.0)
    return np.array([red * 255, green * 255, blue * 255, 255], dtype=np.uint8)


def _frustum_mesh(pose: KeyframePose, depth: float, to_gltf: NDArray[np.float64],
                  color: NDArray[np.uint8]) -> trimesh.Trimesh:
    """Make a pyramid from the camera centre through the image corners, ``depth`` deep."""
    height, width = pose.model_hw
    corners_uv = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5],
                           [-0.5, height - 0.5]])
    vertices_cam = np.vstack([np.zeros((1, 3)),
                              unproject_pixels(corners_uv, depth, pose.intrinsics)])
    vertices = transform_points(to_gltf @ pose.world_from_cam, vertices_cam)
    sides = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    # Both windings, so the thin pyramid shows from inside and outside.
    faces = np.vstack([sides, sides[:, ::-1]])
    return trimesh.Trimesh(vertices=vertices, faces=faces,
                           vertex_colors=np.tile(color, (len(vertices), 1)), process=False)


def main_segment(poses: Sequence[KeyframePose]) -> int:
    """
    Return the segment holding the most keyframes (the smallest id on a tie; 0 if none).

    :param poses: the trajectory.
    :return: the segment id.
    """
    counts = Counter(pose.segment for pose in poses)
    if not counts:
        return 0
    return min(counts, key=lambda segment: (-counts[segment], segment))


def _segment_layout(points: NDArray[np.float64], segment_ids: NDArray[np.int64],
                    poses: Sequence[KeyframePose]) -> dict[int, NDArray[np.float64]]:
    """Place each segment in glTF: its own orientation, the others set beside the main one."""
    main = main_segment(poses)
    segments = sorted(set(segment_ids.tolist()) | {pose.segment for pose in poses},
                      key=lambda segment: (segment != main, segment))
    layout: dict[int, NDArray[np.float64]] = {}
    right_edge = gap = 0.0
    for segment in segments:
        to_gltf = gltf_from_world([p for p in poses if p.segment == segment])
        own = transform_points(to_gltf, points[segment_ids == segment])
        if own.shape[0] == 0:
            own = np.zeros((1, 3))
        if not layout:
            right_edge, gap = float(own[:, 0].max()), 0.2 * float(np.ptp(own[:, 0]) or 1.0)
        else:
            shift = right_edge + gap - float(own[:, 0].min())
            to_gltf = np.array(to_gltf)
            to_gltf[0, 3] += shift
            right_edge = float(own[:, 0].max()) + shift
        layout[segment] = to_gltf
    return layout


def build_scene(points_world: NDArray[np.floating], colors_rgb: NDArray[np.uint8],
                poses: Sequence[KeyframePose], show_cameras: bool = True,
                segment_ids: NDArray[np.integer] | None = None) -> trimesh.Scene:
    """
    Build the scene: coloured points and one frustum per keyframe, glTF-oriented.

    :param points_world: (N, 3) points in the world frame (N may be 0).
    :param colors_rgb: (N, 3) uint8 RGB colours.
    :param poses: keyframe poses; the first defines the orientation (see module docstring).
    :param show_cameras: add the frustums.
    :param segment_ids: (N,) map segment of each point (None: all one segment); each
        segment's poses are those with its ``segment``.
    :return: the scene, geometry already in glTF coordinates.
    :raises ExportError: if the arrays have wrong shapes or non-finite points.
    """
    points, colors = check_colored_points(points_world, colors_rgb)
    segments = (np.zeros(len(points), np.int64) if segment_ids is None
                else np.asarray(segment_ids, dtype=np.int64).reshape(-1))
    if segments.shape[0] != len(points):
        raise ExportError(f'segment_ids has {segments.shape[0]} entries for {len(points)} '
                          f'points')
    if segment_ids is None:
        poses = [replace(pose, segment=0) for pose in poses]
    layout = _segment_layout(points, segments, poses)
    main = main_segment(poses)
    scene = trimesh.Scene()
    for segment, to_gltf in layout.items():
        mask = segments == segment
        if not mask.any():
            continue
        name = 'map_points' if segment == main else f'map_points_segment_{segment}'
        rgba = np.hstack([colors[mask].astype(np.uint8),
                          np.full((int(mask.sum()), 1), 255, dtype=np.uint8)])
        make_cloud = trimesh.PointCloud
        cloud = make_cloud(vertices=transform_points(to_gltf, points[mask]),
                           colors=rgba)  # type: ignore[no-untyped-call]
        scene.add_geometry(cloud, node_name=name, geom_name=name)
    if show_cameras and poses:
        depth = _FRUSTUM_DEPTH_FRACTION * scene_scale(points, poses)
        for pose in poses:
            mesh = _frustum_mesh(pose, depth, layout[pose.segment],
                                 _camera_color(pose.index, len(poses)))
            name = f'camera_{pose.index:04d}'
            scene.add_geometry(mesh, node_name=name, geom_name=name)
    return scene


def empty_glb() -> bytes:
    """
    Make a valid GLB holding one empty scene (no points, no cameras).

    :return: the file content: 12-byte header and one JSON chunk (glTF 2.0 spec, section GLB
        File Format Specification).
    """
    document = {'asset': {'version': '2.0', 'generator': 'vggt_mapper'},
                'scene': 0, 'scenes': [{'name': 'empty map'}]}
    chunk = json.dumps(document, separators=(',', ':')).encode('utf-8')
    chunk += b' ' * (-len(chunk) % 4)  # chunks are padded to 4 bytes, JSON with spaces
    header_size, chunk_header_size = 12, 8
    total = header_size + chunk_header_size + len(chunk)
    return (struct.pack('<4sII', b'glTF', 2, total)
            + struct.pack('<I4s', len(chunk), b'JSON') + chunk)


def write_glb(path: Path | str, points_world: NDArray[np.floating],
              colors_rgb: NDArray[np.uint8], poses: Sequence[KeyframePose],
              show_cameras: bool = True, *, overwrite: bool = False,
              segment_ids: NDArray[np.integer] | None = None) -> Path:
    """
    Write the scene of ``build_scene`` as a GLB file, atomically.

    :param path: output file (``.glb``).
    :param points_world: (N, 3) points in the world frame.
    :param colors_rgb: (N, 3) uint8 colours.
    :param poses: keyframe poses.
    :param show_cameras: add the frustums.
    :param overwrite: replace an existing file.
    :param segment_ids: (N,) map segment of each point (see ``build_scene``).
    :return: the written path.
    :raises ExportError: on bad arrays, an existing file without ``overwrite``, or a write error.
    """
    scene = build_scene(points_world, colors_rgb, poses, show_cameras=show_cameras,
                        segment_ids=segment_ids)
    if scene.is_empty:
        # trimesh refuses to export an empty scene; an empty map is still a valid result.
        return atomic_write_bytes(path, empty_glb(), overwrite=overwrite)
    data = scene.export(file_type='glb')  # type: ignore[no-untyped-call]
    if not isinstance(data, bytes):
        raise ExportError(f'trimesh returned {type(data).__name__} instead of GLB bytes')
    return atomic_write_bytes(path, data, overwrite=overwrite)
