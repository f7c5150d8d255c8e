"""
ament_flake8 over the package's Python (ROS 2 style: 99 columns, Google import order, quotes).

Skipped where ROS 2's ament_flake8 is not installed; ``ruff check`` covers the same rules there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = [ROOT / name for name in ('vggt_mapper', 'test', 'launch', 'benchmarks', 'setup.py')]


def test_flake8() -> None:
    main = pytest.importorskip('ament_flake8.main', reason='ament_flake8 (ROS 2) not installed')
    rc, errors = main.main_with_errors(argv=[str(path) for path in PATHS if path.exists()])
    assert rc == 0, f'Found {len(errors)} code style errors / warnings:\n' + '\n'.join(errors)
