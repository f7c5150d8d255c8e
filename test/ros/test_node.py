"""
mapper_node wiring, run against the rclpy test double in ``ros_fakes`` (no ROS needed).

The engine is real (``Mapper`` with the synthetic ground-truth predictor), so these tests follow
a frame from the image callback through the bounded queue and the worker to the published map,
path, pose and TF, and through the services and the shutdown save. The lifecycle transitions
are in ``test_node_lifecycle.py``, frames and TF in ``test_node_frames.py``, where and what the
node saves in ``test_node_saving.py``.
"""

from __future__ import annotations

from collections.abc import Callable
import importlib
import logging
from pathlib import Path
import threading
import time
from types import ModuleType, SimpleNamespace
from typing import Any

from node_helpers import (
    diagnostic,
    diagnostic_values,
    ERROR,
    FAILURE,
    feed,
    GatedPredictor,
    image_messages,
    NUM_FRAMES,
    OK,
    STAMP0_NS,
    STEP_NS,
    TIMEOUT_S,
    timer,
    wait_until,
)
import numpy as np
import pytest
import ros_fakes

from vggt_mapper.engine.types import WindowResult
from vggt_mapper.io import ros_messages as conv
from vggt_mapper.synthetic import SyntheticPredictor


def test_parameters_are_declared_once_with_descriptions_ranges_and_map_to_engine(
        make_node: Callable[..., Any]) -> None:
    node = make_node(window_size=6, overlap=3, first_window_size=5, conf_percentile=70.0,
                     max_gap=12, drop_policy='drop_newest', queue_length=7)
    window = node.descriptors['window_size']
    assert window.integer_range[0].from_value == 2
    assert 'Fixed while the node is configured' in window.description
    assert node.descriptors['voxel_size'].floating_point_range[0].from_value == 0.0
    assert 'map_to_odom' in node.descriptors['publish_tf'].additional_constraints
    config = node._mapper.config
    assert (config.window_size, config.overlap, config.first_window_size) == (6, 3, 5)
    assert config.keyframes.max_gap == 12
    assert (config.map.conf_percentile, config.map.voxel_size) == (70.0, 0.05)
    assert node.worker.stats.queue_capacity == 7
    assert node.worker._policy.value == 'drop_newest'


def test_invalid_parameters_fail_configure_with_the_reason(make_node: Callable[..., Any]) -> None:
    node = make_node(window_size=4, overlap=4, configure=False)
    assert node.trigger_configure() is FAILURE
    assert node.state == 'unconfigured' and node.publishers == {} and node.services == {}
    [error] = node.logger.messages('error')
    assert error.startswith('configure failed: invalid mapper parameters') and 'overlap' in error
    with pytest.raises(ros_fakes.InvalidParameterValueException):
        make_node(window_size=1, configure=False)  # outside the declared IntegerRange


def test_runtime_parameter_changes_are_validated(make_node: Callable[..., Any],
                                                 tmp_path: Path) -> None:
    node = make_node()
    new_dir = str(tmp_path / 'elsewhere')
    [ok] = node.set_parameters([SimpleNamespace(name='output_dir', value=new_dir)])
    assert ok.successful and node.params.output_dir == new_dir
    [empty] = node.set_parameters([SimpleNamespace(name='output_dir', value='')])
    assert not empty.successful and 'output_dir' in empty.reason
    [fixed] = node.set_parameters([SimpleNamespace(name='window_size', value=5)])
    assert not fixed.successful and 'fixed while the node is configured' in fixed.reason
    assert node.params.output_dir == new_dir and node.params.window_size == 4


def test_rclpy_own_parameters_are_not_refused(make_node: Callable[..., Any]) -> None:
    node = make_node()
    # use_sim_time is rclpy's: ros2 param set /vggt_mapper use_sim_time true must work.
    node.parameters['use_sim_time'] = False
    node.descriptors['use_sim_time'] = ros_fakes.message_class('D', ('type', 'read_only',
                                                                     'integer_range',
                                                                     'floating_point_range'))(
        type=1, read_only=False)
    [result] = node.set_parameters([SimpleNamespace(name='use_sim_time', value=True)])
    assert result.successful, result.reason
    assert node.parameters['use_sim_time'] is True


