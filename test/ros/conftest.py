"""Fixtures of the mapper_node tests: the rclpy test double and a node factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from node_helpers import NUM_FRAMES, SUCCESS
import numpy as np
import pytest
import ros_fakes

from vggt_mapper.synthetic import SyntheticPredictor, SyntheticSequence

#: Small windows and easy keyframes so that 16 frames make several windows.
NODE_TEST_PARAMETERS = {'window_size': 4, 'overlap': 2, 'min_parallax_px': 2.0,
                        'voxel_size': 0.05, 'queue_length': 64, 'save_on_shutdown': False}


@pytest.fixture(scope='module')
def frames() -> tuple[SyntheticSequence, list[np.ndarray]]:
    sequence = SyntheticSequence.orbit(NUM_FRAMES, step_m=0.05, height=60, width=80)
    return sequence, [sequence.frame(index) for index in range(NUM_FRAMES)]


@pytest.fixture
def node_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    ros_fakes.install(monkeypatch)
    return importlib.import_module('vggt_mapper.ros.node')


@pytest.fixture
def make_node(node_module: ModuleType, tmp_path: Path,
              frames: tuple[SyntheticSequence, list[np.ndarray]]) -> Iterator[Callable[..., Any]]:
    """
    Make a MapperNode, configured and active unless told otherwise.

    ``predictor``: the predictor every configure gets (default: the synthetic one, a new one per
    configure); ``configure``/``activate``: take those transitions; other keywords: parameter
    values on top of ``NODE_TEST_PARAMETERS`` and ``output_dir = tmp_path / 'out'``.
    """
    nodes: list[Any] = []

    def make(predictor: Any = None, *, configure: bool = True, activate: bool = True,
             **overrides: Any) -> Any:
        ros_fakes.Node.overrides = {**NODE_TEST_PARAMETERS,
                                    'output_dir': str(tmp_path / 'out'), **overrides}
        node = node_module.MapperNode(predictor_factory=lambda params: predictor or
                                      SyntheticPredictor(frames[0], model_width=84))
        nodes.append(node)
        if configure:
            assert node.trigger_configure() is SUCCESS, node.logger.messages('error')
        if configure and activate:
            assert node.trigger_activate() is SUCCESS, node.logger.messages('error')
        return node

    yield make
    for node in nodes:
        node.close()  # saves if asked, stops the worker, gives the Python logger back
