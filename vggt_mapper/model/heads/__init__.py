"""Prediction heads on top of the aggregator's tokens: camera, dense (DPT) and track heads."""

from __future__ import annotations

from vggt_mapper.model.heads.camera_head import CameraHead
from vggt_mapper.model.heads.dpt_head import DPTHead
from vggt_mapper.model.heads.track_head import TrackHead

__all__ = ['CameraHead', 'DPTHead', 'TrackHead']
