"""
Localization mode: a saved map is loaded, a second pass is placed in it, the map stays as it was.

The map is a lap of the synthetic room, saved as a map folder and loaded into a new mapper. The
second pass takes another path through the same room (20 cm aside, 10 cm lower, turned 10°,
twice the step): its keyframes must be placed close to the truth. A pass through another room
(``TwoWorldsPredictor``: the model relates frames of unrelated places almost at random) must
never be placed, even when every keyframe is verified.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vggt_mapper.engine import Mapper, MapperConfig
from vggt_mapper.engine.config import LocalizationConfig
from vggt_mapper.engine.errors import ConfigError, EngineError
from vggt_mapper.engine.localization import Localization
from vggt_mapper.engine.mapper import LOCALIZATION, MAPPING
from vggt_mapper.io.export import save_map_folder
from vggt_mapper.io.map_folder import read_map_folder
from vggt_mapper.synthetic import NOISE_LEVELS, SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.evaluation import (
    feed,
    frame_name,
    FRAME_PERIOD_NS,
    trajectory_error,
)
from vggt_mapper.synthetic.unrelated import TwoWorldsPredictor
from vggt_mapper.synthetic.world import Box, default_room, loop_path, orbit_path

LAP = loop_path(200, 1.15)  # a lap and a bit: the map closes its loop
SECOND_PASS_FRAMES = 100


def second_pass() -> np.ndarray:
    """Half a lap of the orbit on another path: aside, lower, turned, faster."""
    offset = np.eye(4)
    offset[:3, :3] = Rotation.from_euler('y', 10.0, degrees=True).as_matrix()
    offset[:3, 3] = [0.2, 0.1, 0.0]
    return orbit_path(SECOND_PASS_FRAMES, step_m=0.04) @ offset


def other_room() -> SyntheticSequence:
    room = dataclasses.replace(default_room(), texture_seed=11, objects=(
        Box((-1.0, 0.2, 2.0), (0.5, 1.2, 3.0)), Box((1.5, -0.5, -2.5), (2.5, 1.2, -1.5))))
    return SyntheticSequence(orbit_path(SECOND_PASS_FRAMES, step_m=0.04), room=room,
                             cache_renders=300)


def _config(**localization: object) -> MapperConfig:
    return MapperConfig(window_size=8, overlap=3,
                        localization=LocalizationConfig(**localization))  # type: ignore[arg-type]


@pytest.fixture(scope='module')
def room() -> SyntheticSequence:
    return SyntheticSequence(np.concatenate([LAP, second_pass()]), cache_renders=2000)


@pytest.fixture(scope='module')
def elsewhere() -> SyntheticSequence:
    return other_room()


@pytest.fixture(scope='module')
def predictor(room: SyntheticSequence, elsewhere: SyntheticSequence) -> TwoWorldsPredictor:
    return TwoWorldsPredictor(
        *(SyntheticPredictor(world, NOISE_LEVELS['default'], model_width=126,
                             noise_per_window=True) for world in (room, elsewhere)))


@pytest.fixture(scope='module')
def map_folder(room: SyntheticSequence, predictor: TwoWorldsPredictor,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp('localization') / 'map'
    with Mapper(_config(), predictor) as mapper:
        feed(mapper, room, stop=len(LAP))
        assert mapper.stats.loops_accepted >= 1
        with mapper.map_state() as state:
            save_map_folder(folder, state)
    return folder


def _localize(folder: Path, predictor: TwoWorldsPredictor, sequence: SyntheticSequence,
              frames: range, config: MapperConfig) -> tuple[list[Localization], Mapper]:
    mapper = Mapper(config, predictor)
    with read_map_folder(folder) as state:
        mapper.load_state(state)
    assert mapper.set_mode(LOCALIZATION) == []
    results = []
    for index in frames:
        result = mapper.localize_frame(sequence.frame(index), index * FRAME_PERIOD_NS,
                                       frame_name(index))
        if result is not None:
            results.append(result)
    return results, mapper


def test_a_second_pass_through_the_mapped_room_is_placed_close_to_the_truth(
        map_folder: Path, predictor: TwoWorldsPredictor, room: SyntheticSequence) -> None:
    results, mapper = _localize(map_folder, predictor, room,
                                range(len(LAP), len(room)), _config())
    with mapper:
        stats = mapper.stats
        gt_from_map = trajectory_error(mapper.trajectory(), room).gt_from_world
        assert stats.keyframes_mapped == len(mapper.store) == len(mapper.pose_graph)
    assert stats.keyframes_localized + stats.keyframes_not_localized == len(results) >= 25
    placed = [r for r in results if r.localized]
    assert len(placed) >= 0.9 * len(results), [r.reason for r in results if not r.localized]
    position_m, rotation_deg = [], []
    for result in placed:
        assert result.world_from_cam is not None and result.since_success_ns == 0
        truth = room.poses_world_from_cam[int(result.name[1:])]
        position = gt_from_map.apply(result.world_from_cam[:3, 3][None])[0]
        position_m.append(np.linalg.norm(position - truth[:3, 3]))
        rotation = gt_from_map.rotation @ result.world_from_cam[:3, :3]
        rotation_deg.append(np.degrees(Rotation.from_matrix(rotation.T @ truth[:3, :3])
                                       .magnitude()))
    # In a 6 × 7 m room, with the map's own error included.
    assert np.median(position_m) < 0.04 and np.percentile(position_m, 90) < 0.1
    assert np.median(rotation_deg) < 1.5


@pytest.mark.parametrize('min_similarity', [0.6, -1.0])
def test_a_pass_through_another_room_is_never_placed(
        map_folder: Path, predictor: TwoWorldsPredictor, elsewhere: SyntheticSequence,
        min_similarity: float) -> None:
    results, mapper = _localize(map_folder, predictor, elsewhere, range(len(elsewhere)),
                                _config(min_similarity=min_similarity))
    mapper.close()
    assert results and not any(r.localized for r in results)
    assert all(r.since_success_ns is None for r in results)
    if min_similarity < 0:
        # Every keyframe was shown to the model with map keyframes: verification refused them.
        assert all(r.candidates_tried >= 1 for r in results)
        assert all(r.reason.startswith(('covisibility', 'map side')) for r in results)


def test_modes_switch_at_runtime_and_localization_never_extends_the_map(
        map_folder: Path, predictor: TwoWorldsPredictor, room: SyntheticSequence) -> None:
    with read_map_folder(map_folder) as state, Mapper(_config(), predictor) as mapper:
        mapper.load_state(state)
        loaded = len(mapper.store)
        with pytest.raises(EngineError, match='localization mode'):
            mapper.localize_frame(room.frame(0), 0)
        with pytest.raises(ConfigError):
            mapper.set_mode('slam')
        # Keyframes selected for the map are mapped before localization starts.
        start = len(LAP)
        for index in range(start, start + 12):
            mapper.add_frame(room.frame(index), index * FRAME_PERIOD_NS, frame_name(index))
        pending = mapper.stats.pending_keyframes
        assert pending > 0
        flushed = mapper.set_mode(LOCALIZATION)
        assert flushed and mapper.stats.pending_keyframes == 0 and mapper.mode == LOCALIZATION
        mapped = len(mapper.store)
        assert mapped > loaded
        # In localization mode add_frame places keyframes and maps nothing.
        for index in range(start + 12, start + 40):
            assert mapper.add_frame(room.frame(index), index * FRAME_PERIOD_NS,
                                    frame_name(index)) == []
        assert mapper.last_localization is not None and mapper.last_localization.localized
        assert len(mapper.store) == mapped and mapper.stats.keyframes_localized >= 5
        # Back to mapping: a new segment, merged by loop closure when it meets the map.
        mapper.set_mode(MAPPING)
        assert mapper.last_localization is not None
        results = feed(mapper, room, start=start + 40)
        assert results[0].status == 'new_segment'
        assert {pose.segment for pose in mapper.trajectory()} == {0}
