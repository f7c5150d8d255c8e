"""``bash quickstart.sh``: one command from a fresh clone to a map of the shipped sample."""

from __future__ import annotations

import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

from vggt_mapper.io import read_cameras_json, read_tum

REPO = Path(__file__).resolve().parents[1]
# What the script checks before deciding to install anything.
_INSTALLED = ('import torch, vggt_mapper.cli.map, vggt_mapper.io.glb, vggt_mapper.io.rosbag2, '
              'vggt_mapper.model.loading, av, mcap, tqdm')


def test_without_weights_it_maps_the_sample_with_the_stand_in_and_says_so(
        tmp_path: Path) -> None:
    env = {**os.environ, 'PYTHON': sys.executable, 'PYTHONPATH': str(REPO),
           # No weights to be had: offline, and an empty cache.
           'HF_HUB_OFFLINE': '1', 'HF_HOME': str(tmp_path / 'hf'),
           # Never reach a package index from a test.
           'PIP_NO_INDEX': '1'}
    if shutil.which('bash') is None:
        pytest.skip('bash is not installed')
    if subprocess.run([sys.executable, '-c', _INSTALLED], env=env, capture_output=True,
                      timeout=600, check=False).returncode != 0:
        pytest.skip('dependencies missing here: the script would install them')
    outdir = tmp_path / 'out'

    completed = subprocess.run(['bash', str(REPO / 'quickstart.sh'), str(outdir),
                                '--max-frames', '24'], env=env, capture_output=True,
                               text=True, timeout=600, check=False)

    assert completed.returncode == 0, completed.stderr[-3000:]
    assert 'installing' not in completed.stderr
    assert 'the official weights cannot be had' in completed.stderr
    assert 'NOT a VGGT result' in completed.stderr
    assert 'Mapped' in completed.stdout
    assert len(read_tum(outdir / 'trajectory.tum')) == len(
        read_cameras_json(outdir / 'cameras.json')) >= 8
    assert (outdir / 'map.glb').is_file() and (outdir / 'map.ply').is_file()
