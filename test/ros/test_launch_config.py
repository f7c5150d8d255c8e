"""
launch/mapper.launch.py and config/mapper.rviz, checked without ROS (AST and YAML).

Where the ROS 2 ``launch`` packages are installed, the launch file is also loaded for real.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
import subprocess
import sys

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / 'launch' / 'mapper.launch.py'


def launch_arguments() -> dict[str, dict[str, ast.expr]]:
    tree = ast.parse(LAUNCH_FILE.read_text())
    arguments = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'DeclareLaunchArgument':
            name = node.args[0]
            assert isinstance(name, ast.Constant)
            arguments[str(name.value)] = {kw.arg: kw.value for kw in node.keywords if kw.arg}
    return arguments


def test_launch_arguments_have_descriptions() -> None:
    arguments = launch_arguments()
    assert {'params_file', 'image', 'namespace', 'rviz'} <= set(arguments)
    for name, keywords in arguments.items():
        assert 'description' in keywords and 'default_value' in keywords, name


def test_parameter_arguments_override_declared_parameters() -> None:
    from vggt_mapper.ros.params import PARAMETERS

    tree = ast.parse(LAUNCH_FILE.read_text())
    [overrides] = [node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                   and getattr(node.targets[0], 'id', '') == 'PARAMETER_ARGUMENTS']
    names = ast.literal_eval(overrides)
    assert 'model' in names and 'device' in names  # model:=tiny must not be silently ignored
    assert set(names) <= {spec.name for spec in PARAMETERS}
    arguments = launch_arguments()
    for name in names:  # declared, defaulting to "keep the params file value"
        assert ast.literal_eval(arguments[name]['default_value']) == '', name


def test_launch_remaps_image_and_opens_the_rviz_config() -> None:
    source = LAUNCH_FILE.read_text()
    assert "('image', LaunchConfiguration('image'))" in source
    assert "executable='mapper_node'" in source and "name='vggt_mapper'" in source
    assert "'mapper.rviz'" in source and "IfCondition(LaunchConfiguration('rviz'))" in source


def test_rviz_config_shows_map_tf_path_and_image() -> None:
    config = yaml.safe_load((ROOT / 'config' / 'mapper.rviz').read_text())
    manager = config['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] == 'map'
    displays = {display['Class'].split('/')[-1]: display for display in manager['Displays']}
    assert {'PointCloud2', 'TF', 'Path', 'Image'} <= set(displays)
    cloud = next(d for d in manager['Displays'] if d['Name'] == 'Map')
    assert cloud['Topic']['Value'] == '/vggt_mapper/map'
    # The node latches the map: RViz must ask for transient-local to get it when it joins late.
    assert cloud['Topic']['Durability Policy'] == 'Transient Local'
    assert cloud['Color Transformer'] == 'RGB8'
    assert displays['Path']['Topic']['Value'] == '/vggt_mapper/path'


@pytest.mark.skipif(importlib.util.find_spec('launch_ros') is None,
                    reason='ROS 2 launch packages not installed')
def test_launch_file_loads() -> None:  # pragma: no cover - needs ROS 2
    # In a subprocess: importing launch reconfigures the logging module for the whole process.
    script = (
        'import importlib.util, sys\n'
        'spec = importlib.util.spec_from_file_location("mapper_launch", sys.argv[1])\n'
        'module = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(module)\n'
        'description = module.generate_launch_description()\n'
        'print(" ".join(sorted(a.name for a in description.get_launch_arguments())))\n')
    result = subprocess.run([sys.executable, '-c', script, str(LAUNCH_FILE)], check=True,
                            capture_output=True, text=True, timeout=60)
    names = set(result.stdout.split())
    assert {'params_file', 'image', 'namespace', 'rviz'} <= names
