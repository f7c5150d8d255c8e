"""
The ROS 2 door: ``mapper_node``, a lifecycle node that maps a camera topic into a map and TF.

Lifecycle (``rclpy.lifecycle``; drive it with ``ros2 lifecycle set /vggt_mapper <transition>``
or let ``mapper.launch.py`` do it, ``autostart:=true``):

* **unconfigured** (at start): parameters only; they can all be set.
* ``configure``: check the parameters, load the model, build the engine (and load the ``map``
  folder into it, in ``mode``), create the publishers,
  services and tf2 objects (``_create_publishers``, ``_create_services``, ``_create_tf``) →
  **inactive**. A bad parameter or a model that cannot load fails the transition with the
  reason logged; the node stays unconfigured.
* ``activate``: subscribe to the images, start the worker and the timers, publish the latest map
  and TF at once → **active**: mapping.
* ``deactivate``: unsubscribe and stop publishing; the map, the worker and the model stay
  (frames already queued are still mapped) → **inactive**, paused.
* ``cleanup``: save (``save_on_shutdown``), stop the worker, free the engine and the model →
  **unconfigured**.
* ``shutdown`` (from any state), Ctrl-C or SIGTERM: save, stop, and end the process.

Graph while configured (names relative to the node, ``~`` = node name):

* subscribes (active only) ``image`` (sensor_msgs/Image, or CompressedImage with
  ``image_transport: compressed``; QoS ``image_qos_reliability`` / ``image_qos_depth``) and,
  optionally, ``camera_info``;
* publishes (lifecycle publishers: active only) ``~/map`` (PointCloud2 in ``map_frame``, reliable
  + transient-local, after each window and every ``map_publish_period_s``), ``~/map_segments``,
  ``~/window_cloud``, ``~/path`` (transient-local), ``~/pose``, ``~/grid`` (OccupancyGrid,
  transient-local, at most every ``grid_period_s``), ``/diagnostics``; and TF
  (``publish_tf``: ``map_to_camera``, ``map_to_odom`` per REP 105, or ``none``);
* services (std_srvs/Trigger), answered while configured: ``~/save_map``, ``~/reset``,
  ``~/load_map`` (loads the ``map`` parameter's folder in place of the current map; set the
  parameter first), ``~/set_mode_localization`` and ``~/set_mode_mapping`` (as rtabmap's; they
  set the ``mode`` parameter).

Frames: ``map`` has REP 103 axes, levelled by gravity from TF when it can be (``ros.frames``);
the camera frame is the images' ``header.frame_id`` unless ``camera_frame`` is set; the saved
files are in ``map`` too (``ros.saving``). In ``map_to_odom`` mode ``odom -> base`` is looked up
when each image arrives and kept with its stamp (``ros.odometry``), so a window finishing
minutes later still gets its correction.

Known intrinsics: each image is undistorted with the latest ``camera_info`` and handed on with
its K; with ``scale_source: odometry`` it also gets ``odom_from_camera`` (TF at intake), which
makes the engine's outputs metric. In localization mode (``mode``, switchable by parameter)
``~/pose`` and TF come from each keyframe placed in the map (``ros.node_engine``).

Every output is stamped with the image stamp of the latest keyframe. The image callback only
decodes, records odometry and enqueues into ``MappingWorker``'s bounded queue; VGGT runs in the
worker thread and the save service hands its file I/O to the worker too. TF is re-sent with the
map republish timer so that a listener started late still finds the ``map`` frame: ``map ->
odom`` with the current time (REP 105 practice: the correction holds until the next one), ``map
-> camera`` with the keyframe's stamp advanced by 1 ns per re-send (a repeated stamp makes tf2
listeners warn TF_REPEATED_DATA; the current time would claim the camera is still there).

Python ``logging`` of the engine, predictor and worker (the ``vggt_mapper`` logger) is forwarded
to the node's ROS logger (console, /rosout, log files) while the node lives.

Stopping never waits for an inference before saving: launch escalates SIGINT to SIGTERM after
5 s and SIGKILL after 10 s more, and a VGGT window can take longer.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import wait
from contextlib import nullcontext
from dataclasses import replace
from functools import partial, wraps
import gc
import json
import logging
import os
from pathlib import Path
import sys
import threading
import time
import traceback
from typing import Any, TypeVar

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import OccupancyGrid as OccupancyGridMsg
from nav_msgs.msg import Path as PathMsg
import numpy as np
from numpy.typing import NDArray
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
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.logging import get_logger as get_ros_logger
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.task import Future
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_srvs.srv import Trigger
from tf2_ros import TransformBroadcaster, TransformException
from tf2_ros.buffer import Buffer
from tf2_ros.transform_listener import TransformListener

from vggt_mapper.engine.errors import EngineError, OccupancyError, PredictorFailedError
from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.engine.occupancy import OccupancyGrid
from vggt_mapper.engine.types import InputFrame, KeyframePose, MapSnapshot, WindowResult
from vggt_mapper.engine.worker import MappingWorker, WorkerError
from vggt_mapper.geometry.gravity import gravity_up_world, UP_BASE
from vggt_mapper.geometry.se3 import inverse_se3, transform_points
from vggt_mapper.io import ros_messages as conv
from vggt_mapper.io.atomic import atomic_write_bytes
from vggt_mapper.io.calibration import (
    calibration_from_camera_info,
    CameraCalibration,
    undistort_frame,
    UndistorterCache,
)
from vggt_mapper.io.errors import ConversionError, ExportError, InputError
from vggt_mapper.io.export import save_map
from vggt_mapper.io.map_server import write_map_server
from vggt_mapper.ros.diagnostics import Level, MappingHealth
from vggt_mapper.ros.errors import NothingToSaveError, ParameterError, RosDoorError
from vggt_mapper.ros.frames import (
    camera_frame_of,
    map_frame_from_up,
    MapFrame,
    poses_in_map,
    snapshot_in_map,
    UNLEVELLED,
)
from vggt_mapper.ros.node_engine import LocalizedPose, NodeEngine
from vggt_mapper.ros.odometry import OdometryLog
from vggt_mapper.ros.params import check_values, NodeParams, PARAMETERS, ParamSpec
from vggt_mapper.ros.saving import (
    check_something_mapped,
    read_frame_note,
    RunFolders,
    write_frame_note,
)

__all__ = ['MapperNode', 'main']

#: How long a service waits for the worker (it may be inside a VGGT window first).
SERVICE_TIMEOUT_S = 600.0
WARN_THROTTLE_S = 5.0
#: The Python logger whose records (engine, predictor, worker) go to the node's ROS logger.
PACKAGE_LOGGER = 'vggt_mapper'
_PARAMETER_TYPES = {'bool': ParameterType.PARAMETER_BOOL,
                    'int': ParameterType.PARAMETER_INTEGER,
                    'float': ParameterType.PARAMETER_DOUBLE,
                    'str': ParameterType.PARAMETER_STRING}
_DIAGNOSTIC_LEVELS = {Level.OK: DiagnosticStatus.OK, Level.WARN: DiagnosticStatus.WARN,
                      Level.ERROR: DiagnosticStatus.ERROR}
_RELIABILITY = {'best_effort': ReliabilityPolicy.BEST_EFFORT,
                'reliable': ReliabilityPolicy.RELIABLE}
_NANOSECONDS = 1e-9
_Callback = TypeVar('_Callback', bound=Callable[..., Any])


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    # Never read_only to ROS: "fixed while configured" is enforced by _on_set_parameters, so the
    # values can change between cleanup and the next configure.
    fixed = ' Fixed while the node is configured.' if spec.read_only else ''
    description = spec.description + fixed
    descriptor = ParameterDescriptor(name=spec.name, type=_PARAMETER_TYPES[spec.type_name],
                                     description=description, read_only=False)
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


def _create_predictor(params: NodeParams) -> Any:
    """Build the predictor the parameters describe (loads the model)."""
    from vggt_mapper.predictor.factory import create_predictor
    return create_predictor(params.to_predictor_spec())


def _configure_errors() -> tuple[type[Exception], ...]:
    """Errors that fail ``configure`` with their one-line message (the node stays usable)."""
    from vggt_mapper.model.errors import ModelError
    from vggt_mapper.predictor.errors import PredictorError

    # InputError: a ``map`` folder that is not one (MapFolderError), with the reason.
    return RosDoorError, EngineError, PredictorError, ModelError, InputError, OSError


def _transition(callback: _Callback) -> _Callback:
    """
    Log a bug in a transition with its traceback, and report it as ERROR.

    rclpy turns an exception in a transition callback into ERROR without a word; the node's
    ``on_error`` then frees what the transition had built.
    """
    @wraps(callback)
    def logged(self: MapperNode, state: LifecycleState) -> Any:
        try:
            return callback(self, state)
        except Exception:  # noqa: BLE001 - not carried on: the transition fails with ERROR
            self.get_logger().error(f'{callback.__name__} failed:\n{traceback.format_exc()}')
            return TransitionCallbackReturn.ERROR
    return logged  # type: ignore[return-value]


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


class MapperNode(LifecycleNode):
    """Map a camera with VGGT in a worker thread; publish map, path and TF (lifecycle node)."""

    def __init__(self, predictor_factory: Callable[[NodeParams], Any] | None = None,
                 **node_kwargs: Any) -> None:
        """
        Declare the parameters; the node starts unconfigured (see the module docstring).

        :param predictor_factory: builds the ``Predictor`` at each ``configure`` from the
            parameters, instead of loading the model they name (tests, embedding).
        :param node_kwargs: passed to ``rclpy.lifecycle.LifecycleNode`` (``namespace``,
            ``context``, ...).
        """
        super().__init__('vggt_mapper', **node_kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._predictor_factory = predictor_factory or _create_predictor
        self._types = conv.rclpy_message_types()
        self.finalized: Future = Future()  # done once the node reached "finalized"
        self._params: NodeParams | None = None  # set while configured
        self._mapper: Mapper | None = None
        self._engine: NodeEngine | None = None
        self._worker: MappingWorker | None = None
        self._worker_started = False
        self._active = False
        self._closing = False
        self._entities: list[tuple[Callable[[Any], Any], Any]] = []  # built by configure
        self._active_entities: list[tuple[Callable[[Any], Any], Any]] = []  # by activate
        self._topic_publishers: dict[str, Any] = {}
        self._tf_buffer: Buffer | None = None
        self._tf_broadcaster: TransformBroadcaster | None = None
        self._runs = RunFolders()
        self._odometry = OdometryLog()
        self._health = MappingHealth()
        self._tf_lock = threading.Lock()  # worker thread (new window) vs timer (re-send)
        self._generation = 0  # of the engine: listeners of a released one do nothing
        self._reset_camera_state()
        self._reset_map_state()
        self._log_handler = _RosLogHandler(self)
        package_logger = logging.getLogger(PACKAGE_LOGGER)
        self._saved_logger_state = (package_logger.level, package_logger.propagate)
        # ROS severities use the numbers of Python's levels (DEBUG 10 ... FATAL 50).
        package_logger.setLevel(int(self.get_logger().get_effective_level()))
        package_logger.propagate = False
        package_logger.addHandler(self._log_handler)
        self.get_logger().info(
            f'{self.get_fully_qualified_name()} is unconfigured: "ros2 lifecycle set '
            f'{self.get_fully_qualified_name()} configure" then "activate" (mapper.launch.py '
            f'does both with autostart:=true)')

    def _reset_camera_state(self) -> None:
        """Forget what was learnt about the camera and the counters (configure)."""
        self._camera_frame = ''
        self._frame_warned = False
        self._camera_info: conv.CameraInfoRecord | None = None
        self._calibration: CameraCalibration | None = None
        self._undistorters = UndistorterCache()
        self._malformed = 0
        self._tf_failures = 0
        self._uncalibrated = 0  # images whose size the CameraInfo does not fit
        self._with_odometry = 0
        self._without_odometry = 0

    def _reset_map_state(self) -> None:
        """Forget what belongs to the current map (configure, reset)."""
        self._map_frames: dict[int, MapFrame] = {}  # replaced whole: read from other threads
        self._levelled_by: str | None = None  # None: no window yet
        self._frame_note = ''
        self._last_map_msg: Any = None
        self._last_path_msg: Any = None
        # Latest TF sent, for the periodic re-send: (parent_from_child, child, stamp_ns).
        self._last_tf: tuple[NDArray[np.float64], str, int] | None = None
        self._newest_stamp_ns = 0
        self._loaded_frames: dict[int, MapFrame] = {}  # the loaded map's, kept as saved
        self._floor_up: dict[int, NDArray[np.float64]] = {}  # floor fits that levelled
        self._last_grid: OccupancyGrid | None = None
        self._last_grid_msg: Any = None
        self._grid_due = 0.0  # time.monotonic() of the next grid
        self._grids_skipped = 0
        self._last_localized: LocalizedPose | None = None
        self._state_missing = False  # the last save could not take the map state
        self._odometry.clear()
        self._health.reset()
        self._runs.start_map()

    # -- public ------------------------------------------------------------------------------

    @property
    def worker(self) -> MappingWorker:
        """
        Return the mapping worker; its stats, trajectory and map snapshot are thread-safe.

        :raises RosDoorError: if the node is not configured.
        """
        if self._worker is None:
            raise RosDoorError('the node is not configured: no mapping worker')
        return self._worker

    @property
    def params(self) -> NodeParams | None:
        """Return the parameters in force, None while unconfigured."""
        return self._params

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

    # -- lifecycle transitions ---------------------------------------------------------------

    @_transition
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """
        Check the parameters, load the model, build the engine and the ROS interfaces.

        :param state: the state before the transition.
        :return: SUCCESS (inactive), or FAILURE with the reason logged (unconfigured).
        """
        try:
            self._configure()
        except _configure_errors() as err:
            self.get_logger().error(f'configure failed: {err}')
            self._release()
            return TransitionCallbackReturn.FAILURE
        params = self._params
        assert params is not None
        self.get_logger().info(
            f'configured: window {params.window_size} (first {params.first_window_size}), '
            f'overlap {params.overlap}, predictor {type(self._mapper_predictor()).__name__}, '
            f'TF {params.publish_tf}, level {params.level_map}, scale {params.scale_source}, '
            f'mode {params.mode}')
        return TransitionCallbackReturn.SUCCESS

    @_transition
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """
        Subscribe to the images, start the worker and the timers, publish the latest map.

        :param state: the state before the transition.
        :return: SUCCESS (active).
        """
        params, worker = self._params, self.worker
        assert params is not None
        self._create_subscriptions(params)
        self._create_timers(params)
        if not self._worker_started:
            worker.start()
            self._worker_started = True
        self._active = True
        result = super().on_activate(state)  # enables the lifecycle publishers
        self._publish_latest()
        self.get_logger().info(
            f'active: mapping {self._image_type(params).__name__} on '
            f'{self.resolve_topic_name("image")} ({params.image_qos_reliability}, depth '
            f'{params.image_qos_depth})')
        return result

    @_transition
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """
        Pause: unsubscribe and stop publishing; the map, the worker and the model stay.

        :param state: the state before the transition.
        :return: SUCCESS (inactive).
        """
        self._active = False
        self._destroy(self._active_entities)
        result = super().on_deactivate(state)
        self.get_logger().info(f'paused: {len(self.worker.trajectory())} keyframes kept '
                               f'(frames already queued are still mapped)')
        return result

    @_transition
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """
        Save (``save_on_shutdown``), stop the worker, free the engine and the model.

        :param state: the state before the transition.
        :return: SUCCESS (unconfigured).
        """
        self._save_and_stop()
        self._release()
        self.get_logger().info('cleaned up: engine and model freed')
        return TransitionCallbackReturn.SUCCESS

    @_transition
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """
        Save what is mapped and stop (from any state); ``main`` then ends the process.

        :param state: the state before the transition.
        :return: SUCCESS (finalized).
        """
        self.close()
        self.finalized.set_result(True)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """
        Free what a failed transition left (the map is lost: the error was logged).

        :param state: the state before the failed transition.
        :return: SUCCESS (unconfigured).
        """
        self._active = False
        if self._worker is not None:
            self._worker.stop(drain=False, timeout=0.0)
        self._release()
        return TransitionCallbackReturn.SUCCESS

    # -- configure: one place each for publishers, services and TF ---------------------------

    def _configure(self) -> None:
        """Build everything ``configure`` builds (see the module docstring)."""
        self._closing = False
        params = self._read_params()
        self._params = params
        store_dir = (Path(params.keyframe_store_dir).expanduser()
                     if params.keyframe_store_dir else None)
        self._generation += 1
        generation = self._generation
        self._reset_camera_state()
        self._reset_map_state()
        self._mapper = Mapper(params.to_mapper_config(), self._predictor_factory(params),
                              store_dir=store_dir)
        self._engine = NodeEngine(self._mapper, partial(self._on_localized, generation))
        if params.map:
            self._load_map(Path(params.map).expanduser(), self._mapper)
        self._mapper.set_mode(params.mode)
        self._worker = MappingWorker(self._engine, params.queue_length, params.drop_policy)
        self._worker_started = False
        self._worker.add_listener(partial(self._on_window, generation))
        self._worker.add_failure_listener(partial(self._on_window_failed, generation))
        self._create_publishers()
        self._create_services()
        self._create_tf(params)

    def _load_map(self, folder: Path, mapper: Mapper, *, replacing: bool = False) -> None:
        """
        Load the ``map`` parameter's folder into the engine: at configure, or on ``~/load_map``.

        On ``~/load_map`` (``replacing``) this runs in the worker thread between frames; a
        folder that cannot be loaded leaves the current map as it was.
        """
        from vggt_mapper.io.map_folder import read_map_folder

        frames = read_frame_note(folder)
        with read_map_folder(folder) as state:
            mapper.load_state(state)
        if replacing:
            with self._tf_lock:  # the old map's TF, path and grid must not be re-sent
                self._reset_map_state()
        trajectory = mapper.trajectory()
        self._loaded_frames = frames
        self._map_frames = dict(frames)
        if trajectory:
            latest = frames.get(trajectory[-1].segment, UNLEVELLED)
            self._levelled_by, self._frame_note = latest.levelled_by, latest.describe()
            self._update_grid(trajectory[-1])  # localization builds no window: the grid now
            self._show_map(trajectory, mapper.map_snapshot(), trajectory[-1])
        self.get_logger().info(
            f'loaded the map {str(folder)!r}: {len(trajectory)} keyframes, '
            f'{mapper.map_snapshot().num_points} points'
            + ('' if frames else " (no map_frame.json: its frame is the first camera's)"))

    def _read_params(self) -> NodeParams:
        return NodeParams.from_values(
            {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS})

    def _mapper_predictor(self) -> Any:
        return self._mapper.predictor if self._mapper is not None else None

    def _create_publishers(self) -> None:
        latched = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                             reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        topics = {'~/map': (PointCloud2, latched), '~/map_segments': (PointCloud2, latched),
                  '~/window_cloud': (PointCloud2, 10), '~/path': (PathMsg, latched),
                  '~/pose': (PoseStamped, 10), '/diagnostics': (DiagnosticArray, 10),
                  '~/grid': (OccupancyGridMsg, latched)}
        for topic, (msg_type, qos) in topics.items():
            publisher = self.create_lifecycle_publisher(msg_type, topic, qos)
            self._topic_publishers[topic] = publisher
            self._entities.append((self.destroy_lifecycle_publisher, publisher))

    def _create_services(self) -> None:
        # A save waiting for the worker must not block image callbacks (MultiThreadedExecutor).
        group = MutuallyExclusiveCallbackGroup()
        services = (('~/save_map', self._on_save_map), ('~/reset', self._on_reset),
                    ('~/load_map', self._on_load_map),
                    ('~/set_mode_localization', partial(self._on_set_mode, 'localization')),
                    ('~/set_mode_mapping', partial(self._on_set_mode, 'mapping')))
        for name, callback in services:
            service = self.create_service(Trigger, name, callback, callback_group=group)
            self._entities.append((self.destroy_service, service))

    def _create_tf(self, params: NodeParams) -> None:
        if params.publish_tf != 'none':
            self._tf_broadcaster = TransformBroadcaster(self)
            self._entities.append((lambda item: self.destroy_publisher(item.pub_tf),
                                   self._tf_broadcaster))
        if params.uses_odometry or params.level_map == 'tf':
            self._tf_buffer = Buffer(cache_time=Duration(
                nanoseconds=int(params.tf_cache_s * 1e9)))
            listener = TransformListener(self._tf_buffer, self)
            self._entities.append((lambda item: item.unregister(), listener))

    # -- activate ----------------------------------------------------------------------------

    @staticmethod
    def _image_type(params: NodeParams) -> Any:
        return CompressedImage if params.image_transport == 'compressed' else Image

    def _create_subscriptions(self, params: NodeParams) -> None:
        qos = QoSProfile(depth=params.image_qos_depth, history=HistoryPolicy.KEEP_LAST,
                         reliability=_RELIABILITY[params.image_qos_reliability],
                         durability=DurabilityPolicy.VOLATILE)
        image_type = self._image_type(params)
        self._decode = (conv.compressed_to_rgb if image_type is CompressedImage
                        else conv.image_to_rgb)
        subscriptions = [self.create_subscription(
            image_type, 'image', self._on_image, qos,
            callback_group=MutuallyExclusiveCallbackGroup())]
        if params.use_camera_info:
            subscriptions.append(self.create_subscription(CameraInfo, 'camera_info',
                                                          self._on_camera_info, qos))
        self._active_entities += [(self.destroy_subscription, s) for s in subscriptions]

    def _create_timers(self, params: NodeParams) -> None:
        group = MutuallyExclusiveCallbackGroup()
        timers = [self.create_timer(1.0, self._publish_diagnostics, callback_group=group)]
        if params.map_publish_period_s > 0:
            timers.append(self.create_timer(params.map_publish_period_s, self._republish,
                                            callback_group=group))
        self._active_entities += [(self.destroy_timer, timer) for timer in timers]

    # -- cleanup -----------------------------------------------------------------------------

    @staticmethod
    def _destroy(entities: list[tuple[Callable[[Any], Any], Any]]) -> None:
        while entities:
            destroy, entity = entities.pop()
            destroy(entity)

    def _release(self) -> None:
        """Destroy what configure built and drop the engine and the model."""
        self._destroy(self._active_entities)
        self._destroy(self._entities)
        self._topic_publishers.clear()
        self._tf_buffer = self._tf_broadcaster = None
        self._engine = None
        self._release_engine()
        self._params = None

    def _release_engine(self) -> None:
        worker, mapper = self._worker, self._mapper
        self._worker = self._mapper = None
        self._generation += 1
        if mapper is None:
            return
        if worker is None or worker.stop(drain=False, timeout=0.0):
            mapper.close()
        else:  # a window is still in flight: close the engine when it ends
            self.get_logger().warning('a window is still being mapped: the engine and the model '
                                      'are freed when it ends')
            threading.Thread(target=_close_after, args=(worker, mapper), daemon=True,
                             name='vggt-mapper-release').start()
        del worker, mapper
        _free_model_memory()

    # -- parameters --------------------------------------------------------------------------

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        ours = {p.name: p.value for p in parameters}
        try:
            if self._params is None:
                # Unconfigured: each value alone; together they are checked at configure.
                check_values(ours)
            else:
                self._params = self._params.with_changes(
                    {name: value for name, value in ours.items()
                     if name in NodeParams.__dataclass_fields__})
                if 'mode' in ours and self._engine is not None:
                    self._engine.request_mode(self._params.mode)  # before the next frame
        except ParameterError as err:
            return SetParametersResult(successful=False, reason=str(err))
        # rclpy's own parameters (use_sim_time, qos_overrides.*) are not ours to refuse.
        return SetParametersResult(successful=True, reason='')

    # -- callbacks (executor threads): convert, enqueue, answer; no inference, no file I/O --

    def _can_publish(self) -> bool:
        return self._active and not self._closing and self.context.ok()

    def _on_image(self, msg: Any) -> None:
        params, worker = self._params, self._worker
        if params is None or worker is None:
            return  # cleaned up while the message was in flight
        try:
            image_rgb = self._decode(msg)
        except ConversionError as err:
            self._malformed += 1
            self.get_logger().warning(f'skipping malformed image ({self._malformed} so far): '
                                      f'{err}', throttle_duration_sec=WARN_THROTTLE_S)
            return
        self._note_camera_frame(params, str(msg.header.frame_id))
        stamp_ns = conv.stamp_to_ns(msg.header.stamp)
        self._newest_stamp_ns = max(self._newest_stamp_ns, stamp_ns)
        frame = self._calibrated(InputFrame(image_rgb, stamp_ns, f'frame_{stamp_ns}'))
        if params.uses_odometry:
            odom_from_camera = self._record_odometry(params, stamp_ns)
            if odom_from_camera is not None and params.scale_source != 'none':
                frame = replace(frame, odom_from_camera=odom_from_camera)
        if not worker.submit(frame):
            self.get_logger().debug(f'{worker.stats.frames_dropped} frames dropped so far '
                                    f'({params.drop_policy}: the camera is faster than the '
                                    f'windows)', throttle_duration_sec=WARN_THROTTLE_S)

    def _note_camera_frame(self, params: NodeParams, frame_id: str) -> None:
        if not self._camera_frame:
            self._camera_frame = camera_frame_of(params.camera_frame, frame_id)
        if frame_id and frame_id != self._camera_frame and not self._frame_warned:
            self._frame_warned = True
            self.get_logger().warning(f'images are in frame {frame_id!r} but the poses use '
                                      f'{self._camera_frame!r} (camera_frame); set camera_frame '
                                      f'to the optical frame of the images, or leave it empty')

    def _calibrated(self, frame: InputFrame) -> InputFrame:
        """Undistort a frame with the CameraInfo and give it its K (as a bag's frames)."""
        calibration = self._calibration
        if calibration is None:
            return frame
        try:
            return undistort_frame(frame, calibration, self._undistorters)
        except InputError as err:
            self._uncalibrated += 1
            self.get_logger().warning(f"image mapped with the model's own intrinsics "
                                      f'({self._uncalibrated} so far): {err}',
                                      throttle_duration_sec=WARN_THROTTLE_S)
            return frame

    def _record_odometry(self, params: NodeParams,
                         stamp_ns: int) -> NDArray[np.float64] | None:
        """
        Look ``odom -> base`` up now, while the tf2 buffer has it (see ``ros.odometry``).

        :return: ``odom_from_camera`` (through TF ``base -> camera``) for the metric scale, or
            None when TF has not got both yet (counted).
        """
        assert self._tf_buffer is not None
        try:
            # No wait: this is the image callback; a pose not there yet is looked up later.
            odom_from_base = conv.transform_to_matrix(self._tf_buffer.lookup_transform(
                params.odom_frame, params.base_frame, Time(nanoseconds=stamp_ns), Duration()))
            self._odometry.record(stamp_ns, odom_from_base)
            base_from_cam = conv.transform_to_matrix(self._tf_buffer.lookup_transform(
                params.base_frame, self._camera_frame, Time(), Duration()))
        except (TransformException, ConversionError):
            self._without_odometry += 1
            return None
        self._with_odometry += 1
        return np.asarray(odom_from_base @ base_from_cam, dtype=np.float64)

    def _on_camera_info(self, msg: Any) -> None:
        topic = self.resolve_topic_name('camera_info')
        # REP 104: an image_rect topic is already undistorted; its K is P's left 3x3.
        rectified = self.resolve_topic_name('image').rsplit('/', 1)[-1].startswith('image_rect')
        try:
            record = conv.camera_info_from_msg(msg)
            calibration = calibration_from_camera_info(
                msg.k, msg.d, msg.distortion_model, msg.width, msg.height, p=msg.p,
                rectified=rectified, source=topic)
        except (ConversionError, InputError) as err:
            self.get_logger().warning(f'ignoring CameraInfo: {err}',
                                      throttle_duration_sec=WARN_THROTTLE_S)
            return
        previous = self._calibration
        if previous is None or previous.to_json_dict() != calibration.to_json_dict():
            self.get_logger().info(
                f'CameraInfo on {topic}: known K, images '
                + ('undistorted (' + calibration.distortion_model + ')'
                   if calibration.distorted else 'used as they are (no distortion)'))
            self._calibration = calibration
        self._camera_info = record

    def _on_save_map(self, request: Any, response: Any) -> Any:
        try:
            paths = self.worker.save(self._write_outputs).result(timeout=SERVICE_TIMEOUT_S)
        except NothingToSaveError as err:
            response.success, response.message = False, str(err)
            self.get_logger().warning(response.message)
            return response
        except (ExportError, OSError, WorkerError, TimeoutError) as err:
            response.success, response.message = False, f'save failed: {err}'
            self.get_logger().error(response.message)
            return response
        response.success = True
        response.message = (f'saved in frame {self._frame_id()!r} (see map_frame.json): '
                            + ' '.join(str(p) for p in paths))
        self.get_logger().info(response.message)
        return response

    def _on_load_map(self, request: Any, response: Any) -> Any:
        params, mapper = self._params, self._mapper
        if params is None or mapper is None or not params.map:
            response.success = False
            response.message = ('no map folder to load: set the map parameter first '
                                '(ros2 param set <node> map /path/to/map_folder)')
            return response
        folder = Path(params.map).expanduser()
        try:
            self.worker.run_between_frames(
                partial(self._load_map, folder, mapper, replacing=True)
            ).result(timeout=SERVICE_TIMEOUT_S)
        except (InputError, EngineError, ExportError, OSError, WorkerError,
                TimeoutError) as err:
            response.success = False
            response.message = f'load failed, the current map is kept: {err}'
            self.get_logger().error(response.message)
            return response
        response.success = True
        response.message = (f'loaded {str(folder)!r}: {len(self.worker.trajectory())} keyframes; '
                            f'mode {self._params.mode if self._params else "mapping"}')
        self.get_logger().info(response.message)
        return response

    def _on_set_mode(self, mode: str, request: Any, response: Any) -> Any:
        # Through the parameter: one way to switch, and `ros2 param get` stays true.
        [result] = self.set_parameters([Parameter('mode', Parameter.Type.STRING, mode)])
        response.success = bool(result.successful)
        response.message = (f'mode {mode} (applied before the next frame)' if result.successful
                            else f'mode not changed: {result.reason}')
        return response

    def _on_reset(self, request: Any, response: Any) -> Any:
        try:
            self.worker.reset().result(timeout=SERVICE_TIMEOUT_S)
        except (WorkerError, EngineError, TimeoutError) as err:
            response.success, response.message = False, f'reset failed: {err}'
            return response
        with self._tf_lock:  # the old camera pose must not be re-sent
            self._reset_map_state()
        now_ns = self.get_clock().now().nanoseconds
        empty = self.worker.map_snapshot()
        self._last_map_msg = conv.points_to_cloud(empty.points_world, empty.colors_rgb, now_ns,
                                                  self._frame_id(), self._types)
        self._last_path_msg = conv.poses_to_path(np.zeros((0, 4, 4)), [], now_ns,
                                                 self._frame_id(), self._types)
        self._publish_latest()
        response.success = True
        response.message = 'map and trajectory cleared; the next save starts a new map folder'
        return response

    def _republish(self) -> None:
        if not self._can_publish():
            return
        if self._last_map_msg is not None:
            self._topic_publishers['~/map'].publish(self._last_map_msg)
        with self._tf_lock:
            if self._last_tf is None:
                return
            parent_from_child, child, stamp_ns = self._last_tf
            # See the module docstring: map -> odom holds from now on; map -> camera keeps
            # (nearly) its keyframe stamp.
            assert self._params is not None
            stamp_ns = (self.get_clock().now().nanoseconds
                        if self._params.publish_tf == 'map_to_odom' else stamp_ns + 1)
            self._last_tf = (parent_from_child, child, stamp_ns)
            self._send_tf(parent_from_child, child, stamp_ns)

    def _publish_latest(self) -> None:
        """Publish the latest map, path and TF at once (activate, reset)."""
        if not self._can_publish():
            return
        if self._last_map_msg is not None:
            self._topic_publishers['~/map'].publish(self._last_map_msg)
        if self._last_path_msg is not None:
            self._topic_publishers['~/path'].publish(self._last_path_msg)
        if self._last_grid_msg is not None:
            self._topic_publishers['~/grid'].publish(self._last_grid_msg)
        with self._tf_lock:
            if self._last_tf is not None:
                self._send_tf(*self._last_tf)

    def _publish_diagnostics(self) -> None:
        if not self._can_publish():
            return
        stats = self.worker.stats
        engine = stats.mapper
        params = self._params
        assert params is not None
        self._health.count('malformed images skipped', self._malformed)
        self._health.count('TF lookups failed', self._tf_failures)
        self._health.count('images not fitting the CameraInfo', self._uncalibrated)
        scale = self._scale_values(params, engine)
        self._health.set_condition('no map segment is metric yet', scale['metric'] == 'false')
        level, message = self._health.judge(stats.fatal_error, stats.running)
        rejected = engine.windows_rejected if engine else 0
        values = {
            'queue_depth': stats.queue_depth, 'queue_capacity': stats.queue_capacity,
            'frames_received': stats.frames_received, 'frames_dropped': stats.frames_dropped,
            'frames_malformed': self._malformed, 'windows_done': stats.windows_done,
            'windows_failed': stats.windows_failed, 'rejected_alignments': rejected,
            'last_inference_s': f'{stats.last_predict_s:.3f}',
            'last_window_s': f'{stats.last_step_s:.3f}',
            'mapping_lag_s': f'{self._health.last_lag_s:.3f}',
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
            'map_frame': self._frame_note or 'not known yet',
            'tf_failures': self._tf_failures, 'last_error': stats.last_error,
            **scale,
            'intrinsics': ('CameraInfo' if self._calibration is not None else 'predicted'),
            'keyframes_with_intrinsics': engine.keyframes_with_intrinsics if engine else 0,
            'frames_not_fitting_camera_info': self._uncalibrated,
            'frames_with_odometry': self._with_odometry,
            'frames_without_odometry': self._without_odometry,
            'grid': (f'{self._last_grid.width}x{self._last_grid.height} cells of '
                     f'{self._last_grid.resolution:.3g}' if self._last_grid else 'none yet'),
            'grids_skipped': self._grids_skipped,
            **self._localization_values(engine),
        }
        status = DiagnosticStatus(
            level=_DIAGNOSTIC_LEVELS[level], name=f'{self.get_name()}: mapping',
            message=message, hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=key, value=str(value)) for key, value in values.items()])
        self._topic_publishers['/diagnostics'].publish(DiagnosticArray(
            header=conv.make_header(self.get_clock().now().nanoseconds, '', self._types),
            status=[status]))

    def _scale_values(self, params: NodeParams, engine: Any) -> dict[str, str]:
        """Diagnostics of the active segment's metric scale (``metric``: true/false/n/a)."""
        scales = engine.metric_scales if engine else {}
        trajectory = self.worker.trajectory()
        active = trajectory[-1].segment if trajectory else None
        scale = scales.get(active) if active is not None else None
        # WARN only where a metric map was asked for: odometry is used when TF has it.
        wanted = params.publish_tf == 'map_to_odom' or params.scale_source == 'camera_height'
        metric = scale is not None and scale.metric
        return {
            'scale_source': params.scale_source,
            'metric': 'true' if metric else ('false' if wanted and trajectory else 'n/a'),
            'scale': f'{scale.factor:.6g}' if scale else 'n/a',
            'scale_from': scale.source if scale else 'n/a',
            'scale_samples': str(scale.samples) if scale else '0',
            'scale_spread_pct': (f'{100 * scale.spread_rel:.2f}'
                                 if scale and np.isfinite(scale.spread_rel) else 'n/a'),
            'metric_segments': f'{sum(s.metric for s in scales.values())} of {len(scales)}',
        }

    def _localization_values(self, engine: Any) -> dict[str, str]:
        """Diagnostics of localization mode (empty in mapping mode)."""
        params = self._params
        if params is None or params.mode != 'localization':
            return {'mode': params.mode if params else 'mapping'}
        located = self._last_localized
        since = located.result.since_success_ns if located else None
        return {
            'mode': 'localization',
            'keyframes_localized': str(engine.keyframes_localized if engine else 0),
            'keyframes_not_localized': str(engine.keyframes_not_localized if engine else 0),
            'since_last_localized_s': 'never' if since is None else f'{since * 1e-9:.1f}',
            'last_localization': ('none yet' if located is None else 'placed' if
                                  located.world_from_cam is not None else located.result.reason),
        }

    # -- worker thread ----------------------------------------------------------------------

    def _frame_id(self) -> str:
        return self._params.map_frame if self._params is not None else 'map'

    def _write_outputs(self, trajectory: list[KeyframePose],
                       snapshot: MapSnapshot) -> list[Path]:
        """Save the map in the ``map`` frame (see ``ros.saving``); worker thread or stopped."""
        params = self._params
        assert params is not None
        worker, engine = self.worker, self._engine
        # The map state is taken on the mapper's thread only: at shutdown, with a window still
        # in flight, the exports are saved without it (and again with it once the worker ends).
        owns = engine is not None and worker.owns_mapper()
        if owns and engine is not None:  # the worker's cache has no loaded map before a window
            trajectory, snapshot = engine.trajectory(), engine.map_snapshot()
        check_something_mapped(trajectory, snapshot)
        output_dir = params.output_path
        folder = self._runs.folder(output_dir, params.output_per_run)
        if owns and trajectory:
            self._update_grid(max(trajectory, key=lambda pose: pose.index))
        frames = self._map_frames
        state = engine.map_state() if owns and engine is not None else None
        self._state_missing = state is None
        if state is None:
            self.log(logging.WARNING, 'saving without map_state/ (a window is in flight): the '
                                      'folder cannot be loaded again until the next save')
        engine_stats = worker.stats.mapper
        with state if state is not None else nullcontext():
            saved = save_map(folder, poses_in_map(trajectory, frames),
                             snapshot_in_map(snapshot, frames), overwrite=True,
                             world_frame=f'{params.map_frame!r}, described in map_frame.json',
                             units=engine_stats.metric_scales if engine_stats else None,
                             state=state)
        paths = [*saved.paths, write_frame_note(folder, params.map_frame, frames)]
        if self._last_grid is not None:
            paths += write_map_server(folder, self._last_grid, overwrite=True)
        if self._camera_info is not None:
            text = json.dumps(self._camera_info.to_json_dict(), indent=2) + '\n'
            paths.append(atomic_write_bytes(folder / 'camera_info.json', text.encode(),
                                            overwrite=True))
        if params.output_per_run:
            try:
                paths.append(self._runs.link_latest(output_dir, folder))
            except OSError as err:  # the map is saved; only the convenience link is missing
                self.log(logging.WARNING, f'{output_dir}/latest not updated: {err}')
        return paths

    def _on_localized(self, generation: int, located: LocalizedPose) -> None:
        """Publish the camera pose and TF of a keyframe placed in the map (worker thread)."""
        if generation != self._generation:
            return
        self._last_localized = located
        if located.world_from_cam is None:
            return  # counted by the engine; diagnostics say how long since the last success
        params = self._params
        assert params is not None
        frame = self._map_frames.get(located.segment, UNLEVELLED)
        map_from_cam = frame.map_from_world @ located.world_from_cam
        stamp_ns = located.result.stamp_ns
        if not self._can_publish():
            self._keep_tf(map_from_cam, stamp_ns)
            return
        pose = conv.matrix_to_pose(map_from_cam, stamp_ns, params.map_frame, self._types)
        self._topic_publishers['~/pose'].publish(pose)
        self._publish_tf(map_from_cam, stamp_ns)

    def _on_window_failed(self, generation: int, frame: InputFrame,
                          error: BaseException) -> None:
        # The worker has logged it (forwarded to the ROS logger); count it for diagnostics.
        if generation == self._generation:
            self._health.window_failed(str(error) if isinstance(error, PredictorFailedError)
                                       else '')

    def _on_window(self, generation: int, result: WindowResult) -> None:
        if generation != self._generation:
            return  # an engine released by cleanup ended its last window: nobody wants it
        # A rejected window is logged by the engine (forwarded to the ROS logger).
        trajectory = self.worker.trajectory() if result.accepted else []
        if not trajectory:
            self._health.window_done(False)
            return
        latest = max(trajectory, key=lambda pose: pose.index)
        self._health.window_done(True, (self._newest_stamp_ns - latest.stamp_ns) * _NANOSECONDS)
        self._update_map_frames(trajectory)
        if self._grid_due <= time.monotonic():
            self._update_grid(latest)
        self._show_map(trajectory, self.worker.map_snapshot(), latest, result)
        self._odometry.forget_before(latest.stamp_ns)

    def _update_map_frames(self, trajectory: list[KeyframePose]) -> None:
        """Level each segment's map frame with gravity from TF, when TF has it."""
        up_cam = self._camera_up()
        frames: dict[int, MapFrame] = {}
        for segment in sorted({pose.segment for pose in trajectory}):
            # A loaded map keeps the frame it was saved in (its grid, its path); then gravity
            # from TF; then the occupancy grid's floor fit (see _update_grid).
            frame = self._loaded_frames.get(segment)
            if frame is None and up_cam is not None:
                poses = np.stack([p.world_from_cam for p in trajectory if p.segment == segment])
                frame = map_frame_from_up(gravity_up_world(poses, up_cam), 'tf')
            if frame is None and segment in self._floor_up:
                frame = map_frame_from_up(self._floor_up[segment], 'floor plane')
            frames[segment] = frame or UNLEVELLED
        self._map_frames = frames
        latest = frames[max(trajectory, key=lambda pose: pose.index).segment]
        if latest.levelled_by != self._levelled_by:
            self.log(logging.INFO, f'map frame {self._frame_id()!r}: {latest.describe()}')
        self._levelled_by, self._frame_note = latest.levelled_by, latest.describe()

    def _camera_up(self) -> NDArray[np.float64] | None:
        """Return up in the camera frame from TF ``base -> camera``, None when unknown."""
        params = self._params
        if params is None or params.level_map != 'tf' or self._tf_buffer is None:
            return None
        try:
            base_from_cam = self._lookup(params.base_frame, self._camera_frame, 0)
        except (TransformException, ConversionError) as err:
            if self._levelled_by in (None, 'tf'):  # said once, and again if TF had it before
                self.log(logging.INFO, f'no TF {params.base_frame} -> {self._camera_frame} to '
                                       f'level the map with: {err}')
            return None
        return np.asarray(base_from_cam[:3, :3].T @ UP_BASE, dtype=np.float64)

    def _update_grid(self, latest: KeyframePose) -> None:
        """
        Build the occupancy grid of the active segment in its ``map`` frame (worker thread).

        Levelled as the map: by the segment's map frame when it is levelled (TF, a loaded map)
        or ``level_map`` is none; otherwise by a floor-plane fit, which then levels the
        segment's map frame too, so that the grid and the map stay in one frame. A grid that
        cannot be built yet (no floor seen) is a logged, counted skip.
        """
        params, engine = self._params, self._engine
        if params is None or engine is None or params.grid_period_s <= 0:
            return
        self._grid_due = time.monotonic() + params.grid_period_s
        active = latest.segment
        frame = self._map_frames.get(active, UNLEVELLED)
        fit_floor = not frame.levelled_by and params.level_map == 'tf'
        # A levelled frame's third row is its up in the engine's world.
        up_world = None if fit_floor else frame.map_from_world[2, :3]
        try:
            grid = engine.grid(conv.MAP_FROM_WORLD, params.to_occupancy_config(), up_world)
        except OccupancyError as err:
            self._grids_skipped += 1
            self.log(logging.INFO, f'no occupancy grid yet ({self._grids_skipped} skipped): '
                                   f'{err}')
            return
        if fit_floor and grid.floor is not None:
            self._floor_up[active] = np.asarray(grid.floor.up_world, dtype=np.float64)
            self._map_frames = {**self._map_frames,
                                active: map_frame_from_up(grid.floor.up_world, 'floor plane')}
            self.log(logging.INFO, f'map frame {self._frame_id()!r} of segment {active}: '
                                   f'{self._map_frames[active].describe()}')
            self._levelled_by, self._frame_note = 'floor plane', self._map_frames[
                active].describe()
        self._last_grid = grid
        self._last_grid_msg = conv.grid_to_occupancy_msg(grid, latest.stamp_ns,
                                                         params.map_frame, self._types)
        if self._can_publish():
            self._topic_publishers['~/grid'].publish(self._last_grid_msg)

    def _show_map(self, trajectory: list[KeyframePose], snapshot: MapSnapshot,
                  latest: KeyframePose, result: WindowResult | None = None) -> None:
        """Publish (or, inactive, keep) the map, path, pose and TF of the active segment."""
        params, types = self._params, self._types
        assert params is not None
        stamp_ns, active, frame_id = latest.stamp_ns, latest.segment, params.map_frame
        # The map, path and TF are the segment the camera is in (one frame); every segment is
        # on ~/map_segments, the others set beside it (their relative place is unknown).
        frames = self._map_frames
        frame = frames.get(active, UNLEVELLED)
        poses = [pose for pose in trajectory if pose.segment == active]
        snapshot = snapshot_in_map(snapshot, frames)
        in_active = snapshot.segments == active
        map_from_cams = frame.map_from_world @ np.stack([pose.world_from_cam for pose in poses])
        self._last_map_msg = conv.points_to_cloud(
            snapshot.points_world[in_active], snapshot.colors_rgb[in_active], stamp_ns,
            frame_id, types)
        self._last_path_msg = conv.poses_to_path(map_from_cams, [p.stamp_ns for p in poses],
                                                 stamp_ns, frame_id, types)
        map_from_cam = frame.map_from_world @ latest.world_from_cam
        if not self._can_publish():
            self._keep_tf(map_from_cam, stamp_ns)
            return
        publishers = self._topic_publishers
        publishers['~/map'].publish(self._last_map_msg)
        publishers['~/map_segments'].publish(conv.points_to_cloud(
            _side_by_side(snapshot.points_world, snapshot.segments, active),
            snapshot.colors_rgb, stamp_ns, frame_id, types, snapshot.segments))
        if result is not None and result.segment == active:
            publishers['~/window_cloud'].publish(conv.points_to_cloud(
                transform_points(frame.map_from_world, result.points_world), result.colors_rgb,
                stamp_ns, frame_id, types))
        publishers['~/path'].publish(self._last_path_msg)
        publishers['~/pose'].publish(conv.matrix_to_pose(map_from_cam, stamp_ns, frame_id,
                                                         types))
        self._publish_tf(map_from_cam, stamp_ns)

    def _lookup(self, target: str, source: str, stamp_ns: int) -> NDArray[np.float64]:
        """Look a transform up in the tf2 buffer (stamp 0: the latest)."""
        assert self._tf_buffer is not None and self._params is not None
        timeout = Duration(nanoseconds=int(self._params.tf_timeout_s * 1e9))
        return conv.transform_to_matrix(self._tf_buffer.lookup_transform(
            target, source, Time(nanoseconds=stamp_ns), timeout))

    def _tf_child(self, map_from_cam: NDArray[np.float64],
                  stamp_ns: int) -> tuple[NDArray[np.float64], str] | None:
        """Return what TF publishes for a camera pose, None when it cannot be computed."""
        params = self._params
        assert params is not None
        if params.publish_tf != 'map_to_odom':
            child = self._camera_frame or params.camera_frame
            # A map loaded before any image: the camera's frame is not known yet (it is the
            # images' by default), and TF refuses a transform without a child frame.
            return (map_from_cam, child) if child else None
        # REP 105: map -> odom = map_from_cam · cam_from_base · base_from_odom, with odom ->
        # base recorded when the image arrived (or, failing that, from the tf2 history).
        try:
            odom_from_base = self._odometry.lookup(stamp_ns)
            if odom_from_base is None:
                odom_from_base = self._lookup(params.odom_frame, params.base_frame, stamp_ns)
            base_from_cam = self._lookup(params.base_frame, self._camera_frame, 0)
        except (TransformException, ConversionError) as err:
            self._tf_failures += 1
            self.log(logging.WARNING, f'no map -> {params.odom_frame} correction: {err}')
            return None
        return (map_from_cam @ inverse_se3(base_from_cam) @ inverse_se3(odom_from_base),
                params.odom_frame)

    def _keep_tf(self, map_from_cam: NDArray[np.float64], stamp_ns: int) -> None:
        """Remember the TF of the latest window without sending it (inactive)."""
        if self._tf_broadcaster is None or (child := self._tf_child(map_from_cam,
                                                                    stamp_ns)) is None:
            return
        with self._tf_lock:
            self._last_tf = (child[0], child[1], stamp_ns)

    def _publish_tf(self, map_from_cam: NDArray[np.float64], stamp_ns: int) -> None:
        if self._tf_broadcaster is None or (child := self._tf_child(map_from_cam,
                                                                    stamp_ns)) is None:
            return
        with self._tf_lock:
            self._last_tf = (child[0], child[1], stamp_ns)
            self._send_tf(*self._last_tf)

    def _send_tf(self, parent_from_child: NDArray[np.float64], child: str,
                 stamp_ns: int) -> None:
        if self._tf_broadcaster is not None and self._can_publish():
            self._tf_broadcaster.sendTransform(conv.matrix_to_transform(
                parent_from_child, stamp_ns, self._frame_id(), child, self._types))

    # -- saving and stopping ---------------------------------------------------------------

    def close(self) -> bool:
        """
        Save what is mapped (``save_on_shutdown``), stop the worker, free everything.

        What ``shutdown`` and the end of ``main`` (Ctrl-C) do; harmless when called again.

        :return: True if the worker thread has ended; False if a window is still running (the
            process must then end with ``os._exit``, see ``main``).
        """
        stopped = True
        if self._params is not None and not self._closing:
            stopped = self._save_and_stop()
        worker = self._worker
        if worker is not None:
            stopped = worker.stop(drain=False, timeout=0.0)
        self._active = False
        self._release()
        self._remove_log_handler()
        return stopped

    def _save_and_stop(self) -> bool:
        """
        Stop publishing, save what is mapped at once, then give the worker a bounded time.

        An inference cannot be interrupted and may outlast launch's SIGKILL, so with
        ``save_on_shutdown`` the map and trajectory of the windows done so far are saved first
        (cached copies, no waiting). Then the last partial window is queued (it runs after the
        window in flight, ahead of the queued frames, which are dropped) and the worker gets
        ``shutdown_timeout_s`` for both; if that added accepted windows, the map is saved again.

        :return: True if the worker thread has ended.
        """
        self._closing = True
        params, worker = self._params, self.worker
        assert params is not None
        deadline = time.monotonic() + params.shutdown_timeout_s
        if not params.save_on_shutdown:
            return worker.stop(drain=False, timeout=params.shutdown_timeout_s)
        accepted = self._accepted_windows()
        try:
            flush = worker.flush()
        except WorkerError:  # never started, or stopped by a fatal error
            flush = None
        worker.stop(drain=False, timeout=0.0)  # pending commands (the flush) still run
        self._save_at_shutdown('map saved at shutdown')
        if flush is not None:
            wait([flush], timeout=max(0.0, deadline - time.monotonic()))
            flush.cancel()  # not started yet (a window is still in flight): never start it
        stopped = worker.stop(drain=False, timeout=max(0.0, deadline - time.monotonic()))
        if not stopped:
            self.log(logging.WARNING, 'a window was still being mapped after '
                     f'shutdown_timeout_s ({params.shutdown_timeout_s} s): abandoned, the '
                     'saved map has the windows before it')
        added = self._accepted_windows() - accepted
        if added or (stopped and self._state_missing):
            self._save_at_shutdown(f'map saved again at shutdown with {added} more '
                                   f'window(s) (in flight and the last partial one)'
                                   + (' and its map state' if self._state_missing else ''))
        return stopped

    def _remove_log_handler(self) -> None:
        package_logger = logging.getLogger(PACKAGE_LOGGER)
        if self._log_handler in package_logger.handlers:
            package_logger.removeHandler(self._log_handler)
            package_logger.setLevel(self._saved_logger_state[0])
            package_logger.propagate = self._saved_logger_state[1]

    def _accepted_windows(self) -> int:
        engine = self.worker.stats.mapper
        return engine.windows_done - engine.windows_rejected if engine else 0

    def _save_at_shutdown(self, what: str) -> None:
        # The worker is stopping: the writer runs here, at once, on the cached state.
        try:
            paths = self.worker.save(self._write_outputs).result()
        except NothingToSaveError as err:
            self.log(logging.INFO, f'no map saved at shutdown: {err}')
            return
        except (ExportError, OSError) as err:
            self.log(logging.ERROR, f'saving the map at shutdown failed: {err}')
            return
        self.log(logging.INFO, f'{what}: ' + ' '.join(str(p) for p in paths))

    def destroy_node(self) -> None:
        """Free everything (as ``close``) and destroy the node."""
        self.close()
        super().destroy_node()


