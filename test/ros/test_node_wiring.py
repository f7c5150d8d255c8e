"""
mapper_node with what the engine knows how to use: CameraInfo, odometry, grid, map folders.

Known intrinsics and undistortion from ``camera_info``, the metric scale from the odometry looked
up when each image arrives, ``~/grid`` and its map_server files, saved map folders loaded again
with ``map`` and localization mode, with the rclpy test double.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
import sys
from types import SimpleNamespace
from typing import Any

from node_helpers import (
    diagnostic,
    diagnostic_values,
    FAILURE,
    feed,
    image_messages,
    STAMP0_NS,
    STEP_NS,
    SUCCESS,
    WARN,
)
import numpy as np
import pytest
import ros_fakes
from test_node_frames import base_from_cam, CAMERA, published_poses

from vggt_mapper.geometry.se3 import inverse_se3
from vggt_mapper.io import ros_messages as conv
from vggt_mapper.io.calibration import calibration_from_camera_info, Undistorter
from vggt_mapper.io.map_folder import read_map_folder
from vggt_mapper.io.map_server import read_map_server
from vggt_mapper.synthetic import SyntheticSequence

#: The odometry's metres per unit of the synthetic world: the map must come out in metres.
METRES_PER_UNIT = 10.0


def camera_info(d: list[float], width: int = 80, height: int = 60) -> Any:
    types = conv.rclpy_message_types()
    return sys.modules['sensor_msgs.msg'].CameraInfo(
        header=types.header(stamp=types.time(sec=1, nanosec=0), frame_id=CAMERA),
        height=height, width=width, distortion_model='plumb_bob', d=d,
        k=[60.0, 0, 40, 0, 60.0, 30, 0, 0, 1], r=[1.0, 0, 0, 0, 1, 0, 0, 0, 1],
        p=[60.0, 0, 40, 0, 0, 60.0, 30, 0, 0, 0, 1, 0], binning_x=0, binning_y=0, roi=None)


def record_submitted(node: Any) -> list[Any]:
    """Keep every InputFrame the image callback hands to the worker."""
    submitted: list[Any] = []
    worker = node.worker
    submit = worker.submit

    def recording(frame: Any) -> bool:
        submitted.append(frame)
        return bool(submit(frame))

    worker.submit = recording
    return submitted


@pytest.mark.parametrize('k1', [0.0, -0.3])
def test_camera_info_gives_every_frame_its_k_and_distorted_images_are_undistorted(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]], k1: float) -> None:
    node = make_node()
    submitted = record_submitted(node)
    node.subscriptions['camera_info'].callback(camera_info([k1, 0.0, 0.0, 0.0, 0.0]))
    raw = frames[1]
    feed(node, image_messages(raw, frame_id=CAMERA))
    assert len(submitted) == len(raw)
    for frame in submitted:
        assert frame.intrinsics is not None
    if k1 == 0.0:  # no distortion: the image as it came, the CameraInfo's K
        np.testing.assert_array_equal(submitted[0].image_rgb, raw[0])
        np.testing.assert_allclose(submitted[0].intrinsics[0, 0], 60.0)
    else:  # undistorted by OpenCV: another image, another K (valid pixels only)
        assert not np.array_equal(submitted[0].image_rgb, raw[0])
        calibration = calibration_from_camera_info([60.0, 0, 40, 0, 60, 30, 0, 0, 1],
                                                   [k1, 0, 0, 0, 0], 'plumb_bob', 80, 60)
        np.testing.assert_allclose(submitted[0].intrinsics, Undistorter(calibration).new_k)
        return  # (the synthetic predictor only knows its own, distorted-free renderings)
    stats = node.worker.stats.mapper
    assert stats.keyframes_with_intrinsics == stats.keyframes > 0
    assert {pose.intrinsics_source for pose in node.worker.trajectory()} == {'known'}
    assert diagnostic_values(node)['intrinsics'] == 'CameraInfo'


def test_images_that_do_not_fit_the_camera_info_are_mapped_with_the_models_k_and_counted(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node()
    submitted = record_submitted(node)
    node.subscriptions['camera_info'].callback(camera_info([0.0] * 5, width=640, height=360))
    feed(node, image_messages(frames[1][:3], frame_id=CAMERA))
    assert [frame.intrinsics for frame in submitted] == [None] * 3
    assert diagnostic_values(node)['frames_not_fitting_camera_info'] == '3'
    assert any('another aspect ratio' in m for m in node.logger.messages('warning'))


def provide_odometry(sequence: SyntheticSequence) -> None:
    """TF whose odometry is the synthetic camera path in metres (METRES_PER_UNIT)."""
    types = conv.rclpy_message_types()
    mount = base_from_cam()
    ros_fakes.Buffer.transforms = {('base_link', CAMERA): conv.matrix_to_transform(
        mount, 0, 'base_link', CAMERA, types)}

    def odom_from_base(stamp_ns: int) -> Any:
        world_from_cam = sequence.poses_world_from_cam[(stamp_ns - STAMP0_NS) // STEP_NS].copy()
        world_from_cam[:3, 3] *= METRES_PER_UNIT
        return conv.matrix_to_transform(world_from_cam @ inverse_se3(mount), stamp_ns, 'odom',
                                        'base_link', types)

    ros_fakes.Buffer.transforms[('odom', 'base_link')] = odom_from_base
    ros_fakes.Buffer.now_ns = STAMP0_NS + 60 * 10**9  # every image's odometry has arrived


def test_odometry_recorded_at_intake_makes_the_map_path_and_tf_metric(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    sequence, images = frames
    provide_odometry(sequence)
    node = make_node(publish_tf='map_to_odom')
    feed(node, image_messages(images, frame_id=CAMERA))
    engine = node.worker.stats.mapper
    assert engine.keyframes_with_odometry == engine.keyframes
    [scale] = engine.metric_scales.values()
    assert scale.metric and scale.source == 'odometry'
    # The published path has the odometry's lengths: metres.
    path = np.array([pose[:3, 3] for pose in published_poses(node)])
    truth = METRES_PER_UNIT * np.array([sequence.poses_world_from_cam[
        (p.stamp_ns - STAMP0_NS) // STEP_NS][:3, 3] for p in node.worker.trajectory()])
    ratio = np.linalg.norm(path[-1] - path[0]) / np.linalg.norm(truth[-1] - truth[0])
    assert ratio == pytest.approx(1.0, abs=0.02)
    values = diagnostic_values(node)
    assert values['metric'] == 'true' and values['scale_from'] == 'odometry'
    assert float(values['scale_spread_pct']) >= 0.0 and int(values['scale_samples']) >= 5
    assert 'no map segment is metric' not in diagnostic(node).message


def test_map_to_odom_without_a_scale_source_fails_configure_with_the_reason(
        make_node: Callable[..., Any]) -> None:
    node = make_node(configure=False, publish_tf='map_to_odom', scale_source='none')
    assert node.trigger_configure() is FAILURE
    [error] = node.logger.messages('error')
    assert 'needs a metric map' in error and 'scale_source' in error
    assert node.params is None


def test_map_to_odom_warns_while_no_segment_is_metric(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(publish_tf='map_to_odom')  # odometry asked for, TF has none
    feed(node, image_messages(frames[1]))
    status = diagnostic(node)
    assert status.level == WARN and 'no map segment is metric yet' in status.message
    values = {kv.key: kv.value for kv in status.values}
    assert values['metric'] == 'false' and values['scale_source'] == 'odometry'


def test_grid_is_published_latched_in_the_map_frame_and_saved_for_map_server(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]],
        tmp_path: Path) -> None:
    node = make_node()
    feed(node, image_messages(frames[1], frame_id=CAMERA))
    publisher = node.publishers['~/grid']
    assert publisher.qos.durability == 'transient_local'
    assert len(publisher.messages) == 1  # throttled: one per grid_period_s
    msg = publisher.messages[-1]
    assert msg.header.frame_id == 'map' and msg.info.width * msg.info.height == len(msg.data)
    cells = np.asarray(msg.data, dtype=np.int8)
    assert {-1, 0, 100} <= set(cells.tolist())
    # Without TF the floor fit levels the grid, and the map frame with it: one frame.
    assert 'floor plane' in diagnostic_values(node)['map_frame']

    assert node.call_service('~/save_map').success
    # The save builds the grid afresh (and publishes it): the files are the latest grid.
    msg = publisher.messages[-1]
    cells = np.asarray(msg.data, dtype=np.int8)
    grid = read_map_server(tmp_path / 'out' / 'latest' / 'map.yaml')
    np.testing.assert_array_equal(grid.cells.reshape(-1), cells)
    assert grid.origin_xy == pytest.approx((msg.info.origin.position.x,
                                            msg.info.origin.position.y))


def test_a_grid_that_cannot_be_built_is_a_counted_skip(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(grid_resolution_m=1e-6, grid_period_s=0.001)  # far too many cells
    feed(node, image_messages(frames[1]))
    assert node.publishers['~/grid'].messages == []
    assert node.worker.stats.windows_done >= 2 and node.worker.stats.windows_failed == 0
    skipped = int(diagnostic_values(node)['grids_skipped'])
    assert skipped >= 1
    assert any(f'no occupancy grid yet ({skipped} skipped)' in m
               for m in node.logger.messages('info'))


def saved_map(make_node: Callable[..., Any], images: list[np.ndarray], tmp_path: Path) -> Path:
    node = make_node()
    feed(node, image_messages(images, frame_id=CAMERA))
    response = node.call_service('~/save_map')
    assert response.success, response.message
    node.close()
    return (tmp_path / 'out' / 'latest').resolve()


def test_a_saved_map_loads_again_and_localization_places_the_camera_without_growing_it(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]],
        tmp_path: Path) -> None:
    folder = saved_map(make_node, frames[1], tmp_path)
    assert (folder / 'map_state').is_dir()

    node = make_node(map=str(folder), mode='localization', output_dir=str(tmp_path / 'out2'))
    loaded = node._mapper.trajectory()
    assert len(loaded) > 0 and node._mapper.mode == 'localization'
    # The loaded map is on ~/map at once, in the frame it was saved in.
    cloud = node.publishers['~/map'].messages[-1]
    assert cloud.width > 0
    assert 'floor plane' in diagnostic_values(node)['map_frame']  # as saved, not re-levelled
    # Its grid too (localization builds no window), as the saved map_server files have it.
    grid = node.publishers['~/grid'].messages[-1]
    saved_grid = read_map_server(folder / 'map.yaml')
    np.testing.assert_array_equal(np.asarray(grid.data, np.int8),
                                  saved_grid.cells.reshape(-1))

    feed(node, image_messages(frames[1][::2], frame_id=CAMERA,
                              stamp0_ns=STAMP0_NS + 100 * STEP_NS))
    engine = node.worker.stats.mapper
    assert engine.keyframes_localized >= 1, node._last_localized
    assert len(node._mapper.trajectory()) == len(loaded)  # the map did not grow
    poses = node.publishers['~/pose'].messages
    assert poses and poses[-1].header.frame_id == 'map'
    values = diagnostic_values(node)
    assert values['mode'] == 'localization' and values['since_last_localized_s'] != 'never'


def test_mode_switches_by_parameter_before_the_next_frame(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node()
    feed(node, image_messages(frames[1][:8]))
    [result] = node.set_parameters([SimpleNamespace(name='mode', value='localization')])
    assert result.successful, result.reason
    feed(node, image_messages(frames[1][8:9], stamp0_ns=STAMP0_NS + 8 * STEP_NS))
    assert node._mapper.mode == 'localization'
    [bad] = node.set_parameters([SimpleNamespace(name='mode', value='exploration')])
    assert not bad.successful and 'mapping, localization' in bad.reason


def test_a_bad_map_folder_fails_configure_with_the_reason(
        make_node: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / 'not_a_map').mkdir()
    node = make_node(configure=False, map=str(tmp_path / 'not_a_map'))
    assert node.trigger_configure() is FAILURE
    [error] = node.logger.messages('error')
    assert 'configure failed' in error and 'not_a_map' in error
    node2 = make_node(configure=False)
    assert node2.trigger_configure() is SUCCESS  # the node stays usable


def test_a_metric_map_has_the_same_grid_in_metres(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    sequence, images = frames
    provide_odometry(sequence)  # the same TF levels both maps
    unit = make_node(scale_source='none', grid_period_s=0.001)  # a grid after every window
    feed(unit, image_messages(images, frame_id=CAMERA))
    metric = make_node(grid_period_s=0.001)
    feed(metric, image_messages(images, frame_id=CAMERA))
    [scale] = metric.worker.stats.mapper.metric_scales.values()
    assert scale.metric and scale.factor > 2.0
    # Relative cell size and band: the same cells, each scale.factor times larger. Free space
    # comes from the keyframes' rays, which must be scaled with the points.
    unit_grid, metric_grid = unit._last_grid, metric._last_grid
    assert metric_grid.resolution == pytest.approx(scale.factor * unit_grid.resolution,
                                                   rel=1e-3)
    # The lattice is anchored at multiples of the cell, so compare what the cells say.
    for value in (0, 100):  # free, occupied
        assert metric_grid.count(value) == pytest.approx(unit_grid.count(value), rel=0.05)


def test_load_map_replaces_the_map_in_a_running_node_and_modes_switch_by_service(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]],
        tmp_path: Path) -> None:
    folder = saved_map(make_node, frames[1], tmp_path)
    with read_map_folder(folder) as state:
        saved = len(state.records)
    node = make_node(output_dir=str(tmp_path / 'out2'))
    feed(node, image_messages(frames[1][:12]))
    assert not node.call_service('~/load_map').success  # no folder named yet
    before = len(node._mapper.trajectory())

    [result] = node.set_parameters([SimpleNamespace(name='map', value=str(tmp_path / 'none'))])
    assert result.successful
    refused = node.call_service('~/load_map')
    assert not refused.success and 'current map is kept' in refused.message
    assert len(node._mapper.trajectory()) == before

    node.set_parameters([SimpleNamespace(name='map', value=str(folder))])
    loaded = node.call_service('~/load_map')
    assert loaded.success, loaded.message
    assert len(node._mapper.trajectory()) == saved == len(node.worker.trajectory())
    assert node.publishers['~/map'].messages[-1].width > 0

    answer = node.call_service('~/set_mode_localization')
    assert answer.success and node.get_parameter('mode').value == 'localization'
    feed(node, image_messages(frames[1][::3], stamp0_ns=STAMP0_NS + 100 * STEP_NS))
    assert node._mapper.mode == 'localization'
    assert len(node._mapper.trajectory()) == saved  # placed, not mapped
    assert node.call_service('~/set_mode_mapping').success
    assert node.get_parameter('mode').value == 'mapping'


def test_a_map_loaded_before_any_image_sends_no_tf_without_a_camera_frame(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]],
        tmp_path: Path) -> None:
    folder = saved_map(make_node, frames[1], tmp_path)
    node = make_node(output_dir=str(tmp_path / 'out2'))
    node.set_parameters([SimpleNamespace(name='map', value=str(folder))])
    assert node.call_service('~/load_map').success
    for timer in node.timers:  # the periodic re-sends too
        timer.callback()
    # The camera's frame is the images' and none came yet: TF would refuse an empty child.
    [broadcaster] = ros_fakes.TransformBroadcaster.instances[-1:]
    assert all(transform.child_frame_id for transform in broadcaster.sent)
    feed(node, image_messages(frames[1][:4], frame_id=CAMERA))
    for timer in node.timers:
        timer.callback()
    assert broadcaster.sent and broadcaster.sent[-1].child_frame_id == CAMERA
