"""
ROS 2's ament_flake8 and ament_pep257 checks, run without ROS.

``colcon test`` runs ``test_flake8.py`` and ``test_pep257.py`` through ament, which CI without
ROS 2 cannot import. This runs the same tools with the same settings: flake8 with the repo's
``.flake8`` (a copy of ament_flake8's ``ament_flake8.ini``, with the plugins ament_flake8
depends on) and pydocstyle with ament_pep257's default ignore list and file matching. Skipped
only where flake8 or pydocstyle is not installed (``pip install -e '.[test]'``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ['vggt_mapper', 'test', 'launch', 'benchmarks', 'setup.py']

# ament_flake8's exec_depends (ament_flake8/package.xml): without one, its codes go unchecked.
FLAKE8_PLUGINS = [
    'flake8-builtins',
    'flake8-comprehensions',
    'flake8-docstrings',
    'flake8-import-order',
    'flake8-quotes',
]

# ament_pep257's 'ament' convention (_ament_ignore in ament_pep257/main.py): every pydocstyle
# code except these, so D213 (summary on the second line) and D413 etc. are checked.
PEP257_IGNORE = [
    'D100', 'D101', 'D102', 'D103', 'D104', 'D105', 'D106', 'D107', 'D203', 'D212', 'D404',
]
# ament_pep257 also overrides pydocstyle's default match, which would skip test_*.py files, and
# calls pydocstyle.check() without property decorators, so D401 applies to properties too; an
# empty --property-decorators gives the same.
PEP257_ARGS = ['--match', r'.*\.py', '--match-dir', r'[^\._].*', '--property-decorators=']


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f'{module} is not installed; install the test extra: pip install -e ".[test]"')


def _missing_plugins() -> list[str]:
    missing = []
    for name in FLAKE8_PLUGINS:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def _run(args: list[str], paths: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, '-m', *args, *paths], cwd=cwd, capture_output=True, text=True,
        check=False, timeout=300)


def run_flake8(paths: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """
    Run flake8 with the repo's ament-equivalent ``.flake8``.

    :param paths: files or directories, relative to ``cwd``.
    :param cwd: the directory to run in.
    :return: the finished process; findings are on stdout, one per line.
    """
    _require('flake8')
    missing = _missing_plugins()
    assert not missing, (
        f'flake8 plugins that ament_flake8 uses are not installed: {missing}; '
        'install the test extra: pip install -e ".[test]"')
    config = str(ROOT / '.flake8')
    return _run(['flake8', f'--config={config}', '--no-show-source'], paths, cwd)


def run_pydocstyle(paths: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """
    Run pydocstyle the way ament_pep257 does by default.

    :param paths: files or directories, relative to ``cwd``.
    :param cwd: the directory to run in.
    :return: the finished process; findings are on stdout, two lines each.
    """
    _require('pydocstyle')
    ignore = ','.join(PEP257_IGNORE)
    return _run(['pydocstyle', *PEP257_ARGS, f'--ignore={ignore}'], paths, cwd)


def _existing(paths: list[str]) -> list[str]:
    return [path for path in paths if (ROOT / path).exists()]


def test_flake8_ament_config() -> None:
    result = run_flake8(_existing(PATHS))
    findings = result.stdout.strip()
    assert result.returncode == 0, (
        f'flake8 (ament_flake8 settings) exited {result.returncode}:\n{findings}\n'
        f'{result.stderr.strip()}')


def test_pydocstyle_ament_convention() -> None:
    result = run_pydocstyle(_existing(PATHS))
    findings = result.stdout.strip()
    assert result.returncode == 0, (
        f'pydocstyle (ament_pep257 convention) exited {result.returncode}:\n{findings}\n'
        f'{result.stderr.strip()}')


BAD_MODULE = '''"""Shadow a builtin and break the docstring rules.

More text.
"""

import os
import sys
import json


def check(list):
    """Returns the thing."""
    return [x for x in [os.sep, sys.platform, json.__name__, "double"]]


class Box:
    @property
    def size(self) -> int:
        """The size."""
        return 1
'''


def test_checks_catch_known_findings(tmp_path: Path) -> None:
    # Proves the plugins and the ignore lists are in effect, so a clean run above means
    # something: each code below is one that ROS 2's ament linters report.
    (tmp_path / 'bad.py').write_text(BAD_MODULE, encoding='utf-8')
    flake8_codes = {line.split()[1] for line in run_flake8(['bad.py'], tmp_path).stdout.split('\n')
                    if line.strip()}
    # A002 builtins, C416 comprehensions, D401 docstrings, I100 import-order, Q000 quotes.
    assert {'A002', 'C416', 'D401', 'I100', 'Q000'} <= flake8_codes
    pep257 = run_pydocstyle(['bad.py'], tmp_path).stdout
    # D213 is outside flake8-docstrings' pep257 convention but ament_pep257 checks it.
    assert 'D213' in pep257 and 'D401' in pep257
    # ament_pep257 wants the imperative mood in property docstrings too.
    assert 'in public method `size`' in pep257
    assert 'D103' not in pep257  # ignored by ament: missing docstrings are allowed