def _close_after(worker: MappingWorker, mapper: Mapper) -> None:
    """Close an engine once its worker's window in flight has ended (a cleanup thread)."""
    worker.stop(drain=False, timeout=None)
    mapper.close()
    _free_model_memory()


def _free_model_memory() -> None:
    """Give the model's memory back: collect cycles, then empty the CUDA cache if torch has one."""
    gc.collect()
    torch = sys.modules.get('torch')
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _side_by_side(points_map: NDArray[np.floating], segments: NDArray[np.int32],
                  active: int) -> NDArray[np.float32]:
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
    """Errors that stop the process at start with a one-line message (no traceback)."""
    from rclpy.exceptions import ParameterException

    # ParameterException: rclpy's wrong type / out of range at declaration (the params file).
    return RosDoorError, ParameterException


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
    Run ``mapper_node`` until its ``shutdown`` transition, Ctrl-C or SIGTERM; save on the way.

    ``rclpy.init`` is called plainly and paired with ``rclpy.try_shutdown``: its context-manager
    form only exists from rclpy 7.4 (Kilted), and Jazzy's returns None.

    :param args: ROS command-line arguments (None: ``sys.argv``).
    :return: process exit status (1 when a parameter in the params file has the wrong type).
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
            executor.spin_until_future_complete(node.finalized)
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
