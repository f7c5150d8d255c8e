"""
Map folders: a mapped run saved, loaded again, continued; damaged or foreign folders refused.

The run maps the first lap of a synthetic loop and saves it (``save_map_folder``); a new mapper
loads it (``read_map_folder`` + ``Mapper.load_state``) and maps the rest of the recording, which
comes back to the start: a new segment that loop closure merges into the loaded map.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import shutil

import numpy as np
import pytest

from vggt_mapper.engine import Mapper, MapperConfig
from vggt_mapper.engine.errors import MapStateError
from vggt_mapper.engine.places import GradientGridDescriber
from vggt_mapper.engine.types import KeyframePose
from vggt_mapper.io import export
from vggt_mapper.io.errors import ExportError, MapFolderError
from vggt_mapper.io.export import save_map_folder
from vggt_mapper.io.map_folder import MAP_STATE_FORMAT, read_map_folder
from vggt_mapper.synthetic import NOISE_LEVELS, SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.evaluation import feed, trajectory_error

FIRST_PART = 150  # frames of the saved run; the rest of the loop returns to its start


def _config() -> MapperConfig:
    return MapperConfig(window_size=8, overlap=3)


@pytest.fixture(scope='module')
def loop() -> SyntheticSequence:
    return SyntheticSequence.loop(frames_per_lap=200, laps=1.3, cache_renders=1500)


@pytest.fixture(scope='module')
def predictor(loop: SyntheticSequence) -> SyntheticPredictor:
    return SyntheticPredictor(loop, NOISE_LEVELS['default'], model_width=126)


@pytest.fixture(scope='module')
def saved(loop: SyntheticSequence, predictor: SyntheticPredictor,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[KeyframePose]]:
    folder = tmp_path_factory.mktemp('maps') / 'first'
    with Mapper(_config(), predictor) as mapper:
        feed(mapper, loop, stop=FIRST_PART)
        with mapper.map_state() as state:
            save_map_folder(folder, state)
        return folder, mapper.trajectory()


@pytest.fixture
def loaded(saved: tuple[Path, list[KeyframePose]], predictor: SyntheticPredictor
           ) -> Iterator[Mapper]:
    with read_map_folder(saved[0]) as state, Mapper(_config(), predictor) as mapper:
        mapper.load_state(state)
        yield mapper


def _copy(saved: tuple[Path, list[KeyframePose]], tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved[0], tmp_path / 'copy'))


def test_a_map_folder_holds_the_exports_and_the_map_state(
        saved: tuple[Path, list[KeyframePose]]) -> None:
    folder, trajectory = saved
    names = sorted(p.name for p in folder.iterdir())
    assert names == ['cameras.json', 'map.glb', 'map.ply', 'map_state', 'trajectory.tum']
    manifest = json.loads((folder / 'map_state' / 'manifest.json').read_text())
    assert manifest['format'] == MAP_STATE_FORMAT
    assert manifest['keyframes'] == len(trajectory)
    assert manifest['descriptor_space'] == GradientGridDescriber.name
    assert len(list((folder / 'map_state' / 'images').iterdir())) == len(trajectory)


def test_a_loaded_map_is_the_saved_one(saved: tuple[Path, list[KeyframePose]],
                                       loaded: Mapper, predictor: SyntheticPredictor) -> None:
    _, trajectory = saved
    again = loaded.trajectory()
    assert [p.index for p in again] == [p.index for p in trajectory]
    assert [p.name for p in again] == [p.name for p in trajectory]
    for before, after in zip(trajectory, again, strict=True):
        np.testing.assert_array_equal(after.world_from_cam, before.world_from_cam)
        np.testing.assert_array_equal(after.intrinsics, before.intrinsics)
        assert after.segment == before.segment
    stats = loaded.stats
    assert stats.keyframes_mapped == len(trajectory) and stats.map_points > 10_000
    # The keyframes' images come back pixel for pixel (lossless PNG), so the model can be shown
    # them again (loop verification, relocalization).
    image = loaded.store.image(trajectory[3].index)
    assert predictor.sequence.index_of(image) == int(trajectory[3].name[1:])


def test_mapping_continues_in_a_loaded_map_and_merges_into_it_when_it_revisits(
        saved: tuple[Path, list[KeyframePose]], loaded: Mapper,
        loop: SyntheticSequence) -> None:
    _, trajectory = saved
    results = feed(loaded, loop, start=FIRST_PART)
    new = [p for p in loaded.trajectory() if p.index > trajectory[-1].index]
    assert new and len(loaded.trajectory()) == len(trajectory) + len(new)
    assert results[0].status == 'new_segment'  # the loaded map is where the camera was
    merges = [loop.merged for r in results for loop in r.loops if loop.merged]
    assert merges == [(0, 1)]
    poses = loaded.trajectory()
    assert {p.segment for p in poses} == {0}
    # The loaded keyframes kept their frame: the new ones were carried into it.
    np.testing.assert_allclose(poses[0].world_from_cam, trajectory[0].world_from_cam,
                               atol=1e-6)
    assert trajectory_error(poses, loop).rmse_percent < 1.0


@pytest.mark.parametrize(('damage', 'message'), [
    ('format', "format 'vggt_mapper.map_state/2'; this vggt_mapper reads"),
    ('cloud_byte', 'clouds.bin'),
    ('cut_image', 'damaged'),
    ('missing_graph', 'is missing'),
    ('no_state', 'is not a map folder'),
])
def test_a_damaged_or_foreign_folder_is_refused_with_what_is_wrong(
        saved: tuple[Path, list[KeyframePose]], tmp_path: Path, damage: str,
        message: str) -> None:
    folder = _copy(saved, tmp_path)
    state = folder / 'map_state'
    if damage == 'format':
        manifest = json.loads((state / 'manifest.json').read_text())
        manifest['format'] = 'vggt_mapper.map_state/2'
        (state / 'manifest.json').write_text(json.dumps(manifest))
    elif damage == 'cloud_byte':
        data = bytearray((state / 'clouds.bin').read_bytes())
        data[len(data) // 2] ^= 0x40
        (state / 'clouds.bin').write_bytes(bytes(data))
    elif damage == 'cut_image':
        image = sorted((state / 'images').iterdir())[5]
        image.write_bytes(image.read_bytes()[:100])
    elif damage == 'missing_graph':
        (state / 'graph.npz').unlink()
    else:
        shutil.rmtree(state)
    with pytest.raises(MapFolderError, match=message.replace('(', r'\(').replace(
            '.', r'\.')):
        read_map_folder(folder)


def _rehash(state_dir: Path, name: str) -> None:
    """Make the manifest match a file again (a writer bug, not a damaged disk)."""
    from vggt_mapper.io.map_folder import _sha256

    manifest = json.loads((state_dir / 'manifest.json').read_text())
    path = state_dir / name
    manifest['files'][name] = {'bytes': path.stat().st_size, 'sha256': _sha256(path)}
    (state_dir / 'manifest.json').write_text(json.dumps(manifest))


def test_a_state_that_does_not_fit_is_refused_and_the_current_map_kept(
        saved: tuple[Path, list[KeyframePose]], loaded: Mapper, tmp_path: Path) -> None:
    folder = _copy(saved, tmp_path)
    graph_path = folder / 'map_state' / 'graph.npz'
    with np.load(graph_path) as data:
        arrays = dict(data)
    arrays['node_rotation'][7] *= 1.5  # not a rotation: a consistent file of a broken writer
    with open(graph_path, 'wb') as stream:
        np.savez(stream, **arrays)
    _rehash(folder / 'map_state', 'graph.npz')
    before = loaded.trajectory()
    loaded.add_frame(np.zeros((120, 160, 3), np.uint8), 1)  # frames counted before the load
    with read_map_folder(folder) as state, pytest.raises(MapStateError, match='not a rotation'):
        loaded.load_state(state)
    after = loaded.trajectory()
    assert [p.index for p in after] == [p.index for p in before]
    assert loaded.stats.frames_seen == 1 and loaded.stats.map_points > 10_000


class OtherDescriber(GradientGridDescriber):
    name = 'another-describer'


def test_a_map_described_in_another_space_is_refused(
        saved: tuple[Path, list[KeyframePose]], predictor: SyntheticPredictor) -> None:
    with read_map_folder(saved[0]) as state, \
            Mapper(_config(), predictor, describer=OtherDescriber()) as mapper:
        with pytest.raises(MapStateError, match='pass the same place describer'):
            mapper.load_state(state)
        assert mapper.stats.keyframes_mapped == 0


def test_a_save_that_fails_half_way_leaves_the_previous_map_folder(
        saved: tuple[Path, list[KeyframePose]], loaded: Mapper, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _copy(saved, tmp_path)
    manifest = (folder / 'map_state' / 'manifest.json').read_bytes()

    def broken_colmap(path: Path, state: object) -> None:
        raise ExportError('disk full (test)')

    monkeypatch.setattr('vggt_mapper.io.colmap.write_colmap', broken_colmap)
    loaded.add_frame(np.zeros((120, 160, 3), np.uint8), 1)
    with loaded.map_state() as state, pytest.raises(ExportError, match='disk full'):
        export.save_map_folder(folder, state, overwrite=True, colmap=True)
    assert (folder / 'map_state' / 'manifest.json').read_bytes() == manifest
    with read_map_folder(folder) as state:
        assert len(state.records) == len(saved[1])


def test_a_calibrated_map_keeps_which_k_was_known(loop: SyntheticSequence,
                                                  predictor: SyntheticPredictor,
                                                  tmp_path: Path) -> None:
    with Mapper(_config(), predictor) as mapper:
        feed(mapper, loop, stop=40, known_intrinsics=True)
        with mapper.map_state() as state:
            save_map_folder(tmp_path / 'calibrated', state)
        before = mapper.trajectory()
    assert all(pose.intrinsics_source == 'known' for pose in before)
    with read_map_folder(tmp_path / 'calibrated') as state, \
            Mapper(_config(), predictor) as again:
        again.load_state(state)
        after = again.trajectory()
    for old, new in zip(before, after, strict=True):
        assert new.intrinsics_source == 'known'
        np.testing.assert_array_equal(new.intrinsics_predicted, old.intrinsics_predicted)
