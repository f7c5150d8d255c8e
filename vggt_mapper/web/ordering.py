"""
Order an unordered photo set by visual similarity (each window then holds views that overlap).

The engine maps windows of consecutive frames and aligns each window on the frames it shares
with the previous one, so the order matters once a set needs more than one pass: photos
uploaded in any order would put frames that share nothing into one window. Here each photo gets
a global descriptor from a *describer*, and the frames are chained so that consecutive frames
are as similar as possible (an open travelling-salesman path on ``1 - cosine similarity``,
started from a minimum spanning tree's depth-first order and improved by 2-opt). An upload whose
own order is already as good as the chain found is kept as it is.

Describers: anything with ``describe(images_rgb) -> (N, D)`` float32 rows of unit length,
deterministic and independent of the other images in the batch (the engine's place describer
has this interface). ``GridHistogramDescriber`` is a weight-free default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.sparse.csgraph import depth_first_order, dijkstra, minimum_spanning_tree

__all__ = ['FrameOrder', 'GridHistogramDescriber', 'ImageDescriber', 'order_by_similarity']

# A chain is only replaced when the found one is cheaper by more than this fraction (float noise
# and mirrored chains of equal cost keep the user's order).
_KEEP_UPLOAD_TOLERANCE = 1e-6
_MAX_2OPT_PASSES = 100


@runtime_checkable
class ImageDescriber(Protocol):
    """Global image descriptors for place similarity (see the module docstring)."""

    def describe(self, images_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """
        Describe each image.

        :param images_rgb: N uint8 (H, W, 3) RGB images of any size.
        :return: (N, D) float32, each row of unit L2 norm.
        """


class GridHistogramDescriber:
    """
    A weight-free global descriptor: colour and gradient histograms on a coarse spatial grid.

    The image is reduced to ``width`` pixels across and cut into ``grid_cols`` × ``grid_rows``
    cells; each cell gets a joint RGB histogram (``colour_levels`` levels per channel) and a
    gradient-orientation histogram (``orientations`` bins over 180°, weighted by gradient
    magnitude). Histograms are normalised and square-rooted (the Hellinger kernel), the colour
    and gradient parts weigh the same, and the whole is centred and scaled to unit length.
    Histograms do not care where inside a cell a pattern lies, so nearby viewpoints score high
    even on fine texture, where pixel-aligned thumbnails decorrelate after a few pixels of
    motion; the grid keeps the coarse layout, so different views of one room score lower.

    :param width: working image width in pixels.
    :param grid_cols: cells across.
    :param grid_rows: cells down.
    :param colour_levels: levels per RGB channel (``colour_levels ** 3`` colour bins per cell).
    :param orientations: gradient-orientation bins per cell.
    """

    name = 'grid-histogram'

    def __init__(self, width: int = 160, grid_cols: int = 4, grid_rows: int = 3,
                 colour_levels: int = 4, orientations: int = 8) -> None:
        if width < 8 * grid_cols or grid_cols < 1 or grid_rows < 1:
            raise ValueError(f'need width >= 8 px per cell and a grid of at least 1x1, got '
                             f'width {width}, grid {grid_cols}x{grid_rows}')
        if colour_levels < 2 or orientations < 2:
            raise ValueError(f'colour_levels and orientations must be >= 2, got '
                             f'{colour_levels}, {orientations}')
        self.width = width
        self.grid = (grid_rows, grid_cols)
        self.colour_levels = colour_levels
        self.orientations = orientations

    @property
    def dim(self) -> int:
        """Length of a descriptor."""
        return self.grid[0] * self.grid[1] * (self.colour_levels ** 3 + self.orientations)

    def describe(self, images_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """
        Describe each image.

        :param images_rgb: N uint8 (H, W, 3) RGB images of any size.
        :return: (N, dim) float32, rows of unit L2 norm.
        """
        rows = np.empty((len(images_rgb), self.dim), np.float32)
        for index, image in enumerate(images_rgb):
            rows[index] = self._describe_one(np.asarray(image, dtype=np.uint8))
        return rows

    def _describe_one(self, image_rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        height = max(self.grid[0], round(image_rgb.shape[0] * self.width / image_rgb.shape[1]))
        small = cv2.resize(image_rgb, (self.width, height), interpolation=cv2.INTER_AREA)
        levels = (small.astype(np.int32) * self.colour_levels) // 256
        colour = (levels[..., 0] * self.colour_levels + levels[..., 1]) * self.colour_levels \
            + levels[..., 2]
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        grad_u = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
        grad_v = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
        magnitude = np.hypot(grad_u, grad_v)
        angle = np.arctan2(grad_v, grad_u) % np.pi
        orientation = np.minimum((angle / np.pi * self.orientations).astype(np.int32),
                                 self.orientations - 1)
        rows, cols = self.grid
        colour_parts, gradient_parts = [], []
        for r in range(rows):
            for c in range(cols):
                cell = (slice(r * height // rows, (r + 1) * height // rows),
                        slice(c * self.width // cols, (c + 1) * self.width // cols))
                colour_parts.append(_hellinger(np.bincount(
                    colour[cell].ravel(), minlength=self.colour_levels ** 3)))
                gradient_parts.append(_hellinger(np.bincount(
                    orientation[cell].ravel(), weights=magnitude[cell].ravel(),
                    minlength=self.orientations)))
        parts = [np.concatenate(colour_parts), np.concatenate(gradient_parts)]
        vector = np.concatenate([_unit(part - part.mean()) for part in parts])
        return _unit(vector - vector.mean()).astype(np.float32)


def _hellinger(histogram: NDArray[np.number]) -> NDArray[np.float64]:
    total = float(histogram.sum())
    return np.sqrt(histogram / total) if total > 0 else np.zeros(len(histogram))


def _unit(vector: NDArray[np.floating]) -> NDArray[np.float64]:
    return np.asarray(vector, dtype=np.float64) / max(float(np.linalg.norm(vector)), 1e-12)


@dataclass(frozen=True)
class FrameOrder:
    """
    A mapping order for a photo set.

    :param order: upload positions (0-based) in mapping order.
    :param reordered: False when the upload's own order was kept.
    :param cost_upload: sum of ``1 - cosine similarity`` between consecutive frames in upload
        order.
    :param cost: the same sum along ``order``.
    """

    order: tuple[int, ...]
    reordered: bool
    cost_upload: float
    cost: float


def _path_cost(distance: NDArray[np.float64], path: NDArray[np.int64]) -> float:
    return float(distance[path[:-1], path[1:]].sum())


def _two_opt(distance: NDArray[np.float64], path: NDArray[np.int64]) -> NDArray[np.int64]:
    """
    Improve an open path by segment reversals until none shortens it.

    Reversing ``path[i..j]`` swaps edges ``(a, b) + (c, e)`` for ``(a, c) + (b, e)`` where
    ``a = path[i-1], b = path[i], c = path[j], e = path[j+1]``; an end of the path has no edge.
    """
    path = path.copy()
    count = len(path)
    for _ in range(_MAX_2OPT_PASSES):
        improved = False
        for i in range(count - 1):
            j = np.arange(i + 1, count)
            b, c = path[i], path[j]
            old_left = distance[path[i - 1], b] if i > 0 else 0.0
            new_left = distance[path[i - 1], c] if i > 0 else np.zeros(len(j))
            e = path[np.minimum(j + 1, count - 1)]
            at_end = j == count - 1
            old_right = np.where(at_end, 0.0, distance[c, e])
            new_right = np.where(at_end, 0.0, distance[b, e])
            gain = old_left + old_right - new_left - new_right
            best = int(np.argmax(gain))
            if gain[best] > 1e-12:
                path[i:j[best] + 1] = path[i:j[best] + 1][::-1].copy()
                improved = True
        if not improved:
            break
    return path


def _tree_order(distance: NDArray[np.float64]) -> NDArray[np.int64]:
    """Depth-first order of the minimum spanning tree, from one end of its longest path."""
    # Identical images have distance 0, which scipy reads as "no edge": lift every edge a little.
    tree = minimum_spanning_tree(distance + 1e-9)
    tree = tree + tree.T
    from_first = dijkstra(tree, directed=False, indices=0)
    start = int(np.argmax(from_first))
    order = depth_first_order(tree, start, directed=False, return_predecessors=False)
    return np.asarray(order, dtype=np.int64)


def order_by_similarity(descriptors: NDArray[np.floating]) -> FrameOrder:
    """
    Chain frames so that consecutive ones look alike.

    :param descriptors: (N, D) descriptors, in upload order (rows are scaled to unit length).
    :return: the order; the upload order itself unless a chain more than a rounding error
        cheaper was found.
    :raises ValueError: for descriptors that are not a finite (N, D) array.
    """
    rows = np.asarray(descriptors, dtype=np.float64)
    if rows.ndim != 2 or not np.all(np.isfinite(rows)):
        raise ValueError(f'descriptors must be a finite (N, D) array, got shape {rows.shape}')
    rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    count = len(rows)
    upload = np.arange(count, dtype=np.int64)
    if count < 3:
        return FrameOrder(tuple(range(count)), False, 0.0, 0.0)
    distance = np.clip(1.0 - rows @ rows.T, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    cost_upload = _path_cost(distance, upload)
    kept = _two_opt(distance, upload)
    found = _two_opt(distance, _tree_order(distance))
    best = min((kept, found), key=lambda path: _path_cost(distance, path))
    cost = _path_cost(distance, best)
    if cost >= cost_upload * (1.0 - _KEEP_UPLOAD_TOLERANCE):
        return FrameOrder(tuple(range(count)), False, cost_upload, cost_upload)
    return FrameOrder(tuple(int(i) for i in best), True, cost_upload, cost)
