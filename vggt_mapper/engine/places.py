"""
Place recognition: one global descriptor per keyframe, and an index that proposes revisits.

A *describer* turns images into global descriptors: one row per image, float32, unit L2 norm,
deterministic, and independent of the other images of the batch. Two describers ship:

* ``GradientGridDescriber`` needs no weights: gradient-orientation histograms on two spatial
  grids of a small contrast-normalised grey image, plus a coarse colour grid (see the class).
* The model's own: ``WindowPrediction.descriptors``, which ``VGGTPredictor`` fills with the mean
  of each frame's DINO patch tokens (computed by the forward pass anyway).
  ``PredictionDescriber`` takes them when the predictor computes them and falls back to a
  describer otherwise, and never mixes the two spaces in one run.

``PlaceIndex`` keeps one descriptor per key (a keyframe number) in a faiss ``IndexFlatIP`` and
returns the most similar keys outside a temporal exclusion window, best first. Candidates are
verified geometrically afterwards, so the index favours recall: it is exact, and ``k`` is cheap.

Plugging in another describer (SALAD, MegaLoc, NetVLAD, ...): any object with ``name``
(identifies the descriptor space), ``dim`` and ``describe`` satisfies ``PlaceDescriber``; pass
it as ``PredictionDescriber(fallback=...)`` (and ``prefer_prediction=False`` to use it even when
the predictor computes descriptors). For example MegaLoc, through ``torch.hub``::

    class MegaLocDescriber:
        name = 'megaloc'
        dim = 8448

        def __init__(self, device: str = 'cuda') -> None:
            self.device = device
            self.model = torch.hub.load('gmberton/MegaLoc', 'get_trained_model')
            self.model = self.model.eval().to(device)

        def describe(self, images_rgb):
            # One image at a time keeps each row independent of the batch (and sizes may differ).
            rows = [self._one(image) for image in images_rgb]
            return np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)

        @torch.inference_mode()
        def _one(self, image_rgb):
            tensor = torch.from_numpy(cv2.resize(image_rgb, (322, 322))).to(self.device)
            tensor = tensor.permute(2, 0, 1)[None].float() / 255
            mean = tensor.new_tensor([0.485, 0.456, 0.406])[:, None, None]
            std = tensor.new_tensor([0.229, 0.224, 0.225])[:, None, None]
            row = torch.nn.functional.normalize(self.model((tensor - mean) / std), dim=-1)
            return row[0].float().cpu().numpy()
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
import logging
from typing import Protocol, runtime_checkable

import cv2
import faiss
import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.errors import ConfigError, FrameError, PlaceError
from vggt_mapper.predictor.base import WindowPrediction

__all__ = [
    'GradientGridDescriber',
    'PREDICTION_DESCRIPTORS',
    'PlaceCandidate',
    'PlaceDescriber',
    'PlaceIndex',
    'PredictionDescriber',
]

_LOGGER = logging.getLogger(__name__)

PREDICTION_DESCRIPTORS = 'prediction'
"""``PredictionDescriber.name`` when it uses the descriptors the predictor computed."""

# A row's L2 norm must be within this of 1 (float32 rounding of normalised rows is ~1e-7).
_UNIT_TOLERANCE = 1e-3


@runtime_checkable
class PlaceDescriber(Protocol):
    """
    Anything that turns images into global place descriptors.

    ``name`` identifies the descriptor space (descriptors of different names are not
    comparable) and ``dim`` is the row length. ``describe`` returns one row per image, float32,
    of unit L2 norm (or all zero for an image with nothing to describe, which is similar to
    nothing), deterministic, and the same whichever other images share the batch.
    """

    name: str
    dim: int

    def describe(self, images_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """
        Describe images.

        :param images_rgb: N uint8 (H, W, 3) RGB images, any size.
        :return: (N, dim) float32 descriptors.
        """
        ...


class GradientGridDescriber:
    """
    Weight-free global descriptor: gradient orientations on spatial grids, plus coarse colour.

    Each image is shrunk to 64 × 48 grey (area averaging; the aspect ratio is not kept, one
    camera has one) and normalised to zero mean and unit contrast, which removes exposure gain
    and offset. Sobel gradients vote, by magnitude, into 8 unsigned orientation bins (linear
    interpolation between the two nearest bins) and are pooled on an 8 × 6 and a 4 × 3 grid of
    Gaussian-weighted overlapping cells, so a feature that moves across a cell border changes
    the descriptor gradually (small viewpoint changes). Each cell's histogram is L2-normalised
    (local contrast), square-rooted (Hellinger kernel, as RootSIFT: a few strong edges do not
    dominate) and each grid is centred and normalised, so unrelated places score near zero.
    The mean a*, b* chroma (CIELAB) on a 4 × 3 grid is appended at a lower weight.

    Measured on the synthetic room (``benchmarks/place_recognition.py``, with ablations): on
    the hardest revisit (30 cm aside, turned 20°, much darker) recall@1 is 0.71 against 0.63
    with hard cell borders, 0.63 without colour and 0.38 for a 16 × 12 grey thumbnail
    (SeqSLAM-like). Either grid alone is within noise of the pair there; the pair is kept as
    a spatial pyramid (the coarse grid tolerates viewpoint, the fine one discriminates).

    An image with no contrast (lens cap, blank wall) gets the zero row: it matches nothing.
    """

    name = 'gradient-grid-v1'
    _SIZE = (64, 48)  # (width, height) of the grey image
    _GRIDS = ((8, 6), (4, 3))  # (columns, rows) of cells
    _BINS = 8
    _CELL_SIGMA = 0.5  # Gaussian cell weighting, in cell widths
    _CELL_FLOOR = 0.1  # added to a cell's norm: flat cells stay small instead of amplified
    _COLOUR_GRID = (4, 3)
    _COLOUR_WEIGHT = 0.5
    _COLOUR_FLOOR = 2.0  # a*, b* units: grey images get (close to) zero colour
    _MIN_CONTRAST = 1.0 / 255.0  # grey standard deviation (64 × 48) below which it is blank
    dim = (sum(cols * rows for cols, rows in _GRIDS) * _BINS
           + _COLOUR_GRID[0] * _COLOUR_GRID[1] * 2)

    def describe(self, images_rgb: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """
        Describe images, each on its own.

        :param images_rgb: N uint8 (H, W, 3) RGB images, any size (at least 1 × 1).
        :return: (N, dim) float32, rows of unit L2 norm (zero for a blank image).
        :raises FrameError: for an image that is not uint8 (H, W, 3).
        """
        rows = [self._describe_one(_checked_image(image, index))
                for index, image in enumerate(images_rgb)]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def _describe_one(self, image_rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        small = np.asarray(cv2.resize(image_rgb, self._SIZE, interpolation=cv2.INTER_AREA),
                           dtype=np.uint8)  # a no-op: tells mypy what cv2 returns
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        contrast = float(grey.std())
        if contrast < self._MIN_CONTRAST:
            return np.zeros(self.dim, dtype=np.float32)
        grey = (grey - grey.mean()) / contrast
        votes = self._orientation_votes(grey)
        parts = [self._grid_histograms(votes, grid) for grid in self._GRIDS]
        parts.append(self._COLOUR_WEIGHT * self._colour_grid(small))
        return _unit(np.concatenate(parts))

    def _orientation_votes(self, grey: NDArray[np.float32]) -> NDArray[np.float32]:
        """(H, W, bins) gradient magnitude shared between the two nearest orientation bins."""
        grad_x = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
        grad_y = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
        magnitude, angle = cv2.cartToPolar(grad_x, grad_y)
        position = (angle % np.pi) * (self._BINS / np.pi)  # unsigned: contrast polarity free
        distance = np.abs(position[..., None] - np.arange(self._BINS, dtype=np.float32))
        distance = np.minimum(distance, self._BINS - distance)  # orientation is circular
        weights = np.maximum(0.0, 1.0 - distance)
        return np.asarray(magnitude[..., None] * weights, dtype=np.float32)

    def _grid_histograms(self, votes: NDArray[np.float32], grid: tuple[int, int]
                         ) -> NDArray[np.float32]:
        sigma = self._CELL_SIGMA * self._SIZE[0] / grid[0]
        smooth = cv2.GaussianBlur(votes, (0, 0), sigma)
        cells = cv2.resize(smooth, grid, interpolation=cv2.INTER_AREA)  # (rows, cols, bins)
        cells = cells / (np.linalg.norm(cells, axis=2, keepdims=True) + self._CELL_FLOOR)
        vector = np.sqrt(cells).ravel()
        return _unit(vector - vector.mean())

    def _colour_grid(self, small_rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        cells = cv2.resize(small_rgb, self._COLOUR_GRID, interpolation=cv2.INTER_AREA)
        lab = cv2.cvtColor(cells, cv2.COLOR_RGB2LAB).astype(np.float32)
        chroma = (lab[..., 1:] - 128.0).ravel()  # 8-bit a*, b* are offset by 128
        return np.asarray(chroma / (np.linalg.norm(chroma) + self._COLOUR_FLOOR),
                          dtype=np.float32)


def _checked_image(image: NDArray[np.uint8], index: int) -> NDArray[np.uint8]:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise FrameError(f'image {index} must be a uint8 numpy array, got '
                         f'{getattr(image, "dtype", type(image).__name__)}')
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise FrameError(f'image {index} must be (H, W, 3) RGB, got shape {image.shape}')
    return image


def _unit(vector: NDArray[np.float32]) -> NDArray[np.float32]:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        return np.zeros_like(vector, dtype=np.float32)
    return np.asarray(vector / norm, dtype=np.float32)


def _checked_rows(rows: NDArray[np.floating], dim: int, what: str) -> NDArray[np.float32]:
    """Return ``rows`` as C-contiguous float32 (N, dim), each row unit or zero, or raise."""
    matrix = np.asarray(rows)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise PlaceError(f'{what} must have shape (N, {dim}), got {matrix.shape}')
    if not np.issubdtype(matrix.dtype, np.floating):
        raise PlaceError(f'{what} must be floats, got dtype {matrix.dtype}')
    finite = np.isfinite(matrix)
    if not np.all(finite):
        raise PlaceError(f'{what} has {int(np.sum(~finite))} non-finite values')
    norms = np.linalg.norm(matrix, axis=1)
    bad = ~((np.abs(norms - 1.0) <= _UNIT_TOLERANCE) | (norms == 0.0))
    if np.any(bad):
        raise PlaceError(f'{what} rows must have unit L2 norm (or be zero); row '
                         f'{int(np.argmax(bad))} has norm {norms[bad][0]:.6g}: normalise it')
    return np.ascontiguousarray(matrix, dtype=np.float32)


@dataclass(frozen=True)
class PlaceCandidate:
    """
    A stored key that looks like the queried place.

    :param key: the stored key (a keyframe number).
    :param similarity: cosine similarity of the two descriptors, in [-1, 1].
    """

    key: int
    similarity: float


class PlaceIndex:
    """
    Exact cosine-similarity search over one descriptor per key, with temporal exclusion.

    Backed by faiss ``IndexFlatIP`` (inner product = cosine on unit rows). Flat is enough for a
    mapping run: at 20,000 keyframes of 1024 floats a query streams 80 MB (memory-bound) and
    took 40-75 ms on the shared, loaded 2-core VM where it was measured
    (``benchmarks/place_recognition.py``), once per keyframe, next to seconds of model time per
    window. An IVF or graph index would need training or lose recall, which the geometric
    verification after it cannot win back. Memory: ``dim`` float32 plus one int64 key per
    keyframe (``nbytes``; 4,104 bytes at dim 1024, 2,024 at the weight-free 504).

    Zero descriptors (images with nothing to describe) are not stored: ``add`` logs and counts
    them in ``skipped_featureless``.

    :param dim: descriptor length.
    :raises ConfigError: for a non-positive ``dim``.
    """

    def __init__(self, dim: int) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f'PlaceIndex dim must be a positive integer, got {dim!r}')
        self.dim = dim
        self.skipped_featureless = 0
        self._index = faiss.IndexFlatIP(dim)
        self._keys = array('q')  # row -> key; np.frombuffer views it without a copy
        self._key_set: set[int] = set()

    def __len__(self) -> int:
        """Return the number of stored keys."""
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        """Return whether ``key`` is stored."""
        return key in self._key_set

    @property
    def nbytes(self) -> int:
        """Bytes held for the stored keys: the descriptors plus the key table."""
        return len(self._keys) * (self.dim * 4 + self._keys.itemsize)

    def add(self, key: int, descriptor: NDArray[np.floating]) -> bool:
        """
        Store the descriptor of ``key``.

        :param key: a new integer key (keyframe number).
        :param descriptor: (dim,) unit-norm (or zero) descriptor.
        :return: True when stored, False for a zero descriptor (logged, counted, not stored).
        :raises PlaceError: for a key already stored or a malformed descriptor.
        """
        key = _checked_key(key)
        if key in self._key_set:
            raise PlaceError(f'key {key} is already in the place index')
        row = _checked_rows(np.asarray(descriptor)[None], self.dim, f'descriptor of key {key}')
        if not row.any():
            log = _LOGGER.debug if self.skipped_featureless else _LOGGER.warning
            self.skipped_featureless += 1
            log('key %d has a zero place descriptor (an image with nothing to describe); it '
                'is not indexed (%d so far)', key, self.skipped_featureless)
            return False
        self._index.add(row)
        self._keys.append(key)
        self._key_set.add(key)
        return True

    def items(self) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """
        Return the stored keys and their descriptors, in insertion order (copies).

        :return: ``keys`` (N,) int64 and ``descriptors`` (N, dim) float32 unit rows.
        """
        keys = np.array(self._keys, dtype=np.int64)
        if not len(keys):
            return keys, np.zeros((0, self.dim), dtype=np.float32)
        return keys, np.asarray(self._index.reconstruct_n(0, len(keys)), dtype=np.float32)

    def search(self, descriptor: NDArray[np.floating], k: int, *, query_key: int | None = None,
               exclusion: int = 0) -> tuple[PlaceCandidate, ...]:
        """
        Return the ``k`` stored keys most similar to ``descriptor``, best first.

        :param descriptor: (dim,) unit-norm query descriptor (zero: no candidates).
        :param k: number of candidates wanted (fewer come back when fewer are eligible).
        :param query_key: the query's own key; with ``exclusion``, keys with
            ``abs(key - query_key) < exclusion`` are not returned (the recent past, which
            odometry already connects, and the query itself).
        :param exclusion: width of the temporal exclusion window, in keys (0: none).
        :return: the candidates, similarity descending (ties: smaller key first).
        :raises PlaceError: for a malformed descriptor.
        :raises ConfigError: for ``k < 1``, a negative ``exclusion`` or ``exclusion`` without
            ``query_key``.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f'k must be a positive integer, got {k!r}')
        if exclusion < 0 or (exclusion and query_key is None):
            raise ConfigError(f'exclusion must be >= 0 and needs query_key, got exclusion='
                              f'{exclusion!r}, query_key={query_key!r}')
        query = _checked_rows(np.asarray(descriptor)[None], self.dim, 'query descriptor')
        keys = np.frombuffer(self._keys, dtype=np.int64) if self._keys else np.zeros(0, np.int64)
        excluded = (np.abs(keys - query_key) < exclusion if query_key is not None
                    else np.zeros(keys.shape, dtype=bool))
        eligible = int(keys.size - np.count_nonzero(excluded))
        if eligible == 0 or not query.any():
            return ()
        # Over-fetch by the number of excluded keys: then k eligible ones are always among them.
        fetch = min(k + int(np.count_nonzero(excluded)), keys.size)
        similarities, rows = self._index.search(query, fetch)
        candidates = [PlaceCandidate(int(keys[row]), float(similarity))
                      for similarity, row in zip(similarities[0], rows[0], strict=True)
                      if row >= 0 and not excluded[row]]
        candidates.sort(key=lambda candidate: (-candidate.similarity, candidate.key))
        return tuple(candidates[:k])


