# noqa: A005 (vggt_mapper.io is this package's io layer, not the standard library's)
"""
Inputs and exports: image folders and videos in; GLB, PLY, TUM and cameras JSON out.

Rosbag2 reading and writing live in ``vggt_mapper.io.rosbag2`` and are not imported here (they
pull in ``rosbags``; import that module where a bag is needed).
``vggt_mapper.io.ros_messages`` holds the pure numpy ⇄ ROS message conversions that the rosbag2
reader/writer and the ROS node share (no rclpy needed).
"""

from __future__ import annotations

from vggt_mapper.io.atomic import atomic_write, atomic_write_bytes, check_writable
from vggt_mapper.io.cameras_json import read_cameras_json, write_cameras_json
from vggt_mapper.io.errors import ExportError, InputError, IOErrorBase
from vggt_mapper.io.export import MAP_FILE_NAMES, map_paths, save_map, SavedMap
from vggt_mapper.io.glb import build_scene, write_glb
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

__all__ = [
    'IMAGE_EXTENSIONS',
    'MAP_FILE_NAMES',
    'VIDEO_EXTENSIONS',
    'ExportError',
    'IOErrorBase',
    'InputError',
    'InputKind',
    'ReadStats',
    'SavedMap',
    'TumPose',
    'atomic_write',
    'atomic_write_bytes',
    'build_scene',
    'check_writable',
    'detect_input_kind',
    'iter_image_folder',
    'iter_input',
    'iter_video',
    'map_paths',
    'read_cameras_json',
    'read_ply',
    'read_tum',
    'save_map',
    'write_cameras_json',
    'write_glb',
    'write_ply',
    'write_tum',
]
