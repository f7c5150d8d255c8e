"""TEMPORARY STUB (the real module comes from the places branch)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from numpy.typing import NDArray


class PlaceDescriber(Protocol):
    name: str
    dim: int

    def describe(self, images_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]: ...


class _Thumb:
    name = 'thumb'
    dim = 32 * 24

    def describe(self, images_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        out = []
        for image in images_rgb:
            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            small = cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)
            small -= small.mean()
            small /= max(float(np.linalg.norm(small)), 1e-6)
            out.append(small.ravel())
        return np.asarray(out, np.float32)


def default_describer() -> PlaceDescriber:
    return _Thumb()


@dataclass(frozen=True)
class PlaceCandidate:
    key: int
    similarity: float


class PlaceIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._keys: list[int] = []
        self._vectors: list[NDArray[np.float32]] = []

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def nbytes(self) -> int:
        return len(self._keys) * self.dim * 4

    def add(self, key: int, descriptor: NDArray[np.float32]) -> None:
        self._keys.append(key)
        self._vectors.append(np.asarray(descriptor, np.float32))

    def search(self, descriptor: NDArray[np.float32], k: int,
               exclude: Callable[[int], bool] | None = None) -> list[PlaceCandidate]:
        sims = np.asarray(self._vectors) @ descriptor
        order = np.argsort(-sims)
        out = []
        for i in order:
            key = self._keys[int(i)]
            if exclude is not None and exclude(key):
                continue
            out.append(PlaceCandidate(key, float(sims[i])))
            if len(out) >= k:
                break
        return out
