"""
The ROS 2 door: node parameters and the ``mapper_node`` executable.

Importing this package needs no ROS: ``params`` and ``errors`` are pure Python. Only
``vggt_mapper.ros.node`` imports rclpy (import it explicitly). The message conversions the node
shares with the rosbag2 reader and writer live below the doors, in
``vggt_mapper.io.ros_messages``.
"""

from vggt_mapper.ros.errors import ParameterError, RosDoorError
from vggt_mapper.ros.params import NodeParams, PARAMETERS, ParamSpec

__all__ = [
    'PARAMETERS',
    'NodeParams',
    'ParamSpec',
    'ParameterError',
    'RosDoorError',
]
