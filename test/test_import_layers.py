"""
Layers import downward only: geometry/model → predictor → engine → io → doors (cli, ros, web).

Every ``import vggt_mapper.<layer>`` in the package, including imports inside functions, is
read from the source; a module may import its own layer and the layers below it, never one
above. The sideways imports are the CLI starting the web door (``vggt-mapper serve``) and
the cluster door (``vggt-mapper batch``, ``vggt-mapper serve --replicas``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / 'vggt_mapper'

#: Rank of each subpackage; a module may import ranks strictly below its own, or its own layer.
RANKS = {
    'geometry': 0,
    'model': 0,
    'predictor': 1,
    'engine': 2,
    'synthetic': 3,  # ground-truth stand-ins for tests, benchmarks and the shipped sample
    'io': 3,
    'cli': 4,
    'ros': 4,
    'web': 4,
    'cluster': 4,  # Ray: batch mapping and the serving pool
}
ALLOWED_SIDEWAYS = {('cli', 'web'), ('cli', 'cluster')}


def imported_layers(source: Path) -> set[str]:
    """Return the ``vggt_mapper`` subpackages that one module imports (absolute imports)."""
    layers = set()
    for node in ast.walk(ast.parse(source.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        layers.update(name.split('.')[1] for name in names
                      if name.startswith('vggt_mapper.'))
    return layers


def upward_imports(layer: str) -> list[str]:
    """List ``module -> layer`` for every import of ``layer``'s modules that runs upward."""
    found = []
    for source in sorted((PACKAGE / layer).rglob('*.py')):
        for other in sorted(imported_layers(source) - {layer}):
            if RANKS[other] >= RANKS[layer] and (layer, other) not in ALLOWED_SIDEWAYS:
                found.append(f'{source.relative_to(PACKAGE.parent)} -> {other}')
    return found


def test_every_subpackage_has_a_rank() -> None:
    subpackages = {path.parent.name for path in PACKAGE.glob('*/__init__.py')}
    assert subpackages == set(RANKS)


@pytest.mark.parametrize('layer', sorted(RANKS))
def test_layer_imports_run_downward_only(layer: str) -> None:
    assert upward_imports(layer) == []
