"""Keyframe selection by parallax: corners tracked with pyramidal Lucas-Kanade optical flow."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.config import KeyframeConfig

__all__ = ['KeyframeDecision', 'KeyframeSelector']

# A frame needs this many corners to be trackable (and so to become a keyframe).
_MIN_TRACKS = 8
# ... and this much contrast: standard deviation of its grey levels (0-255) at the tracking
# resolution. Blank, black, over-exposed or lens-capped frames (whose faint sensor noise still
# has "corners") fall below it.
_MIN_CONTRAST = 3.0
# A keyframe is also made when fewer than this fraction of its corners survive tracking.
_MIN_SURVIVORS = 0.3
# Largest forward-backward round-trip error (pixels) of a kept track.
_FB_MAX_PX = 1.0
_LK_WINDOW = (21, 21)
_LK_LEVELS = 3
_LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)


@dataclass(frozen=True)
class KeyframeDecision:
    """
    What the selector decided about one frame.

    :param is_keyframe: the frame becomes a keyframe.
    :param parallax_px: median displacement of tracked corners since the last keyframe
        (pixels at the tracking resolution); NaN when nothing could be tracked.
    :param reason: ``first``, ``parallax``, ``tracks_lost``, ``max_gap``, ``min_gap``,
        ``duplicate``, ``small_parallax`` or ``untrackable`` (a blank, over-exposed or
        featureless frame: not usable, never a keyframe, counted in
        ``KeyframeSelector.frames_untrackable``).
    """

    is_keyframe: bool
    parallax_px: float
    reason: str

    @property
    def trackable(self) -> bool:
        """Return False for a frame that cannot be used at all (``reason == 'untrackable'``)."""
        return self.reason != 'untrackable'


class KeyframeSelector:
    """
    Decides, frame by frame, which frames are keyframes.

    Corners (``cv2.goodFeaturesToTrack``) are detected in each keyframe on a downscaled grey
    image and tracked frame to frame (``cv2.calcOpticalFlowPyrLK``). A frame becomes a keyframe
    when the median corner displacement since the last keyframe reaches ``min_parallax_px``,
    when most corners are lost, or at ``max_gap`` frames — but never while it is a
    near-duplicate (parallax below ``duplicate_px``), so a still camera sends nothing to the
    model. No keyframe is made within ``min_gap`` frames of the last one.

    Untrackable frames — too little contrast, or tracks lost into a frame with too few corners
    of its own (blank, black, over-exposed, lens cap, motion blur) — never become keyframes: a
    VGGT window slot spent on them gives no geometry, and as an overlap anchor they would break
    the next window's alignment. They are skipped as if absent (counted in
    ``frames_untrackable``), so the next trackable frame is compared with the last trackable
    frame and keyframe, and keyframing resumes at once.

    :param config: the keyframe settings.
    :ivar frames_untrackable: untrackable frames seen since the last ``reset``.
    """

    def __init__(self, config: KeyframeConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget the last keyframe and the counter; the next trackable frame is a keyframe."""
        self._prev_grey: NDArray[np.uint8] | None = None
        self._pts_prev: NDArray[np.float32] = np.empty((0, 1, 2), np.float32)
        self._pts_kf: NDArray[np.float32] = np.empty((0, 1, 2), np.float32)
        self._num_kf_corners = 0
        self._gap = 0
        self.frames_untrackable = 0

    def _grey(self, image_rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
        grey = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
        width = grey.shape[1]
        if width > self.config.track_width:
            height = max(int(round(grey.shape[0] * self.config.track_width / width)), 1)
            grey = cv2.resize(grey, (self.config.track_width, height),
                              interpolation=cv2.INTER_AREA)
        return np.asarray(grey, dtype=np.uint8)

    def _corners(self, grey: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Detect corners; fewer than ``_MIN_TRACKS`` (or none) means untrackable."""
        corners = cv2.goodFeaturesToTrack(grey, maxCorners=self.config.max_corners,
                                          qualityLevel=0.01, minDistance=7)
        if corners is None:
            return np.empty((0, 1, 2), np.float32)
        return np.asarray(corners, dtype=np.float32)

    def _untrackable(self) -> KeyframeDecision:
        self.frames_untrackable += 1
        return KeyframeDecision(False, float('nan'), 'untrackable')

    def _start_keyframe(self, grey: NDArray[np.uint8], corners: NDArray[np.float32]) -> None:
        self._pts_kf = corners
        self._pts_prev = corners.copy()
        self._num_kf_corners = int(corners.shape[0])
        self._prev_grey = grey
        self._gap = 0

    def _track(self, grey: NDArray[np.uint8]
               ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Track the last frame's corners into ``grey``: (positions now, at the keyframe)."""
        assert self._prev_grey is not None
        if self._pts_prev.shape[0] == 0 or self._prev_grey.shape != grey.shape:
            empty = np.empty((0, 1, 2), np.float32)
            return empty, empty
        tracked, status, _ = cv2.calcOpticalFlowPyrLK(
            self._prev_grey, grey, self._pts_prev, np.empty(0, np.float32),
            winSize=_LK_WINDOW, maxLevel=_LK_LEVELS, criteria=_LK_CRITERIA)
        # Forward-backward check: LK "converges" somewhere even on an unrelated image; a true
        # track leads back to where it started.
        back, status_back, _ = cv2.calcOpticalFlowPyrLK(
            grey, self._prev_grey, tracked, np.empty(0, np.float32),
            winSize=_LK_WINDOW, maxLevel=_LK_LEVELS, criteria=_LK_CRITERIA)
        round_trip = np.linalg.norm((back - self._pts_prev).reshape(-1, 2), axis=1)
        good = ((status.reshape(-1) == 1) & (status_back.reshape(-1) == 1)
                & (round_trip < _FB_MAX_PX))
        return tracked[good].astype(np.float32), self._pts_kf[good]

    def offer(self, image_rgb: NDArray[np.uint8]) -> KeyframeDecision:
        """
        Decide about the next frame of the stream (frames must be offered in order).

        :param image_rgb: uint8 (H, W, 3) RGB frame.
        :return: the decision; a keyframe decision also makes the frame the new reference, an
            ``untrackable`` one leaves the selector as it was.
        """
        grey = self._grey(image_rgb)
        if float(grey.std()) < _MIN_CONTRAST:
            return self._untrackable()
        if self._prev_grey is None:
            corners = self._corners(grey)
            if corners.shape[0] < _MIN_TRACKS:
                return self._untrackable()
            self._start_keyframe(grey, corners)
            return KeyframeDecision(True, float('nan'), 'first')
        cfg = self.config
        tracked, at_keyframe = self._track(grey)
        survivors = tracked.shape[0] / max(self._num_kf_corners, 1)
        new_corners: NDArray[np.float32] | None = None
        if survivors < _MIN_SURVIVORS:
            # Tracks lost: a new view (a keyframe) or a frame with nothing to track (skipped).
            new_corners = self._corners(grey)
            if new_corners.shape[0] < _MIN_TRACKS:
                return self._untrackable()
        self._gap += 1
        self._prev_grey, self._pts_prev, self._pts_kf = grey, tracked, at_keyframe
        if tracked.shape[0] > 0:
            parallax = float(np.median(np.linalg.norm((tracked - at_keyframe).reshape(-1, 2),
                                                      axis=1)))
        else:
            parallax = float('nan')
        if self._gap < cfg.min_gap:
            return KeyframeDecision(False, parallax, 'min_gap')
        if np.isfinite(parallax) and parallax < cfg.duplicate_px:
            return KeyframeDecision(False, parallax, 'duplicate')
        reason = ''
        if np.isfinite(parallax) and parallax >= cfg.min_parallax_px:
            reason = 'parallax'
        elif survivors < _MIN_SURVIVORS:
            reason = 'tracks_lost'
        elif self._gap >= cfg.max_gap:
            reason = 'max_gap'
        if not reason:
            return KeyframeDecision(False, parallax, 'small_parallax')
        corners = new_corners if new_corners is not None else self._corners(grey)
        if corners.shape[0] < _MIN_TRACKS:
            # Tracked from its neighbours, but too poor to be a reference itself.
            return KeyframeDecision(False, parallax, 'small_parallax')
        self._start_keyframe(grey, corners)
        return KeyframeDecision(True, parallax, reason)
