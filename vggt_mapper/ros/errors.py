"""Exceptions of the ROS door (conversions and node parameters); none of them needs rclpy."""

from __future__ import annotations

__all__ = ['ConversionError', 'ParameterError', 'RosDoorError']


class RosDoorError(Exception):
    """Base class of vggt_mapper.ros errors."""


class ConversionError(RosDoorError, ValueError):
    """A message cannot be converted (wrong step, truncated data, unknown encoding, empty)."""


class ParameterError(RosDoorError, ValueError):
    """A node parameter value is out of range or inconsistent with another one."""
