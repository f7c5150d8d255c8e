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
from vggt_mapper.model.flops import count_flops, FlopCount
from vggt_mapper.model.loading import checkpoint_filter_fn, DEFAULT_SOURCE, load_vggt
from vggt_mapper.model.quantize import (
    count_int8_linear,
    quantize_int8_,
    quantize_linear_int8_,
)
from vggt_mapper.model.synthetic import build_vggt, fill_synthetic_, synthetic_tensor
from vggt_mapper.model.vggt import (
    DEFAULT_FRAMES_CHUNK_SIZE,
    HEAD_NAMES,
    MAPPING_HEADS,
    VGGT,
    VGGTOutput,
)

__all__ = [
    'AggregatorConfig',
    'CameraHeadConfig',
    'DEFAULT_FRAMES_CHUNK_SIZE',
    'DEFAULT_SOURCE',
    'DPTHeadConfig',
    'DinoConfig',
    'FlopCount',
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
    'count_flops',
    'count_int8_linear',
    'fill_synthetic_',
    'load_vggt',
    'quantize_int8_',
    'quantize_linear_int8_',
    'synthetic_tensor',
]
