"""A smaller first window: a live map after fewer keyframes, full windows afterwards."""

from __future__ import annotations

import pytest

from vggt_mapper.engine import Mapper, MapperConfig
from vggt_mapper.engine.config import KeyframeConfig
from vggt_mapper.engine.errors import ConfigError
from vggt_mapper.synthetic import SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.evaluation import feed

EASY_KEYFRAMES = KeyframeConfig(min_parallax_px=2.0)


@pytest.fixture(scope='module')
def sequence() -> SyntheticSequence:
    return SyntheticSequence.orbit(24, step_m=0.05, height=60, width=80)


def test_the_first_window_completes_after_first_window_size_keyframes(
        sequence: SyntheticSequence) -> None:
    config = MapperConfig(window_size=8, overlap=3, first_window_size=4,
                          keyframes=EASY_KEYFRAMES)
    with Mapper(config, SyntheticPredictor(sequence, model_width=84)) as mapper:
        results = feed(mapper, sequence, flush=False)
        assert mapper.stats.keyframes >= 12
    assert all(result.accepted for result in results)
    first, second = results[0], results[1]
    assert first.keyframe_indices == (0, 1, 2, 3)
    # Then full windows: the first window's last 3 keyframes as anchors, 5 new ones.
    assert second.keyframe_indices == tuple(range(1, 9))


def test_without_it_the_first_window_is_a_full_one(sequence: SyntheticSequence) -> None:
    with Mapper(MapperConfig(window_size=8, overlap=3, keyframes=EASY_KEYFRAMES),
                SyntheticPredictor(sequence, model_width=84)) as mapper:
        results = feed(mapper, sequence, flush=False)
    assert results[0].keyframe_indices == tuple(range(8))


@pytest.mark.parametrize('first', [3, 9])
def test_first_window_size_must_exceed_the_overlap_and_fit_a_window(first: int) -> None:
    with pytest.raises(ConfigError, match=r'first_window_size must be .* = \[4, 8\]'):
        MapperConfig(window_size=8, overlap=3, first_window_size=first)
