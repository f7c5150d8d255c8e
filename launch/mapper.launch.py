"""
Launch vggt_mapper's mapper_node (a lifecycle node) on a camera topic, optionally with RViz.

Examples::

    ros2 launch vggt_mapper mapper.launch.py image:=/camera/image_raw
    ros2 launch vggt_mapper mapper.launch.py image:=/camera/image_raw rviz:=true
    ros2 launch vggt_mapper mapper.launch.py image:=/camera/image_raw model:=tiny device:=cpu
    ros2 launch vggt_mapper mapper.launch.py namespace:=robot1      # robot1/camera/image_raw
    ros2 launch vggt_mapper mapper.launch.py autostart:=false       # a lifecycle manager drives it
    # with image_transport: compressed in my.yaml:
    ros2 launch vggt_mapper mapper.launch.py params_file:=my.yaml image:=/cam/image/compressed

With ``autostart:=true`` (the default) the launch configures the node as soon as its process
starts and activates it once configured, as ros2/demos' lifecycle launch test does; after that
the transitions are yours (``ros2 lifecycle set /vggt_mapper deactivate``...). Relative topic
names (the defaults) are resolved in ``namespace``; ``camera_info`` defaults to the CameraInfo
topic beside ``image``. With ``rviz:=true`` RViz gets ``config/mapper.rviz`` with this launch's
topics filled in.

The arguments ``model``, ``device``, ``checkpoint``, ``predictor`` and ``output_dir`` override
the same parameters of ``params_file`` when given (non-empty); every other parameter is set in
the params file. At Ctrl-C the node saves the map at once, then waits ``shutdown_timeout_s``
(params file, default 3 s) for the window in flight: keep that below launch's
``sigterm_timeout`` (5 s unless given on the command line).
"""

from pathlib import Path
import tempfile

# ruff takes the ROS 2 'launch' package for this folder (first-party); they are one block.
from launch import LaunchDescription  # noqa: I001
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessStart
from launch.events import matches_action
from launch.launch_context import LaunchContext
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.descriptions import ParameterValue
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

from vggt_mapper.ros.launch_helpers import camera_info_topic, rviz_config

#: Launch arguments that override the parameter of the same name in params_file when non-empty.
PARAMETER_ARGUMENTS = ('model', 'device', 'checkpoint', 'predictor', 'output_dir')
NODE_NAME = 'vggt_mapper'


def _value(context: LaunchContext, name: str) -> str:
    return LaunchConfiguration(name).perform(context)


def _transition(node: LifecycleNode, transition_id: int) -> EmitEvent:
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                       transition_id=transition_id))


def _autostart(node: LifecycleNode) -> list[RegisterEventHandler]:
    """
    Configure the node when its process starts, activate it when configured (once).

    :param node: the lifecycle node action.
    :return: the two event handlers.
    """
    return [
        RegisterEventHandler(OnProcessStart(
            target_action=node, on_start=[_transition(node, Transition.TRANSITION_CONFIGURE)])),
        # Once only: a later manual cleanup + configure must not activate the node by itself.
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
            entities=[_transition(node, Transition.TRANSITION_ACTIVATE)], handle_once=True)),
    ]


