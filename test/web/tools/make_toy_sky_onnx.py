"""
Write ``test/data/web/toy_sky.onnx``: a stand-in for skyseg.onnx in the sky-filter tests.

Same interface as the official demo's sky model (input ``1×3×320×320`` ImageNet-normalised RGB,
one ``1×1×320×320`` output, higher = more sky); its "sky" is simply *blue minus red*. Needs
``torch`` and the ``onnx`` package (not a test dependency: the file is committed)::

    python3 test/web/tools/make_toy_sky_onnx.py
"""

from __future__ import annotations

from pathlib import Path

import torch


class BlueMinusRed(torch.nn.Module):
    """Sky score = normalised blue - normalised red."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, 2:3] - images[:, 0:1]


def main() -> None:
    target = Path(__file__).resolve().parents[3] / 'test' / 'data' / 'web' / 'toy_sky.onnx'
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(BlueMinusRed(), (torch.zeros(1, 3, 320, 320),), str(target),
                      dynamo=False, input_names=['input'], output_names=['output'],
                      opset_version=13)
    print(target, target.stat().st_size, 'bytes')


if __name__ == '__main__':
    main()
