"""
The ROS 2 door: ``mapper_node`` maps a camera topic into a PointCloud2 map, a path and TF.

Graph (names relative to the node, ``~`` = node name):

* subscribes ``image`` (sensor_msgs/Image, or CompressedImage with ``image_transport:
  compressed``; sensor-data QoS) and, optionally, ``camera_info``;
* publishes ``~/map`` (PointCloud2 in ``map_frame``, reliable + transient-local, after each
  window and every ``map_publish_period_s``), ``~/window_cloud`` (the points a window added),
  ``~/path`` (nav_msgs/Path, transient-local), ``~/pose`` (PoseStamped of the latest keyframe),
  ``/diagnostics`` and TF (``publish_tf``: ``map_to_camera``, ``map_to_odom`` per REP 105, or
  ``none``);
* services ``~/save_map`` and ``~/reset`` (std_srvs/Trigger).

Frames follow REP 103/105 as described in ``vggt_mapper.io.ros_messages``; every output is
stamped with the image stamp of the latest keyframe. The image callback only decodes and
enqueues into ``MappingWorker``'s bounded queue; VGGT runs in the worker thread and the save
service hands its file I/O to the worker too.

TF is re-sent with the map republish timer so that a listener started late still finds the
``map`` frame: ``map -> odom`` with the current time (REP 105 practice: the correction holds
until the next one), ``map -> camera_frame`` with the keyframe's stamp advanced by 1 ns per
re-send (the camera really was there then; a repeated identical stamp would make every tf2
listener warn TF_REPEATED_DATA, and the current time would claim the camera is still there).

Python ``logging`` of the engine, predictor and worker (the ``vggt_mapper`` logger) is forwarded
to the node's ROS logger (console, /rosout, log files) while the node lives.

Shutdown (``close``) never waits for an inference before saving: launch escalates SIGINT to
SIGTERM after 5 s and SIGKILL after 10 s more, and a VGGT window can take longer.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import wait
from functools import partial
import json
import logging
import os
from pathlib import Path
import sys
import threading
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path as PathMsg
import numpy as np
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.logging import get_logger as get_ros_logger
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    qos_profile_sensor_data,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_srvs.srv import Trigger
from tf2_ros import TransformBroadcaster, TransformException
from tf2_ros.buffer import Buffer
from tf2_ros.transform_listener import TransformListener

from vggt_mapper.engine.errors import EngineError, PredictorFailedError
from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.engine.types import InputFrame, KeyframePose, MapSnapshot, WindowResult
from vggt_mapper.engine.worker import MappingWorker, WorkerError
from vggt_mapper.geometry.se3 import inverse_se3
from vggt_mapper.io import ros_messages as conv
from vggt_mapper.io.atomic import atomic_write_bytes
from vggt_mapper.io.errors import ConversionError, ExportError
from vggt_mapper.io.export import save_map
from vggt_mapper.ros.errors import ParameterError, RosDoorError
from vggt_mapper.ros.params import NodeParams, PARAMETERS, ParamSpec

__all__ = ['MapperNode', 'main']

#: How long a service waits for the worker (it may be inside a VGGT window first).
SERVICE_TIMEOUT_S = 600.0
WARN_THROTTLE_S = 5.0
#: Diagnostics: outcomes of the last windows judged, and how long a drop/malformed/TF warning
#: stays (so a 1 Hz monitor cannot miss it).
DIAG_RECENT_WINDOWS = 10
DIAG_STICKY_S = 30.0
#: The Python logger whose records (engine, predictor, worker) go to the node's ROS logger.
PACKAGE_LOGGER = 'vggt_mapper'
_PARAMETER_TYPES = {'bool': ParameterType.PARAMETER_BOOL,
                    'int': ParameterType.PARAMETER_INTEGER,
                    'float': ParameterType.PARAMETER_DOUBLE,
                    'str': ParameterType.PARAMETER_STRING}


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(name=spec.name, type=_PARAMETER_TYPES[spec.type_name],
                                     description=spec.description, read_only=spec.read_only)
    if spec.type_name == 'int' and spec.min_value is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(spec.min_value),
                                                 to_value=int(spec.max_value or 2**62),
                                                 step=1)]
    elif spec.type_name == 'float' and spec.min_value is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.min_value), to_value=float(spec.max_value or 1e300),
            step=0.0)]
    if spec.choices:
        descriptor.additional_constraints = 'one of: ' + ', '.join(spec.choices)
    return descriptor


class _RosLogHandler(logging.Handler):
    """Forward ``vggt_mapper`` Python log records to the node's ROS logger (see the module)."""

    def __init__(self, node: MapperNode) -> None:
        super().__init__()
        self._node = node

    def emit(self, record: logging.LogRecord) -> None:
        """
        Log ``record`` through the node, with the module path after the package name.

        :param record: the Python log record (any thread).
        """
        name = record.name.removeprefix(PACKAGE_LOGGER + '.')
        self._node.log(record.levelno, f'[{name}] {self.format(record)}')


