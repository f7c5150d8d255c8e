"""
mapper_node wiring, run against the rclpy test double in ``ros_fakes`` (no ROS needed).

The engine is real (``Mapper`` with the synthetic ground-truth predictor), so these tests follow
a frame from the image callback through the bounded queue and the worker to the published map,
path, pose and TF, and through the services and the shutdown save.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import importlib
import json
import logging
from pathlib import Path
import sys
import time
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
import ros_fakes
from scipy.spatial.transform import Rotation

from vggt_mapper.io import ros_messages as conv
from vggt_mapper.ros.errors import ParameterError
from vggt_mapper.synthetic import SyntheticPredictor, SyntheticSequence

NUM_FRAMES = 16
STAMP0_NS = 1_700_000_000_000_000_000
STEP_NS = 100_000_000
TIMEOUT_S = 30.0


@pytest.fixture(scope='module')
def frames() -> tuple[SyntheticSequence, list[np.ndarray]]:
    sequence = SyntheticSequence.orbit(NUM_FRAMES, step_m=0.05, height=60, width=80)
    return sequence, [sequence.frame(index) for index in range(NUM_FRAMES)]


@pytest.fixture
def node_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    ros_fakes.install(monkeypatch)
    module = importlib.import_module('vggt_mapper.ros.node')
    # Where ROS 2 is installed, launch_testing's pytest plugin imports ``launch``, whose logger
    # class makes every logger created afterwards non-propagating; mapper_node's own process
    # does not import launch, so restore the standard behaviour for the package's loggers.
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith('vggt_mapper.') and isinstance(logger, logging.Logger):
            monkeypatch.setattr(logger, 'propagate', True)
    return module


@pytest.fixture
def make_node(node_module: ModuleType, tmp_path: Path,
              frames: tuple[SyntheticSequence, list[np.ndarray]]) -> Iterator[Callable[..., Any]]:
    nodes: list[Any] = []

    def make(predictor: Any = None, **overrides: Any) -> Any:
        ros_fakes.Node.overrides = {
            'window_size': 4, 'overlap': 2, 'min_parallax_px': 2.0, 'voxel_size': 0.05,
            'queue_length': 64, 'output_dir': str(tmp_path / 'out'),
            'save_on_shutdown': False, **overrides}
        node = node_module.MapperNode(
            predictor=predictor or SyntheticPredictor(frames[0], model_width=84))
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()  # stops the worker, gives the vggt_mapper Python logger back
        node.worker.stop(timeout=TIMEOUT_S)


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, 'timed out waiting for the mapping worker'
        time.sleep(0.01)


def image_messages(images: list[np.ndarray], encoding: str = 'rgb8') -> list[Any]:
    types = conv.rclpy_message_types()  # the fake message modules
    return [conv.rgb_to_image(image, STAMP0_NS + index * STEP_NS, 'camera_optical', types,
                              encoding) for index, image in enumerate(images)]


def feed(node: Any, messages: list[Any]) -> None:
    for msg in messages:
        node.subscriptions['image'].callback(msg)

    def settled() -> bool:  # every enqueued frame mapped or dropped
        stats = node.worker.stats
        return bool(stats.frames_processed + stats.frames_dropped == stats.frames_received)

    wait_until(settled)


def test_parameters_are_declared_once_with_descriptions_ranges_and_map_to_engine(
        make_node: Callable[..., Any]) -> None:
    node = make_node(window_size=6, overlap=3, conf_percentile=70.0, max_gap=12,
                     drop_policy='drop_newest', queue_length=7)
    window = node.descriptors['window_size']
    assert window.read_only and window.integer_range[0].from_value == 2
    assert node.descriptors['voxel_size'].floating_point_range[0].from_value == 0.0
    assert 'map_to_odom' in node.descriptors['publish_tf'].additional_constraints
    config = node.worker._mapper.config
    assert (config.window_size, config.overlap, config.keyframes.max_gap) == (6, 3, 12)
    assert (config.map.conf_percentile, config.map.voxel_size) == (70.0, 0.05)
    assert node.worker.stats.queue_capacity == 7
    assert node.worker._policy.value == 'drop_newest'


def test_invalid_start_parameters_are_refused(make_node: Callable[..., Any]) -> None:
    with pytest.raises(ParameterError, match='overlap'):
        make_node(window_size=4, overlap=4)
    with pytest.raises(ros_fakes.InvalidParameterValueException):
        make_node(window_size=1)  # outside the declared IntegerRange


def test_runtime_parameter_changes_are_validated(make_node: Callable[..., Any],
                                                 tmp_path: Path) -> None:
    node = make_node()
    new_dir = str(tmp_path / 'elsewhere')
    [ok] = node.set_parameters([SimpleNamespace(name='output_dir', value=new_dir)])
    assert ok.successful and node._params.output_dir == new_dir
    [empty] = node.set_parameters([SimpleNamespace(name='output_dir', value='')])
    assert not empty.successful and 'output_dir' in empty.reason
    [read_only] = node.set_parameters([SimpleNamespace(name='window_size', value=5)])
    assert not read_only.successful
    assert node._params.output_dir == new_dir


def test_frames_flow_to_map_path_pose_and_tf(make_node: Callable[..., Any],
                                             frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node()
    sub = node.subscriptions['image']
    assert sub.msg_type.__name__ == 'Image' and sub.qos is ros_fakes.SENSOR_DATA
    feed(node, image_messages(frames[1]))
    stats = node.worker.stats
    assert stats.windows_done >= 2 and stats.windows_failed == 0

    map_pub = node.publishers['~/map']
    assert map_pub.qos.durability == 'transient_local' and map_pub.qos.reliability == 'reliable'
    assert node.publishers['~/path'].qos.durability == 'transient_local'
    assert len(map_pub.messages) == stats.windows_done
    trajectory = node.worker.trajectory()
    latest = trajectory[-1]
    assert latest.stamp_ns in [STAMP0_NS + i * STEP_NS for i in range(NUM_FRAMES)]

    cloud = map_pub.messages[-1]
    assert cloud.header.frame_id == 'map'
    assert conv.stamp_to_ns(cloud.header.stamp) == latest.stamp_ns
    points, colors = conv.cloud_to_points(cloud)
    snapshot = node.worker.map_snapshot()
    assert points.shape[0] == snapshot.num_points > 0
    np.testing.assert_allclose(points, snapshot.points_world @ conv.MAP_FROM_WORLD[:3, :3].T,
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(colors, snapshot.colors_rgb)
    window_cloud = node.publishers['~/window_cloud'].messages[-1]
    assert window_cloud.width > 0 and window_cloud.header.frame_id == 'map'

    path = node.publishers['~/path'].messages[-1]
    assert [conv.stamp_to_ns(p.header.stamp) for p in path.poses] == [
        pose.stamp_ns for pose in trajectory]
    expected = conv.MAP_FROM_WORLD @ latest.world_from_cam
    pose = node.publishers['~/pose'].messages[-1].pose
    np.testing.assert_allclose([pose.position.x, pose.position.y, pose.position.z],
                               expected[:3, 3], atol=1e-9)

    [broadcaster] = ros_fakes.TransformBroadcaster.instances
    tf = broadcaster.sent[-1]
    assert (tf.header.frame_id, tf.child_frame_id) == ('map', 'camera_optical')
    assert conv.stamp_to_ns(tf.header.stamp) == latest.stamp_ns
    np.testing.assert_allclose(conv.transform_to_matrix(tf), expected, atol=1e-9)

    assert not any('camera_frame' in m for m in node.logger.messages('warning'))

    # The slow timer republishes the same latched map.
    [map_timer] = [t for t in node.timers if t.period_s == 5.0]
    map_timer.callback()
    assert map_pub.messages[-1] is cloud


def test_malformed_image_is_skipped_with_a_throttled_counted_warning(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node()
    messages = image_messages(frames[1])
    broken = image_messages(frames[1][:1])[0]
    broken.step = 7  # smaller than a row
    feed(node, messages[:8] + [broken, broken] + messages[8:])
    warnings = [(m, kw) for lvl, m, kw in node.logger.records
                if lvl == 'warning' and 'malformed' in m]
    assert [m.split('(')[1].split(' ')[0] for m, _ in warnings] == ['1', '2']
    assert all(kw['throttle_duration_sec'] > 0 for _, kw in warnings)
    assert node.worker.stats.frames_processed == NUM_FRAMES  # mapping went on
    assert node.worker.stats.windows_done >= 2
    node.timers[0].callback()  # diagnostics
    values = {kv.key: kv.value for kv in node.publishers['/diagnostics'].messages[-1]
              .status[0].values}
    assert values['frames_malformed'] == '2'


def test_compressed_transport(make_node: Callable[..., Any],
                              frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(image_transport='compressed')
    assert node.subscriptions['image'].msg_type.__name__ == 'CompressedImage'
    types = conv.rclpy_message_types()
    feed(node, [conv.rgb_to_compressed(image, STAMP0_NS + i * STEP_NS, 'camera_optical', types)
                for i, image in enumerate(frames[1])])
    assert node.worker.stats.windows_done >= 2


def test_a_failed_inference_refuses_the_window_and_the_node_keeps_mapping(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    class FlakyPredictor:
        def __init__(self, inner: Any) -> None:
            self.inner, self.calls = inner, 0

        def predict(self, frames_rgb: Any) -> Any:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError('CUDA out of memory')
            return self.inner.predict(frames_rgb)

    node = make_node(predictor=FlakyPredictor(SyntheticPredictor(frames[0], model_width=84)))
    feed(node, image_messages(frames[1]))
    stats = node.worker.stats
    # The engine refused the window and retried it with fewer keyframes: nothing lost.
    assert stats.windows_failed == 0 and stats.running and stats.fatal_error == ''
    assert stats.mapper is not None and stats.mapper.refusals == {'predictor:error': 1}
    assert stats.mapper.keyframes_lost == 0
    assert any('CUDA out of memory' in m for m in node.logger.messages('warning'))
    assert node.worker.map_snapshot().num_points > 0
    node.timers[0].callback()
    status = node.publishers['/diagnostics'].messages[-1].status[0]
    # One refusal among several accepted windows is counted, not a standing warning.
    assert status.level == b'\x00', status.message
    values = {kv.key: kv.value for kv in status.values}
    assert values['rejected_alignments'] == '1' and values['segments'] == '1'


def test_queue_drops_are_counted(make_node: Callable[..., Any],
                                 frames: tuple[Any, list[np.ndarray]]) -> None:
    gate = __import__('threading').Event()

    class SlowPredictor:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def predict(self, frames_rgb: Any) -> Any:
            gate.wait(TIMEOUT_S)
            return self.inner.predict(frames_rgb)

    node = make_node(predictor=SlowPredictor(SyntheticPredictor(frames[0], model_width=84)),
                     queue_length=2)
    for msg in image_messages(frames[1]):
        node.subscriptions['image'].callback(msg)
    gate.set()
    wait_until(lambda: node.worker.stats.queue_depth == 0)
    stats = node.worker.stats
    assert stats.frames_dropped > 0
    assert stats.frames_received == NUM_FRAMES
    assert any('lagging' in m for m in node.logger.messages('warning'))
    node.timers[0].callback()
    status = node.publishers['/diagnostics'].messages[-1].status[0]
    assert status.level == b'\x01' and 'frames dropped' in status.message
    values = {kv.key: kv.value for kv in status.values}
    assert values['frames_dropped'] == str(stats.frames_dropped)
    assert set(values) >= {'queue_depth', 'windows_done', 'last_inference_s',
                           'rejected_alignments'}


def test_save_map_and_reset_services(make_node: Callable[..., Any], tmp_path: Path,
                                     frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node()
    types = conv.rclpy_message_types()
    info = types.header  # any header works for the fake CameraInfo
    node.subscriptions['camera_info'].callback(
        sys.modules['sensor_msgs.msg'].CameraInfo(
            header=info(stamp=types.time(sec=1, nanosec=2), frame_id='camera_optical'),
            height=60, width=80, distortion_model='plumb_bob', d=[0.0] * 5,
            k=[50.0, 0, 40, 0, 50.0, 30, 0, 0, 1], r=[1.0, 0, 0, 0, 1, 0, 0, 0, 1],
            p=[50.0, 0, 40, 0, 0, 50.0, 30, 0, 0, 0, 1, 0]))
    feed(node, image_messages(frames[1]))
    response = node.call_service('~/save_map')
    assert response.success, response.message
    outdir = tmp_path / 'out'
    names = sorted(Path(p).name for p in response.message.split())
    assert names == ['camera_info.json', 'cameras.json', 'map.glb', 'map.ply', 'trajectory.tum']
    assert all((outdir / name).is_file() for name in names)
    assert json.loads((outdir / 'camera_info.json').read_text())['k'][0] == 50.0
    tum_lines = (outdir / 'trajectory.tum').read_text().split('\n')
    assert len([line for line in tum_lines if line and not line.startswith('#')]) == len(
        node.worker.trajectory())

    response = node.call_service('~/reset')
    assert response.success
    assert node.worker.map_snapshot().num_points == 0 and node.worker.trajectory() == []
    assert node.publishers['~/map'].messages[-1].width == 0
    assert node.publishers['~/path'].messages[-1].poses == []


def test_save_map_failure_is_reported(make_node: Callable[..., Any], tmp_path: Path) -> None:
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    node = make_node(output_dir=str(blocker))
    response = node.call_service('~/save_map')
    assert not response.success and 'save failed' in response.message


def test_map_to_odom_publishes_the_rep105_correction(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    types = conv.rclpy_message_types()
    base_from_cam = np.eye(4)
    base_from_cam[:3, :3] = Rotation.from_euler('xyz', [-90, 0, -90], degrees=True).as_matrix()
    base_from_cam[:3, 3] = [0.2, 0.0, 0.5]
    odom_from_base = np.eye(4)
    odom_from_base[:3, :3] = Rotation.from_euler('z', 30, degrees=True).as_matrix()
    odom_from_base[:3, 3] = [1.0, 2.0, 0.0]
    ros_fakes.Buffer.transforms = {
        ('base_link', 'camera_optical'): conv.matrix_to_transform(
            base_from_cam, 0, 'base_link', 'camera_optical', types),
        ('odom', 'base_link'): conv.matrix_to_transform(
            odom_from_base, 0, 'odom', 'base_link', types),
    }
    node = make_node(publish_tf='map_to_odom')
    feed(node, image_messages(frames[1]))
    tf = ros_fakes.TransformBroadcaster.instances[0].sent[-1]
    assert (tf.header.frame_id, tf.child_frame_id) == ('map', 'odom')
    map_from_odom = conv.transform_to_matrix(tf)
    map_from_cam = conv.MAP_FROM_WORLD @ node.worker.trajectory()[-1].world_from_cam
    # Chaining the published correction with odometry and the mount gives the VGGT pose.
    np.testing.assert_allclose(map_from_odom @ odom_from_base @ base_from_cam, map_from_cam,
                               atol=1e-9)


def test_map_to_odom_without_tf_warns_and_counts(make_node: Callable[..., Any],
                                                 frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(publish_tf='map_to_odom')
    feed(node, image_messages(frames[1]))
    assert ros_fakes.TransformBroadcaster.instances[0].sent == []
    assert node._tf_failures == node.worker.stats.windows_done
    assert any('does not exist' in m for m in node.logger.messages('warning'))


def test_tf_none_publishes_no_tf(make_node: Callable[..., Any],
                                 frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(publish_tf='none')
    feed(node, image_messages(frames[1]))
    assert ros_fakes.TransformBroadcaster.instances == []
    assert node.publishers['~/path'].messages  # the rest is still published


def test_main_builds_the_predictor_from_parameters_and_saves_on_shutdown(
        node_module: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        frames: tuple[Any, list[np.ndarray]]) -> None:
    specs: list[Any] = []

    def create_predictor(spec: Any) -> Any:
        specs.append(spec)
        return SyntheticPredictor(frames[0], model_width=84)

    factory = importlib.import_module('vggt_mapper.predictor.factory')
    monkeypatch.setattr(factory, 'create_predictor', create_predictor)
    outdir = tmp_path / 'shutdown'
    ros_fakes.Node.overrides = {'window_size': 4, 'overlap': 2, 'min_parallax_px': 2.0,
                                'voxel_size': 0.05, 'queue_length': 64, 'device': 'cpu',
                                'model': 'tiny', 'output_dir': str(outdir)}

    def spin(nodes: list[Any]) -> None:
        feed(nodes[0], image_messages(frames[1]))  # then Ctrl-C (KeyboardInterrupt)

    ros_fakes.MultiThreadedExecutor.on_spin = staticmethod(spin)
    assert node_module.main(['--ros-args']) == 0
    assert ros_fakes.RclpyState.init_calls == [['--ros-args']]
    assert ros_fakes.RclpyState.shutdown_calls == 1
    [spec] = specs
    assert (spec.model, spec.device, spec.checkpoint, spec.remote_url) == ('tiny', 'cpu', None,
                                                                           None)
    [node] = ros_fakes.Node.instances
    assert isinstance(node, node_module.MapperNode)
    assert node.destroyed and not node.worker.stats.running
    assert sorted(p.name for p in outdir.iterdir()) == [
        'cameras.json', 'map.glb', 'map.ply', 'trajectory.tum']


def test_main_reports_bad_parameters_in_one_line(node_module: ModuleType,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    ros_fakes.Node.overrides = {'remote_url': 'http://host:7860', 'checkpoint': 'x/y'}
    assert node_module.main([]) == 1
    assert ros_fakes.RclpyState.shutdown_calls == 1
    err = capsys.readouterr().err
    assert err.startswith('mapper_node: invalid predictor parameters') and err.count('\n') == 1


def test_a_predictor_that_always_fails_is_an_error_but_the_node_stays_up(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    class BuggyPredictor:
        def predict(self, frames_rgb: Any) -> Any:
            raise TypeError('unsupported operand')  # a custom model's bug, on every window

    node = make_node(predictor=BuggyPredictor())
    feed(node, image_messages(frames[1]))
    stats = node.worker.stats
    assert stats.running and stats.windows_failed >= 1
    assert 'unsupported operand' in stats.last_error
    node.timers[0].callback()
    status = node.publishers['/diagnostics'].messages[-1].status[0]
    assert status.level == b'\x02' and 'predictor failing' in status.message  # ERROR
    assert 'unsupported operand' in status.message
    response = node.call_service('~/save_map')  # the (empty) map can still be saved
    assert response.success, response.message


def test_rejected_window_publishes_nothing(make_node: Callable[..., Any]) -> None:
    from vggt_mapper.engine.types import WindowResult

    node = make_node()
    rejected = WindowResult(window_index=3, keyframe_indices=(6, 7, 8, 9), accepted=False,
                            reason='too few inliers', poses=(),
                            points_world=np.zeros((0, 3), np.float32),
                            colors_rgb=np.zeros((0, 3), np.uint8), predict_s=0.1, align_s=0.0)
    node._on_window(rejected)
    assert all(not pub.messages for pub in node.publishers.values())
    # The engine logs the refusal (forwarded, see the logging test); the node does not repeat it.
    assert not node.logger.messages('warning')


def test_image_frame_differing_from_camera_frame_is_warned_once(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(camera_frame='cam_left_optical')
    feed(node, image_messages(frames[1][:3]))
    warnings = [m for m in node.logger.messages('warning') if 'camera_frame' in m]
    assert len(warnings) == 1 and "'camera_optical'" in warnings[0]


def rejected_result(index: int) -> Any:
    from vggt_mapper.engine.types import WindowResult

    return WindowResult(window_index=index, keyframe_indices=(index,), accepted=False,
                        reason='too few inliers', poses=(),
                        points_world=np.zeros((0, 3), np.float32),
                        colors_rgb=np.zeros((0, 3), np.uint8), predict_s=0.1, align_s=0.0)


def diagnostic(node: Any) -> Any:
    node.timers[0].callback()
    return node.publishers['/diagnostics'].messages[-1].status[0]


def test_diagnostics_warn_while_most_recent_windows_are_rejected(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node()
    feed(node, image_messages(frames[1]))
    assert diagnostic(node).level == b'\x00'
    accepted = node.worker.stats.windows_done
    for index in range(accepted):  # as many rejected as accepted: half of the recent ones
        node._on_window(rejected_result(100 + index))
    status = diagnostic(node)
    assert status.level == b'\x01' and 'windows rejected or failed' in status.message
    assert diagnostic(node).level == b'\x01'  # stays while they are the recent windows


def test_diagnostics_warning_for_dropped_frames_is_sticky(
        make_node: Callable[..., Any], node_module: ModuleType,
        monkeypatch: pytest.MonkeyPatch) -> None:
    node = make_node(queue_length=1)
    clock = [1000.0]
    monkeypatch.setattr(node_module.time, 'monotonic', lambda: clock[0])
    assert diagnostic(node).level == b'\x00'
    node._last_counts = (-1, 0, 0)  # as if frames had been dropped since the last tick
    assert diagnostic(node).level == b'\x01'
    clock[0] += node_module.DIAG_STICKY_S - 1.0  # no new drop, still within the sticky period
    status = diagnostic(node)
    assert status.level == b'\x01' and 'frames dropped' in status.message
    clock[0] += 2.0
    assert diagnostic(node).level == b'\x00'


def test_diagnostics_error_when_the_worker_stopped(make_node: Callable[..., Any]) -> None:
    node = make_node()
    node.worker.stop(timeout=TIMEOUT_S)
    status = diagnostic(node)
    assert status.level == b'\x02' and 'worker stopped' in status.message


def test_engine_logging_reaches_the_ros_logger_until_close(
        make_node: Callable[..., Any]) -> None:
    propagate = logging.getLogger('vggt_mapper').propagate
    node = make_node()
    assert not logging.getLogger('vggt_mapper').propagate  # not printed twice (lastResort)
    engine_logger = logging.getLogger('vggt_mapper.engine.mapper')
    engine_logger.warning('window %d refused: %s', 3, 'too few inliers')
    engine_logger.info('an info line')
    engine_logger.debug('a debug line')  # below the node logger's INFO level
    assert node.logger.messages('warning') == [
        '[engine.mapper] window 3 refused: too few inliers']
    assert node.logger.messages('info')[-1] == '[engine.mapper] an info line'
    assert node.logger.messages('debug') == []
    node.context.shut_down = True  # Ctrl-C: the node logger's /rosout publisher is invalid
    engine_logger.error('late error')
    assert ros_fakes.NAMED_LOGGERS['vggt_mapper.shutdown'].messages('error') == [
        '[engine.mapper] late error']
    node.close()
    assert node._log_handler not in logging.getLogger('vggt_mapper').handlers
    assert logging.getLogger('vggt_mapper').propagate == propagate


def test_publish_tf_is_read_only_at_runtime(make_node: Callable[..., Any]) -> None:
    node = make_node()
    [result] = node.set_parameters([SimpleNamespace(name='publish_tf', value='none')])
    assert not result.successful and node._params.publish_tf == 'map_to_camera'


def test_republish_timer_resends_the_latest_tf(make_node: Callable[..., Any],
                                               frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(map_publish_period_s=1.0)
    feed(node, image_messages(frames[1]))
    sent = ros_fakes.TransformBroadcaster.instances[0].sent
    last = sent[-1]
    count = len(sent)
    node.timers[1].callback()
    node.timers[1].callback()
    assert len(sent) == count + 2
    stamps = [conv.stamp_to_ns(tf.header.stamp) for tf in sent[-3:]]
    # map -> camera keeps the keyframe's stamp, advanced 1 ns per re-send (no repeated stamp).
    assert stamps[1] == stamps[0] + 1 and stamps[2] == stamps[0] + 2
    np.testing.assert_allclose(conv.transform_to_matrix(sent[-1]),
                               conv.transform_to_matrix(last))


def test_republish_timer_resends_map_to_odom_with_the_current_time(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    types = conv.rclpy_message_types()
    ros_fakes.Buffer.transforms = {
        ('base_link', 'camera_optical'): conv.matrix_to_transform(
            np.eye(4), 0, 'base_link', 'camera_optical', types),
        ('odom', 'base_link'): conv.matrix_to_transform(
            np.eye(4), 0, 'odom', 'base_link', types),
    }
    node = make_node(publish_tf='map_to_odom', map_publish_period_s=1.0)
    feed(node, image_messages(frames[1]))
    sent = ros_fakes.TransformBroadcaster.instances[0].sent
    node.timers[1].callback()
    assert sent[-1].child_frame_id == 'odom'
    assert conv.stamp_to_ns(sent[-1].header.stamp) == ros_fakes.Clock().now().nanoseconds


class GatedPredictor:
    """Map the first ``free`` windows at once, then wait for ``gate`` (a long VGGT window)."""

    def __init__(self, inner: Any, free: int) -> None:
        import threading

        self.inner, self.free, self.calls = inner, free, 0
        self.gate, self.in_flight = threading.Event(), threading.Event()

    def predict(self, frames_rgb: Any) -> Any:
        self.calls += 1
        if self.calls > self.free:
            self.in_flight.set()
            self.gate.wait(TIMEOUT_S)
        return self.inner.predict(frames_rgb)


def test_shutdown_saves_at_once_while_a_window_is_in_flight(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]],
        tmp_path: Path) -> None:
    predictor = GatedPredictor(SyntheticPredictor(frames[0], model_width=84), free=2)
    node = make_node(predictor=predictor, save_on_shutdown=True, shutdown_timeout_s=0.2)
    for msg in image_messages(frames[1]):
        node.subscriptions['image'].callback(msg)
    assert predictor.in_flight.wait(TIMEOUT_S)
    mapped = node.worker.trajectory()
    published = len(node.publishers['~/map'].messages)
    start = time.monotonic()
    node.context.shut_down = True  # Ctrl-C shuts the context down before close() runs
    assert node.close() is False  # the window is still in flight: abandoned, not waited for
    assert time.monotonic() - start < 5.0
    tum = (tmp_path / 'out' / 'trajectory.tum').read_text().splitlines()
    assert len([line for line in tum if not line.startswith('#')]) == len(mapped) > 0
    assert any('abandoned' in m for m in
               ros_fakes.NAMED_LOGGERS['vggt_mapper.shutdown'].messages('warning'))
    predictor.gate.set()  # the window finishes later: nothing is published on the dead context
    assert node.worker.stop(timeout=TIMEOUT_S)
    assert len(node.publishers['~/map'].messages) == published


def test_shutdown_maps_the_last_partial_window(make_node: Callable[..., Any],
                                               frames: tuple[Any, list[np.ndarray]],
                                               tmp_path: Path) -> None:
    node = make_node(save_on_shutdown=True, window_size=6, overlap=2)
    feed(node, image_messages(frames[1][:9]))  # one window of 6, then keyframes left over
    before = len(node.worker.trajectory())
    assert node.close() is True
    after = node.worker.trajectory()
    assert len(after) > before
    tum = (tmp_path / 'out' / 'trajectory.tum').read_text().splitlines()
    assert len([line for line in tum if not line.startswith('#')]) == len(after)
    assert any('saved again' in m for m in node.logger.messages('info'))


def test_main_exits_without_finalising_when_a_window_outlasts_the_timeout(
        node_module: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        frames: tuple[Any, list[np.ndarray]]) -> None:
    predictor = GatedPredictor(SyntheticPredictor(frames[0], model_width=84), free=1)
    factory = importlib.import_module('vggt_mapper.predictor.factory')
    monkeypatch.setattr(factory, 'create_predictor', lambda spec: predictor)
    exits: list[bool] = []
    monkeypatch.setattr(node_module, '_exit_abandoning_worker', lambda: exits.append(True))
    ros_fakes.Node.overrides = {'window_size': 4, 'overlap': 2, 'min_parallax_px': 2.0,
                                'queue_length': 64, 'shutdown_timeout_s': 0.1,
                                'output_dir': str(tmp_path / 'out')}

    def spin(nodes: list[Any]) -> None:
        for msg in image_messages(frames[1]):
            nodes[0].subscriptions['image'].callback(msg)
        assert predictor.in_flight.wait(TIMEOUT_S)

    ros_fakes.MultiThreadedExecutor.on_spin = staticmethod(spin)
    try:
        assert node_module.main([]) == 0
        assert exits == [True] and ros_fakes.RclpyState.shutdown_calls == 1
        assert (tmp_path / 'out' / 'map.ply').exists()
    finally:
        predictor.gate.set()
        ros_fakes.Node.instances[0].worker.stop(timeout=TIMEOUT_S)


def test_main_reports_a_wrongly_typed_parameter_in_one_line(
        node_module: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    ros_fakes.Node.overrides = {'scale': 1}  # an int for a double, as "scale: 1" in a YAML
    assert node_module.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith('mapper_node: ') and "'scale'" in err and err.count('\n') == 1
    assert ros_fakes.RclpyState.shutdown_calls == 1


def test_fake_rclpy_init_returns_none_like_jazzy() -> None:
    # rclpy.init() is only a context manager from rclpy 7.4 (Kilted); main must not rely on it.
    assert ros_fakes.init([]) is None


def test_a_lost_link_publishes_the_new_segment_and_every_segment_apart(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    sequence, images = frames
    cut = len(images) // 2

    class Cut:
        """No window spanning the middle frame can be predicted (a camera that jumped)."""

        def __init__(self) -> None:
            self.inner = SyntheticPredictor(sequence, model_width=84)

        def predict(self, frames_rgb: Any) -> Any:
            indices = [sequence.index_of(frame) for frame in frames_rgb]
            if min(indices) < cut <= max(indices):
                raise RuntimeError('frames from two places')
            return self.inner.predict(frames_rgb)

    node = make_node(predictor=Cut())
    feed(node, image_messages(images))
    engine = node.worker.stats.mapper
    assert engine.segments == 2 and engine.keyframes_lost == 0
    active = max(node.worker.trajectory(), key=lambda pose: pose.index).segment
    assert active == 1
    snapshot = node.worker.map_snapshot()
    published, _ = conv.cloud_to_points(node.publishers['~/map'].messages[-1])
    assert len(published) == int(np.count_nonzero(snapshot.segments == active))
    path = node.publishers['~/path'].messages[-1]
    assert len(path.poses) == sum(p.segment == active for p in node.worker.trajectory())
    everything = node.publishers['~/map_segments'].messages[-1]
    assert everything.width == snapshot.num_points and everything.point_step == 20
    assert [field.name for field in everything.fields][-1] == 'segment'
    node.timers[0].callback()
    values = {kv.key: kv.value for kv in node.publishers['/diagnostics'].messages[-1]
              .status[0].values}
    assert values['segments'] == '2' and values['segments_started'] == '2'
