"""
Pure camera geometry in numpy, with the convention in every name.

Extrinsics are camera-from-world ``[R | t]`` (OpenCV axes: x right, y down, z forward),
quaternions are ``quat_xyzw`` (scalar last), pixel centres sit at integer coordinates and
intrinsics are pinhole K in pixels. ``vggt_mapper.geometry.sim3`` (Sim(3) alignment) is imported
on its own.
"""

from __future__ import annotations

from vggt_mapper.geometry.errors import GeometryError
from vggt_mapper.geometry.pose_encoding import (
    extrinsics_intrinsics_to_pose_encoding,
    pose_encoding_to_extrinsics_intrinsics,
)
from vggt_mapper.geometry.projection import apply_distortion, project_points_world
from vggt_mapper.geometry.rotation import matrix_to_quat_xyzw, quat_xyzw_to_matrix
from vggt_mapper.geometry.se3 import (
    camera_centers_world,
    inverse_se3,
    se3_to_4x4,
    transform_points,
)
from vggt_mapper.geometry.unproject import (
    depth_to_points_cam,
    depth_to_points_world,
    DEPTH_VALID_EPS,
    pixel_grid_uv,
    unproject_depth_maps,
)

__all__ = [
    'DEPTH_VALID_EPS',
    'GeometryError',
    'apply_distortion',
    'camera_centers_world',
    'depth_to_points_cam',
    'depth_to_points_world',
    'extrinsics_intrinsics_to_pose_encoding',
    'inverse_se3',
    'matrix_to_quat_xyzw',
    'pixel_grid_uv',
    'pose_encoding_to_extrinsics_intrinsics',
    'project_points_world',
    'quat_xyzw_to_matrix',
    'se3_to_4x4',
    'transform_points',
    'unproject_depth_maps',
]
