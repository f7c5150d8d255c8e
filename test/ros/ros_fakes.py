"""
A small test double of the rclpy surface ``vggt_mapper.ros.node`` uses.

``install(monkeypatch)`` puts fake ``rclpy`` (with ``rclpy.lifecycle``), ``tf2_ros``,
``rcl_interfaces`` and message modules into ``sys.modules``. Messages are keyword-constructed
objects that reject unknown field names (with the real field lists), nodes record what is
published, services and timers can be called by hand, and parameters follow rclpy's rules that
the node relies on: declared once, typed, ranges and read-only enforced, set-parameters
callbacks consulted.

Lifecycle nodes follow rclpy 7.1 (Jazzy): ``trigger_configure()``... run the transition
callbacks; FAILURE goes back to the start state, ERROR or an exception (swallowed, as rclpy
does) to ``on_error``; lifecycle publishers only publish while activated (the base
``on_activate``/``on_deactivate`` switch them). The tf2 buffer keeps a simulated clock
(``Buffer.now_ns``) and refuses lookups older than its cache, as tf2 does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import enum
import sys
import types
from typing import Any, NamedTuple

import pytest

MESSAGES: dict[str, dict[str, tuple[str, ...]]] = {
    'builtin_interfaces.msg': {'Time': ('sec', 'nanosec')},
    'std_msgs.msg': {'Header': ('stamp', 'frame_id')},
    'sensor_msgs.msg': {
        'PointField': ('name', 'offset', 'datatype', 'count'),
        'PointCloud2': ('header', 'height', 'width', 'fields', 'is_bigendian', 'point_step',
                        'row_step', 'data', 'is_dense'),
        'Image': ('header', 'height', 'width', 'encoding', 'is_bigendian', 'step', 'data'),
        'CompressedImage': ('header', 'format', 'data'),
        'CameraInfo': ('header', 'height', 'width', 'distortion_model', 'd', 'k', 'r', 'p',
                       'binning_x', 'binning_y', 'roi'),
    },
    'geometry_msgs.msg': {
        'Vector3': ('x', 'y', 'z'), 'Point': ('x', 'y', 'z'), 'Quaternion': ('x', 'y', 'z', 'w'),
        'Transform': ('translation', 'rotation'),
        'TransformStamped': ('header', 'child_frame_id', 'transform'),
        'Pose': ('position', 'orientation'), 'PoseStamped': ('header', 'pose'),
    },
    'nav_msgs.msg': {
        'Path': ('header', 'poses'), 'OccupancyGrid': ('header', 'info', 'data'),
        'MapMetaData': ('map_load_time', 'resolution', 'width', 'height', 'origin'),
    },
    'tf2_msgs.msg': {'TFMessage': ('transforms',)},
    'diagnostic_msgs.msg': {
        'DiagnosticArray': ('header', 'status'),
        'DiagnosticStatus': ('level', 'name', 'message', 'hardware_id', 'values'),
        'KeyValue': ('key', 'value'),
    },
    'rcl_interfaces.msg': {
        'ParameterDescriptor': ('name', 'type', 'description', 'additional_constraints',
                                'read_only', 'dynamic_typing', 'floating_point_range',
                                'integer_range'),
        'IntegerRange': ('from_value', 'to_value', 'step'),
        'FloatingPointRange': ('from_value', 'to_value', 'step'),
        'SetParametersResult': ('successful', 'reason'),
        'ParameterType': (),
    },
}
CONSTANTS: dict[str, dict[str, Any]] = {
    'PointField': {'INT8': 1, 'UINT8': 2, 'INT16': 3, 'UINT16': 4, 'INT32': 5, 'UINT32': 6,
                   'FLOAT32': 7, 'FLOAT64': 8},
    'DiagnosticStatus': {'OK': b'\x00', 'WARN': b'\x01', 'ERROR': b'\x02', 'STALE': b'\x03'},
    'ParameterType': {'PARAMETER_NOT_SET': 0, 'PARAMETER_BOOL': 1, 'PARAMETER_INTEGER': 2,
                      'PARAMETER_DOUBLE': 3, 'PARAMETER_STRING': 4},
}


def message_class(name: str, slots: tuple[str, ...]) -> type:
    """Make a message class with keyword construction over exactly ``slots`` (default None)."""
    def __init__(self: Any, **kwargs: Any) -> None:
        unknown = set(kwargs) - set(slots)
        if unknown:
            raise TypeError(f'{name} has no field(s) {sorted(unknown)}')
        for slot in slots:
            setattr(self, slot, kwargs.get(slot))

    return type(name, (), {'__init__': __init__, '__slots__': slots, **CONSTANTS.get(name, {})})


class Trigger:
    """std_srvs/srv/Trigger."""

    Request = message_class('Trigger_Request', ())
    Response = message_class('Trigger_Response', ('success', 'message'))


# ---------------------------------------------------------------------------------------------
# rclpy


class ExternalShutdownException(Exception):
    """rclpy.executors.ExternalShutdownException."""


class QoSProfile:
    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)


class _Policy:
    RELIABLE = 'reliable'
    BEST_EFFORT = 'best_effort'
    TRANSIENT_LOCAL = 'transient_local'
    VOLATILE = 'volatile'
    KEEP_LAST = 'keep_last'


SENSOR_DATA = QoSProfile(depth=5, reliability=_Policy.BEST_EFFORT,
                         durability=_Policy.VOLATILE)


class Time:
    def __init__(self, seconds: int = 0, nanoseconds: int = 0) -> None:
        self.nanoseconds = seconds * 1_000_000_000 + nanoseconds


class Duration(Time):
    pass


class Clock:
    def now(self) -> Time:
        return Time(nanoseconds=5_000_000_000)


class MutuallyExclusiveCallbackGroup:
    pass


@dataclass
class Logger:
    name: str = 'vggt_mapper'
    records: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    #: rclpy's LoggingSeverity of the logger (INFO); the same numbers as Python's levels.
    effective_level: int = 20

    def get_effective_level(self) -> int:
        return self.effective_level

    def _log(self, level: str, message: str, **kwargs: Any) -> None:
        self.records.append((level, message, kwargs))

    def debug(self, message: str, **kwargs: Any) -> None:
        self._log('debug', message, **kwargs)

    def fatal(self, message: str, **kwargs: Any) -> None:
        self._log('fatal', message, **kwargs)

    def info(self, message: str, **kwargs: Any) -> None:
        self._log('info', message, **kwargs)

    def warning(self, message: str, **kwargs: Any) -> None:
        self._log('warning', message, **kwargs)

    def error(self, message: str, **kwargs: Any) -> None:
        self._log('error', message, **kwargs)

    def messages(self, level: str) -> list[str]:
        return [message for lvl, message, _ in self.records if lvl == level]


@dataclass(eq=False)
class Publisher:
    msg_type: type
    topic: str
    qos: Any
    messages: list[Any] = field(default_factory=list)

    def publish(self, msg: Any) -> None:
        assert isinstance(msg, self.msg_type), f'{self.topic}: {type(msg)} is not {self.msg_type}'
        self.messages.append(msg)


@dataclass(eq=False)
class LifecyclePublisher(Publisher):
    """Publishes only while activated; what it was given meanwhile is counted in ``ignored``."""

    enabled: bool = False
    ignored: int = 0

    def publish(self, msg: Any) -> None:
        if self.enabled:
            super().publish(msg)
        else:
            self.ignored += 1


@dataclass
class Endpoint:
    msg_type: type
    name: str
    callback: Callable[..., Any]
    qos: Any = None
    callback_group: Any = None


@dataclass
class TimerRecord:
    period_s: float
    callback: Callable[[], None]
    callback_group: Any = None


class ParameterException(Exception):
    """rclpy.exceptions.ParameterException, the base of rclpy's parameter errors."""


