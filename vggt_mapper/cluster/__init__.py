"""
The cluster door: many recordings mapped on Ray workers, many robots served by a replica pool.

``batch`` maps one recording per Ray job on workers that keep their model (``vggt-mapper
batch``); ``pool`` serves ``/predict_window`` from N model replicas on Ray Serve (``vggt-mapper
serve --replicas N``). Ray is an optional extra (``pip install 'vggt_mapper[cluster]'``):
importing this package does not import it; running a batch or a pool does.
"""

from __future__ import annotations

from vggt_mapper.cluster.errors import (
    BatchError,
    BatchInputError,
    ClusterError,
    PoolError,
    RecordingFailed,
)
from vggt_mapper.cluster.recordings import expand_inputs, Recording

__all__ = ['BatchError', 'BatchInputError', 'ClusterError', 'PoolError', 'Recording',
           'RecordingFailed', 'expand_inputs']
