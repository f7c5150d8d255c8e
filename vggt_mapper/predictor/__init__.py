"""
Predictors: turn a window of RGB frames into a typed ``WindowPrediction``.

The protocol and data types are in ``base``; ``preprocess`` reproduces VGGT's image
preprocessing; ``factory`` builds a predictor from a ``PredictorSpec``. ``VGGTPredictor``,
``RemotePredictor`` and the device helpers are imported lazily on first use, so importing this
package does not import torch (the CLI's ``--help`` stays fast).
"""

from __future__ import annotations

import importlib
from typing import Any, TYPE_CHECKING

from vggt_mapper.predictor.base import ImageMapping, Predictor, WindowPrediction
from vggt_mapper.predictor.errors import (
    FrameFormatError,
    LoadObjectError,
    PredictorError,
    PredictorOutOfMemoryError,
    PredictorSpecError,
)
from vggt_mapper.predictor.factory import (
    create_predictor,
    load_object,
    load_predictor,
    PredictorSpec,
)
from vggt_mapper.predictor.preprocess import (
    load_and_preprocess_images,
    load_and_preprocess_images_square,
    preprocess_frames,
    PreprocessedWindow,
)

if TYPE_CHECKING:
    from vggt_mapper.predictor.device import select_device_and_dtype
    from vggt_mapper.predictor.remote import RemotePredictor
    from vggt_mapper.predictor.vggt_predictor import VGGTPredictor

__all__ = [
    'FrameFormatError',
    'ImageMapping',
    'LoadObjectError',
    'Predictor',
    'PredictorError',
    'PredictorOutOfMemoryError',
    'PredictorSpec',
    'PredictorSpecError',
    'PreprocessedWindow',
    'RemotePredictor',
    'VGGTPredictor',
    'WindowPrediction',
    'create_predictor',
    'load_and_preprocess_images',
    'load_and_preprocess_images_square',
    'load_object',
    'load_predictor',
    'preprocess_frames',
    'select_device_and_dtype',
]

# Names whose modules import torch (or gradio_client) are resolved on first access.
_LAZY = {
    'VGGTPredictor': 'vggt_mapper.predictor.vggt_predictor',
    'RemotePredictor': 'vggt_mapper.predictor.remote',
    'select_device_and_dtype': 'vggt_mapper.predictor.device',
}


def __getattr__(name: str) -> Any:
    """Import ``VGGTPredictor``, ``RemotePredictor`` and device helpers on first use."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the public names, lazy ones included."""
    return sorted(set(globals()) | set(__all__))