class InvalidParameterValueException(ParameterException):
    """rclpy.exceptions.InvalidParameterValueException."""


class InvalidParameterTypeException(ParameterException):
    """rclpy.exceptions.InvalidParameterTypeException."""


class Context:
    """rclpy.context.Context: ``ok()`` turns False when ROS shuts down (Ctrl-C)."""

    def __init__(self) -> None:
        self.shut_down = False

    def ok(self) -> bool:
        return not self.shut_down


#: Loggers made by ``rclpy.logging.get_logger`` (console only: no /rosout), by name.
NAMED_LOGGERS: dict[str, Logger] = {}


def get_logger(name: str) -> Logger:
    return NAMED_LOGGERS.setdefault(name, Logger(name))


class Node:
    """The rclpy.node.Node methods the mapper node calls."""

    #: Values a test wants the node to start with (like a params file), keyed by name.
    overrides: dict[str, Any] = {}
    instances: list[Node] = []

    def __init__(self, node_name: str, *, namespace: str = '') -> None:
        self._name = node_name
        self._namespace = namespace
        self.parameters: dict[str, Any] = {}
        self.descriptors: dict[str, Any] = {}
        self.publishers: dict[str, Publisher] = {}
        self.subscriptions: dict[str, Endpoint] = {}
        self.services: dict[str, Endpoint] = {}
        self.timers: list[TimerRecord] = []
        self.set_callbacks: list[Callable[[list[Any]], Any]] = []
        self.logger = Logger(node_name)
        self.context = Context()
        self.destroyed = False
        self.destroyed_entities: list[Any] = []
        # rclpy's own bookkeeping (rclpy/node.py): a subclass attribute of the same name breaks
        # create_publisher ("'dict' object has no attribute 'append'"), as it did live.
        self._publishers: list[Any] = []
        self._subscriptions: list[Any] = []
        self._services: list[Any] = []
        self._timers: list[Any] = []
        self._clients: list[Any] = []
        Node.instances.append(self)

    def declare_parameter(self, name: str, value: Any, descriptor: Any) -> Any:
        assert name not in self.parameters, f'parameter {name!r} declared twice'
        assert descriptor.description, f'parameter {name!r} has no description'
        value = self.overrides.get(name, value)
        self._check(name, value, descriptor)
        self.parameters[name] = value
        self.descriptors[name] = descriptor
        return types.SimpleNamespace(name=name, value=value)

    @staticmethod
    def _check(name: str, value: Any, descriptor: Any) -> None:
        python_type = {1: bool, 2: int, 3: float, 4: str}[descriptor.type]
        if type(value) is not python_type:
            raise InvalidParameterTypeException(
                f"Trying to set parameter '{name}' to '{value!r}' of type "
                f"'{type(value).__name__}', expecting type '{python_type.__name__}': {name}")
        for ranges in (descriptor.integer_range, descriptor.floating_point_range):
            for bounds in ranges or ():
                if not bounds.from_value <= value <= bounds.to_value:
                    raise InvalidParameterValueException(f'{name}: {value!r} out of range')

    def get_parameter(self, name: str) -> Any:
        return types.SimpleNamespace(name=name, value=self.parameters[name])

    def set_parameters(self, parameters: list[Any]) -> list[Any]:
        """Like rclpy: read-only and range checks first, then the callbacks, then apply."""
        results = []
        for parameter in parameters:
            descriptor = self.descriptors[parameter.name]
            if descriptor.read_only:
                results.append(message_class('R', ('successful', 'reason'))(
                    successful=False, reason='read-only'))
                continue
            try:
                self._check(parameter.name, parameter.value, descriptor)
            except ParameterException as err:
                results.append(types.SimpleNamespace(successful=False, reason=str(err)))
                continue
            result = types.SimpleNamespace(successful=True, reason='')
            for callback in self.set_callbacks:
                result = callback([parameter])
                if not result.successful:
                    break
            if result.successful:
                self.parameters[parameter.name] = parameter.value
            results.append(result)
        return results

    def add_on_set_parameters_callback(self, callback: Callable[[list[Any]], Any]) -> None:
        self.set_callbacks.append(callback)

    def create_publisher(self, msg_type: type, topic: str, qos: Any) -> Publisher:
        assert topic not in self.publishers, f'publisher {topic} created twice'
        self.publishers[topic] = Publisher(msg_type, topic, qos)
        self._publishers.append(self.publishers[topic])
        return self.publishers[topic]

    def create_subscription(self, msg_type: type, topic: str, callback: Callable[[Any], None],
                            qos: Any, *, callback_group: Any = None) -> Endpoint:
        assert topic not in self.subscriptions, f'subscription {topic} created twice'
        self.subscriptions[topic] = Endpoint(msg_type, topic, callback, qos, callback_group)
        return self.subscriptions[topic]

    def create_service(self, srv_type: type, name: str, callback: Callable[[Any, Any], Any], *,
                       callback_group: Any = None) -> Endpoint:
        assert name not in self.services, f'service {name} created twice'
        self.services[name] = Endpoint(srv_type, name, callback, None, callback_group)
        return self.services[name]

    @staticmethod
    def _remove(registry: dict[str, Any], entity: Any) -> None:
        [name] = [name for name, item in registry.items() if item is entity]
        del registry[name]

    def destroy_publisher(self, publisher: Any) -> None:
        self._remove(self.publishers, publisher)
        self.destroyed_entities.append(publisher)

    def destroy_subscription(self, subscription: Any) -> None:
        self._remove(self.subscriptions, subscription)
        self.destroyed_entities.append(subscription)

    def destroy_service(self, service: Any) -> None:
        self._remove(self.services, service)
        self.destroyed_entities.append(service)

    def destroy_timer(self, timer: Any) -> None:
        self.timers.remove(timer)
        self.destroyed_entities.append(timer)

    def call_service(self, name: str) -> Any:
        endpoint = self.services[name]
        service: Any = endpoint.msg_type
        return endpoint.callback(service.Request(), service.Response())

    def create_timer(self, period_s: float, callback: Callable[[], None], *,
                     callback_group: Any = None) -> TimerRecord:
        self.timers.append(TimerRecord(period_s, callback, callback_group))
        return self.timers[-1]

    def get_logger(self) -> Logger:
        return self.logger

    def get_clock(self) -> Clock:
        return Clock()

    def get_name(self) -> str:
        return self._name

    def get_fully_qualified_name(self) -> str:
        return f'{self._namespace}/{self._name}'

    def resolve_topic_name(self, topic: str) -> str:
        return f'{self._namespace}/{topic}'

    def destroy_node(self) -> None:
        self.destroyed = True


