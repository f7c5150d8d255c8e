# noqa: A005 (vggt_mapper.io is this package's io layer, not the standard library's)
"""
Inputs and exports: image folders and videos in; GLB, PLY, TUM, cameras JSON, map_server out.

Rosbag2 reading and writing live in ``vggt_mapper.io.rosbag2`` and are not imported here (they
pull in ``rosbags``; import that module where a bag is needed).
``vggt_mapper.io.ros_messages`` holds the pure numpy ⇄ ROS message conversions that the rosbag2
reader/writer and the ROS node share (no rclpy needed). The names below are imported on
first use, so ``import vggt_mapper.io.readers`` (the CLI checking its arguments) does not pay for
trimesh or PyAV.
"""

from __future__ import annotations

import importlib
from typing import Any, TYPE_CHECKING

if TYPE_CHECKING:
    from vggt_mapper.io.atomic import (
        atomic_write,
        atomic_write_bytes,
        check_writable,
        prepare_output_folder,
    )
    from vggt_mapper.io.cameras_json import read_cameras_json, write_cameras_json
    from vggt_mapper.io.errors import ExportError, InputError, IOErrorBase
    from vggt_mapper.io.export import MAP_FILE_NAMES, map_paths, recover_map, save_map, SavedMap
    from vggt_mapper.io.file_set import recover_file_set, Recovery, write_file_set
    from vggt_mapper.io.glb import build_scene, write_glb
    from vggt_mapper.io.images import decode_image, rgb8_from_pixels
    from vggt_mapper.io.map_server import map_server_entries, read_map_server, write_map_server
    from vggt_mapper.io.ply import read_ply, write_ply
    from vggt_mapper.io.readers import (
        detect_input_kind,
        IMAGE_EXTENSIONS,
        InputKind,
        iter_image_folder,
        iter_input,
        iter_video,
        ReadStats,
        VIDEO_EXTENSIONS,
    )
    from vggt_mapper.io.tum import read_tum, TumPose, write_tum

# Public name → the module defining it (PEP 562 lazy attributes).
_HOMES = {
    'ExportError': 'vggt_mapper.io.errors',
    'IMAGE_EXTENSIONS': 'vggt_mapper.io.readers',
    'IOErrorBase': 'vggt_mapper.io.errors',
    'InputError': 'vggt_mapper.io.errors',
    'InputKind': 'vggt_mapper.io.readers',
    'MAP_FILE_NAMES': 'vggt_mapper.io.export',
    'ReadStats': 'vggt_mapper.io.readers',
    'Recovery': 'vggt_mapper.io.file_set',
    'SavedMap': 'vggt_mapper.io.export',
    'TumPose': 'vggt_mapper.io.tum',
    'VIDEO_EXTENSIONS': 'vggt_mapper.io.readers',
    'atomic_write': 'vggt_mapper.io.atomic',
    'atomic_write_bytes': 'vggt_mapper.io.atomic',
    'build_scene': 'vggt_mapper.io.glb',
    'check_writable': 'vggt_mapper.io.atomic',
    'decode_image': 'vggt_mapper.io.images',
    'detect_input_kind': 'vggt_mapper.io.readers',
    'iter_image_folder': 'vggt_mapper.io.readers',
    'iter_input': 'vggt_mapper.io.readers',
    'iter_video': 'vggt_mapper.io.readers',
    'map_paths': 'vggt_mapper.io.export',
    'map_server_entries': 'vggt_mapper.io.map_server',
    'prepare_output_folder': 'vggt_mapper.io.atomic',
    'read_cameras_json': 'vggt_mapper.io.cameras_json',
    'read_map_server': 'vggt_mapper.io.map_server',
    'read_ply': 'vggt_mapper.io.ply',
    'read_tum': 'vggt_mapper.io.tum',
    'recover_file_set': 'vggt_mapper.io.file_set',
    'recover_map': 'vggt_mapper.io.export',
    'rgb8_from_pixels': 'vggt_mapper.io.images',
    'save_map': 'vggt_mapper.io.export',
    'write_cameras_json': 'vggt_mapper.io.cameras_json',
    'write_file_set': 'vggt_mapper.io.file_set',
    'write_glb': 'vggt_mapper.io.glb',
    'write_map_server': 'vggt_mapper.io.map_server',
    'write_ply': 'vggt_mapper.io.ply',
    'write_tum': 'vggt_mapper.io.tum',
}

__all__ = [
    'IMAGE_EXTENSIONS',
    'MAP_FILE_NAMES',
    'VIDEO_EXTENSIONS',
    'ExportError',
    'IOErrorBase',
    'InputError',
    'InputKind',
    'ReadStats',
    'Recovery',
    'SavedMap',
    'TumPose',
    'atomic_write',
    'atomic_write_bytes',
    'build_scene',
    'check_writable',
    'decode_image',
    'detect_input_kind',
    'iter_image_folder',
    'iter_input',
    'iter_video',
    'map_paths',
    'map_server_entries',
    'prepare_output_folder',
    'read_cameras_json',
    'read_map_server',
    'read_ply',
    'read_tum',
    'recover_file_set',
    'recover_map',
    'rgb8_from_pixels',
    'save_map',
    'write_cameras_json',
    'write_file_set',
    'write_glb',
    'write_map_server',
    'write_ply',
    'write_tum',
]


def __getattr__(name: str) -> Any:
    """
    Import a public name's module on first use.

    :param name: the attribute asked for.
    :return: the object.
    :raises AttributeError: for a name this package does not export.
    """
    if name not in _HOMES:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """:return: the public names (for tab completion)."""
    return sorted(__all__)
