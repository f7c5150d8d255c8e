"""
Where and what mapper_node saves: one folder per map, ``latest``, never an empty map.

The rclpy test double drives the node; ``RunFolders`` is also used on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
import json
import os
from pathlib import Path
import sys
from typing import Any

from node_helpers import feed, image_messages, STAMP0_NS, SUCCESS
import numpy as np
import pytest

from vggt_mapper.io import ros_messages as conv
from vggt_mapper.ros.saving import LATEST_LINK, RunFolders

#: A map folder: the exports, the frame note, the map_server grid and the state to load again.
MAP_FILES = ['cameras.json', 'map.glb', 'map.pgm', 'map.ply', 'map.yaml', 'map_frame.json',
             'map_state', 'trajectory.tum']


def map_folders(output_dir: Path) -> list[Path]:
    return sorted(p for p in output_dir.iterdir() if p.is_dir() and not p.is_symlink())


def test_stopping_before_the_first_window_never_replaces_a_saved_map(
        make_node: Callable[..., Any], tmp_path: Path) -> None:
    output_dir = tmp_path / 'out'
    output_dir.mkdir()
    previous = output_dir / 'map.ply'
    previous.write_bytes(b'a map of yesterday')
    node = make_node(save_on_shutdown=True, output_per_run=False)
    response = node.call_service('~/save_map')
    assert not response.success and response.message.startswith('nothing mapped yet')
    node.close()
    assert previous.read_bytes() == b'a map of yesterday'
    assert sorted(p.name for p in output_dir.iterdir()) == ['map.ply']
    assert any(m.startswith('no map saved at shutdown: nothing mapped yet')
               for m in node.logger.messages('info'))


def test_each_map_gets_its_own_folder_and_latest_points_to_the_newest(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]],
        tmp_path: Path) -> None:
    output_dir = tmp_path / 'out'
    node = make_node(save_on_shutdown=True)
    node.subscriptions['camera_info'].callback(_camera_info())
    feed(node, image_messages(frames[1]))
    response = node.call_service('~/save_map')
    assert response.success, response.message
    [first] = map_folders(output_dir)
    datetime.strptime(first.name, '%Y-%m-%d_%H-%M-%S')  # the map's start time
    assert sorted(p.name for p in first.iterdir()) == ['camera_info.json', *MAP_FILES]
    assert json.loads((first / 'camera_info.json').read_text())['k'][0] == 50.0
    assert os.readlink(output_dir / LATEST_LINK) == first.name  # relative: the folder can move
    assert str(first / 'map.ply') in response.message
    first_map = (first / 'map.ply').read_bytes()

    # ~/reset starts a new map: its saves go to a new folder (the same second: "_2").
    assert node.call_service('~/reset').success
    feed(node, image_messages(frames[1], stamp0_ns=STAMP0_NS + 10**12))
    assert node.trigger_shutdown() is SUCCESS  # saves the second map
    older, newer = map_folders(output_dir)
    assert older == first and (older / 'map.ply').read_bytes() == first_map
    assert (output_dir / LATEST_LINK).resolve() == newer.resolve()
    assert sorted(p.name for p in newer.iterdir()) == ['camera_info.json', *MAP_FILES]


def _camera_info() -> Any:
    types = conv.rclpy_message_types()
    return sys.modules['sensor_msgs.msg'].CameraInfo(
        header=types.header(stamp=types.time(sec=1, nanosec=2), frame_id='camera_optical'),
        height=60, width=80, distortion_model='plumb_bob', d=[0.0] * 5,
        k=[50.0, 0, 40, 0, 50.0, 30, 0, 0, 1], r=[1.0, 0, 0, 0, 1, 0, 0, 0, 1],
        p=[50.0, 0, 40, 0, 0, 50.0, 30, 0, 0, 0, 1, 0])


def test_saving_the_same_map_again_replaces_its_own_files_only(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]],
        tmp_path: Path) -> None:
    node = make_node()
    feed(node, image_messages(frames[1][:8]))
    assert node.call_service('~/save_map').success
    feed(node, image_messages(frames[1][8:], stamp0_ns=STAMP0_NS + 10**12))
    assert node.call_service('~/save_map').success
    [folder] = map_folders(tmp_path / 'out')
    tum = (folder / 'trajectory.tum').read_text().splitlines()
    assert len([line for line in tum if not line.startswith('#')]) == len(
        node.worker.trajectory())


def test_a_latest_that_is_not_a_link_is_left_alone(make_node: Callable[..., Any],
                                                   frames: tuple[Any, list[np.ndarray]],
                                                   tmp_path: Path) -> None:
    (tmp_path / 'out' / LATEST_LINK).mkdir(parents=True)
    node = make_node()
    feed(node, image_messages(frames[1]))
    response = node.call_service('~/save_map')
    assert response.success, response.message  # the map is saved; only the link is not
    assert (tmp_path / 'out' / LATEST_LINK).is_dir()
    assert any('latest not updated' in m for m in node.logger.messages('warning'))


def test_run_folders_never_reuse_another_maps_folder(tmp_path: Path) -> None:
    start = datetime(2026, 12, 2, 14, 15, 3)
    (tmp_path / '2026-12-02_14-15-03').mkdir()  # another node's map, same second
    runs = RunFolders()
    runs.start_map(start)
    folder = runs.folder(tmp_path, per_run=True)
    assert folder.name == '2026-12-02_14-15-03_2'
    folder.mkdir()
    assert runs.folder(tmp_path, per_run=True) == folder  # the same map: the same folder
    assert runs.folder(tmp_path / 'elsewhere', per_run=True).parent == tmp_path / 'elsewhere'
    assert runs.folder(tmp_path, per_run=False) == tmp_path
    link = RunFolders.link_latest(tmp_path, folder)
    assert os.readlink(link) == folder.name
    RunFolders.link_latest(tmp_path, tmp_path / '2026-12-02_14-15-03')  # replaced in place
    assert os.readlink(link) == '2026-12-02_14-15-03'
    assert not list(tmp_path.glob('.latest*'))


@pytest.mark.parametrize('points', [0, 5])
def test_nothing_is_saved_without_keyframes_or_points(points: int) -> None:
    from vggt_mapper.engine.types import MapSnapshot
    from vggt_mapper.ros.errors import NothingToSaveError
    from vggt_mapper.ros.saving import check_something_mapped

    snapshot = MapSnapshot(np.zeros((points, 3), np.float32), np.zeros((points, 3), np.uint8))
    with pytest.raises(NothingToSaveError, match='nothing mapped yet'):
        check_something_mapped([], snapshot)