def test_frames_flow_to_map_path_pose_and_tf(make_node: Callable[..., Any],
                                             frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(grid_period_s=0.0)  # no grid: no floor fit levels the map frame
    sub = node.subscriptions['image']
    assert sub.msg_type.__name__ == 'Image'
    assert (sub.qos.reliability, sub.qos.depth) == ('best_effort', 5)
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
    # No TF base_link -> camera, no grid: the map is the first camera's frame in REP 103 axes.
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

    timer(node, 5.0)()  # the slow timer republishes the same latched map
    assert map_pub.messages[-1] is cloud


def test_reliable_image_qos_for_reliable_only_drivers(make_node: Callable[..., Any]) -> None:
    node = make_node(image_qos_reliability='reliable', image_qos_depth=20)
    for name in ('image', 'camera_info'):
        qos = node.subscriptions[name].qos
        assert (qos.reliability, qos.depth, qos.durability) == ('reliable', 20, 'volatile')


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
    status = diagnostic(node)
    assert status.level == b'\x01' and 'malformed images skipped' in status.message
    assert {kv.key: kv.value for kv in status.values}['frames_malformed'] == '2'


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
    status = diagnostic(node)
    # One refusal among several accepted windows is counted, not a standing warning.
    assert status.level == OK, status.message
    values = {kv.key: kv.value for kv in status.values}
    assert values['rejected_alignments'] == '1' and values['segments'] == '1'


def test_dropped_frames_are_counted_but_normal(make_node: Callable[..., Any],
                                               frames: tuple[Any, list[np.ndarray]]) -> None:
    gate = threading.Event()

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
    assert stats.frames_dropped > 0 and stats.frames_received == NUM_FRAMES
    # A camera faster than the windows is normal operation: counted, no warning, level OK.
    assert not node.logger.messages('warning')
    status = diagnostic(node)
    assert status.level == OK, status.message
    values = {kv.key: kv.value for kv in status.values}
    assert values['frames_dropped'] == str(stats.frames_dropped)
    assert set(values) >= {'queue_depth', 'windows_done', 'last_inference_s', 'mapping_lag_s',
                           'rejected_alignments', 'map_frame'}


def test_save_map_failure_is_reported(make_node: Callable[..., Any], tmp_path: Path,
                                      frames: tuple[Any, list[np.ndarray]]) -> None:
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    node = make_node(output_dir=str(blocker))
    feed(node, image_messages(frames[1]))
    response = node.call_service('~/save_map')
    assert not response.success and 'save failed' in response.message


def test_tf_none_publishes_no_tf(make_node: Callable[..., Any],
                                 frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(publish_tf='none')
    feed(node, image_messages(frames[1]))
    assert ros_fakes.TransformBroadcaster.instances == []
    assert node.publishers['~/path'].messages  # the rest is still published


def test_main_builds_the_predictor_from_parameters_and_saves_on_ctrl_c(
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
                                'model': 'tiny', 'output_dir': str(outdir),
                                'output_per_run': False}

    def spin(nodes: list[Any]) -> None:
        [node] = nodes
        assert node.state == 'unconfigured' and specs == []  # nothing loaded before configure
        node.trigger_configure()
        node.trigger_activate()
        feed(node, image_messages(frames[1]))  # then Ctrl-C (KeyboardInterrupt)

    ros_fakes.MultiThreadedExecutor.on_spin = staticmethod(spin)
    assert node_module.main(['--ros-args']) == 0
    assert ros_fakes.RclpyState.init_calls == [['--ros-args']]
    assert ros_fakes.RclpyState.shutdown_calls == 1
    [spec] = specs
    assert (spec.model, spec.device, spec.checkpoint, spec.remote_url) == ('tiny', 'cpu', None,
                                                                           None)
    [node] = ros_fakes.Node.instances
    assert isinstance(node, node_module.MapperNode)
    assert node.destroyed and node.params is None
    assert sorted(p.name for p in outdir.iterdir()) == [
        'cameras.json', 'map.glb', 'map.pgm', 'map.ply', 'map.yaml', 'map_frame.json',
        'map_state', 'trajectory.tum']


def test_main_ends_after_the_shutdown_transition(node_module: ModuleType,
                                                 tmp_path: Path) -> None:
    ros_fakes.Node.overrides = {'output_dir': str(tmp_path / 'out')}

    def spin(nodes: list[Any]) -> None:
        nodes[0].trigger_shutdown()  # ros2 lifecycle set /vggt_mapper shutdown

    ros_fakes.MultiThreadedExecutor.on_spin = staticmethod(spin)
    assert node_module.main([]) == 0  # spin returned: no Ctrl-C needed
    [node] = ros_fakes.Node.instances
    assert node.state == 'finalized' and node.destroyed


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
    status = diagnostic(node)
    assert status.level == ERROR and 'predictor failing' in status.message
    assert 'unsupported operand' in status.message
    response = node.call_service('~/save_map')  # nothing mapped: said, nothing written
    assert not response.success and response.message.startswith('nothing mapped yet')


def rejected_result(index: int) -> WindowResult:
    return WindowResult(window_index=index, keyframe_indices=(index,), accepted=False,
                        reason='too few inliers', poses=(),
                        points_world=np.zeros((0, 3), np.float32),
                        colors_rgb=np.zeros((0, 3), np.uint8), predict_s=0.1, align_s=0.0)


def test_rejected_window_publishes_nothing(make_node: Callable[..., Any]) -> None:
    node = make_node()
    node._on_window(node._generation, rejected_result(3))
    assert all(not pub.messages for pub in node.publishers.values())
    # The engine logs the refusal (forwarded, see the logging test); the node does not repeat it.
    assert not node.logger.messages('warning')


def test_diagnostics_warn_while_most_recent_windows_are_rejected(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node()
    feed(node, image_messages(frames[1]))
    assert diagnostic(node).level == OK
    accepted = node.worker.stats.windows_done
    for index in range(accepted):  # as many rejected as accepted: half of the recent ones
        node._on_window(node._generation, rejected_result(100 + index))
    status = diagnostic(node)
    assert status.level == b'\x01' and 'windows rejected or failed' in status.message
    assert diagnostic(node).level == b'\x01'  # stays while they are the recent windows


def test_diagnostics_error_when_the_worker_stopped(make_node: Callable[..., Any]) -> None:
    node = make_node()
    node.worker.stop(timeout=TIMEOUT_S)
    status = diagnostic(node)
    assert status.level == ERROR and 'worker stopped' in status.message


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


def test_republish_timer_resends_the_latest_tf(make_node: Callable[..., Any],
                                               frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(map_publish_period_s=2.0)
    feed(node, image_messages(frames[1]))
    sent = ros_fakes.TransformBroadcaster.instances[0].sent
    last = sent[-1]
    count = len(sent)
    timer(node, 2.0)()
    timer(node, 2.0)()
    assert len(sent) == count + 2
    stamps = [conv.stamp_to_ns(tf.header.stamp) for tf in sent[-3:]]
    # map -> camera keeps the keyframe's stamp, advanced 1 ns per re-send (no repeated stamp).
    assert stamps[1] == stamps[0] + 1 and stamps[2] == stamps[0] + 2
    np.testing.assert_allclose(conv.transform_to_matrix(sent[-1]),
                               conv.transform_to_matrix(last))


def test_shutdown_saves_at_once_while_a_window_is_in_flight(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]],
        tmp_path: Path) -> None:
    predictor = GatedPredictor(SyntheticPredictor(frames[0], model_width=84), free=2)
    node = make_node(predictor=predictor, save_on_shutdown=True, shutdown_timeout_s=0.2,
                     output_per_run=False)
    worker = node.worker
    for msg in image_messages(frames[1]):
        node.subscriptions['image'].callback(msg)
    assert predictor.in_flight.wait(TIMEOUT_S)
    mapped = worker.trajectory()
    published = len(node.publishers['~/map'].messages)
    start = time.monotonic()
    node.context.shut_down = True  # Ctrl-C shuts the context down before close() runs
    assert node.close() is False  # the window is still in flight: abandoned, not waited for
    assert time.monotonic() - start < TIMEOUT_S
    tum = (tmp_path / 'out' / 'trajectory.tum').read_text().splitlines()
    assert len([line for line in tum if not line.startswith('#')]) == len(mapped) > 0
    assert any('abandoned' in m for m in
               ros_fakes.NAMED_LOGGERS['vggt_mapper.shutdown'].messages('warning'))
    predictor.gate.set()  # the window finishes later: nothing is published on the dead context
    assert worker.stop(timeout=TIMEOUT_S)
    assert len(ros_fakes.Node.instances[0].destroyed_entities) > 0
    assert sum(len(p.messages) for p in node.destroyed_entities
               if getattr(p, 'topic', '') == '~/map') == published


def test_shutdown_maps_the_last_partial_window(make_node: Callable[..., Any],
                                               frames: tuple[Any, list[np.ndarray]],
                                               tmp_path: Path) -> None:
    node = make_node(save_on_shutdown=True, window_size=6, overlap=2, first_window_size=0,
                     output_per_run=False)
    feed(node, image_messages(frames[1][:9]))  # one window of 6, then keyframes left over
    worker = node.worker
    before = len(worker.trajectory())
    assert node.close() is True
    after = worker.trajectory()
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
                                'output_dir': str(tmp_path / 'out'), 'output_per_run': False}
    workers: list[Any] = []

    def spin(nodes: list[Any]) -> None:
        nodes[0].trigger_configure()
        nodes[0].trigger_activate()
        workers.append(nodes[0].worker)
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
        workers[0].stop(timeout=TIMEOUT_S)


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
    values = diagnostic_values(node)
    assert values['segments'] == '2' and values['segments_started'] == '2'