def _checked_key(key: int) -> int:
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)):
        raise PlaceError(f'place keys must be integers, got {key!r}')
    return int(key)


class PredictionDescriber:
    """
    Describe a window's keyframes: with the predictor's own descriptors when it computes them.

    The first window decides the descriptor space for the whole run: the prediction's
    ``descriptors`` (name ``PREDICTION_DESCRIPTORS``) when present and ``prefer_prediction``,
    else ``fallback`` applied to the images the model saw. Spaces are never mixed: once on the
    fallback, later prediction descriptors are ignored; once on prediction descriptors, a window
    without them (or with another length) raises ``PlaceError``.

    :param fallback: describer used when predictions carry no descriptors (default: the
        weight-free ``GradientGridDescriber``).
    :param prefer_prediction: use prediction descriptors when the first window has them.
    """

    def __init__(self, fallback: PlaceDescriber | None = None, *,
                 prefer_prediction: bool = True) -> None:
        self.fallback: PlaceDescriber = fallback or GradientGridDescriber()
        self.prefer_prediction = prefer_prediction
        self._name: str | None = None
        self._dim: int | None = None

    @property
    def name(self) -> str | None:
        """Return the descriptor space in use, or None before the first window."""
        return self._name

    @property
    def dim(self) -> int | None:
        """Return the descriptor length in use, or None before the first window."""
        return self._dim

    def resume(self, name: str, dim: int) -> None:
        """
        Continue in the descriptor space of a saved map (before the first window).

        :param name: the saved space: ``PREDICTION_DESCRIPTORS`` or a describer's name.
        :param dim: the saved descriptor length.
        :raises PlaceError: if this describer cannot produce that space: another fallback
            describer, or another length (descriptors of two spaces are not comparable).
        """
        if name != PREDICTION_DESCRIPTORS and (name != self.fallback.name
                                               or dim != self.fallback.dim):
            raise PlaceError(f'the map was described with {name!r} descriptors of length '
                             f'{dim}, this mapper describes with {self.fallback.name!r} '
                             f'({self.fallback.dim}): pass the same place describer')
        if name == PREDICTION_DESCRIPTORS and not self.prefer_prediction:
            raise PlaceError("the map was described with the predictor's own descriptors, "
                             'this mapper is told not to use them (prefer_prediction=False)')
        self._name, self._dim = name, dim

    def describe_prediction(self, prediction: WindowPrediction) -> NDArray[np.float32]:
        """
        Return one descriptor per frame of ``prediction``.

        :param prediction: a window prediction.
        :return: (S, dim) float32, rows of unit L2 norm (or zero).
        :raises PlaceError: when the window's descriptors do not fit the space chosen by the
            first window, or are malformed.
        """
        if self._name is None:
            use_prediction = self.prefer_prediction and prediction.descriptors is not None
            self._name = PREDICTION_DESCRIPTORS if use_prediction else self.fallback.name
            _LOGGER.info('place recognition uses %s descriptors', self._name)
        if self._name != PREDICTION_DESCRIPTORS:
            rows = self.fallback.describe(list(prediction.images_rgb))
            self._dim = self.fallback.dim
            return _checked_rows(rows, self.fallback.dim, f'{self._name} descriptors')
        if prediction.descriptors is None:
            raise PlaceError('this window has no predicted place descriptors but the earlier '
                             'ones had: the two are not comparable (did the predictor change?)')
        dim = int(prediction.descriptors.shape[1])
        if self._dim is not None and dim != self._dim:
            raise PlaceError(f'predicted place descriptors changed length from {self._dim} to '
                             f'{dim} (did the model change?)')
        self._dim = dim
        return _checked_rows(prediction.descriptors, dim, 'predicted descriptors')