class MapperNode(Node):
    """Subscribe a camera, map it with VGGT in a worker thread, publish map, path and TF."""

    def __init__(self, predictor: Any = None, **node_kwargs: Any) -> None:
        """
        Declare and read the parameters, build the engine, create the ROS interfaces.

        :param predictor: a ``Predictor`` to use instead of building one from the parameters
            (tests, embedding).
        :param node_kwargs: passed to ``rclpy.node.Node`` (``namespace``, ``context``, ...).
        :raises ParameterError: if the parameters are invalid.
        """
        super().__init__('vggt_mapper', **node_kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        self._params = NodeParams.from_values(
            {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS})
        params = self._params
        self._types = conv.rclpy_message_types()
        self._malformed = 0
        self._frame_warned = False
        self._tf_failures = 0
        self._camera_info: conv.CameraInfoRecord | None = None
        self._last_map_msg: Any = None
        self._predictor_failing = ''
        self._closing = False
        # Diagnostics: recent window outcomes (True = accepted) and sticky warnings.
        self._recent_windows: deque[bool] = deque(maxlen=DIAG_RECENT_WINDOWS)
        self._last_counts = (0, 0, 0)
        self._warnings_until: dict[str, float] = {}
        # Latest TF sent, for the periodic re-send: (parent_from_child, child, stamp_ns).
        self._last_tf: tuple[np.ndarray, str, int] | None = None
        self._tf_lock = threading.Lock()  # worker thread (new window) vs timer (re-send)
        self._log_handler = _RosLogHandler(self)
        package_logger = logging.getLogger(PACKAGE_LOGGER)
        self._saved_logger_state = (package_logger.level, package_logger.propagate)
        # ROS severities use the numbers of Python's levels (DEBUG 10 ... FATAL 50).
        package_logger.setLevel(int(self.get_logger().get_effective_level()))
        package_logger.propagate = False
        package_logger.addHandler(self._log_handler)
        try:
            self._start(params, predictor)
        except BaseException:
            self._remove_log_handler()  # the node is not built: leave logging as it was
            raise

    def _start(self, params: NodeParams, predictor: Any) -> None:
        """Build the engine and the ROS interfaces, start the worker (see ``__init__``)."""
        if predictor is None:
            from vggt_mapper.predictor.factory import create_predictor
            predictor = create_predictor(params.to_predictor_spec())
        store_dir = (Path(params.keyframe_store_dir).expanduser()
                     if params.keyframe_store_dir else None)
        self._mapper = Mapper(params.to_mapper_config(), predictor, store_dir=store_dir)
        self._worker = MappingWorker(self._mapper, params.queue_length, params.drop_policy)
        latched = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._map_pub = self.create_publisher(PointCloud2, '~/map', latched)
        self._segments_pub = self.create_publisher(PointCloud2, '~/map_segments', latched)
        self._window_pub = self.create_publisher(PointCloud2, '~/window_cloud', 10)
        self._path_pub = self.create_publisher(PathMsg, '~/path', latched)
        self._pose_pub = self.create_publisher(PoseStamped, '~/pose', 10)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self._tf_broadcaster = TransformBroadcaster(self) if params.publish_tf != 'none' else None
        self._tf_buffer: Buffer | None = None
        if params.publish_tf == 'map_to_odom':
            self._tf_buffer = Buffer()
            self._tf_listener = TransformListener(self._tf_buffer, self)

        # Frames, services and timers in separate groups: a save waiting for the worker must
        # not block image callbacks (MultiThreadedExecutor).
        image_type = CompressedImage if params.image_transport == 'compressed' else Image
        self._decode = (conv.compressed_to_rgb if image_type is CompressedImage
                        else conv.image_to_rgb)
        self.create_subscription(image_type, 'image', self._on_image, qos_profile_sensor_data,
                                 callback_group=MutuallyExclusiveCallbackGroup())
        if params.use_camera_info:
            self.create_subscription(CameraInfo, 'camera_info', self._on_camera_info,
                                     qos_profile_sensor_data)
        services = MutuallyExclusiveCallbackGroup()
        self.create_service(Trigger, '~/save_map', self._on_save_map, callback_group=services)
        self.create_service(Trigger, '~/reset', self._on_reset, callback_group=services)
        timers = MutuallyExclusiveCallbackGroup()
        self.create_timer(1.0, self._publish_diagnostics, callback_group=timers)
        if params.map_publish_period_s > 0:
            self.create_timer(params.map_publish_period_s, self._republish_map,
                              callback_group=timers)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self._worker.add_listener(self._on_window)
        self._worker.add_failure_listener(self._on_window_failed)
        self._worker.start()
        self.get_logger().info(
            f'mapping {image_type.__name__} on {self.resolve_topic_name("image")} '
            f'(window {params.window_size}, overlap {params.overlap}, predictor '
            f'{type(predictor).__name__}, TF {params.publish_tf})')

    @property
    def worker(self) -> MappingWorker:
        """Return the mapping worker; its stats, trajectory and map snapshot are thread-safe."""
        return self._worker

    def log(self, level: int, message: str) -> None:
        """
        Log through the node's ROS logger, or a console-only one once ROS is shut down.

        After Ctrl-C the context is invalid and the node logger's /rosout publisher would
        fail ("publisher's context is invalid") on every line.

        :param level: a Python logging level (``logging.WARNING``...).
        :param message: the text.
        """
        logger = (self.get_logger() if self.context.ok()
                  else get_ros_logger(f'{self.get_logger().name}.shutdown'))
        if level >= logging.CRITICAL:
            logger.fatal(message)
        elif level >= logging.ERROR:
            logger.error(message)
        elif level >= logging.WARNING:
            logger.warning(message)
        elif level >= logging.INFO:
            logger.info(message)
        else:
            logger.debug(message)

    def _can_publish(self) -> bool:
        return not self._closing and self.context.ok()

    # -- callbacks (executor threads): convert, enqueue, answer; no inference, no file I/O --

    def _on_image(self, msg: Any) -> None:
        try:
            image_rgb = self._decode(msg)
        except ConversionError as err:
            self._malformed += 1
            self.get_logger().warning(f'skipping malformed image ({self._malformed} so far): '
                                      f'{err}', throttle_duration_sec=WARN_THROTTLE_S)
            return
        frame_id = str(msg.header.frame_id)
        if frame_id and frame_id != self._params.camera_frame and not self._frame_warned:
            self._frame_warned = True
            self.get_logger().warning(f'images are in frame {frame_id!r} but camera_frame is '
                                      f'{self._params.camera_frame!r}: TF and poses use '
                                      f'camera_frame; set it to the optical frame of the images')
        stamp_ns = conv.stamp_to_ns(msg.header.stamp)
        if not self._worker.submit(InputFrame(image_rgb, stamp_ns, f'frame_{stamp_ns}')):
            self.get_logger().warning(
                f'mapper lagging: {self._worker.stats.frames_dropped} frames dropped '
                f'({self._params.drop_policy})', throttle_duration_sec=WARN_THROTTLE_S)

    def _on_camera_info(self, msg: Any) -> None:
        try:
            self._camera_info = conv.camera_info_from_msg(msg)
        except ConversionError as err:
            self.get_logger().warning(f'ignoring CameraInfo: {err}',
                                      throttle_duration_sec=WARN_THROTTLE_S)

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        try:
            new = self._params.with_changes({p.name: p.value for p in parameters})
        except ParameterError as err:
            return SetParametersResult(successful=False, reason=str(err))
        self._params = new
        return SetParametersResult(successful=True, reason='')

    def _on_save_map(self, request: Any, response: Any) -> Any:
        outdir = self._params.output_path
        try:
            paths = self._worker.save(partial(self._write_outputs, outdir)).result(
                timeout=SERVICE_TIMEOUT_S)
        except (ExportError, OSError, WorkerError, TimeoutError) as err:
            response.success, response.message = False, f'save failed: {err}'
            self.get_logger().error(response.message)
            return response
        response.success, response.message = True, ' '.join(str(p) for p in paths)
        self.get_logger().info(f'map saved: {response.message}')
        return response

    def _on_reset(self, request: Any, response: Any) -> Any:
        try:
            self._worker.reset().result(timeout=SERVICE_TIMEOUT_S)
        except (WorkerError, EngineError, TimeoutError) as err:
            response.success, response.message = False, f'reset failed: {err}'
            return response
        empty = self._worker.map_snapshot()
        self._last_map_msg = conv.points_to_cloud(empty.points_world, empty.colors_rgb,
                                                  self.get_clock().now().nanoseconds,
                                                  self._params.map_frame, self._types)
        self._map_pub.publish(self._last_map_msg)
        self._path_pub.publish(conv.poses_to_path(np.zeros((0, 4, 4)), [],
                                                  self.get_clock().now().nanoseconds,
                                                  self._params.map_frame, self._types))
        response.success, response.message = True, 'map and trajectory cleared'
        return response

    def _republish_map(self) -> None:
        if not self._can_publish():
            return
        if self._last_map_msg is not None:
            self._map_pub.publish(self._last_map_msg)
        with self._tf_lock:
            if self._last_tf is None or self._tf_broadcaster is None:
                return
            parent_from_child, child, stamp_ns = self._last_tf
            # See the module docstring: map -> odom holds from now on; map -> camera keeps
            # (nearly) its keyframe stamp.
            stamp_ns = (self.get_clock().now().nanoseconds
                        if self._params.publish_tf == 'map_to_odom' else stamp_ns + 1)
            self._last_tf = (parent_from_child, child, stamp_ns)
            self._send_tf(parent_from_child, child, stamp_ns)

    def _diagnostic_level(self, stats: Any) -> tuple[int, str]:
        """Return the diagnostics level and message; warnings stay ``DIAG_STICKY_S``."""
        if stats.fatal_error:
            return DiagnosticStatus.ERROR, f'worker stopped: {stats.fatal_error}'
        if not stats.running:
            return DiagnosticStatus.ERROR, 'worker stopped: no frame is mapped any more'
        if self._predictor_failing:
            return DiagnosticStatus.ERROR, f'predictor failing: {self._predictor_failing}'
        now = time.monotonic()
        counts = (stats.frames_dropped, self._malformed, self._tf_failures)
        names = ('frames dropped (queue full: the mapper is slower than the camera)',
                 'malformed images skipped', 'TF lookups failed')
        for name, count, last in zip(names, counts, self._last_counts, strict=True):
            if count > last:
                self._warnings_until[name] = now + DIAG_STICKY_S
        self._last_counts = counts
        reasons = [name for name, until in self._warnings_until.items() if until > now]
        recent = list(self._recent_windows)
        bad = recent.count(False)
        if recent and 2 * bad >= len(recent):
            reasons.insert(0, f'{bad} of the last {len(recent)} windows rejected or failed')
        if reasons:
            return DiagnosticStatus.WARN, '; '.join(reasons)
        return DiagnosticStatus.OK, 'mapping'

    def _publish_diagnostics(self) -> None:
        if not self._can_publish():
            return
        stats = self._worker.stats
        engine = stats.mapper
        rejected = engine.windows_rejected if engine else 0
        level, message = self._diagnostic_level(stats)
        values = {
            'queue_depth': stats.queue_depth, 'queue_capacity': stats.queue_capacity,
            'frames_received': stats.frames_received, 'frames_dropped': stats.frames_dropped,
            'frames_malformed': self._malformed, 'windows_done': stats.windows_done,
            'windows_failed': stats.windows_failed, 'rejected_alignments': rejected,
            'last_inference_s': f'{stats.last_predict_s:.3f}',
            'last_window_s': f'{stats.last_step_s:.3f}',
            'keyframes': engine.keyframes if engine else 0,
            'keyframes_lost': engine.keyframes_lost if engine else 0,
            'segments': engine.segments if engine else 0,
            'segments_started': engine.segments_started if engine else 0,
            'loop_candidates': engine.loop_candidates if engine else 0,
            'loops_accepted': engine.loops_accepted if engine else 0,
            'optimizations': engine.optimizations if engine else 0,
            'model_calls': engine.model_calls if engine else 0,
            'verification_calls': engine.verification_calls if engine else 0,
            'map_points': engine.map_points if engine else 0,
            'tf_failures': self._tf_failures, 'last_error': stats.last_error,
        }
        status = DiagnosticStatus(
            level=level, name=f'{self.get_name()}: mapping', message=message,
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=key, value=str(value)) for key, value in values.items()])
        self._diag_pub.publish(DiagnosticArray(
            header=conv.make_header(self.get_clock().now().nanoseconds, '', self._types),
            status=[status]))

    # -- worker thread ----------------------------------------------------------------------

    def _write_outputs(self, outdir: Path, trajectory: list[KeyframePose],
                       snapshot: MapSnapshot) -> list[Path]:
        saved = save_map(outdir, trajectory, snapshot, overwrite=True)
        paths = list(saved.paths)
        if self._camera_info is not None:
            text = json.dumps(self._camera_info.to_json_dict(), indent=2) + '\n'
            paths.append(atomic_write_bytes(outdir / 'camera_info.json', text.encode(),
                                            overwrite=True))
        return paths

    def _on_window_failed(self, frame: InputFrame, error: BaseException) -> None:
        # The worker has logged it (forwarded to the ROS logger); count it for diagnostics.
        self._recent_windows.append(False)
        if isinstance(error, PredictorFailedError):
            self._predictor_failing = str(error)

    def _on_window(self, result: WindowResult) -> None:
        params, types = self._params, self._types
        # A rejected window is logged by the engine (forwarded to the ROS logger).
        self._recent_windows.append(bool(result.accepted))
        if result.accepted:
            self._predictor_failing = ''
        trajectory = self._worker.trajectory()
        if not result.accepted or not trajectory or not self._can_publish():
            return
        latest = max(trajectory, key=lambda pose: pose.index)
        stamp_ns, active = latest.stamp_ns, latest.segment
        # The map, path and TF are the segment the camera is in (one frame); every segment is
        # on ~/map_segments, the others set beside it (their relative place is unknown).
        poses = [pose for pose in trajectory if pose.segment == active]
        snapshot = self._worker.map_snapshot()
        in_active = snapshot.segments == active
        self._last_map_msg = conv.points_to_cloud(
            conv.map_from_world_points(snapshot.points_world[in_active]),
            snapshot.colors_rgb[in_active], stamp_ns, params.map_frame, types)
        self._map_pub.publish(self._last_map_msg)
        self._segments_pub.publish(conv.points_to_cloud(
            _side_by_side(conv.map_from_world_points(snapshot.points_world),
                          snapshot.segments, active),
            snapshot.colors_rgb, stamp_ns, params.map_frame, types, snapshot.segments))
        if result.segment == active:
            self._window_pub.publish(conv.points_to_cloud(
                conv.map_from_world_points(result.points_world), result.colors_rgb, stamp_ns,
                params.map_frame, types))
        map_from_cams = conv.map_from_world_pose(
            np.stack([pose.world_from_cam for pose in poses]))
        self._path_pub.publish(conv.poses_to_path(
            map_from_cams, [pose.stamp_ns for pose in poses], stamp_ns, params.map_frame,
            types))
        map_from_cam = conv.map_from_world_pose(latest.world_from_cam)
        self._pose_pub.publish(conv.matrix_to_pose(map_from_cam, stamp_ns, params.map_frame,
                                                   types))
        self._publish_tf(map_from_cam, stamp_ns)

    def _publish_tf(self, map_from_cam: np.ndarray, stamp_ns: int) -> None:
        params = self._params
        if self._tf_broadcaster is None:
            return
        if self._tf_buffer is None:
            parent_from_child, child = map_from_cam, params.camera_frame
        else:
            # REP 105: map -> odom = map_from_cam · cam_from_base · base_from_odom.
            timeout = Duration(nanoseconds=int(params.tf_timeout_s * 1e9))
            try:
                base_from_cam = conv.transform_to_matrix(self._tf_buffer.lookup_transform(
                    params.base_frame, params.camera_frame, Time(), timeout))
                odom_from_base = conv.transform_to_matrix(self._tf_buffer.lookup_transform(
                    params.odom_frame, params.base_frame, Time(nanoseconds=stamp_ns), timeout))
            except (TransformException, ConversionError) as err:
                self._tf_failures += 1
                self.get_logger().warning(f'no map -> {params.odom_frame} correction: {err}',
                                          throttle_duration_sec=WARN_THROTTLE_S)
                return
            parent_from_child = (map_from_cam @ inverse_se3(base_from_cam)
                                 @ inverse_se3(odom_from_base))
            child = params.odom_frame
        with self._tf_lock:
            self._last_tf = (parent_from_child, child, stamp_ns)
            self._send_tf(parent_from_child, child, stamp_ns)

    def _send_tf(self, parent_from_child: np.ndarray, child: str, stamp_ns: int) -> None:
        if self._tf_broadcaster is not None:
            self._tf_broadcaster.sendTransform(conv.matrix_to_transform(
                parent_from_child, stamp_ns, self._params.map_frame, child, self._types))

    # -- shutdown ---------------------------------------------------------------------------

    def close(self) -> bool:
        """
        Stop publishing, save what is mapped at once, then give the worker a bounded time.

        An inference cannot be interrupted and may outlast launch's SIGKILL, so with
        ``save_on_shutdown`` the map and trajectory of the windows done so far are saved first
        (cached copies, no waiting). Then the last partial window is queued (it runs after the
        window in flight, ahead of the queued frames, which are dropped) and the worker gets
        ``shutdown_timeout_s`` for both; if that added accepted windows, the map is saved again.

        :return: True if the worker thread has ended; False if a window is still running (the
            process must then end with ``os._exit``, see ``main``).
        """
        if self._closing:  # closed already: only report whether the worker has ended
            return self._worker.stop(drain=False, timeout=0.0)
        self._closing = True
        params = self._params
        deadline = time.monotonic() + params.shutdown_timeout_s
        try:
            if not params.save_on_shutdown:
                return self._worker.stop(drain=False, timeout=params.shutdown_timeout_s)
            accepted = self._accepted_windows()
            try:
                flush = self._worker.flush()
            except WorkerError:  # the worker already stopped (fatal error)
                flush = None
            self._worker.stop(drain=False, timeout=0.0)  # pending commands (the flush) still run
            self._save_at_shutdown('map saved at shutdown')
            if flush is not None:
                wait([flush], timeout=max(0.0, deadline - time.monotonic()))
                flush.cancel()  # not started yet (a window is still in flight): never start it
            stopped = self._worker.stop(drain=False,
                                        timeout=max(0.0, deadline - time.monotonic()))
            if not stopped:
                self.log(logging.WARNING, 'a window was still being mapped after '
                         f'shutdown_timeout_s ({params.shutdown_timeout_s} s): abandoned, the '
                         'saved map has the windows before it')
            added = self._accepted_windows() - accepted
            if added:
                self._save_at_shutdown(f'map saved again at shutdown with {added} more '
                                       f'window(s) (in flight and the last partial one)')
            return stopped
        finally:
            if self._worker.stop(drain=False, timeout=0.0):
                # Nobody uses the engine any more: stop its optimiser, drop its keyframe store.
                self._mapper.close()
            self._remove_log_handler()

    def _remove_log_handler(self) -> None:
        package_logger = logging.getLogger(PACKAGE_LOGGER)
        if self._log_handler in package_logger.handlers:
            package_logger.removeHandler(self._log_handler)
            package_logger.setLevel(self._saved_logger_state[0])
            package_logger.propagate = self._saved_logger_state[1]

    def _accepted_windows(self) -> int:
        engine = self._worker.stats.mapper
        return engine.windows_done - engine.windows_rejected if engine else 0

    def _save_at_shutdown(self, what: str) -> None:
        outdir = self._params.output_path
        # The worker is stopping: the writer runs here, at once, on the cached state.
        try:
            paths = self._worker.save(partial(self._write_outputs, outdir)).result()
        except (ExportError, OSError) as err:
            self.log(logging.ERROR, f'saving the map at shutdown failed: {err}')
            return
        self.log(logging.INFO, f'{what}: ' + ' '.join(str(p) for p in paths))


