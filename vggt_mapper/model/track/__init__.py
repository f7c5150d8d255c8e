"""VGGT's point tracker: correlation pyramid, embeddings, update-former and the predictor."""

from __future__ import annotations

from vggt_mapper.model.track.attention import (
    CrossAttentionBlock,
    PackedMultiheadAttention,
    SelfAttentionBlock,
)
from vggt_mapper.model.track.correlation import CorrelationPyramid, min_feature_map_size
from vggt_mapper.model.track.embeddings import flow_embedding, sincos_position_grid
from vggt_mapper.model.track.sampling import sample_bilinear, sample_point_features
from vggt_mapper.model.track.tracker import TrackerOutput, TrackerPredictor
from vggt_mapper.model.track.update_former import EfficientUpdateFormer

__all__ = [
    'CorrelationPyramid',
    'CrossAttentionBlock',
    'EfficientUpdateFormer',
    'PackedMultiheadAttention',
    'SelfAttentionBlock',
    'TrackerOutput',
    'TrackerPredictor',
    'flow_embedding',
    'min_feature_map_size',
    'sample_bilinear',
    'sample_point_features',
    'sincos_position_grid',
]