# ---------------------------------------------------------------------------------------------
# rclpy.lifecycle


class TransitionCallbackReturn(enum.Enum):
    """rclpy.lifecycle.TransitionCallbackReturn."""

    SUCCESS = 'success'
    FAILURE = 'failure'
    ERROR = 'error'


class LifecycleState(NamedTuple):
    """rclpy.lifecycle.LifecycleState."""

    label: str
    state_id: int


class InvalidTransitionError(Exception):
    """What rclpy's state machine raises (an RCLError) for a transition the state lacks."""


#: transition → (start states, callback, goal state).
TRANSITIONS = {
    'configure': (('unconfigured',), 'on_configure', 'inactive'),
    'cleanup': (('inactive',), 'on_cleanup', 'unconfigured'),
    'activate': (('inactive',), 'on_activate', 'active'),
    'deactivate': (('active',), 'on_deactivate', 'inactive'),
    'shutdown': (('unconfigured', 'inactive', 'active'), 'on_shutdown', 'finalized'),
}
_STATE_IDS = {'unconfigured': 1, 'inactive': 2, 'active': 3, 'finalized': 4}


class LifecycleNode(Node):
    """rclpy.lifecycle.LifecycleNode: the state machine and the managed publishers."""

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.state = 'unconfigured'
        self.transitions: list[tuple[str, TransitionCallbackReturn]] = []
        self._managed: list[LifecyclePublisher] = []

    def _change_state(self, transition: str) -> TransitionCallbackReturn:
        starts, callback_name, goal = TRANSITIONS[transition]
        if self.state not in starts:
            raise InvalidTransitionError(f'{transition} is not possible from {self.state}')
        previous = LifecycleState(self.state, _STATE_IDS[self.state])
        try:
            result = getattr(self, callback_name)(previous)
        except Exception:  # noqa: BLE001 - rclpy swallows it too and reports ERROR
            result = TransitionCallbackReturn.ERROR
        self.transitions.append((transition, result))
        if result is TransitionCallbackReturn.SUCCESS:
            self.state = goal
        elif result is TransitionCallbackReturn.ERROR:
            recovered = self.on_error(previous)
            self.state = ('unconfigured' if recovered is TransitionCallbackReturn.SUCCESS
                          else 'finalized')
        return result

    def trigger_configure(self) -> TransitionCallbackReturn:
        return self._change_state('configure')

    def trigger_cleanup(self) -> TransitionCallbackReturn:
        return self._change_state('cleanup')

    def trigger_activate(self) -> TransitionCallbackReturn:
        return self._change_state('activate')

    def trigger_deactivate(self) -> TransitionCallbackReturn:
        return self._change_state('deactivate')

    def trigger_shutdown(self) -> TransitionCallbackReturn:
        return self._change_state('shutdown')

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for publisher in self._managed:
            publisher.enabled = True
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for publisher in self._managed:
            publisher.enabled = False
        return TransitionCallbackReturn.SUCCESS

    def create_lifecycle_publisher(self, msg_type: type, topic: str,
                                   qos: Any) -> LifecyclePublisher:
        assert topic not in self.publishers, f'publisher {topic} created twice'
        publisher = LifecyclePublisher(msg_type, topic, qos)
        self.publishers[topic] = publisher
        self._publishers.append(publisher)  # rclpy: Node.create_publisher does it
        self._managed.append(publisher)
        return publisher

    def destroy_lifecycle_publisher(self, publisher: LifecyclePublisher) -> None:
        self._managed.remove(publisher)
        self.destroy_publisher(publisher)


