"""
A ``Predictor`` that asks a vggt_mapper server to predict each window.

Both servers expose ``/predict_window``: a window of images in, one ``.npz`` file out holding the
serialised ``WindowPrediction``. Frames travel as PNG (lossless), so the server's predictor sees
exactly the pixels the caller has; the answer's ``ImageMapping`` refers to the caller's original
image sizes. The ``.npz`` is read with ``allow_pickle=False``. The two servers:

* ``vggt-mapper serve``, the web app: a Gradio endpoint, reached with ``gradio_client``;
* ``vggt-mapper serve --replicas N``, a pool of model replicas on Ray Serve: plain HTTP, one
  ``POST`` per window (multipart ``images``, in order), the ``.npz`` as the body; ``GET``
  answers ``{"api": "vggt_mapper.predict_window/1", ...}``, which is how ``connect`` tells
  the two apart.

A busy server (a full queue: the pool's 503, Gradio's "queue is full") and one that is
unreachable or lost the replica working on the window (restarting, a replica killed) are
asked again after a bounded, jittered exponential back-off (``RetryPolicy``); each retry is
logged and counted (``RemotePredictor.retries``). A window is a pure function of its frames,
so asking again is safe. When the policy is spent, or for any other failure (the server
refused the window, it timed out), ``RemotePredictorError`` says why; the caller (the
engine) keeps its map.

``gradio_client`` and ``httpx`` are imported only when a ``RemotePredictor`` connects, so
importing this module costs nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
import concurrent.futures
from dataclasses import dataclass
import io
import logging
import os
from pathlib import Path
import random
import tempfile
import time
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.predictor.base import ImageMapping, WindowPrediction
from vggt_mapper.predictor.errors import PredictorError

__all__ = [
    'POOL_API',
    'PREDICTION_FORMAT',
    'RemotePredictor',
    'RemotePredictorError',
    'RetryPolicy',
    'decode_window_prediction',
    'encode_window_prediction',
    'load_window_prediction',
    'save_window_prediction',
]

_LOG = logging.getLogger(__name__)

PREDICTION_FORMAT = 'vggt_mapper.window_prediction/1'
PREDICT_WINDOW_API = '/predict_window'
#: What ``GET /predict_window`` of a replica pool answers in ``api``.
POOL_API = 'vggt_mapper.predict_window/1'


class RemotePredictorError(PredictorError, RuntimeError):
    """The remote server cannot be reached, timed out, refused the window or sent bad data."""


class _Retryable(Exception):
    """
    A failure worth asking again: the server is busy or (for now) unreachable.

    :param kind: ``'busy'`` or ``'unavailable'`` (what the retry counters count).
    :param message: what happened.
    :param retry_after_s: the server's own hint, if it gave one.
    """

    def __init__(self, kind: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class RetryPolicy:
    """
    How long a ``RemotePredictor`` keeps asking a busy or unreachable server.

    The n-th retry waits ``min(max_delay_s, first_delay_s * 2**n)`` scaled by a random factor
    in [0.5, 1] (so that many robots turned away together do not all come back together), or
    the server's ``Retry-After``; at most ``attempts`` tries and ``max_wait_s`` seconds of
    waiting in all per window.

    :param attempts: tries per window, the first included (1: never retry).
    :param first_delay_s: wait before the first retry.
    :param max_delay_s: longest single wait.
    :param max_wait_s: most seconds spent waiting for one window.
    :raises ValueError: for a value out of range.
    """

    attempts: int = 8
    first_delay_s: float = 0.5
    max_delay_s: float = 10.0
    max_wait_s: float = 120.0

    def __post_init__(self) -> None:
        """Check the values."""
        if self.attempts < 1:
            raise ValueError(f'attempts must be >= 1, got {self.attempts}')
        if not 0 <= self.first_delay_s <= self.max_delay_s or not self.max_wait_s >= 0:
            raise ValueError('need 0 <= first_delay_s <= max_delay_s and max_wait_s >= 0, got '
                             f'{self.first_delay_s}, {self.max_delay_s}, {self.max_wait_s}')

    def delay_s(self, retry: int, jitter: float, hint_s: float | None = None) -> float:
        """
        Return the wait before retry number ``retry`` (0 for the first).

        :param retry: how many retries came before.
        :param jitter: a number in [0, 1) (random in use, fixed in tests).
        :param hint_s: the server's ``Retry-After``, used when given (capped at
            ``max_delay_s``).
        :return: seconds.
        """
        if hint_s is not None:
            return min(max(hint_s, 0.0), self.max_delay_s)
        return min(self.max_delay_s, self.first_delay_s * 2.0 ** retry) * (0.5 + 0.5 * jitter)


def save_window_prediction(path: str | os.PathLike[str], prediction: WindowPrediction) -> Path:
    """
    Write a ``WindowPrediction`` to an uncompressed ``.npz`` file (no pickled objects).

    :param path: destination file; ``.npz`` is appended by numpy when missing.
    :param prediction: the prediction to store.
    :return: the path written.
    """
    target = Path(path)
    if target.suffix != '.npz':
        target = target.with_name(target.name + '.npz')
    with target.open('wb') as stream:
        _write_npz(stream, prediction)
    return target


def encode_window_prediction(prediction: WindowPrediction) -> bytes:
    """
    Serialise a ``WindowPrediction`` as the bytes of its ``.npz`` file (a pool's answer).

    :param prediction: the prediction.
    :return: the file's content.
    """
    stream = io.BytesIO()
    _write_npz(stream, prediction)
    return stream.getvalue()


def decode_window_prediction(data: bytes, source: str = 'the answer') -> WindowPrediction:
    """
    Read a ``WindowPrediction`` from the bytes of its ``.npz`` file.

    :param data: the content of a file written by ``save_window_prediction``.
    :param source: what the bytes are, for error messages.
    :return: the prediction.
    :raises ValueError: when it is not a vggt_mapper window prediction or is inconsistent.
    """
    return _read_npz(io.BytesIO(data), source)


def _write_npz(stream: BinaryIO, prediction: WindowPrediction) -> None:
    """Write the prediction's arrays (no pickled objects) to an open binary stream."""
    arrays: dict[str, NDArray[Any]] = {
        'format': np.array(PREDICTION_FORMAT),
        'cam_from_window': np.asarray(prediction.cam_from_window, dtype=np.float64),
        'intrinsics': np.asarray(prediction.intrinsics, dtype=np.float64),
        'depth': np.asarray(prediction.depth, dtype=np.float32),
        'depth_conf': np.asarray(prediction.depth_conf, dtype=np.float32),
        'images_rgb': np.asarray(prediction.images_rgb, dtype=np.uint8),
        'original_hw': np.array([m.original_hw for m in prediction.mappings], dtype=np.int64),
        'model_from_original': np.stack(
            [m.model_from_original for m in prediction.mappings]).astype(np.float64),
    }
    if prediction.points_window is not None:
        arrays['points_window'] = np.asarray(prediction.points_window, dtype=np.float32)
    if prediction.points_conf is not None:
        arrays['points_conf'] = np.asarray(prediction.points_conf, dtype=np.float32)
    if prediction.descriptors is not None:
        arrays['descriptors'] = np.asarray(prediction.descriptors, dtype=np.float32)
    np.savez(stream, **arrays)  # type: ignore[arg-type]


def load_window_prediction(path: str | os.PathLike[str]) -> WindowPrediction:
    """
    Read a ``WindowPrediction`` written by ``save_window_prediction``.

    :param path: the ``.npz`` file.
    :return: the prediction.
    :raises ValueError: when the file is not a vggt_mapper window prediction or is inconsistent.
    """
    return _read_npz(path, repr(os.fspath(path)))


def _read_npz(path: str | os.PathLike[str] | BinaryIO, source: str) -> WindowPrediction:
    """Read a prediction from a file or stream; ``source`` names it in errors."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if 'format' not in data.files or str(data['format']) != PREDICTION_FORMAT:
                raise ValueError(f'{source} is not a {PREDICTION_FORMAT} file '
                                 f'(arrays: {sorted(data.files)})')
            original_hw = data['original_hw']
            model_from_original = data['model_from_original']
            depth = data['depth']
            model_hw = (int(depth.shape[1]), int(depth.shape[2]))
            mappings = tuple(
                ImageMapping(original_hw=(int(hw[0]), int(hw[1])), model_hw=model_hw,
                             model_from_original=matrix)
                for hw, matrix in zip(original_hw, model_from_original, strict=True))
            return WindowPrediction(
                cam_from_window=data['cam_from_window'],
                intrinsics=data['intrinsics'],
                depth=depth,
                depth_conf=data['depth_conf'],
                images_rgb=data['images_rgb'],
                mappings=mappings,
                points_window=data['points_window'] if 'points_window' in data.files else None,
                points_conf=data['points_conf'] if 'points_conf' in data.files else None,
                # Optional (files written before descriptors existed still load).
                descriptors=data['descriptors'] if 'descriptors' in data.files else None,
            )
    except (OSError, KeyError, ValueError, EOFError) as err:
        raise ValueError(f'cannot read a window prediction from {source}: {err}') from err


class RemotePredictor:
    """
    Predict windows on a vggt_mapper server: the web app (Gradio) or a replica pool (HTTP).

    Every call is bounded: ``timeout_s`` per request, ``retry`` for a busy or restarting
    server. A server never reached fails at once (a wrong URL is not worth waiting for); one
    that answered before and is busy or gone now is asked again, then ``RemotePredictorError``
    says what happened. It never hangs.

    :ivar retries: retries made, by kind (``'busy'``, ``'unavailable'``): the doors report it.
    """

    def __init__(self, url: str, timeout_s: float = 120.0,
                 retry: RetryPolicy | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """
        Remember the server; the connection is made on the first ``predict`` (or ``connect``).

        :param url: the server's base URL, e.g. ``http://127.0.0.1:7860/``.
        :param timeout_s: seconds allowed for connecting and for each window.
        :param retry: how to retry a busy or restarting server (default ``RetryPolicy()``).
        :param sleep: waits between retries (``time.sleep``; tests pass their own).
        :raises ValueError: for an empty URL or a non-positive timeout.
        """
        if not url or not url.startswith(('http://', 'https://')):
            raise ValueError(f'remote URL must start with http:// or https://, got {url!r}')
        if not timeout_s > 0:
            raise ValueError(f'timeout_s must be > 0, got {timeout_s}')
        self.url = url
        self.timeout_s = float(timeout_s)
        self.retry = retry if retry is not None else RetryPolicy()
        self.retries: Counter[str] = Counter()
        self._sleep = sleep
        self._random = random.Random()
        self._client: Any = None  # gradio_client.Client, for the web app
        self._http: Any = None  # httpx.Client, for a pool
        self._protocol: str | None = None  # 'pool' or 'gradio', once detected
        self._reached = False
        self._download_dir = tempfile.TemporaryDirectory(prefix='vggt_mapper_remote_')

    def __repr__(self) -> str:
        return f'RemotePredictor(url={self.url!r}, timeout_s={self.timeout_s})'

    @property
    def _window_url(self) -> str:
        return self.url.rstrip('/') + PREDICT_WINDOW_API

    def connect(self) -> None:
        """
        Connect to the server now and check that it offers ``/predict_window``.

        The first connection tells a replica pool from the web app; later ones (after a
        lost connection) reconnect to the same kind.

        :raises RemotePredictorError: when the server is unreachable or is not a vggt_mapper
            server.
        """
        if self._client is not None or self._http is not None:
            return
        try:
            import httpx
        except ImportError as err:
            raise RemotePredictorError(
                'RemotePredictor needs httpx and gradio_client; install them with '
                "pip install 'vggt_mapper[web]'") from err
        if self._protocol is None:
            self._protocol = self._detect(httpx)
        if self._protocol == 'pool':
            self._http = httpx.Client(timeout=self.timeout_s)
        else:
            self._client = self._gradio_client()

    def _detect(self, httpx: Any) -> str:
        """Ask ``GET /predict_window``: ``'pool'`` for a replica pool, else ``'gradio'``."""
        try:
            with httpx.Client(timeout=self.timeout_s) as http:
                answer = http.get(self._window_url)
        except httpx.HTTPError as err:
            if self._reached:
                raise _Retryable('unavailable', f'cannot reach it ({type(err).__name__}: '
                                 f'{err})') from err
            raise RemotePredictorError(
                f'cannot reach the vggt_mapper server at {self.url!r} ({type(err).__name__}: '
                f'{err}); is `vggt-mapper serve` running there?') from err
        self._reached = True
        _raise_if_retryable(answer)  # a busy pool turns the question away too
        try:
            is_pool = answer.status_code == 200 and answer.json().get('api') == POOL_API
        except ValueError:  # not JSON: the web app's page or error
            is_pool = False
        return 'pool' if is_pool else 'gradio'

    def _gradio_client(self) -> Any:
        """Connect ``gradio_client`` to the web app and check its endpoint."""
        try:
            import gradio_client
            import httpx
        except ImportError as err:
            raise RemotePredictorError(
                'RemotePredictor needs gradio_client for a vggt-mapper web server; install it '
                "with pip install 'vggt_mapper[web]'") from err
        try:
            client = gradio_client.Client(
                self.url, verbose=False, download_files=self._download_dir.name,
                httpx_kwargs={'timeout': self.timeout_s})
        except (httpx.HTTPError, OSError, ValueError) as err:
            if self._reached:
                raise _Retryable('unavailable', f'cannot reconnect ({type(err).__name__}: '
                                 f'{err})') from err
            raise RemotePredictorError(
                f'cannot reach the vggt_mapper server at {self.url!r} ({type(err).__name__}: '
                f'{err}); is `vggt-mapper serve` running there?') from err
        endpoints = client.view_api(print_info=False, return_format='dict')
        if PREDICT_WINDOW_API not in endpoints.get('named_endpoints', {}):
            raise RemotePredictorError(
                f'the server at {self.url!r} has no {PREDICT_WINDOW_API} endpoint; it is not a '
                'vggt_mapper server (start one with `vggt-mapper serve`)')
        return client

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        """
        Send one window of frames to the server and return its prediction.

        A busy or restarting server is asked again (``retry``); each retry is logged as a
        warning and counted in ``retries``.

        :param frames_rgb: S >= 1 uint8 (H, W, 3) RGB images, oldest first.
        :return: the window prediction, one entry per frame, in input order.
        :raises ValueError: for an empty window or a frame that is not uint8 (H, W, 3).
        :raises RemotePredictorError: when the server is unreachable, times out, stays busy or
            away longer than the retry policy allows, refuses the window or answers with an
            unreadable file.
        """
        if len(frames_rgb) == 0:
            raise ValueError('RemotePredictor.predict needs at least one frame, got none')
        pngs = _encode_frames(frames_rgb)
        waited = 0.0
        for attempt in range(1, self.retry.attempts + 1):
            try:
                self.connect()
                prediction = (self._predict_pool(pngs) if self._http is not None
                              else self._predict_gradio(pngs))
                break
            except _Retryable as err:
                self._forget_connection()
                delay = self.retry.delay_s(attempt - 1, self._random.random(), err.retry_after_s)
                if attempt == self.retry.attempts or waited + delay > self.retry.max_wait_s:
                    raise RemotePredictorError(
                        f'the server at {self.url!r} is still {err.kind} after {attempt} '
                        f'tries over {waited:.1f} s of waiting: {err}') from err
                self.retries[err.kind] += 1
                _LOG.warning('the server at %s is %s (%s): asking again in %.1f s (try %d of '
                             '%d)', self.url, err.kind, err, delay, attempt + 1,
                             self.retry.attempts)
                self._sleep(delay)
                waited += delay
        if prediction.num_frames != len(frames_rgb):
            raise RemotePredictorError(
                f'the server at {self.url!r} answered {prediction.num_frames} frames for a '
                f'{len(frames_rgb)}-frame window')
        return prediction

    def _forget_connection(self) -> None:
        """Drop a connection that failed, so the next try connects (and detects) again."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def _predict_pool(self, pngs: list[bytes]) -> WindowPrediction:
        """One ``POST /predict_window`` to a replica pool."""
        import httpx

        files = [('images', (f'frame_{index:04d}.png', png, 'image/png'))
                 for index, png in enumerate(pngs)]
        try:
            answer = self._http.post(self._window_url, files=files)
        except httpx.TimeoutException as err:
            raise RemotePredictorError(
                f'the server at {self.url!r} did not answer a {len(pngs)}-frame window within '
                f'{self.timeout_s:.0f} s; raise timeout_s or check the server') from err
        except httpx.TransportError as err:  # refused, reset, closed mid-answer
            raise _Retryable('unavailable', f'{type(err).__name__}: {err}') from err
        _raise_if_retryable(answer)
        if answer.status_code != 200:
            raise RemotePredictorError(
                f'the server at {self.url!r} refused a {len(pngs)}-frame window (HTTP '
                f'{answer.status_code}): {answer.text.strip()[:500]}')
        try:
            return decode_window_prediction(answer.content, f'the answer of {self.url!r}')
        except ValueError as err:
            raise RemotePredictorError(f'the server at {self.url!r} sent an unreadable '
                                       f'prediction: {err}') from err

    def _predict_gradio(self, pngs: list[bytes]) -> WindowPrediction:
        """One ``/predict_window`` call to the web app through ``gradio_client``."""
        from gradio_client import handle_file
        from gradio_client.utils import QueueError
        import httpx

        with tempfile.TemporaryDirectory(prefix='vggt_mapper_window_') as folder:
            paths = []
            for index, png in enumerate(pngs):
                path = Path(folder) / f'frame_{index:04d}.png'
                path.write_bytes(png)
                paths.append(handle_file(str(path)))
            try:
                job = self._client.submit(paths, api_name=PREDICT_WINDOW_API)
                result = job.result(timeout=self.timeout_s)
            except (TimeoutError, concurrent.futures.TimeoutError) as err:
                job.cancel()
                raise RemotePredictorError(
                    f'the server at {self.url!r} did not answer a {len(paths)}-frame window '
                    f'within {self.timeout_s:.0f} s; raise timeout_s or check the server') \
                    from err
            except QueueError as err:
                raise _Retryable('busy', str(err)) from err
            except (httpx.HTTPError, OSError, ConnectionError) as err:
                raise _Retryable('unavailable', f'lost it during a window '
                                 f'({type(err).__name__}: {err})') from err
            except Exception as err:
                # gradio_client raises AppError (server-side error) and bare Exceptions for a
                # closed event stream; both mean this window failed on the server.
                raise RemotePredictorError(
                    f'the server at {self.url!r} failed to predict a {len(paths)}-frame window: '
                    f'{err}') from err
        try:
            return load_window_prediction(result)
        except ValueError as err:
            raise RemotePredictorError(f'the server at {self.url!r} sent an unreadable '
                                       f'prediction: {err}') from err
        finally:
            Path(result).unlink(missing_ok=True)

    def close(self) -> None:
        """Drop the connection and the downloaded files."""
        self._forget_connection()
        self._download_dir.cleanup()


def _raise_if_retryable(answer: Any) -> None:
    """Turn a pool's busy (503) or lost-replica (500, 502, 504) answer into ``_Retryable``."""
    if answer.status_code == 503:
        hint = answer.headers.get('retry-after', '')
        raise _Retryable('busy', answer.text.strip()[:200] or 'HTTP 503',
                         float(hint) if hint.replace('.', '', 1).isdigit() else None)
    if answer.status_code in (500, 502, 504):
        # The replica died or restarts under the request (the proxy's answer for a lost
        # replica); another replica, or this one back, answers the retry.
        raise _Retryable('unavailable', f'HTTP {answer.status_code}: '
                         f'{answer.text.strip()[:200]}')


def _encode_frames(frames_rgb: Sequence[NDArray[np.uint8]]) -> list[bytes]:
    """Encode each frame as a PNG (lossless, fast compression), checking its format."""
    from PIL import Image

    pngs = []
    for index, frame in enumerate(frames_rgb):
        array = np.asarray(frame)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f'frame {index} must be uint8 (H, W, 3), got '
                             f'{array.dtype} {array.shape}')
        stream = io.BytesIO()
        Image.fromarray(array).save(stream, format='PNG', compress_level=1)
        pngs.append(stream.getvalue())
    return pngs
