"""Tests of keyframe selection by optical-flow parallax."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_mapper.engine.config import KeyframeConfig
from vggt_mapper.engine.keyframes import KeyframeSelector
from vggt_mapper.synthetic import SyntheticSequence


def _decide(selector: KeyframeSelector, sequence: SyntheticSequence) -> list[str]:
    return [selector.offer(sequence.frame(i)).reason for i in range(len(sequence))]


def test_static_camera_makes_no_new_keyframes() -> None:
    sequence = SyntheticSequence.orbit(40, static_frames=40)
    reasons = _decide(KeyframeSelector(KeyframeConfig(max_gap=5)), sequence)
    assert reasons[0] == 'first'
    # Even past max_gap a near-duplicate never becomes a keyframe.
    assert set(reasons[1:]) == {'duplicate'}


def test_moving_camera_makes_parallax_keyframes() -> None:
    sequence = SyntheticSequence.orbit(60, step_m=0.03)
    reasons = _decide(KeyframeSelector(KeyframeConfig(min_parallax_px=10.0)), sequence)
    keyframes = [i for i, r in enumerate(reasons) if r in ('first', 'parallax', 'tracks_lost')]
    assert len(keyframes) >= 5
    assert 'parallax' in reasons
    # Frames between keyframes are not keyframes.
    assert len(keyframes) < 40


def test_max_gap_forces_a_keyframe_on_slow_motion() -> None:
    sequence = SyntheticSequence.orbit(40, step_m=0.004)
    config = KeyframeConfig(min_parallax_px=50.0, max_gap=10, duplicate_px=0.2)
    reasons = _decide(KeyframeSelector(config), sequence)
    forced = [i for i, r in enumerate(reasons) if r == 'max_gap']
    assert forced[:3] == [10, 20, 30]


def test_min_gap_holds_keyframes_back() -> None:
    sequence = SyntheticSequence.orbit(30, step_m=0.06)
    config = KeyframeConfig(min_parallax_px=2.0, min_gap=4, max_gap=30)
    reasons = _decide(KeyframeSelector(config), sequence)
    keyframes = [i for i, r in enumerate(reasons) if r != 'min_gap' and r != 'small_parallax'
                 and r != 'duplicate']
    assert np.all(np.diff(keyframes) >= 4)
    assert 'min_gap' in reasons


def _every_frame_a_keyframe() -> KeyframeSelector:
    """Make a selector that makes every trackable frame a keyframe (parallax test off)."""
    return KeyframeSelector(KeyframeConfig(min_parallax_px=0.0, duplicate_px=0.0, max_gap=10))


def _blank(image: np.ndarray, value: int) -> np.ndarray:
    return np.full_like(image, value)


@pytest.mark.parametrize('value', [128, 255, 0])  # grey, over-exposed, black
def test_one_blank_frame_does_not_stop_keyframing(value: int) -> None:
    sequence = SyntheticSequence.orbit(41, step_m=0.01)
    frames = [sequence.frame(i) for i in range(41)]
    frames[20] = _blank(frames[20], value)
    selector = _every_frame_a_keyframe()

    decisions = [selector.offer(frame) for frame in frames]

    # The blank frame is not a keyframe; the next frame is compared against the last
    # trackable keyframe (frame 19) and keyframing goes on: 40 keyframes from 40 good frames.
    assert decisions[20].reason == 'untrackable' and not decisions[20].is_keyframe
    assert [i for i, d in enumerate(decisions) if d.is_keyframe] == [
        i for i in range(41) if i != 20]
    assert selector.frames_untrackable == 1


def test_blank_frames_before_the_first_trackable_one_are_counted() -> None:
    sequence = SyntheticSequence.orbit(3, step_m=0.02)
    noise = np.random.default_rng(0).integers(3, 6, sequence.frame(0).shape, dtype=np.uint8)
    selector = KeyframeSelector(KeyframeConfig())

    reasons = [selector.offer(frame).reason for frame in
               (_blank(sequence.frame(0), 90), noise, sequence.frame(0), sequence.frame(1))]

    # A lens cap's faint noise has corners but no contrast: not a camera view either.
    assert reasons[:3] == ['untrackable', 'untrackable', 'first']
    assert selector.frames_untrackable == 2
    selector.reset()
    assert selector.frames_untrackable == 0


def test_untrackable_frames_never_become_keyframes_even_at_max_gap() -> None:
    sequence = SyntheticSequence.orbit(2, step_m=0.02)
    selector = KeyframeSelector(KeyframeConfig(max_gap=3))
    assert selector.offer(sequence.frame(0)).reason == 'first'
    flat = _blank(sequence.frame(0), 200)

    reasons = [selector.offer(flat).reason for _ in range(6)]

    assert reasons == ['untrackable'] * 6
    assert selector.frames_untrackable == 6


@pytest.mark.parametrize('width', [640, 160])
def test_tracking_resolution_is_capped(width: int) -> None:
    selector = KeyframeSelector(KeyframeConfig(track_width=320))
    grey = selector._grey(np.zeros((width * 3 // 4, width, 3), np.uint8))
    assert grey.shape[1] == min(width, 320)


def test_losing_the_tracks_makes_a_keyframe() -> None:
    sequence = SyntheticSequence.orbit(3, step_m=0.03)
    selector = KeyframeSelector(KeyframeConfig(min_parallax_px=1000.0, max_gap=100))
    assert selector.offer(sequence.frame(0)).reason == 'first'
    # The view changes completely (a different part of the room): the corners are gone.
    other = SyntheticSequence.orbit(200, step_m=0.03).frame(150)
    decision = selector.offer(other)
    assert decision.is_keyframe and decision.reason in ('tracks_lost', 'parallax')