class Future:
    """rclpy.task.Future: what the node sets when it is finalized."""

    def __init__(self) -> None:
        self._done = False
        self._result: Any = None

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Any) -> None:
        self._done, self._result = True, result

    def result(self) -> Any:
        return self._result


class RclpyState:
    """``rclpy.init``/``rclpy.try_shutdown`` calls; init returns None, as on Jazzy."""

    init_calls: list[Any] = []
    shutdown_calls = 0


def init(args: Any = None) -> None:
    RclpyState.init_calls.append(args)


def try_shutdown() -> None:
    RclpyState.shutdown_calls += 1


class MultiThreadedExecutor:
    """
    Spinning runs ``on_spin`` (set by a test) once.

    ``spin_until_future_complete`` then returns if the future is done (the node was shut down
    by its lifecycle), else raises KeyboardInterrupt (Ctrl-C).
    """

    on_spin: Callable[[list[Any]], None] = staticmethod(lambda nodes: None)

    def __init__(self) -> None:
        self.nodes: list[Any] = []

    def add_node(self, node: Any) -> None:
        self.nodes.append(node)

    def spin(self) -> None:
        MultiThreadedExecutor.on_spin(self.nodes)
        raise KeyboardInterrupt

    def spin_until_future_complete(self, future: Future) -> None:
        MultiThreadedExecutor.on_spin(self.nodes)
        if not future.done():
            raise KeyboardInterrupt


