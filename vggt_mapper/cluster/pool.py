"""
A pool of model replicas behind one ``/predict_window`` endpoint, on Ray Serve.

``vggt-mapper serve --replicas N`` starts N replicas (Ray actors, one GPU each when there are
GPUs), each with its own predictor, behind Ray Serve's HTTP proxy. The request and answer are
``RemotePredictor``'s (``vggt_mapper.predictor.remote``): ``POST /predict_window`` with the
window's frames as multipart PNG files named ``images``, in order; the answer is the
``vggt_mapper.window_prediction/1`` ``.npz``. ``GET /predict_window`` says what the pool is.

Why not the Gradio app on N replicas: its API is a session (upload the files, join the
queue, then read an event stream), and a proxy that routes each request on its own sends
the steps of one call to different replicas. One stateless POST per window routes anywhere.

Back-pressure: a replica runs one window at a time (``max_ongoing_requests=1``); at most
``queue_size`` windows wait in the proxy, and one more is answered at once with HTTP 503
("busy, retry after"), which ``RemotePredictor`` retries with back-off. A replica that dies
is replaced by Serve; the window it was running gets HTTP 500, which ``RemotePredictor``
also retries (a window is a pure function of its frames). A frame that is not an image is
refused with 400, a window the predictor refuses with 422: neither is retried.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
import os
import socket
from typing import Any

from vggt_mapper.cluster.errors import PoolError
from vggt_mapper.io.images import decode_image
from vggt_mapper.predictor.errors import PredictorError
from vggt_mapper.predictor.factory import create_predictor, PredictorSpec
from vggt_mapper.predictor.remote import (
    encode_window_prediction,
    POOL_API,
    PREDICT_WINDOW_API,
    PREDICTION_FORMAT,
)

__all__ = ['APP_NAME', 'PoolSettings', 'WindowPredictorReplica', 'start_pool', 'stop_pool']

APP_NAME = 'vggt_mapper_pool'
DEPLOYMENT_NAME = 'predict_window'


@dataclass(frozen=True)
class PoolSettings:
    """
    How the pool serves.

    :param replicas: model replicas (each a Ray actor with its own predictor).
    :param host: interface of the HTTP proxy (127.0.0.1: this machine only).
    :param port: its TCP port.
    :param queue_size: windows that may wait for a replica; one more gets HTTP 503.
    :param gpus_per_replica: GPUs each replica asks for (None: 1 when the cluster has GPUs and
        the predictor is the local model on ``auto``/``cuda``, else 0).
    :param cpus_per_replica: CPUs each replica asks for.
    :param max_frames: most frames in one window (more: HTTP 400).
    :param ray_address: as ``vggt-mapper batch --ray-address`` (None: Ray's default).
    :raises PoolError: for a value out of range.
    """

    replicas: int = 1
    host: str = '127.0.0.1'
    port: int = 8000
    queue_size: int = 20
    gpus_per_replica: float | None = None
    cpus_per_replica: float = 1.0
    max_frames: int = 64
    ray_address: str | None = None

    def __post_init__(self) -> None:
        """Check the numbers."""
        if self.replicas < 1 or self.queue_size < 1 or self.max_frames < 1:
            raise PoolError(f'replicas, queue_size and max_frames must be >= 1, got '
                            f'{self.replicas}, {self.queue_size}, {self.max_frames}')
        if not 0 <= self.port <= 65535:
            raise PoolError(f'port must be in [0, 65535], got {self.port}')


class WindowPredictorReplica:
    """
    One replica: a predictor answering ``/predict_window`` (a Ray Serve deployment's class).

    :param spec: the predictor to build (once, when the replica starts).
    :param max_frames: most frames in one window.
    """

    def __init__(self, spec: PredictorSpec, max_frames: int) -> None:
        self._predictor = create_predictor(spec)
        self._max_frames = max_frames
        self.identity = f'{socket.gethostname()}:{os.getpid()}'

    async def __call__(self, request: Any) -> Any:
        """
        Answer one HTTP request (Starlette ``Request`` in, ``Response`` out).

        :param request: ``GET`` or ``POST`` ``/predict_window``.
        :return: the info JSON, the prediction's ``.npz``, or an error.
        """
        from starlette.responses import JSONResponse, Response

        if request.url.path.rstrip('/') != PREDICT_WINDOW_API:
            return JSONResponse({'error': f'no such endpoint; use {PREDICT_WINDOW_API}'}, 404)
        if request.method == 'GET':
            return JSONResponse({'api': POOL_API, 'format': PREDICTION_FORMAT,
                                 'replica': self.identity, 'max_frames': self._max_frames})
        if request.method != 'POST':
            return JSONResponse({'error': 'use GET or POST'}, 405)
        try:
            frames = await self._frames(request)
        except ValueError as err:
            return JSONResponse({'error': str(err)}, 400)
        try:
            # In a thread: the replica's event loop keeps answering Serve's health checks.
            prediction = await asyncio.to_thread(self._predictor.predict, frames)
        except (PredictorError, ValueError) as err:
            return JSONResponse({'error': f'{type(err).__name__}: {err}'}, 422)
        return Response(encode_window_prediction(prediction),
                        media_type='application/octet-stream',
                        headers={'X-Replica': self.identity})

    async def _frames(self, request: Any) -> list[Any]:
        """Decode the request's ``images`` (PNG, or any image file), in order."""
        form = await request.form(max_files=self._max_frames + 1)
        uploads = form.getlist('images')
        if not uploads:
            raise ValueError("no frames: send the window's images as multipart files named "
                             "'images', oldest first")
        if len(uploads) > self._max_frames:
            raise ValueError(f'{len(uploads)} frames in one window, more than this pool '
                             f'takes ({self._max_frames})')
        frames = []
        for index, upload in enumerate(uploads):
            if isinstance(upload, str):
                raise ValueError(f'image {index} is a text field, not a file')
            try:
                frames.append(decode_image(await upload.read()))
            except (OSError, SyntaxError, ValueError) as err:
                raise ValueError(f'image {index} ({upload.filename!r}) is not an image: '
                                 f'{err}') from err
        return frames


def _import_serve() -> tuple[Any, Any]:
    """Import Ray and Ray Serve, or say how to install them."""
    try:
        import ray
        from ray import serve
    except ImportError as err:
        raise PoolError('vggt-mapper serve --replicas needs Ray Serve: pip install '
                        "'vggt_mapper[cluster]' (or pip install 'ray[serve]')") from err
    return ray, serve


def _gpus_per_replica(ray: Any, spec: PredictorSpec, settings: PoolSettings) -> float:
    """One GPU per replica when the local model would use one and the cluster has them."""
    if settings.gpus_per_replica is not None:
        return settings.gpus_per_replica
    local_gpu = spec.kind == 'local' and (spec.device == 'auto' or spec.device.startswith('cuda'))
    return 1.0 if local_gpu and ray.cluster_resources().get('GPU', 0) > 0 else 0.0


def start_pool(spec: PredictorSpec, settings: PoolSettings) -> str:
    """
    Start (or update) the pool on Ray Serve and wait until every replica is ready.

    Connects to Ray first (a new local instance unless ``settings.ray_address`` or
    ``RAY_ADDRESS`` names a cluster). ``stop_pool`` takes it down.

    :param spec: the predictor of each replica.
    :param settings: replicas, address, queue.
    :return: the endpoint's URL.
    :raises PoolError: when Ray Serve is missing or the replicas do not fit the cluster.
    """
    ray, serve = _import_serve()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {'address': settings.ray_address}
        if settings.ray_address in (None, 'local'):
            kwargs['include_dashboard'] = False
        try:
            ray.init(**kwargs)
        except ConnectionError as err:
            raise PoolError(f'cannot connect to the Ray cluster at {settings.ray_address!r}: '
                            f'{err}') from err
    gpus = _gpus_per_replica(ray, spec, settings)
    resources = ray.cluster_resources()
    needed = {'CPU': settings.cpus_per_replica * settings.replicas,
              'GPU': gpus * settings.replicas}
    short = {kind: amount for kind, amount in needed.items()
             if amount > resources.get(kind, 0)}
    if short:
        raise PoolError(f'{settings.replicas} replicas need {needed["CPU"]:g} CPUs and '
                        f'{needed["GPU"]:g} GPUs; the Ray cluster has '
                        f'{resources.get("CPU", 0):g} and {resources.get("GPU", 0):g}')
    serve.start(http_options={'host': settings.host, 'port': settings.port})
    deployment = serve.deployment(
        WindowPredictorReplica, name=DEPLOYMENT_NAME, num_replicas=settings.replicas,
        max_ongoing_requests=1, max_queued_requests=settings.queue_size,
        ray_actor_options={'num_cpus': settings.cpus_per_replica, 'num_gpus': gpus})
    serve.run(deployment.bind(spec, settings.max_frames), name=APP_NAME, route_prefix='/',
              blocking=False)
    return f'http://{settings.host}:{settings.port}{PREDICT_WINDOW_API}'


def stop_pool() -> None:
    """Take the pool down (and Serve with it); Ray itself stays connected."""
    _, serve = _import_serve()
    serve.shutdown()
