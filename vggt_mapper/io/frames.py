"""The frame record every input reader yields (image folder, video, rosbag2)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ['InputFrame']


@dataclass(frozen=True)
class InputFrame:
    """
    One decoded camera frame.

    :param image_rgb: (H, W, 3) uint8 RGB.
    :param stamp_ns: timestamp in integer nanoseconds (message stamp, video PTS, or index-based).
    :param name: a name for logs and exports (file name, ``frame_000123``).
    """

    image_rgb: NDArray[np.uint8]
    stamp_ns: int
    name: str
