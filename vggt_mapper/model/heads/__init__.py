"""Prediction heads on top of the aggregator's tokens: camera, dense (DPT) and track heads."""

from __future__ import annotations

from vggt_mapper.model.heads.dpt_head import DPTHead

__all__ = ['DPTHead']
