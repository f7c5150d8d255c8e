"""
Build a ``Predictor`` from a small, validated description (CLI flags, ROS parameters, web args).

Three kinds, in order of precedence:

* ``predictor='module:attr'``: any object importable by reference — a ``Predictor`` instance, or
  a class/factory called with no arguments that returns one.
* ``remote_url='http://…'``: a ``RemotePredictor`` talking to a ``vggt-mapper serve`` server.
* otherwise the local VGGT model: ``model='vggt-1b'`` (weights from ``checkpoint``, a Hugging
  Face repo id or a local file; default ``facebook/VGGT-1B``, non-commercial licence) or
  ``model='tiny'`` (the reference's small test architecture; without a checkpoint it gets
  deterministic synthetic weights and its geometry is **meaningless**).

Importing this module does not import torch; ``create_predictor`` does, for local models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import importlib
import logging
from typing import Any

from vggt_mapper.predictor.base import Predictor
from vggt_mapper.predictor.errors import LoadObjectError, PredictorSpecError
from vggt_mapper.predictor.preprocess import PREPROCESS_MODES

__all__ = [
    'DEFAULT_CHECKPOINT',
    'MODEL_NAMES',
    'PredictorSpec',
    'create_predictor',
    'load_object',
    'load_predictor',
]

_LOGGER = logging.getLogger(__name__)

MODEL_NAMES: tuple[str, ...] = ('vggt-1b', 'tiny')
DEFAULT_CHECKPOINT = 'facebook/VGGT-1B'
"""Hub repo of the official weights (non-commercial; ``facebook/VGGT-1B-Commercial`` is gated)."""

# Kept in sync with vggt_mapper.predictor.device.DEVICE_PATTERN, which needs torch.
_DEVICE_PREFIXES = ('auto', 'cpu', 'mps', 'cuda')


def _valid_device(device: str) -> bool:
    if device in _DEVICE_PREFIXES:
        return True
    prefix, _, index = device.partition(':')
    return prefix == 'cuda' and index.isdigit()


def _split_reference(reference: str) -> tuple[str, str]:
    module_name, sep, attr = reference.partition(':')
    if (not sep or not module_name or not attr or ':' in attr
            or any(not part.isidentifier() for part in module_name.split('.'))
            or any(not part.isidentifier() for part in attr.split('.'))):
        raise LoadObjectError(f"expected 'module:attr' (e.g. 'my_pkg.predictors:MyPredictor'), "
                              f'got {reference!r}')
    return module_name, attr


@dataclass(frozen=True)
class PredictorSpec:
    """
    Which predictor to build; validated on construction.

    :param model: ``'vggt-1b'`` or ``'tiny'`` (local VGGT only).
    :param checkpoint: Hugging Face repo id or local ``.safetensors``/``.pt`` file; None means
        ``facebook/VGGT-1B`` for ``vggt-1b`` and synthetic weights for ``tiny``.
    :param device: ``'auto'``, ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'mps'``.
    :param predictor: ``'module:attr'`` of a custom predictor (instance, or class/factory
        called with no arguments); excludes ``remote_url`` and ``checkpoint``.
    :param remote_url: ``http(s)://`` URL of a ``vggt-mapper serve`` server; excludes
        ``checkpoint``.
    :param token: Hugging Face token for gated checkpoints (never shown in ``repr``).
    :param compute_points: also return the point head's points (local VGGT only).
    :param preprocess_mode: ``'crop'`` or ``'pad'`` (local VGGT only).
    :param remote_timeout_s: seconds allowed for each remote window.
    :param int8: run the aggregator's Linear layers in dynamic int8 (local VGGT on the CPU only;
        off by default: see the README for its measured speed and error).
    :raises PredictorSpecError: on any invalid or conflicting field.
    """

    model: str = 'vggt-1b'
    checkpoint: str | None = None
    device: str = 'auto'
    predictor: str | None = None
    remote_url: str | None = None
    token: str | None = field(default=None, repr=False)
    compute_points: bool = False
    preprocess_mode: str = 'crop'
    remote_timeout_s: float = 120.0
    int8: bool = False

    def __post_init__(self) -> None:
        """Check every field and their combinations; raise ``PredictorSpecError``."""
        if self.model not in MODEL_NAMES:
            raise PredictorSpecError(f'model must be one of {MODEL_NAMES}, got {self.model!r}')
        if self.checkpoint is not None and not self.checkpoint.strip():
            raise PredictorSpecError('checkpoint must be a hub repo id or a file path, got an '
                                     'empty string; leave it unset for the default')
        if not _valid_device(self.device):
            raise PredictorSpecError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', "
                                     f'got {self.device!r}')
        if self.preprocess_mode not in PREPROCESS_MODES:
            raise PredictorSpecError(f'preprocess_mode must be one of {PREPROCESS_MODES}, '
                                     f'got {self.preprocess_mode!r}')
        if self.predictor is not None:
            try:
                _split_reference(self.predictor)
            except LoadObjectError as err:
                raise PredictorSpecError(f'predictor: {err}') from err
        if self.remote_url is not None and not self.remote_url.startswith(('http://',
                                                                           'https://')):
            raise PredictorSpecError(f'remote_url must start with http:// or https://, '
                                     f'got {self.remote_url!r}')
        if self.predictor is not None and self.remote_url is not None:
            raise PredictorSpecError(f'give either predictor ({self.predictor!r}) or remote_url '
                                     f'({self.remote_url!r}), not both')
        if self.checkpoint is not None and (self.predictor or self.remote_url):
            raise PredictorSpecError(f'checkpoint {self.checkpoint!r} only applies to the local '
                                     f'VGGT model; drop it or drop predictor/remote_url')
        if self.token is not None and not self.token.strip():
            raise PredictorSpecError('token must not be empty; leave it unset instead')
        if not self.remote_timeout_s > 0:
            raise PredictorSpecError(f'remote_timeout_s must be > 0, '
                                     f'got {self.remote_timeout_s}')
        if self.int8 and (self.predictor or self.remote_url):
            raise PredictorSpecError('int8 only applies to the local VGGT model; drop it or drop '
                                     'predictor/remote_url')
        if self.int8 and self.device not in ('auto', 'cpu'):
            raise PredictorSpecError(f'int8 is a CPU mode, but device is {self.device!r}; use '
                                     f"device 'cpu' or drop int8")

    @property
    def kind(self) -> str:
        """Return ``'custom'``, ``'remote'`` or ``'local'``: which predictor this builds."""
        if self.predictor is not None:
            return 'custom'
        if self.remote_url is not None:
            return 'remote'
        return 'local'


def load_object(reference: str) -> Any:
    """
    Import ``module:attr`` and return the attribute (``attr`` may be dotted: ``Class.method``).

    :param reference: ``'package.module:name'``.
    :return: the object.
    :raises LoadObjectError: on a malformed reference, a module that cannot be imported, or a
        missing attribute (the message says which).
    """
    module_name, attr = _split_reference(reference)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and (module_name == err.name
                                     or module_name.startswith(err.name + '.')):
            raise LoadObjectError(f'cannot load {reference!r}: module {err.name!r} not found; '
                                  f'check the spelling and that it is installed or on '
                                  f'PYTHONPATH') from err
        raise LoadObjectError(f'cannot load {reference!r}: importing {module_name!r} failed '
                              f'because it needs the missing module {err.name!r}') from err
    target: Any = module
    for index, part in enumerate(attr.split('.')):
        if not hasattr(target, part):
            owner = '.'.join([module_name] + attr.split('.')[:index])
            raise LoadObjectError(f'cannot load {reference!r}: {owner!r} has no attribute '
                                  f'{part!r}')
        target = getattr(target, part)
    return target


def load_predictor(reference: str) -> Predictor:
    """
    Load a predictor from ``module:attr``.

    An instance is used as is; a class or factory is called with no arguments.

    :param reference: ``'package.module:name'``.
    :return: an object with a ``predict(frames_rgb) -> WindowPrediction`` method.
    :raises LoadObjectError: when it cannot be loaded or is not a ``Predictor``.
    """
    target = load_object(reference)
    if not isinstance(target, Predictor) or isinstance(target, type):
        if not callable(target):
            raise LoadObjectError(f'{reference!r} is a {type(target).__name__}, not a Predictor '
                                  f'(an object with predict(frames_rgb)) or a callable making one')
        try:
            target = target()
        except TypeError as err:
            raise LoadObjectError(f'{reference!r} must be callable with no arguments to make a '
                                  f'predictor: {err}') from err
    if not isinstance(target, Predictor):
        raise LoadObjectError(f'{reference!r} gave a {type(target).__name__}, which is not a '
                              f'Predictor: it needs a predict(frames_rgb) method')
    return target


def _build_local(spec: PredictorSpec) -> Predictor:
    from vggt_mapper.model import VGGTConfig
    from vggt_mapper.model.loading import load_vggt
    from vggt_mapper.model.synthetic import build_vggt
    from vggt_mapper.predictor.device import select_device_and_dtype
    from vggt_mapper.predictor.vggt_predictor import VGGTPredictor

    device, _ = select_device_and_dtype(spec.device)
    config = VGGTConfig.tiny() if spec.model == 'tiny' else VGGTConfig.vggt_1b()
    if spec.model == 'tiny' and spec.checkpoint is None:
        model = build_vggt(config, device=device)
        _LOGGER.warning("model 'tiny' without a checkpoint: deterministic synthetic weights, "
                        'the predicted geometry is MEANINGLESS (tests and smoke runs only)')
    else:
        source = spec.checkpoint or DEFAULT_CHECKPOINT
        model = load_vggt(source, config=config, token=spec.token, device=device)
    return VGGTPredictor(model, device=str(device), preprocess_mode=spec.preprocess_mode,
                         compute_points=spec.compute_points, int8=spec.int8)


def create_predictor(spec: PredictorSpec) -> Predictor:
    """
    Build the predictor a spec describes.

    :param spec: a validated ``PredictorSpec``.
    :return: a ``Predictor``: custom, ``RemotePredictor`` or ``VGGTPredictor``.
    :raises LoadObjectError: when a custom predictor cannot be loaded.
    :raises PredictorSpecError: for an unavailable device.
    :raises vggt_mapper.model.WeightsError: when the checkpoint cannot be found or read.
    """
    if spec.kind == 'custom':
        assert spec.predictor is not None
        return load_predictor(spec.predictor)
    if spec.kind == 'remote':
        assert spec.remote_url is not None
        from vggt_mapper.predictor.remote import RemotePredictor

        return RemotePredictor(spec.remote_url, timeout_s=spec.remote_timeout_s)
    return _build_local(spec)
