"""
``vggt-mapper batch`` on a local Ray instance (2 CPUs): the CI scenario and a worker that dies.

Each run starts its own local instance (``--ray-address local``) and shuts it down, as the
command does for a user; the workers find the fakes through ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vggt_mapper.cli import main

ray = pytest.importorskip('ray', reason="vggt-mapper batch needs Ray (the 'cluster' extra)")

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _workers_find_the_fakes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    paths = [str(HERE), str(HERE.parent / 'cli'), str(HERE.parents[1])]
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join(
        [*paths, *filter(None, [os.environ.get('PYTHONPATH')])]))
    for path in paths:
        monkeypatch.syspath_prepend(path)
    monkeypatch.setenv('VGGT_TEST_STATE', str(tmp_path))


def _batch(*argv: str) -> tuple[int, dict[str, dict[str, object]]]:
    import cluster_fakes

    status = main(['batch', *cluster_fakes.MAP_OPTIONS, '--ray-address', 'local', *argv])
    outroot = Path(argv[argv.index('-o') + 1])
    summary = json.loads((outroot / 'batch_summary.json').read_text())
    return status, {line['name']: line for line in summary['recordings']}


def test_six_recordings_five_mapped_one_reported_and_a_rerun_skips_the_five(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cluster_fakes

    manifest = cluster_fakes.write_recordings(tmp_path / 'fleet')
    outroot = tmp_path / 'maps'
    mapped = ['walk0', 'walk1', 'walk2', 'bag0', 'bag1']

    status, results = _batch(str(manifest), '-o', str(outroot), '--workers', '2')

    assert status == 1  # one recording failed
    assert {name: line['status'] for name, line in results.items()} == {
        **dict.fromkeys(mapped, 'done'), 'broken': 'failed'}
    for name in mapped:
        assert results[name]['keyframes'] >= 3 and results[name]['attempts'] == 1
        assert (outroot / name / 'batch_done.json').is_file()
        assert (outroot / name / 'map.glb').is_file()
    # The input is at fault: reported at once, not retried.
    assert results['broken']['attempts'] == 1 and not results['broken']['retryable']
    assert 'cannot open rosbag2' in str(results['broken']['error'])
    assert not (outroot / 'broken').exists()
    table = capsys.readouterr().out
    assert '5 mapped, 0 skipped (done before), 1 failed' in table
    assert any(line.split()[:2] == [str(manifest.parent / 'bags' / 'broken'), 'failed']
               for line in table.splitlines())
    # Two workers, one model each, reused across the five recordings.
    builds = (tmp_path / 'builds').read_text().split()
    assert 1 <= len(builds) <= 2
    done_at = {name: (outroot / name / 'batch_done.json').stat().st_mtime_ns
               for name in mapped}

    status, results = _batch(str(manifest), '-o', str(outroot), '--workers', '2')

    assert status == 1
    assert {name: line['status'] for name, line in results.items()} == {
        **dict.fromkeys(mapped, 'skipped'), 'broken': 'failed'}
    assert done_at == {name: (outroot / name / 'batch_done.json').stat().st_mtime_ns
                       for name in mapped}
    assert results['walk0']['keyframes'] >= 3  # the skipped keep their figures
    assert '0 mapped, 5 skipped (done before), 1 failed' in capsys.readouterr().out


def test_a_worker_that_dies_is_replaced_and_its_recording_retried(tmp_path: Path) -> None:
    import cli_fakes

    frames = tmp_path / 'walk'
    frames.mkdir()
    cli_fakes.write_frames(frames, 10)
    outroot = tmp_path / 'maps'

    status, results = _batch(str(frames), '-o', str(outroot), '--predictor',
                             'cluster_fakes:dies_once_predictor', '--retries', '1')

    assert (tmp_path / 'died').is_file()  # the first attempt's process is gone
    assert status == 0
    assert results['walk']['status'] == 'done' and results['walk']['attempts'] == 2
    log = (outroot / '.batch' / 'logs' / 'walk.log').read_text()
    assert 'attempt 1 on' in log and 'attempt 2 on' in log
