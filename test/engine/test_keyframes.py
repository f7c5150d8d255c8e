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


def test_textureless_frames_fall_back_to_grey_difference() -> None:
    selector = KeyframeSelector(KeyframeConfig(max_gap=3))
    flat = np.full((120, 160, 3), 90, np.uint8)
    assert selector.offer(flat).reason == 'first'
    assert [selector.offer(flat).reason for _ in range(5)] == ['duplicate'] * 5
    brighter = np.full((120, 160, 3), 140, np.uint8)
    reasons = [selector.offer(brighter).reason for _ in range(3)]
    # Different and past max_gap: forced; then the new keyframe's copies are duplicates.
    assert reasons == ['max_gap', 'duplicate', 'duplicate']


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
