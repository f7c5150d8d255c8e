"""VGGT re-implementation (checkpoint-compatible with facebook/VGGT-1B): build, load, run."""

from __future__ import annotations

from vggt_mapper.model.config import (
    AggregatorConfig,
    CameraHeadConfig,
    DinoConfig,
    DPTHeadConfig,
    TrackHeadConfig,
    VGGTConfig,
)
from vggt_mapper.model.errors import ModelError, WeightsError
from vggt_mapper.model.vggt import HEAD_NAMES, MAPPING_HEADS, VGGT, VGGTOutput

__all__ = [
    'AggregatorConfig',
    'CameraHeadConfig',
    'DPTHeadConfig',
    'DinoConfig',
    'HEAD_NAMES',
    'MAPPING_HEADS',
    'ModelError',
    'TrackHeadConfig',
    'VGGT',
    'VGGTConfig',
    'VGGTOutput',
    'WeightsError',
]
