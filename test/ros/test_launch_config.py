"""
launch/mapper.launch.py and config/mapper.rviz, checked without ROS (AST and YAML).

Where the ROS 2 ``launch`` packages are installed, the launch file is also loaded for real and
its node and autostart handlers are built from arguments.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
import subprocess
import sys
from typing import Any

import pytest

from vggt_mapper.ros.launch_helpers import camera_info_topic, resolve_topic, rviz_config

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / 'launch' / 'mapper.launch.py'
RVIZ_TEMPLATE = ROOT / 'config' / 'mapper.rviz'


def _load_yaml(text: str) -> Any:
    # Imported here: ruff's isort and ament's import-order disagree on where 'yaml' goes.
    import yaml

    return yaml.safe_load(text)


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


def test_launch_starts_a_lifecycle_node_remapped_to_the_arguments() -> None:
    tree = ast.parse(LAUNCH_FILE.read_text())
    [node] = [call for call in ast.walk(tree) if isinstance(call, ast.Call)
              and getattr(call.func, 'id', '') == 'LifecycleNode']
    keywords = {kw.arg: kw.value for kw in node.keywords}
    assert ast.literal_eval(keywords['executable']) == 'mapper_node'
    assert {'namespace', 'remappings', 'parameters'} <= set(keywords)
    arguments = launch_arguments()
    # Relative defaults: a namespace applies to the camera topics as to the node's own.
    assert ast.literal_eval(arguments['image']['default_value']) == 'camera/image_raw'
    assert ast.literal_eval(arguments['camera_info']['default_value']) == ''
    assert ast.literal_eval(arguments['autostart']['default_value']) == 'true'


def test_camera_info_is_the_topic_beside_the_image() -> None:
    assert camera_info_topic('/camera/image_raw') == '/camera/camera_info'
    assert camera_info_topic('camera/image_raw') == 'camera/camera_info'
    assert camera_info_topic('/cam/image/compressed') == '/cam/camera_info'
    assert camera_info_topic('image') == 'camera_info'
    assert camera_info_topic('/image_raw') == '/camera_info'


def test_topics_resolve_in_the_namespace_like_ros() -> None:
    assert resolve_topic('camera/image_raw', '') == '/camera/image_raw'
    assert resolve_topic('camera/image_raw', 'robot1') == '/robot1/camera/image_raw'
    assert resolve_topic('camera/image_raw', '/robot1/') == '/robot1/camera/image_raw'
    assert resolve_topic('/cam/image', 'robot1') == '/cam/image'


def test_rviz_config_shows_map_tf_path_and_image() -> None:
    config = _load_yaml(RVIZ_TEMPLATE.read_text())
    manager = config['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] == 'map'
    displays = {display['Class'].split('/')[-1]: display for display in manager['Displays']}
    assert {'PointCloud2', 'TF', 'Path', 'Image'} <= set(displays)
    cloud = next(d for d in manager['Displays'] if d['Name'] == 'Map')
    # The node latches the map: RViz must ask for transient-local to get it when it joins late.
    assert cloud['Topic']['Durability Policy'] == 'Transient Local'
    assert cloud['Color Transformer'] == 'RGB8'


def test_rviz_config_follows_the_namespace_and_the_image_topic() -> None:
    text = rviz_config(RVIZ_TEMPLATE.read_text(), 'robot1', 'front/image_raw')
    displays = {display['Name']: display for display in
                _load_yaml(text)['Visualization Manager']['Displays']}
    assert displays['Map']['Topic']['Value'] == '/robot1/vggt_mapper/map'
    assert displays['Window cloud']['Topic']['Value'] == '/robot1/vggt_mapper/window_cloud'
    assert displays['Path']['Topic']['Value'] == '/robot1/vggt_mapper/path'
    assert displays['Camera image']['Topic']['Value'] == '/robot1/front/image_raw'
    assert displays['Map']['Topic']['Durability Policy'] == 'Transient Local'  # the rest kept
    plain = _load_yaml(rviz_config(RVIZ_TEMPLATE.read_text(), '', '/camera/image_raw'))
    assert plain == _load_yaml(RVIZ_TEMPLATE.read_text())  # the template is the default


def test_an_rviz_template_without_the_displays_is_refused() -> None:
    with pytest.raises(ValueError, match='Camera image'):
        rviz_config('Visualization Manager:\n  Displays: []\n', '', 'image')


@pytest.mark.skipif(importlib.util.find_spec('launch_ros') is None,
                    reason='ROS 2 launch packages not installed')
def test_launch_file_builds_the_node_and_its_autostart(
        tmp_path: Path) -> None:  # pragma: no cover - needs ROS 2
    params = tmp_path / 'params.yaml'
    params.write_text('/**:\n  ros__parameters:\n    model: tiny\n')
    # In a subprocess: importing launch reconfigures the logging module for the whole process.
    script = (
        'import importlib.util, sys\n'
        'from launch import LaunchContext\n'
        'spec = importlib.util.spec_from_file_location("mapper_launch", sys.argv[1])\n'
        'module = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(module)\n'
        'description = module.generate_launch_description()\n'
        'print(" ".join(sorted(a.name for a in description.get_launch_arguments())))\n'
        'context = LaunchContext()\n'
        'context.launch_configurations.update(dict(\n'
        '    image="camera/image_raw", camera_info="", namespace="robot1", autostart="true",\n'
        '    use_sim_time="false", rviz="false", model="", device="", checkpoint="",\n'
        '    predictor="", output_dir="", params_file=sys.argv[2]))\n'
        'actions = module._mapper_node(context)\n'
        'print(" ".join(type(action).__name__ for action in actions))\n'
        'actions[0]._perform_substitutions(context)\n'
        'print(actions[0].expanded_node_namespace, actions[0].expanded_remapping_rules)\n'
        'context.launch_configurations["autostart"] = "false"\n'
        'print(" ".join(type(action).__name__ for action in module._mapper_node(context)))\n')
    result = subprocess.run([sys.executable, '-c', script, str(LAUNCH_FILE), str(params)],
                            check=True, capture_output=True, text=True, timeout=120)
    names, actions, remapped, manual = result.stdout.strip().split('\n')
    assert {'params_file', 'image', 'namespace', 'rviz', 'autostart'} <= set(names.split())
    # Configure when the process starts, activate once configured.
    assert actions == 'LifecycleNode RegisterEventHandler RegisterEventHandler'
    assert remapped == ("/robot1 [('image', 'camera/image_raw'), "
                        "('camera_info', 'camera/camera_info')]")
    assert manual == 'LifecycleNode'