def _side_by_side(points_map: np.ndarray, segments: np.ndarray, active: int) -> np.ndarray:
    """Display layout of ~/map_segments: the active segment in place, the others beside it."""
    out = np.array(points_map, dtype=np.float32, copy=True)
    edge = float(out[segments == active, 1].min()) if np.any(segments == active) else 0.0
    for segment in sorted(set(segments.tolist()) - {active}):
        mask = segments == segment
        # Along -y (REP 103: y left), a metre apart: to the right of the active map.
        shift = edge - 1.0 - float(out[mask, 1].max())
        out[mask, 1] += shift
        edge = float(out[mask, 1].min())
    return out


def _startup_errors() -> tuple[type[Exception], ...]:
    """Errors that stop the node at start with a one-line message (no traceback)."""
    from rclpy.exceptions import ParameterException

    from vggt_mapper.model.errors import ModelError
    from vggt_mapper.predictor.errors import PredictorError

    # ParameterException: rclpy's wrong type / out of range / read-only at declaration.
    return RosDoorError, EngineError, PredictorError, ModelError, ParameterException


def _exit_abandoning_worker() -> None:
    """
    End the process now, without interpreter finalisation.

    The daemon worker thread is inside an inference (native code): finalising the interpreter
    under it aborts the process ("terminate called without an active exception", SIGABRT).
    The map was saved before; flush what is buffered and exit with status 0.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(args: list[str] | None = None) -> int:
    """
    Run ``mapper_node`` until Ctrl-C or ROS shutdown; save the map on the way out.

    ``rclpy.init`` is called plainly and paired with ``rclpy.try_shutdown``: its context-manager
    form only exists from rclpy 7.4 (Kilted), and Jazzy's returns None.

    :param args: ROS command-line arguments (None: ``sys.argv``).
    :return: process exit status (1 when the node cannot start).
    """
    rclpy.init(args=args)
    worker_stopped = True
    try:
        try:
            node = MapperNode()
        except _startup_errors() as err:
            print(f'mapper_node: {err}', file=sys.stderr)
            return 1
        executor = MultiThreadedExecutor()
        executor.add_node(node)
        try:
            executor.spin()
        finally:
            worker_stopped = node.close()
            node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()
    if not worker_stopped:
        _exit_abandoning_worker()
    return 0


if __name__ == '__main__':
    sys.exit(main())
