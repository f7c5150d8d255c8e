"""
A ``Predictor`` that asks a vggt_mapper web server to predict each window.

The server (``vggt-mapper serve``) exposes ``/predict_window``: a window of images in, one ``.npz``
file out holding the serialised ``WindowPrediction``. Frames travel as PNG (lossless), so the
server's predictor sees exactly the pixels the caller has; the answer's ``ImageMapping`` refers to
the caller's original image sizes. The ``.npz`` is read with ``allow_pickle=False``.

``gradio_client`` is imported only when a ``RemotePredictor`` connects, so importing this module
costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
import concurrent.futures
import os
from pathlib import Path
import tempfile
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.predictor.base import ImageMapping, WindowPrediction
from vggt_mapper.predictor.errors import PredictorError

__all__ = [
    'PREDICTION_FORMAT',
    'RemotePredictor',
    'RemotePredictorError',
    'load_window_prediction',
    'save_window_prediction',
]

PREDICTION_FORMAT = 'vggt_mapper.window_prediction/1'
PREDICT_WINDOW_API = '/predict_window'


class RemotePredictorError(PredictorError, RuntimeError):
    """The remote server cannot be reached, timed out, refused the window or sent bad data."""


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
    np.savez(target, **arrays)  # type: ignore[arg-type]
    return target


def load_window_prediction(path: str | os.PathLike[str]) -> WindowPrediction:
    """
    Read a ``WindowPrediction`` written by ``save_window_prediction``.

    :param path: the ``.npz`` file.
    :return: the prediction.
    :raises ValueError: when the file is not a vggt_mapper window prediction or is inconsistent.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            if 'format' not in data.files or str(data['format']) != PREDICTION_FORMAT:
                raise ValueError(f'{os.fspath(path)!r} is not a {PREDICTION_FORMAT} file '
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
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f'cannot read a window prediction from {os.fspath(path)!r}: {err}') \
            from err


class RemotePredictor:
    """
    Predict windows on a vggt_mapper server (``vggt-mapper serve``) through ``gradio_client``.

    Every call is bounded by ``timeout_s``: an unreachable server, a server that goes away or
    one that takes too long raises ``RemotePredictorError``; it never hangs.
    """

    def __init__(self, url: str, timeout_s: float = 120.0) -> None:
        """
        Remember the server; the connection is made on the first ``predict`` (or ``connect``).

        :param url: the server's base URL, e.g. ``http://127.0.0.1:7860/``.
        :param timeout_s: seconds allowed for connecting and for each window.
        :raises ValueError: for an empty URL or a non-positive timeout.
        """
        if not url or not url.startswith(('http://', 'https://')):
            raise ValueError(f'remote URL must start with http:// or https://, got {url!r}')
        if not timeout_s > 0:
            raise ValueError(f'timeout_s must be > 0, got {timeout_s}')
        self.url = url
        self.timeout_s = float(timeout_s)
        self._client: Any = None
        self._download_dir = tempfile.TemporaryDirectory(prefix='vggt_mapper_remote_')

    def __repr__(self) -> str:
        return f'RemotePredictor(url={self.url!r}, timeout_s={self.timeout_s})'

    def connect(self) -> None:
        """
        Connect to the server now and check that it offers ``/predict_window``.

        :raises RemotePredictorError: when the server is unreachable or is not a vggt_mapper
            server.
        """
        if self._client is not None:
            return
        try:
            import gradio_client
            import httpx
        except ImportError as err:
            raise RemotePredictorError(
                'RemotePredictor needs gradio_client; install it with '
                "pip install 'vggt_mapper[web]'") from err
        try:
            client = gradio_client.Client(
                self.url, verbose=False, download_files=self._download_dir.name,
                httpx_kwargs={'timeout': self.timeout_s})
        except (httpx.HTTPError, OSError, ValueError) as err:
            raise RemotePredictorError(
                f'cannot reach the vggt_mapper server at {self.url!r} ({type(err).__name__}: '
                f'{err}); is `vggt-mapper serve` running there?') from err
        endpoints = client.view_api(print_info=False, return_format='dict')
        if PREDICT_WINDOW_API not in endpoints.get('named_endpoints', {}):
            raise RemotePredictorError(
                f'the server at {self.url!r} has no {PREDICT_WINDOW_API} endpoint; it is not a '
                'vggt_mapper server (start one with `vggt-mapper serve`)')
        self._client = client

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        """
        Send one window of frames to the server and return its prediction.

        :param frames_rgb: S >= 1 uint8 (H, W, 3) RGB images, oldest first.
        :return: the window prediction, one entry per frame, in input order.
        :raises ValueError: for an empty window or a frame that is not uint8 (H, W, 3).
        :raises RemotePredictorError: when the server is unreachable, times out, goes away,
            refuses the window or answers with an unreadable file.
        """
        if len(frames_rgb) == 0:
            raise ValueError('RemotePredictor.predict needs at least one frame, got none')
        from gradio_client import handle_file
        import httpx
        from PIL import Image

        self.connect()
        with tempfile.TemporaryDirectory(prefix='vggt_mapper_window_') as folder:
            paths = []
            for index, frame in enumerate(frames_rgb):
                array = np.asarray(frame)
                if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
                    raise ValueError(f'frame {index} must be uint8 (H, W, 3), got '
                                     f'{array.dtype} {array.shape}')
                path = Path(folder) / f'frame_{index:04d}.png'
                Image.fromarray(array).save(path, compress_level=1)
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
            except (httpx.HTTPError, OSError, ConnectionError) as err:
                raise RemotePredictorError(
                    f'lost the vggt_mapper server at {self.url!r} during a window '
                    f'({type(err).__name__}: {err})') from err
            except Exception as err:
                # gradio_client raises AppError (server-side error) and bare Exceptions for a
                # closed event stream; both mean this window failed on the server.
                raise RemotePredictorError(
                    f'the server at {self.url!r} failed to predict a {len(paths)}-frame window: '
                    f'{err}') from err
        try:
            prediction = load_window_prediction(result)
        except ValueError as err:
            raise RemotePredictorError(f'the server at {self.url!r} sent an unreadable '
                                       f'prediction: {err}') from err
        finally:
            Path(result).unlink(missing_ok=True)
        if prediction.num_frames != len(frames_rgb):
            raise RemotePredictorError(
                f'the server at {self.url!r} answered {prediction.num_frames} frames for a '
                f'{len(frames_rgb)}-frame window')
        return prediction

    def close(self) -> None:
        """Drop the connection and the downloaded files."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self._download_dir.cleanup()
