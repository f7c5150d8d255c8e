"""Exceptions of the ROS door (node parameters); none of them needs rclpy."""

from __future__ import annotations

__all__ = ['NothingToSaveError', 'ParameterError', 'RosDoorError']


class RosDoorError(Exception):
    """Base class of vggt_mapper.ros errors."""


class ParameterError(RosDoorError, ValueError):
    """A node parameter value is out of range or inconsistent with another one."""


class NothingToSaveError(RosDoorError):
    """A save was asked for before anything was mapped: nothing is written."""
