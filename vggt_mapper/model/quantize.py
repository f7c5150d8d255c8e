"""
Int8 CPU inference: dynamic quantisation of the aggregator's Linear layers.

The aggregator (DINO patch embedding and the 24 frame + 24 global blocks) does nearly all of
VGGT's arithmetic in ``nn.Linear`` layers (``benchmarks/model_forward.py`` prints the FLOP split).
``quantize_int8_`` swaps each of them for PyTorch's dynamically quantised Linear (fbgemm/x86
kernels: int8 weights per output channel, activations quantised per tensor at run time, int32
accumulation), which runs on AVX2, AVX-512-VNNI and AMX alike and holds the weights in a quarter
of the memory. The heads stay float32: the camera head costs little and the pose is the output
most sensitive to small numeric changes (its four refinement steps feed back); the DPT heads are
convolutions.

This is a CPU mode: the quantised kernels exist only on the CPU. Errors measured on the
synthetic weights say little about real ones, whose activations have outlier channels that
per-tensor int8 handles worse, so it is an option, off by default.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from vggt_mapper.model.errors import ModelError
from vggt_mapper.model.vggt import VGGT

__all__ = ['count_int8_linear', 'quantize_int8_', 'quantize_linear_int8_']


def quantize_int8_(model: VGGT) -> VGGT:
    """
    Quantise the aggregator's ``nn.Linear`` layers to dynamic int8, in place.

    Idempotent: already quantised layers are left alone. The float32 weights of the swapped
    layers are released once nothing else refers to them.

    :param model: a VGGT on the CPU, in eval mode.
    :return: ``model``, whose aggregator now runs int8 matrix products.
    :raises ModelError: when the model is not on the CPU or torch lacks dynamic quantisation.
    """
    quantize_linear_int8_(model.aggregator)
    return model


def quantize_linear_int8_(module: nn.Module) -> nn.Module:
    """
    Swap every ``nn.Linear`` inside ``module`` for a dynamically quantised int8 Linear.

    Weights: int8, symmetric, one scale per output channel; activations: uint8 with a scale
    computed per call over the whole tensor; accumulation in int32 (fbgemm/x86 kernels).

    :param module: a module on the CPU (its own children are replaced; a bare ``nn.Linear``
        cannot replace itself: wrap it in ``nn.Sequential``).
    :return: ``module``.
    :raises ModelError: when the module is not on the CPU or torch lacks dynamic quantisation.
    """
    devices = {parameter.device.type for parameter in module.parameters()}
    if devices - {'cpu'}:
        raise ModelError(f'int8 dynamic quantisation runs on the CPU only; the module is on '
                         f'{sorted(devices)}')
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError as err:  # announced for removal upstream; present in torch 2.13
        raise ModelError(f'int8 needs torch.ao.quantization.quantize_dynamic, which torch '
                         f'{torch.__version__} lacks; run without int8') from err
    with warnings.catch_warnings():
        # torch points every call to torchao; torchao 0.18's CPU int8 path measured 2x slower
        # here, and 12 % relative error per Linear with AVX2 kernels, so this one stays.
        warnings.filterwarnings('ignore', message='.*torch.ao.quantization is deprecated')
        warnings.filterwarnings('ignore', message='.*quantized tensor creation functions')
        quantize_dynamic(module,  # type: ignore[no-untyped-call]
                         {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8,
                         inplace=True)
    return module


def count_int8_linear(module: nn.Module) -> int:
    """
    Count the dynamically quantised int8 Linear layers in a module.

    :param module: any module.
    :return: how many of its submodules are ``torch.ao.nn.quantized.dynamic.Linear``.
    """
    from torch.ao.nn.quantized import dynamic

    return sum(isinstance(sub, dynamic.Linear) for sub in module.modules())
