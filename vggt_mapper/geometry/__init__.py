"""
Pure camera geometry in numpy, with the convention in every name.

Extrinsics are camera-from-world ``[R | t]`` (OpenCV axes: x right, y down, z forward),
quaternions are ``quat_xyzw`` (scalar last), pixel centres sit at integer coordinates and
intrinsics are pinhole K in pixels. Each operation is written once here and used by every layer
above (predictor, engine, io, doors). ``vggt_mapper.geometry.sim3`` (Sim(3) alignment) and
``vggt_mapper.geometry.gravity`` (up from camera poses, the level frame) are imported on their
own.
"""

from __future__ import annotations

from vggt_mapper.geometry.errors import GeometryError
from vggt_mapper.geometry.pose_encoding import pose_encoding_to_extrinsics_intrinsics
from vggt_mapper.geometry.rotation import matrix_to_quat_xyzw, quat_xyzw_to_matrix
from vggt_mapper.geometry.se3 import inverse_se3, transform_points
from vggt_mapper.geometry.unproject import (
    depth_to_points_cam,
    pixel_grid_uv,
    project_points,
    unproject_pixels,
)

__all__ = [
    'GeometryError',
    'depth_to_points_cam',
    'inverse_se3',
    'matrix_to_quat_xyzw',
    'pixel_grid_uv',
    'pose_encoding_to_extrinsics_intrinsics',
    'project_points',
    'quat_xyzw_to_matrix',
    'transform_points',
    'unproject_pixels',
]
