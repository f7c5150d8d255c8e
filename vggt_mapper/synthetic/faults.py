"""
Fault injection: a predictor wrapper that makes chosen calls fail the way real predictors fail.

``FaultyPredictor(inner, fail_on, mode)`` answers like ``inner`` except on the calls chosen by
``fail_on`` (call numbers, or a predicate on the sequence frame indices of the window), where it

* ``raise``: raises ``SyntheticFailure`` (a ``RuntimeError``, like a CUDA out-of-memory) or
  the exception type given, without running ``inner``;
* ``garbage``: returns ``inner``'s prediction with random camera poses (frame 0 identity);
* ``nan``: returns it with an all-NaN depth (and point map, if any);
* ``wrong_count``: returns it without its last frame (one frame fewer than asked).

It counts calls and failures and keeps a ``FaultRecord`` of each failure.

``FooledByLookAlikes(inner, period_frames)`` fails subtly instead, the way a model fails at
places that look the same (identical doors, repeated shelves): in a loop-verification window it
answers the query's frames as their look-alikes one or more periods back, consistently, so every
check of the answer's own geometry passes and only a check against the map can catch it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
import enum

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from vggt_mapper.predictor.base import Predictor, WindowPrediction
from vggt_mapper.synthetic.errors import SyntheticFailure
from vggt_mapper.synthetic.predictor import SyntheticPredictor
from vggt_mapper.synthetic.sequence import SyntheticSequence

__all__ = ['FaultMode', 'FaultRecord', 'FaultyPredictor', 'FooledByLookAlikes',
           'FramePredicate']

FramePredicate = Callable[[tuple[int, ...]], bool]
"""Chooses the windows to fail from the sequence frame indices they hold, in window order."""


class FaultMode(enum.Enum):
    """How a chosen call fails (see the module docstring)."""

    RAISE = 'raise'
    GARBAGE = 'garbage'
    NAN = 'nan'
    WRONG_COUNT = 'wrong_count'


@dataclass(frozen=True)
class FaultRecord:
    """
    One injected failure.

    :param call: 0-based number of the failed ``predict`` call.
    :param frame_indices: sequence frame indices of the window (empty when no sequence is
        known).
    :param mode: how it failed.
    """

    call: int
    frame_indices: tuple[int, ...]
    mode: FaultMode


class FaultyPredictor:
    """
    Wraps a predictor and fails chosen calls in a chosen way; counts calls and failures.

    :param inner: the predictor that answers the other calls (and the failed ones, but for
        ``raise``).
    :param fail_on: 0-based call numbers to fail, or a ``FramePredicate`` on the window's
        sequence frame indices.
    :param mode: how to fail: a ``FaultMode`` or its value (``'raise'``, ``'garbage'``,
        ``'nan'``, ``'wrong_count'``).
    :param sequence: the sequence that tells frame indices (default: ``inner.sequence`` when
        ``inner`` is a ``SyntheticPredictor``); needed by a predicate.
    :param error: the exception type ``raise`` raises (e.g. ``OSError`` for a lost remote).
    :param seed: seed of the ``garbage`` poses.
    :raises ValueError: for an unknown mode, a negative call number, a predicate without a
        sequence, or an ``error`` that is not an exception type.
    """

    def __init__(self, inner: Predictor, fail_on: Collection[int] | FramePredicate,
                 mode: FaultMode | str = FaultMode.RAISE, *,
                 sequence: SyntheticSequence | None = None,
                 error: type[Exception] = SyntheticFailure, seed: int = 0) -> None:
        try:
            self.mode = FaultMode(mode)
        except ValueError as err:
            raise ValueError(f'unknown fault mode {mode!r}; use one of '
                             f'{[m.value for m in FaultMode]}') from err
        if not (isinstance(error, type) and issubclass(error, Exception)):
            raise ValueError(f'error must be an exception type, got {error!r}')
        self.inner = inner
        self.error = error
        if sequence is None:
            sequence = getattr(inner, 'sequence', None)
        self.sequence = sequence if isinstance(sequence, SyntheticSequence) else None
        self._predicate: FramePredicate | None = None
        self._calls_to_fail: frozenset[int] = frozenset()
        if callable(fail_on):
            if self.sequence is None:
                raise ValueError('a fail_on predicate needs frame indices: pass sequence= '
                                 '(or wrap a SyntheticPredictor)')
            self._predicate = fail_on
        else:
            self._calls_to_fail = frozenset(int(call) for call in fail_on)
            if any(call < 0 for call in self._calls_to_fail):
                raise ValueError(f'call numbers are 0-based, got {sorted(self._calls_to_fail)}')
        self._rng = np.random.default_rng(seed)
        self.calls = 0
        self.failures = 0
        self.records: list[FaultRecord] = []

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        """
        Answer like ``inner``, or fail this call if ``fail_on`` chooses it.

        :param frames_rgb: the window's frames.
        :return: ``inner``'s prediction, or a corrupted one (``garbage``, ``nan``,
            ``wrong_count``).
        :raises Exception: ``error`` (``SyntheticFailure`` by default) on a chosen call in
            ``raise`` mode; whatever ``inner`` raises.
        """
        call = self.calls
        self.calls += 1
        indices = (tuple(self.sequence.index_of(frame) for frame in frames_rgb)
                   if self.sequence is not None else ())
        chosen = (self._predicate(indices) if self._predicate is not None
                  else call in self._calls_to_fail)
        if not chosen:
            return self.inner.predict(frames_rgb)
        self.failures += 1
        self.records.append(FaultRecord(call, indices, self.mode))
        if self.mode is FaultMode.RAISE:
            raise self.error(f'injected predictor failure on call {call} (frames '
                             f'{list(indices)}), as a crashed model would fail (e.g. CUDA out '
                             f'of memory)')
        prediction = self.inner.predict(frames_rgb)
        if self.mode is FaultMode.GARBAGE:
            return self._random_poses(prediction)
        if self.mode is FaultMode.NAN:
            points = prediction.points_window
            return replace(prediction, depth=np.full_like(prediction.depth, np.nan),
                           points_window=None if points is None else np.full_like(points, np.nan))
        return _first_frames(prediction, prediction.num_frames - 1)

    def _random_poses(self, prediction: WindowPrediction) -> WindowPrediction:
        num = prediction.num_frames
        cams = np.zeros((num, 3, 4))
        cams[0, :, :3] = np.eye(3)
        if num > 1:
            depth_scale = float(np.nanmedian(prediction.depth[0]))
            cams[1:, :, :3] = Rotation.random(num - 1, random_state=self._rng).as_matrix()
            cams[1:, :, 3] = depth_scale * self._rng.standard_normal((num - 1, 3))
        return replace(prediction, cam_from_window=cams)


class FooledByLookAlikes:
    """
    Takes the far frames of a loop window for their look-alikes a whole number of periods back.

    What a model shown identical doors does: it predicts the two places as one, consistently,
    so depth, poses and covisibility all agree, and only a comparison with the map (how far the
    loop would move the query) can tell. A *loop window* is recognised by its frames: the
    sequence frame index jumps forward by more than ``min_jump_frames`` between two consecutive
    frames (verification puts the candidate and its neighbours first, then the query and its
    predecessors). Each frame after the jump is answered as the frame a whole number of
    ``period_frames`` earlier that is nearest the last frame before the jump; every other window
    is answered by ``inner`` unchanged. Use it on a sequence whose look repeats with that
    period (``SyntheticSequence.corridor``: ``round(period_m / step_m)`` frames).

    :param inner: the synthetic predictor that answers (it knows the sequence's frames).
    :param period_frames: frames between two look-alike places (> 0).
    :param min_jump_frames: a forward jump of more than this many frames inside one window
        marks a loop window (> 0; consecutive keyframes are far closer).
    :ivar calls: ``predict`` calls so far.
    :ivar fooled: loop windows answered as look-alikes so far.
    :raises ValueError: if ``period_frames`` or ``min_jump_frames`` is not positive.
    """

    def __init__(self, inner: SyntheticPredictor, period_frames: int,
                 min_jump_frames: int = 30) -> None:
        if period_frames < 1 or min_jump_frames < 1:
            raise ValueError(f'period_frames and min_jump_frames must be >= 1, got '
                             f'{period_frames} and {min_jump_frames}')
        self.inner = inner
        self.sequence = inner.sequence
        self.period_frames = period_frames
        self.min_jump_frames = min_jump_frames
        self.calls = 0
        self.fooled = 0

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        """
        Answer like ``inner``, with a loop window's far frames taken for their look-alikes.

        :param frames_rgb: the window's frames (rendered by ``inner.sequence``).
        :return: ``inner``'s prediction of the (possibly swapped) window.
        :raises UnknownFrameError: if a frame is not from the sequence.
        """
        self.calls += 1
        seq = self.sequence
        indices = [seq.index_of(frame) for frame in frames_rgb]
        jumps = [slot for slot in range(1, len(indices))
                 if indices[slot] - indices[slot - 1] > self.min_jump_frames]
        swapped: list[tuple[NDArray[np.uint8], int, NDArray[np.float64]]] = []
        if jumps:
            self.fooled += 1
            near = indices[jumps[0] - 1]
            for frame, index in zip(frames_rgb[jumps[0]:], indices[jumps[0]:], strict=True):
                periods = round((index - near) / self.period_frames)
                intrinsics = seq.intrinsics_of(frame)
                swapped.append((frame, index, intrinsics))
                # The synthetic predictor answers each image as the frame it is registered as.
                seq.register(frame, index - periods * self.period_frames, intrinsics)
        try:
            return self.inner.predict(frames_rgb)
        finally:
            for frame, index, intrinsics in swapped:
                seq.register(frame, index, intrinsics)


def _first_frames(prediction: WindowPrediction, count: int) -> WindowPrediction:
    def head(array: NDArray[np.generic] | None) -> NDArray[np.generic] | None:
        return None if array is None else array[:count]

    return WindowPrediction(
        prediction.cam_from_window[:count], prediction.intrinsics[:count],
        prediction.depth[:count], prediction.depth_conf[:count],
        prediction.images_rgb[:count], prediction.mappings[:count],
        head(prediction.points_window), head(prediction.points_conf))  # type: ignore[arg-type]
