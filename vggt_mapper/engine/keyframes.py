"""Keyframe selection by parallax: corners tracked with pyramidal Lucas-Kanade optical flow."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.config import KeyframeConfig

__all__ = ['KeyframeDecision', 'KeyframeSelector']

# Below this many corners a keyframe is "textureless": parallax falls back to image difference.
_MIN_TRACKS = 8
# A keyframe is also made when fewer than this fraction of its corners survive tracking.
_MIN_SURVIVORS = 0.3
# Mean absolute grey-level difference under which a textureless frame is a duplicate.
_DUPLICATE_GREY = 1.0
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
        ``duplicate`` or ``small_parallax``.
    """

    is_keyframe: bool
    parallax_px: float
    reason: str


class KeyframeSelector:
    """
    Decides, frame by frame, which frames are keyframes.

    Corners (``cv2.goodFeaturesToTrack``) are detected in each keyframe on a downscaled grey
    image and tracked frame to frame (``cv2.calcOpticalFlowPyrLK``). A frame becomes a keyframe
    when the median corner displacement since the last keyframe reaches ``min_parallax_px``,
    when most corners are lost, or at ``max_gap`` frames — but never while it is a
    near-duplicate (parallax below ``duplicate_px``), so a still camera sends nothing to the
    model. No keyframe is made within ``min_gap`` frames of the last one.

    :param config: the keyframe settings.
    """

    def __init__(self, config: KeyframeConfig) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget the last keyframe; the next frame offered becomes a keyframe."""
        self._prev_grey: NDArray[np.uint8] | None = None
        self._kf_grey: NDArray[np.uint8] | None = None
        self._pts_prev: NDArray[np.float32] = np.empty((0, 1, 2), np.float32)
        self._pts_kf: NDArray[np.float32] = np.empty((0, 1, 2), np.float32)
        self._num_kf_corners = 0
        self._gap = 0

    def _grey(self, image_rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
        grey = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
        width = grey.shape[1]
        if width > self.config.track_width:
            height = max(int(round(grey.shape[0] * self.config.track_width / width)), 1)
            grey = cv2.resize(grey, (self.config.track_width, height),
                              interpolation=cv2.INTER_AREA)
        return np.asarray(grey, dtype=np.uint8)

    def _start_keyframe(self, grey: NDArray[np.uint8]) -> None:
        corners = cv2.goodFeaturesToTrack(grey, maxCorners=self.config.max_corners,
                                          qualityLevel=0.01, minDistance=7)
        if corners is None:
            corners = np.empty((0, 1, 2), np.float32)
        self._pts_kf = corners.astype(np.float32)
        self._pts_prev = self._pts_kf.copy()
        self._num_kf_corners = int(corners.shape[0])
        self._kf_grey = grey
        self._prev_grey = grey
        self._gap = 0

    def offer(self, image_rgb: NDArray[np.uint8]) -> KeyframeDecision:
        """
        Decide about the next frame of the stream (frames must be offered in order).

        :param image_rgb: uint8 (H, W, 3) RGB frame.
        :return: the decision; a keyframe decision also makes the frame the new reference.
        """
        grey = self._grey(image_rgb)
        if self._prev_grey is None or self._kf_grey is None:
            self._start_keyframe(grey)
            return KeyframeDecision(True, float('nan'), 'first')
        self._gap += 1
        cfg = self.config
        survivors = 1.0
        if self._num_kf_corners >= _MIN_TRACKS:
            if self._pts_prev.shape[0] > 0:
                tracked, status, _ = cv2.calcOpticalFlowPyrLK(
                    self._prev_grey, grey, self._pts_prev, np.empty(0, np.float32),
                    winSize=_LK_WINDOW, maxLevel=_LK_LEVELS, criteria=_LK_CRITERIA)
                # Forward-backward check: LK "converges" somewhere even on an unrelated image;
                # a true track leads back to where it started.
                back, status_back, _ = cv2.calcOpticalFlowPyrLK(
                    grey, self._prev_grey, tracked, np.empty(0, np.float32),
                    winSize=_LK_WINDOW, maxLevel=_LK_LEVELS, criteria=_LK_CRITERIA)
                round_trip = np.linalg.norm((back - self._pts_prev).reshape(-1, 2), axis=1)
                good = ((status.reshape(-1) == 1) & (status_back.reshape(-1) == 1)
                        & (round_trip < _FB_MAX_PX))
                self._pts_prev = tracked[good].astype(np.float32)
                self._pts_kf = self._pts_kf[good]
            survivors = self._pts_prev.shape[0] / self._num_kf_corners
            if self._pts_prev.shape[0] > 0:
                shift = np.linalg.norm((self._pts_prev - self._pts_kf).reshape(-1, 2), axis=1)
                parallax = float(np.median(shift))
            else:
                parallax = float('nan')
            duplicate = bool(parallax < cfg.duplicate_px) if np.isfinite(parallax) else False
        else:
            # Textureless keyframe: no corners to track; compare grey levels instead.
            parallax = float('nan')
            if grey.shape == self._kf_grey.shape:
                difference = float(np.mean(cv2.absdiff(grey, self._kf_grey)))
            else:
                difference = float('inf')
            duplicate = difference < _DUPLICATE_GREY
        self._prev_grey = grey
        if self._gap < cfg.min_gap:
            return KeyframeDecision(False, parallax, 'min_gap')
        if duplicate:
            return KeyframeDecision(False, parallax, 'duplicate')
        reason = ''
        if np.isfinite(parallax) and parallax >= cfg.min_parallax_px:
            reason = 'parallax'
        elif self._num_kf_corners >= _MIN_TRACKS and survivors < _MIN_SURVIVORS:
            reason = 'tracks_lost'
        elif self._gap >= cfg.max_gap:
            reason = 'max_gap'
        if not reason:
            return KeyframeDecision(False, parallax, 'small_parallax')
        self._start_keyframe(grey)
        return KeyframeDecision(True, parallax, reason)
