"""
``vggt-mapper serve --replicas N``: ``/predict_window`` from N model replicas on Ray Serve.

Only the endpoint that ``--remote URL`` and the ROS node's ``remote_url`` use is served (no
web app: that is ``vggt-mapper serve`` without ``--replicas``). See
``vggt_mapper.cluster.pool`` for the protocol and the back-pressure.
"""

from __future__ import annotations

import argparse
import sys
import time

from vggt_mapper.cli.signals import StopSignals
from vggt_mapper.cluster.pool import PoolSettings, start_pool, stop_pool
from vggt_mapper.predictor.factory import PredictorSpec

__all__ = ['run_pool']


def run_pool(args: argparse.Namespace) -> int:
    """
    Start the pool, serve until Ctrl-C or SIGTERM, take it down.

    :param args: the parsed ``serve`` arguments (``--replicas`` given).
    :return: the exit status: 0.
    :raises vggt_mapper.cluster.errors.PoolError: when Ray Serve is missing or the replicas
        do not fit the cluster.
    """
    spec = PredictorSpec(model=args.model, checkpoint=args.checkpoint, device=args.device,
                         predictor=args.predictor, remote_url=args.remote,
                         compute_points=args.points)
    settings = PoolSettings(replicas=args.replicas, host=args.host, port=args.port,
                            queue_size=args.queue_size, ray_address=args.ray_address,
                            max_frames=args.max_files)
    with StopSignals() as signals:
        started = False
        try:
            url = start_pool(spec, settings)
            started = True
            print(f'vggt-mapper serve: {settings.replicas} replicas at {url} (Ctrl-C to '
                  'stop)', flush=True)
            while True:
                time.sleep(3600)  # the replicas and the proxy are Ray actors; wait for a signal
        except KeyboardInterrupt:
            print(f'vggt-mapper serve: {signals.name}, stopping the pool', file=sys.stderr)
        finally:
            signals.protect()
            if started:
                stop_pool()
    return 0
