"""
Loop closure end to end.

Revisits are verified and correct drift, look-alikes are rejected, a wrong loop cannot wreck
the map, and a lost segment merges back when the path revisits it.

Worlds and failures come from ``vggt_mapper.synthetic``: a loop path that returns to its start,
a corridor whose texture repeats every 2.4 m (alike to a place descriptor, never the same
place), and a predictor that fails three calls in a row in the middle of a run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from vggt_mapper.engine import Mapper, MapperConfig
from vggt_mapper.engine import mapper as mapper_module
from vggt_mapper.engine.config import GraphConfig, LoopConfig
from vggt_mapper.engine.loops import LoopDetector, LoopEdge, verify_loop
from vggt_mapper.engine.pose_graph import PoseGraphConfig
from vggt_mapper.engine.types import LoopOutcome
from vggt_mapper.geometry.sim3 import Sim3
from vggt_mapper.synthetic import NOISE_LEVELS, SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.evaluation import _frame_index, feed, trajectory_error
from vggt_mapper.synthetic.faults import FaultyPredictor, FooledByLookAlikes

MODEL_WIDTH = 126


def _config(**kwargs: object) -> MapperConfig:
    values: dict[str, object] = {'window_size': 8, 'overlap': 3}
    values.update(kwargs)
    return MapperConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope='module')
def loop_path() -> SyntheticSequence:
    # About 1.3 laps of 7.7 m: the last 30 % revisit the start.
    return SyntheticSequence.loop(frames_per_lap=200, laps=1.3, cache_renders=1500)


@pytest.fixture(scope='module')
def corridor() -> SyntheticSequence:
    return SyntheticSequence.corridor(300, step_m=0.03, cache_renders=800)


@contextmanager
def _mapped(sequence: SyntheticSequence, config: MapperConfig, preset: str = 'realistic',
            seed: int = 0) -> Iterator[Mapper]:
    # Noise per window: runs with and without loops map with the same odometry noise.
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS[preset], model_width=MODEL_WIDTH,
                                   seed=seed, noise_per_window=True)
    with Mapper(config, predictor) as mapper:
        feed(mapper, sequence)
        yield mapper


def test_revisits_are_verified_and_reduce_the_drift(loop_path: SyntheticSequence) -> None:
    errors = {}
    for loops in (False, True):
        with _mapped(loop_path, _config(loops=LoopConfig(enabled=loops))) as mapper:
            stats = mapper.stats
            errors[loops] = trajectory_error(mapper.trajectory(), loop_path).rmse
            if loops:
                assert stats.loops_accepted >= 1
                assert stats.verification_calls == stats.loop_candidates >= 1
                assert stats.loop_verdicts.get('inlier', 0) >= 1
    assert errors[True] < 0.75 * errors[False]


def test_an_accepted_loop_is_reported_with_its_correction(loop_path: SyntheticSequence) -> None:
    predictor = SyntheticPredictor(loop_path, NOISE_LEVELS['default'], model_width=MODEL_WIDTH)
    with Mapper(_config(), predictor) as mapper:
        results = feed(mapper, loop_path)
        accepted = [loop for r in results for loop in r.loops if loop.accepted]
        assert accepted
        loop = accepted[0]
        assert loop.candidate < loop.query - mapper.config.loops.exclusion_keyframes
        assert loop.covisible >= mapper.config.loops.min_covisible
        assert loop.correction is not None and loop.merged is None
        # Little drift at this noise level: the correction is close to the identity.
        assert abs(np.log(loop.correction.scale)) < 0.05
        assert any(r.corrected for r in results)


def _true_distance(sequence: SyntheticSequence, mapper: Mapper, loop: LoopOutcome) -> float:
    names = {pose.index: pose.name for pose in mapper.trajectory()}
    centres = [sequence.poses_world_from_cam[_frame_index(names[key])][:3, 3]
               for key in (loop.query, loop.candidate)]
    return float(np.linalg.norm(centres[0] - centres[1]))


def test_look_alike_places_taken_for_one_are_rejected_as_implausible_drift(
        corridor: SyntheticSequence) -> None:
    # The corridor repeats every 2.4 m (80 frames); nothing is ever revisited.
    predictor = FooledByLookAlikes(
        SyntheticPredictor(corridor, NOISE_LEVELS['default'], model_width=MODEL_WIDTH),
        period_frames=80)
    config = _config(loops=LoopConfig(min_similarity=0.5, exclusion_keyframes=10))
    with Mapper(config, predictor) as mapper:
        results = feed(mapper, corridor)
        loops = [loop for r in results for loop in r.loops]
        assert predictor.fooled >= 1 and len(loops) == predictor.fooled
        rejected = [loop for loop in loops if loop.reason.startswith('drift')]
        assert rejected, [loop.reason for loop in loops]
        # Whatever was accepted is a real (wide-baseline) view of the same surfaces: the
        # correction a fooled verification implies never reaches the map.
        for loop in loops:
            if loop.accepted:
                assert loop.correction is not None
                assert np.linalg.norm(loop.correction.translation) < 0.2


def _forced_false_loop(monkeypatch: pytest.MonkeyPatch) -> list[LoopOutcome]:
    """Make the first candidate pass, claiming query and candidate coincide; refuse others."""
    forced: list[LoopOutcome] = []

    def verify(query: int, candidate: int, similarity: float, source: object, *args: object
               ) -> LoopEdge | LoopOutcome:
        if forced:
            return LoopOutcome(query, candidate, similarity, False, 'test: only one loop')
        outcome = LoopOutcome(query, candidate, similarity, True, '', 1.0, Sim3.identity())
        forced.append(outcome)
        world_from_c = source.world_from_node(candidate)  # type: ignore[attr-defined]
        world_from_q = source.world_from_node(query)  # type: ignore[attr-defined]
        # "They are the same camera": the identity between the two camera frames.
        c_from_q = Sim3(world_from_q.scale / world_from_c.scale, np.eye(3), np.zeros(3))
        correction = world_from_c.compose(c_from_q).compose(world_from_q.inverse())
        return LoopEdge(outcome, c_from_q, correction, 0.01, 0.5)

    monkeypatch.setattr(mapper_module, 'verify_loop', verify)
    return forced


@pytest.mark.parametrize('kernel', ['cauchy', 'none'])
def test_a_false_loop_forced_through_verification_cannot_wreck_the_map(
        corridor: SyntheticSequence, monkeypatch: pytest.MonkeyPatch, kernel: str) -> None:
    config = _config(loops=LoopConfig(min_similarity=0.5, exclusion_keyframes=10))
    baseline = {}
    with _mapped(corridor, _config(loops=LoopConfig(enabled=False)), 'default') as mapper:
        baseline = {p.index: p.position_world for p in mapper.trajectory()}
    forced = _forced_false_loop(monkeypatch)
    graph = GraphConfig(solver=PoseGraphConfig(loop_kernel=kernel))  # type: ignore[arg-type]
    with _mapped(corridor, _config(loops=config.loops, graph=graph), 'default') as mapper:
        assert forced and mapper.stats.loops_accepted == 1
        moved = max(np.linalg.norm(p.position_world - baseline[p.index])
                    for p in mapper.trajectory())
        if kernel == 'cauchy':
            # The robust kernel ignores the loop: the map stays where the odometry put it.
            assert mapper.stats.loop_verdicts == {'ignored': 1}
            assert moved < 0.05
        else:
            # Trusted blindly, the same loop drags the corridor by metres.
            assert moved > 0.5


def test_a_lost_segment_is_mapped_and_merged_back_when_the_path_revisits(
        loop_path: SyntheticSequence) -> None:
    inner = SyntheticPredictor(loop_path, NOISE_LEVELS['default'], model_width=MODEL_WIDTH)
    # Three consecutive predictor calls fail in the first lap: the window, then both bridges.
    predictor = FaultyPredictor(inner, fail_on={4, 5, 6}, mode='raise')
    with Mapper(_config(), predictor) as mapper:
        results = feed(mapper, loop_path)
        stats = mapper.stats
        assert stats.segments_started == 2
        merges = [loop.merged for r in results for loop in r.loops if loop.merged]
        assert merges == [(0, 1)]
        assert stats.segments == 1
        assert stats.keyframes_mapped >= 0.95 * stats.keyframes
        poses = mapper.trajectory()
        assert {p.segment for p in poses} == {0}
        assert set(np.unique(mapper.map_snapshot().segments)) == {0}
        # One frame again: the merged segment is accurate as a whole.
        assert trajectory_error(poses, loop_path).rmse_percent < 1.0


def test_detector_excludes_recent_keyframes_and_cools_down() -> None:
    detector = LoopDetector(LoopConfig(exclusion_keyframes=5, cooldown_keyframes=2,
                                       min_similarity=0.5, candidates=3))
    rng = np.random.default_rng(0)
    place = rng.normal(size=16).astype(np.float32)
    place /= np.linalg.norm(place)
    for key in range(12):
        noisy = place + 0.05 * rng.normal(size=16).astype(np.float32)
        detector.add(key, noisy / np.linalg.norm(noisy))
    found = [key for key, _ in detector.propose(11, place)]
    assert found and all(key <= 6 for key in found)
    detector.remember_accepted(11, found[0])
    again = [key for key, _ in detector.propose(12, place)]
    assert all(abs(key - found[0]) > 2 for key in again)


def test_verification_rejects_two_places_that_do_not_see_each_other(
        loop_path: SyntheticSequence) -> None:
    # Opposite sides of the room: a model relates them with a wild guess (the stand-in's
    # overlap failure), which each side's own alignment cannot see; only covisibility can.
    predictor = SyntheticPredictor(loop_path, NOISE_LEVELS['realistic'],
                                   model_width=MODEL_WIDTH, noise_per_window=True)
    no_drift_bound = LoopConfig(max_drift_rel=100.0, max_drift_log_scale=100.0)
    with Mapper(_config(loops=LoopConfig(enabled=False)), predictor) as mapper:
        feed(mapper, loop_path, stop=120)
        keys = [pose.index for pose in mapper.trajectory()]
        source = mapper_module._MappedKeyframes(mapper)
        verdict = verify_loop(keys[-1], keys[1], 0.9, source,
                              lambda frames, _keys: predictor.predict(frames),
                              no_drift_bound)
        assert isinstance(verdict, LoopOutcome) and not verdict.accepted
        assert verdict.reason.startswith('covisibility'), verdict.reason
        assert verdict.covisible < 0.1


def test_the_exclusion_hides_recent_keyframes_of_the_query_segment_only() -> None:
    # Keys 0-9 are a loaded map (segment 0), 10-14 a new recording (segment 1) of one place.
    detector = LoopDetector(LoopConfig(exclusion_keyframes=8, min_similarity=0.5, candidates=20))
    place = np.ones(16, np.float32) / 4.0
    for key in range(14):
        detector.add(key, place)
    segment_of = {key: 0 if key < 10 else 1 for key in range(15)}.__getitem__
    found = {key for key, _ in detector.propose(14, place, segment_of)}
    assert found == set(range(10))  # every map keyframe; none of its own recent ones
    without_segments = {key for key, _ in detector.propose(14, place)}
    assert without_segments == set(range(7))
