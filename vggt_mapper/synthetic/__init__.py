"""
Synthetic worlds with ground truth, and a predictor that answers (and fails) like VGGT would.

For tests and benchmarks of everything downstream of the model: ``SyntheticSequence`` renders a
camera path through a textured world (``default_room``, a ``loop_path``, a repeating
``corridor_room``), ``SyntheticPredictor`` answers windows from its ground truth with the errors
a ``PredictionNoise`` preset asks for (``NOISE_LEVELS``: none, default, high, realistic,
hostile), ``FaultyPredictor`` makes chosen calls of any predictor fail outright, and
``FooledByLookAlikes`` takes look-alike places for one in loop verification.
``simulate_odometry`` gives the path's metric odometry with a scale error and noise.
"""

from __future__ import annotations

from vggt_mapper.synthetic.errors import SyntheticFailure, UnknownFrameError
from vggt_mapper.synthetic.faults import (
    FaultMode,
    FaultRecord,
    FaultyPredictor,
    FooledByLookAlikes,
)
from vggt_mapper.synthetic.noise import (
    NOISE_LEVELS,
    NOISE_SEVERITY_ORDER,
    PredictionNoise,
    WindowErrors,
)
from vggt_mapper.synthetic.odometry import (
    BASE_FROM_CAMERA,
    Odometry,
    OdometryNoise,
    simulate_odometry,
)
from vggt_mapper.synthetic.predictor import SyntheticPredictor
from vggt_mapper.synthetic.sequence import SyntheticSequence
from vggt_mapper.synthetic.world import (
    Box,
    corridor_path,
    corridor_room,
    default_room,
    loop_path,
    orbit_frames_per_lap,
    orbit_path,
    RepeatingRoom,
    Room,
)

__all__ = [
    'BASE_FROM_CAMERA',
    'NOISE_LEVELS',
    'NOISE_SEVERITY_ORDER',
    'Box',
    'FaultMode',
    'FaultRecord',
    'FaultyPredictor',
    'FooledByLookAlikes',
    'Odometry',
    'OdometryNoise',
    'PredictionNoise',
    'RepeatingRoom',
    'Room',
    'SyntheticFailure',
    'SyntheticPredictor',
    'SyntheticSequence',
    'UnknownFrameError',
    'WindowErrors',
    'corridor_path',
    'corridor_room',
    'default_room',
    'loop_path',
    'orbit_frames_per_lap',
    'orbit_path',
    'simulate_odometry',
]
