"""The ROS-free mapping engine: frames → keyframes → windows → Sim(3) alignment → one map."""

from __future__ import annotations

from vggt_mapper.engine.config import (
    AlignmentConfig,
    KeyframeConfig,
    MapConfig,
    MapperConfig,
    OccupancyConfig,
)
from vggt_mapper.engine.errors import (
    AlignmentError,
    ConfigError,
    EngineError,
    FrameError,
    OccupancyError,
)
from vggt_mapper.engine.floor import camera_up_world, fit_floor, FloorPlane
from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.engine.occupancy import build_occupancy_grid, map_occupancy, OccupancyGrid
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
    'FloorPlane',
    'FrameError',
    'InputFrame',
    'KeyframeConfig',
    'KeyframePose',
    'MapConfig',
    'MapSnapshot',
    'Mapper',
    'MapperConfig',
    'MapperStats',
    'OccupancyConfig',
    'OccupancyError',
    'OccupancyGrid',
    'WindowResult',
    'build_occupancy_grid',
    'camera_up_world',
    'fit_floor',
    'map_occupancy',
]
