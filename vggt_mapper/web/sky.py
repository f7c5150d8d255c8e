"""
Sky segmentation for the "Filter Sky" control, from a local ONNX model (never downloaded).

Pre- and post-processing follow the official demo's ``visual_util.run_skyseg`` (skyseg.onnx,
https://huggingface.co/JianyuanWang/skyseg): 320×320 RGB input normalised with the ImageNet
mean and standard deviation, output rescaled to 0-255 and resized back; values below 32 are
*not* sky. The model runs through OpenCV's DNN module, so no extra runtime is needed.
"""

from __future__ import annotations

from pathlib import Path
import threading

import cv2
import numpy as np
from numpy.typing import NDArray

from vggt_mapper.web.errors import SkyModelError

__all__ = ['SkySegmenter']

_INPUT_SIZE = 320
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class SkySegmenter:
    """Callable ``image_rgb (H, W, 3) uint8 → (H, W) bool, True where the pixel is not sky``."""

    def __init__(self, model_path: Path) -> None:
        """
        Load the ONNX model.

        :param model_path: the sky-segmentation ONNX file.
        :raises SkyModelError: when the file is missing or OpenCV cannot load it.
        """
        path = Path(model_path)
        if not path.is_file():
            raise SkyModelError(f'sky-segmentation model {str(path)!r} does not exist; pass an '
                                'existing skyseg.onnx with --sky-model, or leave Filter Sky off')
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as err:
            raise SkyModelError(f'OpenCV cannot load the sky model {str(path)!r}: {err}') from err
        self._lock = threading.Lock()

    def __call__(self, image_rgb: NDArray[np.uint8]) -> NDArray[np.bool_]:
        """
        Segment one image.

        :param image_rgb: (H, W, 3) uint8 RGB.
        :return: (H, W) bool, True where the pixel is not sky.
        """
        height, width = image_rgb.shape[:2]
        resized = cv2.resize(image_rgb, (_INPUT_SIZE, _INPUT_SIZE)).astype(np.float32) / 255.0
        blob = ((resized - _MEAN) / _STD).transpose(2, 0, 1)[None].astype(np.float32)
        with self._lock:  # a cv2.dnn.Net is not safe to share between threads
            self._net.setInput(blob)
            output = np.asarray(self._net.forward(), dtype=np.float32).squeeze()
        span = float(output.max() - output.min())
        scaled = ((output - output.min()) / span * 255.0) if span > 0 else np.zeros_like(output)
        full = cv2.resize(scaled.astype(np.uint8), (width, height))
        return np.asarray(full < 32)