# ---------------------------------------------------------------------------------------------
# tf2_ros


class TransformException(Exception):
    """tf2_ros.TransformException."""


class TransformBroadcaster:
    instances: list[TransformBroadcaster] = []

    def __init__(self, node: Any) -> None:
        self.sent: list[Any] = []
        self.pub_tf = node.create_publisher(object, '/tf', 100)
        TransformBroadcaster.instances.append(self)

    def sendTransform(self, transform: Any) -> None:  # noqa: N802 - tf2_ros's name
        self.sent.append(transform)


#: tf2's BUFFER_CORE_DEFAULT_CACHE_TIME.
DEFAULT_CACHE_NS = 10_000_000_000


class Buffer:
    """
    A tf2 buffer whose history is a function of time, on a simulated clock.

    ``transforms[(target, source)]`` is a message (static: any time) or a callable ``stamp_ns ->
    message`` (dynamic: the odometry), known up to ``now_ns`` (the simulated present) minus its
    ``latency_ns`` (a later stamp is "extrapolation into the future", as for odometry that
    arrives after the image). A dynamic lookup at a stamp older than ``now_ns`` minus the cache
    (10 s unless given) is "extrapolation into the past", as in tf2. Stamp 0 is the latest.
    """

    transforms: dict[tuple[str, str], Any] = {}
    now_ns = 0
    latency_ns: dict[tuple[str, str], int] = {}
    instances: list[Buffer] = []

    def __init__(self, cache_time: Duration | None = None, node: Any = None) -> None:
        self.cache_ns = DEFAULT_CACHE_NS if cache_time is None else cache_time.nanoseconds
        Buffer.instances.append(self)

    def lookup_transform(self, target: str, source: str, time: Time, timeout: Duration) -> Any:
        try:
            known = Buffer.transforms[(target, source)]
        except KeyError:
            raise TransformException(f'"{source}" passed to lookupTransform argument '
                                     f'source_frame does not exist') from None
        if not callable(known):
            return known
        newest_ns = Buffer.now_ns - Buffer.latency_ns.get((target, source), 0)
        stamp_ns = time.nanoseconds or newest_ns
        if stamp_ns > newest_ns:
            raise TransformException('Lookup would require extrapolation into the future.')
        if stamp_ns < Buffer.now_ns - self.cache_ns:
            raise TransformException(
                f'Lookup would require extrapolation into the past. Requested time '
                f'{stamp_ns / 1e9} but the earliest data is at time '
                f'{(Buffer.now_ns - self.cache_ns) / 1e9}')
        return known(stamp_ns)


