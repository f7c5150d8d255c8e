"""``vggt-mapper --help`` is fast: it imports neither torch nor the engine's heavy parts."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

_PROBE = """
import json, sys
from vggt_mapper.cli.entry_points import main
for argv in (['--help'], ['map', '--help']):
    try:
        main(argv)
    except SystemExit as exit_:
        assert exit_.code == 0, exit_.code
heavy = sorted(name for name in ('torch', 'gradio', 'rosbags', 'av', 'trimesh')
               if name in sys.modules)
print(json.dumps(heavy))
"""


def test_help_does_not_import_torch() -> None:
    completed = subprocess.run([sys.executable, '-c', _PROBE], capture_output=True, text=True,
                               timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    heavy = json.loads(completed.stdout.strip().splitlines()[-1])
    assert 'torch' not in heavy
    assert 'gradio' not in heavy
    assert heavy == [], f'--help imported {heavy}'
    assert 'vggt-mapper map' in completed.stdout
    assert '--window-size' in completed.stdout and '--bag-out' in completed.stdout


def test_serve_is_registered_when_the_web_door_is_installed(
        capsys: pytest.CaptureFixture[str]) -> None:
    from vggt_mapper.cli.entry_points import main

    has_serve = importlib.util.find_spec('vggt_mapper.cli.serve') is not None
    with pytest.raises(SystemExit):
        main(['--help'])
    out = capsys.readouterr().out
    assert ('serve' in out) == has_serve
    assert 'map' in out


def test_console_script_help() -> None:
    script = shutil.which('vggt-mapper')
    if script is None:
        pytest.skip('console script vggt-mapper not installed (pip install -e .)')
    completed = subprocess.run([script, '--help'], capture_output=True, text=True, timeout=120,
                               check=False)
    assert completed.returncode == 0, completed.stderr
    assert 'map' in completed.stdout


def test_map_requires_an_outdir(capsys: pytest.CaptureFixture[str]) -> None:
    from vggt_mapper.cli.entry_points import main

    with pytest.raises(SystemExit) as info:
        main(['map'])
    assert info.value.code == 2
    assert '-o/--outdir' in capsys.readouterr().err
