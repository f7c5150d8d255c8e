"""A synthetic textured room, its renderer and a ground-truth predictor for tests/benchmarks."""

from __future__ import annotations

from vggt_mapper.synthetic.predictor import (
    NOISE_LEVELS,
    PredictionNoise,
    SyntheticPredictor,
    SyntheticSequence,
    UnknownFrameError,
)
from vggt_mapper.synthetic.world import Box, default_room, orbit_path, Room

__all__ = [
    'NOISE_LEVELS',
    'Box',
    'PredictionNoise',
    'Room',
    'SyntheticPredictor',
    'SyntheticSequence',
    'UnknownFrameError',
    'default_room',
    'orbit_path',
]
