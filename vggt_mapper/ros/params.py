"""
The mapper node's parameters as typed, validated data (no rclpy here).

``PARAMETERS`` lists every parameter once — name, default, description, range or choices, and
whether it can change while the node is configured. The node declares them from this table (as
ROS 2 ``ParameterDescriptor`` with ``IntegerRange``/``FloatingPointRange``), reads them into
``NodeParams`` when it is configured (lifecycle ``configure``) and validates changes by
building a new ``NodeParams``; ``config/mapper.yaml`` sets the same names. ``NodeParams`` maps
onto the engine's ``MapperConfig`` and the predictor factory's ``PredictorSpec``.

Parameters marked ``read_only`` here shape the engine or the ROS graph: they are fixed while the
node is configured (inactive or active) and can be set while it is unconfigured, taking effect
at the next ``configure``. They are not declared read-only to ROS, which would forbid that too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from vggt_mapper.engine.config import (
    KeyframeConfig,
    MapConfig,
    MapperConfig,
    MetricScaleConfig,
    OccupancyConfig,
)
from vggt_mapper.engine.errors import ConfigError
from vggt_mapper.ros.errors import ParameterError

__all__ = [
    'DROP_POLICIES',
    'IMAGE_TRANSPORTS',
    'LEVEL_MODES',
    'MODES',
    'PARAMETERS',
    'QOS_RELIABILITIES',
    'SCALE_SOURCES',
    'TF_MODES',
    'NodeParams',
    'ParamSpec',
    'check_values',
]

#: ``publish_tf`` values: map → camera, the correcting map → odom (REP 105), or no TF.
TF_MODES = ('map_to_camera', 'map_to_odom', 'none')
#: ``image_transport`` values: the ``image`` topic carries sensor_msgs/Image (raw) or
#: sensor_msgs/CompressedImage (compressed; remap ``image`` to a ``.../compressed`` topic).
IMAGE_TRANSPORTS = ('raw', 'compressed')
#: ``drop_policy`` values (``vggt_mapper.engine.worker.DropPolicy``).
DROP_POLICIES = ('drop_oldest', 'drop_newest')
#: ``image_qos_reliability`` values. A best-effort subscription also receives from reliable
#: publishers; reliable refuses best-effort ones but never loses a frame on the wire.
QOS_RELIABILITIES = ('best_effort', 'reliable')
#: ``level_map`` values: gravity from TF (``base_frame`` z up) when TF has it, else from the
#: occupancy grid's floor-plane fit; or never.
LEVEL_MODES = ('tf', 'none')
#: ``scale_source`` values (``engine.metric_scale``): odometry from TF (odom_frame ->
#: camera_frame at each image's stamp), a known camera height above the floor, the ``scale``
#: parameter taken as metric, or none (the first window's unit times ``scale``).
SCALE_SOURCES = ('odometry', 'camera_height', 'fixed', 'none')
#: ``mode`` values (``Mapper.set_mode``): extend the map, or place the camera in it.
MODES = ('mapping', 'localization')


@dataclass(frozen=True)
class ParamSpec:
    """
    One node parameter: what the node declares and how it is checked.

    :param name: parameter name (also the ``NodeParams`` field).
    :param default: default value; its Python type is the parameter type.
    :param description: one sentence for ``ros2 param describe``.
    :param min_value: inclusive lower bound of an int/float parameter, or None.
    :param max_value: inclusive upper bound of an int/float parameter, or None.
    :param choices: allowed values of a string parameter, empty for any.
    :param read_only: fixed while the node is configured (it shapes the engine or the ROS
        graph); set it while unconfigured.
    """

    name: str
    default: bool | int | float | str
    description: str
    min_value: int | float | None = None
    max_value: int | float | None = None
    choices: tuple[str, ...] = ()
    read_only: bool = True

    @property
    def type_name(self) -> str:
        """``bool``, ``int``, ``float`` or ``str``."""
        return type(self.default).__name__

    def check(self, value: Any) -> bool | int | float | str:
        """
        Check one value's type, range and choices.

        :param value: the candidate value (an int is accepted for a float parameter).
        :return: the value converted to the parameter's type.
        :raises ParameterError: naming the parameter, the value and what is allowed.
        """
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        checked: Any = value
        if type(checked) is not kind:
            raise ParameterError(f'parameter {self.name!r} must be a {kind.__name__}, got '
                                 f'{value!r} ({type(value).__name__})')
        if self.min_value is not None and float(checked) < self.min_value:
            raise ParameterError(f'parameter {self.name!r} must be >= {self.min_value}, got '
                                 f'{value!r}')
        if self.max_value is not None and float(checked) > self.max_value:
            raise ParameterError(f'parameter {self.name!r} must be <= {self.max_value}, got '
                                 f'{value!r}')
        if self.choices and value not in self.choices:
            raise ParameterError(f'parameter {self.name!r} must be one of '
                                 f'{", ".join(self.choices)}; got {value!r}')
        return checked


_DEFAULT_KEYFRAMES = KeyframeConfig()
_DEFAULT_MAP = MapConfig()
_DEFAULT_MAPPER = MapperConfig()

PARAMETERS: tuple[ParamSpec, ...] = (
    # Inputs
    ParamSpec('image_transport', 'raw', 'Type of the "image" topic: raw is '
              'sensor_msgs/Image, compressed is sensor_msgs/CompressedImage (remap image to '
              'the .../compressed topic).',
              choices=IMAGE_TRANSPORTS),
    ParamSpec('image_qos_reliability', 'best_effort', 'Reliability of the image and '
              'camera_info subscriptions: best_effort (sensor data; also receives from '
              'reliable publishers) or reliable (no loss on the wire; receives only from '
              'reliable publishers).', choices=QOS_RELIABILITIES),
    ParamSpec('image_qos_depth', 5, 'History depth (keep last) of the image and camera_info '
              'subscriptions.', min_value=1, max_value=1000),
    ParamSpec('use_camera_info', True, 'Use sensor_msgs/CameraInfo from "camera_info": its '
              "K replaces the model's guess, images are undistorted (OpenCV) when its "
              'distortion is non-zero, and it is recorded in the exports (camera_info.json).'),
    # Frames (REP 103 / REP 105)
    ParamSpec('map_frame', 'map', 'Fixed frame of the map, path and poses (REP 105).'),
    ParamSpec('odom_frame', 'odom', 'Odometry frame, used when publish_tf is map_to_odom.'),
    ParamSpec('base_frame', 'base_link', 'Robot base frame, used when publish_tf is '
              'map_to_odom.'),
    ParamSpec('camera_frame', '', 'The camera optical frame (REP 103: z forward, x right, '
              "y down) the poses describe; empty: the frame_id of the images (a driver's "
              '*_optical_frame), camera_optical if they have none.'),
    ParamSpec('publish_tf', 'map_to_camera', 'map_to_camera: publish map -> camera_frame; '
              'map_to_odom: publish the map -> odom correction from tf2 base_frame -> '
              'camera_frame and odom -> base_frame (recorded when each image arrives); none: '
              'no TF.', choices=TF_MODES),
    ParamSpec('level_map', 'tf', 'tf: level the map frame with gravity from TF (base_frame z '
              'up, base_frame -> camera_frame) when TF has it; none: the map frame is the '
              "first camera's, turned to REP 103 axes (level only if that camera was).",
              choices=LEVEL_MODES),
    ParamSpec('tf_timeout_s', 0.05, 'How long a tf2 lookup at window time may wait.',
              min_value=0.0, max_value=5.0, read_only=False),
    ParamSpec('tf_cache_s', 300.0, 'History the tf2 buffer keeps, in seconds: more than the '
              'worst delay from an image to the end of its window (queue and inference), for '
              'the odometry poses that could not be recorded when their image arrived.',
              min_value=10.0, max_value=3600.0),
    # Engine
    ParamSpec('window_size', _DEFAULT_MAPPER.window_size, 'Keyframes per VGGT window.',
              min_value=2, max_value=64),
    ParamSpec('first_window_size', 8, 'Keyframes of the first window (at most window_size; '
              '0: window_size): a smaller one publishes the map and TF sooner.',
              min_value=0, max_value=64),
    ParamSpec('overlap', _DEFAULT_MAPPER.overlap, 'Keyframes shared by consecutive windows '
              '(the Sim(3) alignment uses them); must be below window_size.',
              min_value=1, max_value=63),
    ParamSpec('scale', _DEFAULT_MAPPER.scale, "Factor applied to the first window's "
              'arbitrary unit; taken as metric with scale_source fixed (or when not 1 and no '
              'other source measured one).', min_value=1e-6, max_value=1e6),
    ParamSpec('scale_source', 'odometry', 'What makes the map metric, per segment: odometry '
              '(TF odom_frame -> base_frame -> camera_frame looked up when each image arrives; '
              'nothing happens without that TF), camera_height (camera_height_m above a '
              'detected floor), fixed (the scale parameter) or none. publish_tf map_to_odom '
              'needs one.', choices=SCALE_SOURCES),
    ParamSpec('camera_height_m', 0.0, 'Height of the camera above the floor, metres '
              '(scale_source camera_height).', min_value=0.0, max_value=100.0),
    ParamSpec('mode', 'mapping', 'mapping: extend the map; localization: place the camera in '
              'the loaded map (map) without extending it. Can be switched while active.',
              choices=MODES, read_only=False),
    ParamSpec('map', '', 'Map folder to load at configure (a ~/save_map or "vggt-mapper map" '
              'output folder); empty: start with an empty map. A bad folder fails configure. '
              'While configured, set it and call ~/load_map to replace the current map.',
              read_only=False),
    ParamSpec('grid_period_s', 5.0, 'Build ~/grid (nav_msgs/OccupancyGrid) of the active '
              'segment after a window at most this often (0 disables the grid).',
              min_value=0.0, max_value=3600.0),
    ParamSpec('grid_resolution_m', 0.0, 'Cell edge of the occupancy grid in map units (metres '
              'once metric); 0: 2 % of the scene scale.', min_value=0.0, max_value=100.0),
    ParamSpec('min_parallax_px', _DEFAULT_KEYFRAMES.min_parallax_px, 'Median corner '
              'displacement (pixels at track resolution) that makes a new keyframe.',
              min_value=0.0, max_value=1000.0),
    ParamSpec('min_gap', _DEFAULT_KEYFRAMES.min_gap, 'At least this many frames between '
              'keyframes.', min_value=1, max_value=10000),
    ParamSpec('max_gap', _DEFAULT_KEYFRAMES.max_gap, 'A keyframe is forced after this many '
              'frames (>= min_gap).', min_value=1, max_value=100000),
    ParamSpec('conf_percentile', _DEFAULT_MAP.conf_percentile, 'Drop pixels below this '
              'percentile of depth confidence in each keyframe.', min_value=0.0,
              max_value=100.0),
    ParamSpec('voxel_size', _DEFAULT_MAP.voxel_size, 'Voxel edge merging the map, in map '
              'units (0 disables merging).', min_value=0.0, max_value=100.0),
    ParamSpec('max_points', _DEFAULT_MAP.max_points, 'Cap on map points (the voxel grid '
              'coarsens to stay below it).', min_value=1, max_value=100_000_000),
    ParamSpec('pixel_stride', _DEFAULT_MAP.pixel_stride, 'Keep every n-th pixel in each '
              'direction before filtering.', min_value=1, max_value=64),
    ParamSpec('loops', True, 'Close loops: find revisited places, verify them with the model '
              '(extra model calls) and correct the map and path with the pose graph.'),
    ParamSpec('min_frame_consistency', _DEFAULT_MAPPER.recovery.min_frame_consistency,
              'Refuse a window when a new keyframe agrees with the other frames of its window on '
              'less than this share of its points (0 disables; set 0 for the random tiny model).',
              min_value=0.0, max_value=1.0),
    # Predictor
    ParamSpec('model', 'vggt-1b', 'Local model: vggt-1b, or tiny (without a checkpoint: '
              'synthetic weights, meaningless geometry, smoke tests only).'),
    ParamSpec('checkpoint', '', 'Hugging Face repo id or local .safetensors/.pt file of the '
              'weights; empty: facebook/VGGT-1B for vggt-1b (cached under HF_HOME).'),
    ParamSpec('device', 'auto', 'Torch device: auto, cpu, cuda, cuda:N or mps.'),
    ParamSpec('remote_url', '', 'http(s) URL of a "vggt-mapper serve" server to send windows '
              'to instead of running the model here (leave checkpoint empty).'),
    ParamSpec('predictor', '', 'Custom predictor as module:attr (an instance, or a callable '
              'making one); empty: the local model or remote_url.'),
    # Queue and outputs
    ParamSpec('queue_length', 4, 'Frames waiting for the mapper at most; more are dropped '
              'and counted.', min_value=1, max_value=1000),
    ParamSpec('drop_policy', 'drop_oldest', 'drop_oldest keeps the newest frames; '
              'drop_newest refuses new frames while the queue is full.',
              choices=DROP_POLICIES),
    ParamSpec('map_publish_period_s', 5.0, 'Republish the whole map this often (it is also '
              'published after each window; 0 disables the timer).', min_value=0.0,
              max_value=3600.0),
    ParamSpec('output_dir', 'vggt_mapper_output', 'Where ~/save_map and the shutdown save '
              'write map.glb, map.ply, trajectory.tum, cameras.json (~ is expanded); see '
              'output_per_run.', read_only=False),
    ParamSpec('output_per_run', True, 'Save each map (each configure or reset starts one) '
              'into its own timestamped folder under output_dir, with output_dir/latest '
              'pointing to the newest; false: write into output_dir itself, replacing the '
              'previous map.', read_only=False),
    ParamSpec('keyframe_store_dir', '', 'Folder on a disk with room where the keyframe store '
              "keeps every keyframe's points and image for the run (a private subfolder, "
              "removed at exit); empty: the system's temporary folder (mind a RAM-backed "
              '/tmp on long runs).'),
    ParamSpec('save_on_shutdown', True, 'Save the map when the node stops or is cleaned up '
              '(an empty map is never saved).', read_only=False),
    ParamSpec('shutdown_timeout_s', 3.0, 'At shutdown, after saving what is mapped, wait this '
              'long for the window in flight and the last partial window, then save again; '
              'keep it below the launch sigterm_timeout (default 5 s).', min_value=0.0,
              max_value=3600.0, read_only=False),
)

_SPECS = {spec.name: spec for spec in PARAMETERS}


def check_values(values: Mapping[str, Any]) -> None:
    """
    Check each value of ours on its own (type, range, choices); other names are not ours.

    What a node that is not configured accepts: the values are judged together (``overlap <
    window_size``...) when it is configured, so that they can be set one by one.

    :param values: parameter name → candidate value; names outside ``PARAMETERS`` (rclpy's
        ``use_sim_time``, ``qos_overrides.*``) are ignored.
    :raises ParameterError: naming the first invalid value.
    """
    for name, value in values.items():
        if name in _SPECS:
            _SPECS[name].check(value)


@dataclass(frozen=True)
class NodeParams:
    """
    Validated values of every parameter in ``PARAMETERS`` (see their descriptions).

    Construction validates each value and the cross-field rules of the engine config
    (overlap < window_size, max_gap >= min_gap) and of the predictor spec (checkpoint, remote_url
    and predictor exclude each other); it raises ``ParameterError``.
    """

    image_transport: str = 'raw'
    image_qos_reliability: str = 'best_effort'
    image_qos_depth: int = 5
    use_camera_info: bool = True
    map_frame: str = 'map'
    odom_frame: str = 'odom'
    base_frame: str = 'base_link'
    camera_frame: str = ''
    publish_tf: str = 'map_to_camera'
    level_map: str = 'tf'
    tf_timeout_s: float = 0.05
    tf_cache_s: float = 300.0
    window_size: int = _DEFAULT_MAPPER.window_size
    first_window_size: int = 8
    overlap: int = _DEFAULT_MAPPER.overlap
    scale: float = _DEFAULT_MAPPER.scale
    scale_source: str = 'odometry'
    camera_height_m: float = 0.0
    mode: str = 'mapping'
    map: str = ''  # noqa: A003 (the parameter's name)
    grid_period_s: float = 5.0
    grid_resolution_m: float = 0.0
    min_parallax_px: float = _DEFAULT_KEYFRAMES.min_parallax_px
    min_gap: int = _DEFAULT_KEYFRAMES.min_gap
    max_gap: int = _DEFAULT_KEYFRAMES.max_gap
    conf_percentile: float = _DEFAULT_MAP.conf_percentile
    voxel_size: float = _DEFAULT_MAP.voxel_size
    max_points: int = _DEFAULT_MAP.max_points
    pixel_stride: int = _DEFAULT_MAP.pixel_stride
    loops: bool = True
    min_frame_consistency: float = _DEFAULT_MAPPER.recovery.min_frame_consistency
    model: str = 'vggt-1b'
    checkpoint: str = ''
    device: str = 'auto'
    remote_url: str = ''
    predictor: str = ''
    queue_length: int = 4
    drop_policy: str = 'drop_oldest'
    map_publish_period_s: float = 5.0
    output_dir: str = 'vggt_mapper_output'
    output_per_run: bool = True
    keyframe_store_dir: str = ''
    save_on_shutdown: bool = True
    shutdown_timeout_s: float = 3.0

    def __post_init__(self) -> None:
        for field in fields(self):
            object.__setattr__(self, field.name,
                               _SPECS[field.name].check(getattr(self, field.name)))
        if not self.map_frame:
            raise ParameterError("parameter 'map_frame' must not be empty")
        if self.publish_tf == 'map_to_odom' and not (self.odom_frame and self.base_frame):
            raise ParameterError('publish_tf map_to_odom needs odom_frame and base_frame')
        if self.publish_tf == 'map_to_odom' and self.scale_source == 'none' \
                and self.scale == 1.0:
            raise ParameterError(
                'publish_tf map_to_odom composes the map with a metric odometry: it needs a '
                'metric map. Set scale_source to odometry (TF odom -> base -> camera), '
                'camera_height (with camera_height_m) or fixed (with scale), or publish_tf '
                'map_to_camera')
        if self.scale_source == 'camera_height' and not self.camera_height_m > 0:
            raise ParameterError('scale_source camera_height needs camera_height_m > 0 (the '
                                 'height of the camera above the floor, metres), got '
                                 f'{self.camera_height_m}')
        if not self.output_dir:
            raise ParameterError("parameter 'output_dir' must not be empty")
        self.to_mapper_config()  # cross-field engine rules (overlap < window_size, ...)
        self.to_predictor_spec()  # model, device, checkpoint/remote_url/predictor exclusions

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NodeParams:
        """
        Build from a name → value mapping (missing names keep their defaults).

        :param values: parameter values, e.g. read from the node or a YAML file.
        :return: the validated parameters.
        :raises ParameterError: for an unknown name or an invalid value.
        """
        unknown = sorted(set(values) - set(_SPECS))
        if unknown:
            raise ParameterError(f'unknown parameter(s) {", ".join(unknown)}; known: '
                                 f'{", ".join(sorted(_SPECS))}')
        return cls(**dict(values))

    def with_changes(self, changes: Mapping[str, Any]) -> NodeParams:
        """
        Return a copy with some values changed, validated as a whole (set-parameters).

        :param changes: name → new value.
        :return: the new parameters.
        :raises ParameterError: for an unknown or read-only name or an invalid value.
        """
        for name in changes:
            spec = _SPECS.get(name)
            if spec is None:
                raise ParameterError(f'unknown parameter {name!r}')
            if spec.read_only:
                raise ParameterError(f'parameter {name!r} is fixed while the node is '
                                     f'configured; deactivate and clean it up, set it, then '
                                     f'configure again')
        return replace(self, **dict(changes))

    def to_mapper_config(self) -> MapperConfig:
        """
        Build the engine configuration these parameters describe.

        :return: the MapperConfig (engine defaults for what the node does not expose).
        :raises ParameterError: if the engine refuses a combination (its message kept).
        """
        try:
            first = min(self.first_window_size, self.window_size) or None
            return MapperConfig(
                window_size=self.window_size, overlap=self.overlap, first_window_size=first,
                scale=self.scale,
                metric=MetricScaleConfig(
                    source='odometry' if self.scale_source == 'none' else self.scale_source,
                    camera_height_m=self.camera_height_m),
                keyframes=replace(_DEFAULT_KEYFRAMES, min_parallax_px=self.min_parallax_px,
                                  min_gap=self.min_gap, max_gap=self.max_gap),
                map=replace(_DEFAULT_MAP, conf_percentile=self.conf_percentile,
                            voxel_size=self.voxel_size, max_points=self.max_points,
                            pixel_stride=self.pixel_stride),
                loops=replace(_DEFAULT_MAPPER.loops, enabled=self.loops),
                recovery=replace(_DEFAULT_MAPPER.recovery,
                                 min_frame_consistency=self.min_frame_consistency))
        except ConfigError as err:
            raise ParameterError(f'invalid mapper parameters: {err}') from err

    def to_predictor_spec(self, token: str | None = None) -> Any:
        """
        Build the predictor factory's spec (``vggt_mapper.predictor.factory.PredictorSpec``).

        Empty strings mean "unset" (None) in the spec.

        :param token: Hugging Face token for gated weights (None lets huggingface_hub use
            ``HF_TOKEN`` or its login).
        :return: the PredictorSpec.
        :raises ParameterError: if the spec refuses the combination (its message kept).
        """
        from vggt_mapper.predictor.errors import PredictorSpecError
        from vggt_mapper.predictor.factory import PredictorSpec

        try:
            return PredictorSpec(model=self.model, checkpoint=self.checkpoint or None,
                                 device=self.device, predictor=self.predictor or None,
                                 remote_url=self.remote_url or None, token=token)
        except PredictorSpecError as err:
            raise ParameterError(f'invalid predictor parameters: {err}') from err

    @property
    def uses_odometry(self) -> bool:
        """Whether images need an odometry pose (scale, camera height's down, map -> odom)."""
        return self.scale_source in ('odometry', 'camera_height') \
            or self.publish_tf == 'map_to_odom'

    def to_occupancy_config(self) -> OccupancyConfig:
        """
        Build the occupancy grid settings.

        :return: engine defaults, with ``grid_resolution_m`` when set.
        """
        return OccupancyConfig(resolution=self.grid_resolution_m or None)

    @property
    def output_path(self) -> Path:
        """``output_dir`` with ``~`` expanded."""
        return Path(self.output_dir).expanduser()
