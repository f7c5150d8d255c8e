"""
What a batch maps and where, decided before Ray starts: inputs, names, options, done markers.

A worker's job (``MappingWorker.map_recording``) runs here in-process, without Ray: staging
folder, done marker, one rename.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from vggt_mapper.cli.batch import map_recording, recording_options
from vggt_mapper.cli.entry_points import build_parser
from vggt_mapper.cluster.batch import (
    BatchJob,
    format_table,
    MappingWorker,
    plan_batch,
    PredictorCache,
    RecordingResult,
    Status,
)
from vggt_mapper.cluster.errors import BatchInputError, RecordingFailed
from vggt_mapper.cluster.recordings import (
    DONE_MARKER,
    expand_inputs,
    publish,
    read_done_marker,
    Recording,
    STATE_DIR,
    unique_names,
)
from vggt_mapper.predictor.factory import PredictorSpec

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _fakes_importable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.syspath_prepend(str(HERE.parent / 'cli'))
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setenv('VGGT_TEST_STATE', str(tmp_path))


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    import cluster_fakes

    root = tmp_path / 'fleet'
    root.mkdir()
    return cluster_fakes.write_recordings(root)


def batch_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(['batch', 'unused', '-o', 'unused', *argv])


def test_a_manifest_lists_recordings_with_their_own_options(fleet: Path) -> None:
    recordings = expand_inputs([str(fleet)])

    assert [recording.name for recording in recordings] == [
        'walk0', 'walk1', 'walk2', 'bag0', 'bag1', 'broken']
    assert recordings[3].source == fleet.parent / 'bags' / 'bag0'
    assert recordings[3].options == ('--topic', '/camera/image_raw')
    assert recordings[3].origin == 'fleet.txt:5'
    assert recordings[0].options == ()


def test_a_folder_of_recordings_gives_its_bags_folders_and_videos(
        tmp_path: Path, fleet: Path) -> None:
    bags = fleet.parent / 'bags'
    (bags / 'notes.md').write_text('not a recording')
    (bags / 'clip.mp4').write_bytes(b'')  # a video by its name; the map run reads it

    names = [recording.name for recording in expand_inputs([str(bags)])]

    assert names == ['bag0', 'bag1', 'broken', 'clip']
    # A folder of images is one recording, not a folder of recordings.
    assert [r.name for r in expand_inputs([str(fleet.parent / 'folders' / 'walk1')])] == [
        'walk1']


def test_globs_expand_in_natural_order_and_a_recording_listed_twice_maps_once(
        fleet: Path) -> None:
    folders = fleet.parent / 'folders'

    recordings = expand_inputs([str(folders / 'walk*'), str(folders / 'walk0')])

    assert [recording.name for recording in recordings] == ['walk0', 'walk1', 'walk2']


def test_inputs_that_cannot_be_recordings_are_refused_with_what_is_wrong(
        tmp_path: Path, fleet: Path) -> None:
    empty = tmp_path / 'empty'
    empty.mkdir()
    bad_line = tmp_path / 'bad.txt'
    bad_line.write_text('--every 2 folders/walk0\n')
    twice = tmp_path / 'twice.txt'
    twice.write_text(f'{fleet.parent}/folders/walk0 --every 2\n'
                     f'{fleet.parent}/folders/walk0 --every 3\n')

    cases = {str(tmp_path / 'missing'): 'does not exist',
             str(tmp_path / 'nothing*'): 'matches nothing',
             str(empty): 'holds no recording',
             str(bad_line): 'bad.txt:1: a line starts with the input path',
             str(twice): 'listed twice with different options'}
    for text, message in cases.items():
        with pytest.raises(BatchInputError, match=message):
            expand_inputs([text])


def test_names_take_parent_folders_until_they_differ(tmp_path: Path) -> None:
    paths = [tmp_path / 'robot1' / 'day1', tmp_path / 'robot2' / 'day1',
             tmp_path / 'robot2' / 'day 2']

    assert unique_names(paths) == ['robot1_day1', 'robot2_day1', 'day_2']


def test_a_manifest_line_overrides_the_command_line_and_is_checked_like_map(
        fleet: Path) -> None:
    args = batch_args('--window-size', '6', '--no-loops', '--every', '2')
    line = Recording('walk0', fleet.parent / 'folders' / 'walk0',
                     ('--every', '3', '--loops'), 'fleet.txt:2')

    options = recording_options(args, line)

    assert (options.window_size, options.every, options.loops) == (6, 3, True)
    assert not hasattr(options, 'ray_address')  # batch options stay with the batch
    bad = [(('--window-size', 'six'), "fleet.txt:2 .*--window-size: invalid int value: 'six'"),
           (('--no-such-option',), 'not a map option: --no-such-option'),
           (('--overlap', '9'), r'--overlap must be in \[1, --window-size - 1\]')]
    for tokens, message in bad:
        with pytest.raises(BatchInputError, match=message):
            recording_options(args, Recording('walk0', line.source, tokens, 'fleet.txt:2'))


def _job(recording_dir: Path, *options: str) -> BatchJob:
    import cluster_fakes

    recording = Recording(recording_dir.name, recording_dir)
    return BatchJob(recording, recording_options(batch_args(*cluster_fakes.MAP_OPTIONS,
                                                            *options), recording))


def test_a_worker_publishes_a_folder_whose_done_marker_came_last(fleet: Path,
                                                                 tmp_path: Path) -> None:
    from vggt_mapper.cli.map import build_predictor

    outroot = tmp_path / 'out'
    worker = MappingWorker(map_recording, build_predictor)
    job = _job(fleet.parent / 'folders' / 'walk0')

    result = worker.map_recording(job, outroot, attempt=1, overwrite=False)

    assert result.status == Status.DONE and result.keyframes >= 3 and result.frames == 10
    final = outroot / 'walk0'
    marker = read_done_marker(final)
    assert marker is not None and marker['input'] == str(job.recording.source.resolve())
    marker_mtime = (final / DONE_MARKER).stat().st_mtime_ns
    assert all(path.stat().st_mtime_ns <= marker_mtime for path in final.iterdir())
    assert sorted(path.name for path in final.iterdir()) == [
        'batch_done.json', 'cameras.json', 'map.glb', 'map.pgm', 'map.ply', 'map.yaml',
        'map_state', 'map_stats.json', 'trajectory.tum']
    assert list((outroot / STATE_DIR / 'staging').iterdir()) == []
    assert 'Mapped ' in (outroot / STATE_DIR / 'logs' / 'walk0.log').read_text()


def test_a_failed_recording_leaves_no_folder_and_says_whether_to_retry(
        fleet: Path, tmp_path: Path) -> None:
    from vggt_mapper.cli.map import build_predictor

    outroot = tmp_path / 'out'
    worker = MappingWorker(map_recording, build_predictor)

    broken = worker.map_recording(_job(fleet.parent / 'bags' / 'broken'), outroot, 1, False)
    dying = worker.map_recording(_job(fleet.parent / 'folders' / 'walk1', '--predictor',
                                      'cli_fakes:BrokenPredictor'), outroot, 1, False)

    assert broken.status == Status.FAILED and not broken.retryable
    assert 'cannot open rosbag2' in broken.error
    # A predictor that fails window after window is worth another attempt (a server gone).
    assert dying.status == Status.FAILED and dying.retryable
    assert sorted(path.name for path in outroot.iterdir()) == [STATE_DIR]
    assert 'FAILED: ' in (outroot / STATE_DIR / 'logs' / 'broken.log').read_text()


def test_no_folder_appears_when_the_done_marker_cannot_be_written(
        fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vggt_mapper.cli.map import build_predictor
    from vggt_mapper.cluster import batch
    from vggt_mapper.io.errors import ExportError

    def disk_full(folder: Path, content: object) -> Path:
        raise ExportError('No space left on device')

    monkeypatch.setattr(batch, 'write_done_marker', disk_full)
    worker = MappingWorker(map_recording, build_predictor)

    with pytest.raises(ExportError):
        worker.map_recording(_job(fleet.parent / 'folders' / 'walk0'), tmp_path / 'out', 1,
                             False)

    assert sorted(path.name for path in (tmp_path / 'out').iterdir()) == [STATE_DIR]


def test_a_bug_in_a_recording_is_logged_with_its_traceback_and_raised(
        fleet: Path, tmp_path: Path) -> None:
    def buggy(recording: Recording, outdir: Path, options: object, create: object) -> None:
        outdir.mkdir(parents=True)
        (outdir / 'map.ply').write_text('half')
        raise ZeroDivisionError('a bug')

    worker = MappingWorker(buggy, lambda spec: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(ZeroDivisionError):
        worker.map_recording(_job(fleet.parent / 'folders' / 'walk0'), tmp_path / 'out', 1,
                             False)

    log = (tmp_path / 'out' / STATE_DIR / 'logs' / 'walk0.log').read_text()
    assert 'Traceback' in log and 'ZeroDivisionError: a bug' in log
    assert not (tmp_path / 'out' / 'walk0').exists()
    assert list((tmp_path / 'out' / STATE_DIR / 'staging').iterdir()) == []


def test_the_plan_skips_finished_recordings_and_refuses_foreign_folders(
        fleet: Path, tmp_path: Path) -> None:
    from vggt_mapper.cli.map import build_predictor

    outroot = tmp_path / 'out'
    walk0, walk1, walk2 = (_job(fleet.parent / 'folders' / f'walk{i}') for i in range(3))
    MappingWorker(map_recording, build_predictor).map_recording(walk0, outroot, 1, False)
    (outroot / 'walk1').mkdir()  # a folder the batch did not finish (or someone else's)

    pending, settled = plan_batch([walk0, walk1, walk2], outroot, overwrite=False)

    assert [job.recording.name for job in pending] == ['walk2']
    assert settled['walk0'].status == Status.SKIPPED and settled['walk0'].keyframes >= 3
    assert settled['walk1'].status == Status.FAILED and not settled['walk1'].retryable
    assert 'is not a finished batch output' in settled['walk1'].error
    pending, _ = plan_batch([walk0, walk1, walk2], outroot, overwrite=True)
    assert len(pending) == 3
    # The same name for another input: its map is not taken for this one's.
    other = BatchJob(Recording('walk0', fleet.parent / 'folders' / 'walk2'), walk2.options)
    _, settled = plan_batch([other], outroot, overwrite=False)
    assert 'holds the map of another input' in settled['walk0'].error


def test_publish_moves_a_staging_folder_in_one_piece(tmp_path: Path) -> None:
    staging, final = tmp_path / 'staging', tmp_path / 'final'
    staging.mkdir()
    (staging / 'map.ply').write_text('new')
    final.mkdir()
    (final / 'map.ply').write_text('old')

    with pytest.raises(RecordingFailed, match='already exists'):
        publish(staging, final, overwrite=False)
    assert (final / 'map.ply').read_text() == 'old'
    publish(staging, final, overwrite=True)
    assert (final / 'map.ply').read_text() == 'new' and not staging.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ['final']


def test_a_worker_builds_its_predictor_once_per_spec() -> None:
    built: list[PredictorSpec] = []

    def build(spec: PredictorSpec) -> object:
        built.append(spec)
        return object()

    cache = PredictorCache(build)  # type: ignore[arg-type]
    tiny, other = PredictorSpec(model='tiny'), PredictorSpec(model='tiny', device='cpu')

    first = cache(tiny)
    assert cache(tiny) is first and cache(PredictorSpec(model='tiny')) is first
    assert cache(other) is not first
    assert built == [tiny, other]


def test_the_table_has_a_line_per_recording_and_the_errors_below() -> None:
    results = [RecordingResult('a', 'runs/a', Status.DONE, attempts=1, keyframes=12,
                               segments=1, time_s=3.25),
               RecordingResult('b', 'runs/b', Status.FAILED, attempts=3, error='disk full',
                               log='out/.batch/logs/b.log')]

    lines = format_table(results).splitlines()

    assert lines[0].split() == ['input', 'status', 'keyframes', 'refused', 'segments', 'loops',
                                'time_s', 'tries']
    assert lines[2].split() == ['runs/a', 'done', '12', '0', '1', '0', '3.2', '1']
    assert lines[3].split() == ['runs/b', 'failed', '0', '0', '0', '0', '0.0', '3']
    assert lines[4] == 'runs/b: disk full (log: out/.batch/logs/b.log)'
    assert json.loads(json.dumps(results[0].__dict__))['keyframes'] == 12
