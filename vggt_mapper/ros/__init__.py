"""
The ROS 2 door: message conversions, node parameters and the ``mapper_node`` executable.

Importing this package needs no ROS: ``conversions``, ``params`` and ``errors`` are pure Python
and numpy. Only ``vggt_mapper.ros.node`` imports rclpy (import it explicitly).
"""

from vggt_mapper.ros.conversions import (
    CameraInfoRecord,
    MAP_FROM_WORLD,
    MessageTypes,
    rclpy_message_types,
    rosbags_message_types,
)
from vggt_mapper.ros.errors import ConversionError, ParameterError, RosDoorError
from vggt_mapper.ros.params import NodeParams, PARAMETERS, ParamSpec

__all__ = [
    'MAP_FROM_WORLD',
    'PARAMETERS',
    'CameraInfoRecord',
    'ConversionError',
    'MessageTypes',
    'NodeParams',
    'ParamSpec',
    'ParameterError',
    'RosDoorError',
    'rclpy_message_types',
    'rosbags_message_types',
]
