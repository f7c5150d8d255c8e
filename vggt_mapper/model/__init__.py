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
from vggt_mapper.model.loading import checkpoint_filter_fn, DEFAULT_SOURCE, load_vggt
from vggt_mapper.model.synthetic import build_vggt, fill_synthetic_, synthetic_tensor
from vggt_mapper.model.vggt import HEAD_NAMES, MAPPING_HEADS, VGGT, VGGTOutput

__all__ = [
    'AggregatorConfig',
    'CameraHeadConfig',
    'DEFAULT_SOURCE',
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
    'build_vggt',
    'checkpoint_filter_fn',
    'fill_synthetic_',
    'load_vggt',
    'synthetic_tensor',
]
