"""
``benchmarks/model_forward.py`` keeps running (smoke mode) and its statistics say what they claim.

The benchmark is a script, not part of the package, so it is loaded from its file.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
import subprocess
import sys
from types import ModuleType

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
import torch

from vggt_mapper.model import VGGTOutput

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'benchmarks' / 'model_forward.py'


@pytest.fixture(scope='module')
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location('model_forward_bench', SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


def test_smoke_run_prints_the_tables_and_writes_one_json(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), '--smoke', '--frames', '2', '--out',
                           str(tmp_path)], capture_output=True, text=True, check=False)

    assert done.returncode == 0, done.stderr
    assert 'reference not measured' in done.stdout
    assert 'int8 vs fp32 output' in done.stdout
    [path] = tmp_path.glob('model_forward-smoke--*--cpu.json')
    report = json.loads(path.read_text())
    rows = {row['config']: row for row in report['results']}
    limits = {'limit/float32-gemm', 'limit/int8-linear'}
    assert set(rows) == {'ours/mapping', 'ours/mapping-int8', 'ours/all', *limits}
    assert rows['ours/all']['gflop'] > rows['ours/mapping']['gflop'] > 0
    assert rows['ours/mapping-int8']['gflop'] == rows['ours/mapping']['gflop']
    assert rows['ours/mapping-int8']['limit'] == 'limit/int8-linear'
    assert all(rows[name]['gflops'] > 0 for name in limits)
    assert all(row['fraction_of_limit'] > 0 for name, row in rows.items() if name not in limits)
    [error] = report['int8_error']
    assert error['frames'] == 2 and all(math.isfinite(v) for v in error.values())


def test_spread_flags_an_iqr_above_a_tenth_of_the_median(bench: ModuleType) -> None:
    quiet = bench.Spread((1.00, 1.01, 1.02, 1.03, 1.04))
    busy = bench.Spread((1.0, 1.0, 1.0, 1.5, 2.0))

    assert quiet.median_s == 1.02 and quiet.min_s == 1.00
    assert not quiet.too_noisy and quiet.iqr_fraction < bench.SPREAD_LIMIT
    assert busy.too_noisy and busy.iqr_s == pytest.approx(0.75)


def test_a_difference_inside_the_spread_is_not_resolved(bench: ModuleType) -> None:
    base = bench.Spread((1.00, 1.01, 1.02, 1.03, 1.04))
    faster = bench.Spread((0.50, 0.51, 0.52, 0.53, 0.54))
    barely = bench.Spread((0.99, 1.00, 1.01, 1.02, 1.03))

    assert bench.difference_resolved(faster, base) is True
    assert bench.difference_resolved(barely, base) is False


def test_too_few_repeats_leave_the_spread_unknown(bench: ModuleType) -> None:
    two = bench.Spread((1.0, 2.0))

    assert two.iqr_s is None and not two.too_noisy
    assert bench.difference_resolved(two, two) is None


def _output(pose_enc: np.ndarray, depth: np.ndarray) -> VGGTOutput:
    return VGGTOutput(pose_enc=torch.from_numpy(pose_enc)[None],
                      depth=torch.from_numpy(depth)[None, ..., None])


def test_output_error_measures_depth_rotation_centre_and_focal(bench: ModuleType) -> None:
    pose = np.zeros((2, 9))
    pose[:, 6] = 1.0  # identity rotations (x, y, z, w)
    pose[1, :3] = [0.5, 0.0, 0.0]
    pose[:, 7:] = [1.0, 1.2]
    depth = np.full((2, 4, 6), 2.0)
    test_pose = pose.copy()
    test_pose[1, 3:7] = Rotation.from_euler('z', 2.0, degrees=True).as_quat()
    test_pose[0, :3] = [0.0, 0.02, 0.0]  # frame 0's centre moves by 0.02 = 1 % of depth 2
    test_pose[1, 8] = 1.2 * 1.001

    same = bench.output_error(_output(pose, depth), _output(pose, depth), (4, 6))
    error = bench.output_error(_output(test_pose, depth * 1.01), _output(pose, depth), (4, 6))

    assert all(value == 0 for value in same.values())
    assert error['depth_rel_median'] == pytest.approx(0.01)
    assert error['depth_rel_max'] == pytest.approx(0.01)
    assert error['rotation_deg_max'] == pytest.approx(2.0)
    assert error['centre_err_of_median_depth_max'] == pytest.approx(0.01)
    assert 0 < error['focal_rel_max'] < 0.01
