"""
ament_xmllint on package.xml (well-formed, valid against the package format 3 schema).

Skipped where ament_xmllint (ROS 2) or the xmllint program is not installed.
"""

from __future__ import annotations

from pathlib import Path
import shutil

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_xmllint() -> None:
    main = pytest.importorskip('ament_xmllint.main', reason='ament_xmllint (ROS 2) not installed')
    if shutil.which('xmllint') is None:
        pytest.skip('the xmllint program (libxml2-utils) is not installed')
    rc = main.main(argv=[str(ROOT / 'package.xml')])
    assert rc == 0, 'Found errors'
