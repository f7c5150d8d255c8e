"""The ROS-free mapping engine: frames → keyframes → windows → Sim(3) alignment → one map."""

from __future__ import annotations

from vggt_mapper.engine.config import AlignmentConfig, KeyframeConfig, MapConfig, MapperConfig
from vggt_mapper.engine.errors import AlignmentError, ConfigError, EngineError, FrameError
from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.engine.types import (
    InputFrame,
    KeyframePose,
    MapperStats,
    MapSnapshot,
    WindowResult,
)

__all__ = [
    'AlignmentConfig',
    'AlignmentError',
    'ConfigError',
    'EngineError',
    'FrameError',
    'InputFrame',
    'KeyframeConfig',
    'KeyframePose',
    'MapConfig',
    'MapSnapshot',
    'Mapper',
    'MapperConfig',
    'MapperStats',
    'WindowResult',
]
