"""
ament_pep257 over the package's docstrings (summary on the second line, :param: fields).

The project writes ``:param:``/``:return:``/``:raises:`` fields, which ament's default ignores
accept, so no ``--add-ignore`` is needed. Skipped where ament_pep257 is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = [ROOT / name for name in ('vggt_mapper', 'test', 'launch')]


def test_pep257() -> None:
    main = pytest.importorskip('ament_pep257.main', reason='ament_pep257 (ROS 2) not installed')
    rc = main.main(argv=[str(path) for path in PATHS])
    assert rc == 0, 'Found code style errors / warnings'