class TransformListener:
    def __init__(self, buffer: Buffer, node: Any) -> None:
        self.buffer = buffer
        self.unregistered = False

    def unregister(self) -> None:
        self.unregistered = True


def _module(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


class Parameter:
    """rclpy.parameter.Parameter: a name, a type and a value."""

    class Type:
        STRING = 'string'

    def __init__(self, name: str, type_: Any = None, value: Any = None) -> None:
        self.name, self.type_, self.value = name, type_, value


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the fakes into sys.modules (undone by monkeypatch) and reset their shared state."""
    Node.overrides, Node.instances = {}, []
    Buffer.transforms, Buffer.now_ns, Buffer.latency_ns, Buffer.instances = {}, 0, {}, []
    TransformBroadcaster.instances = []
    RclpyState.init_calls, RclpyState.shutdown_calls = [], 0
    NAMED_LOGGERS.clear()
    MultiThreadedExecutor.on_spin = staticmethod(lambda nodes: None)
    modules = {
        name: _module(name, **{cls: message_class(cls, slots) for cls, slots in
                               classes.items()})
        for name, classes in MESSAGES.items()
    }
    for package in {name.split('.')[0] for name in MESSAGES} | {'std_srvs'}:
        modules.setdefault(package, _module(package))
    modules['std_srvs.srv'] = _module('std_srvs.srv', Trigger=Trigger)
    modules.update({
        'rclpy': _module('rclpy', init=init, try_shutdown=try_shutdown),
        'rclpy.node': _module('rclpy.node', Node=Node),
        'rclpy.lifecycle': _module('rclpy.lifecycle', LifecycleNode=LifecycleNode,
                                   LifecycleState=LifecycleState,
                                   TransitionCallbackReturn=TransitionCallbackReturn,
                                   LifecyclePublisher=LifecyclePublisher),
        'rclpy.task': _module('rclpy.task', Future=Future),
        'rclpy.logging': _module('rclpy.logging', get_logger=get_logger),
        'rclpy.exceptions': _module(
            'rclpy.exceptions', ParameterException=ParameterException,
            InvalidParameterValueException=InvalidParameterValueException,
            InvalidParameterTypeException=InvalidParameterTypeException),
        'rclpy.callback_groups': _module(
            'rclpy.callback_groups',
            MutuallyExclusiveCallbackGroup=MutuallyExclusiveCallbackGroup),
        'rclpy.duration': _module('rclpy.duration', Duration=Duration),
        'rclpy.time': _module('rclpy.time', Time=Time),
        'rclpy.parameter': _module('rclpy.parameter', Parameter=Parameter),
        'rclpy.executors': _module('rclpy.executors',
                                   ExternalShutdownException=ExternalShutdownException,
                                   MultiThreadedExecutor=MultiThreadedExecutor),
        'rclpy.qos': _module('rclpy.qos', QoSProfile=QoSProfile, DurabilityPolicy=_Policy,
                             HistoryPolicy=_Policy, ReliabilityPolicy=_Policy,
                             qos_profile_sensor_data=SENSOR_DATA),
        'tf2_ros': _module('tf2_ros', TransformBroadcaster=TransformBroadcaster,
                           TransformException=TransformException),
        'tf2_ros.buffer': _module('tf2_ros.buffer', Buffer=Buffer),
        'tf2_ros.transform_listener': _module('tf2_ros.transform_listener',
                                              TransformListener=TransformListener),
    })
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, 'vggt_mapper.ros.node', raising=False)