def _mapper_node(context: LaunchContext) -> list[object]:
    """
    Build mapper_node with the params file and the non-empty parameter arguments on top.

    :param context: the launch context (to read the arguments).
    :return: the node action, and the autostart handlers when ``autostart`` is true.
    """
    overrides = {name: ParameterValue(value, value_type=str) for name in PARAMETER_ARGUMENTS
                 if (value := _value(context, name))}
    image = _value(context, 'image')
    node = LifecycleNode(
        package='vggt_mapper', executable='mapper_node', name=NODE_NAME,
        namespace=_value(context, 'namespace'), output='screen', emulate_tty=True,
        parameters=[LaunchConfiguration('params_file'),
                    {'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                                    value_type=bool), **overrides}],
        remappings=[('image', image),
                    ('camera_info', _value(context, 'camera_info') or camera_info_topic(image))])
    autostart = _value(context, 'autostart').lower() in ('true', '1', 'yes')
    return [node, *(_autostart(node) if autostart else [])]


def _rviz(context: LaunchContext) -> list[Node]:
    """
    Start RViz with config/mapper.rviz filled with this launch's topics (``rviz:=true``).

    :param context: the launch context (to read the arguments).
    :return: the RViz node action, or nothing.
    """
    if _value(context, 'rviz').lower() not in ('true', '1', 'yes'):
        return []
    template = Path(FindPackageShare('vggt_mapper').perform(context), 'config', 'mapper.rviz')
    text = rviz_config(template.read_text(encoding='utf-8'), _value(context, 'namespace'),
                       _value(context, 'image'), NODE_NAME)
    with tempfile.NamedTemporaryFile('w', prefix='vggt_mapper_', suffix='.rviz',
                                     delete=False, encoding='utf-8') as config:
        config.write(text)
    return [Node(package='rviz2', executable='rviz2', name='rviz2', output='screen',
                 arguments=['-d', config.name],
                 parameters=[{'use_sim_time': ParameterValue(
                     LaunchConfiguration('use_sim_time'), value_type=bool)}])]


def generate_launch_description() -> LaunchDescription:
    """
    Build the launch description: arguments, mapper_node (auto-activated), RViz if asked.

    :return: the launch description.
    """
    share = FindPackageShare('vggt_mapper')
    arguments = [
        DeclareLaunchArgument(
            'params_file', default_value=PathJoinSubstitution([share, 'config', 'mapper.yaml']),
            description='YAML file with the mapper_node parameters (see config/mapper.yaml).'),
        DeclareLaunchArgument(
            'image', default_value='camera/image_raw',
            description='Camera topic remapped onto the node\'s "image" input: sensor_msgs/Image, '
                        'or CompressedImage when the params file sets image_transport: '
                        'compressed. Relative names are resolved in the namespace.'),
        DeclareLaunchArgument(
            'camera_info', default_value='',
            description='sensor_msgs/CameraInfo topic recorded into the exports; empty: the '
                        'camera_info topic beside image (camera/image_raw -> '
                        'camera/camera_info).'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the node (its topics become /<namespace>/vggt_mapper/...); '
                        'relative image and camera_info topics are resolved in it too.'),
        DeclareLaunchArgument(
            'autostart', default_value='true',
            description='Configure and activate the lifecycle node at start; false leaves it '
                        'unconfigured for a lifecycle manager or "ros2 lifecycle set".'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='Use /clock (true when replaying a bag with "ros2 bag play --clock").'),
        DeclareLaunchArgument(
            'rviz', default_value='false',
            description='Also start RViz with config/mapper.rviz, its topics those of this '
                        'launch (map cloud, TF, path, image).'),
        DeclareLaunchArgument(
            'model', default_value='',
            description='Overrides the params file: vggt-1b, or tiny (smoke tests only); '
                        'empty keeps the params file value.'),
        DeclareLaunchArgument(
            'device', default_value='',
            description='Overrides the params file: auto, cpu, cuda, cuda:N or mps; empty '
                        'keeps the params file value.'),
        DeclareLaunchArgument(
            'checkpoint', default_value='',
            description='Overrides the params file: Hugging Face repo id or local '
                        '.safetensors/.pt weights; empty keeps the params file value.'),
        DeclareLaunchArgument(
            'predictor', default_value='',
            description='Overrides the params file: custom predictor as module:attr; empty '
                        'keeps the params file value.'),
        DeclareLaunchArgument(
            'output_dir', default_value='',
            description='Overrides the params file: where save_map and the shutdown save '
                        'write; empty keeps the params file value.'),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_mapper_node),
                              OpaqueFunction(function=_rviz)])
