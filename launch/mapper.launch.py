"""
Launch vggt_mapper's mapper_node on a camera topic, optionally with RViz.

Examples::

    ros2 launch vggt_mapper mapper.launch.py image:=/camera/image_raw
    ros2 launch vggt_mapper mapper.launch.py image:=/camera/image_raw rviz:=true
    ros2 launch vggt_mapper mapper.launch.py image:=/camera/image_raw model:=tiny device:=cpu
    # with image_transport: compressed in my.yaml:
    ros2 launch vggt_mapper mapper.launch.py params_file:=my.yaml image:=/cam/image/compressed

The arguments ``model``, ``device``, ``checkpoint``, ``predictor`` and ``output_dir`` override
the same parameters of ``params_file`` when given (non-empty); every other parameter is set in
the params file. At Ctrl-C the node saves the map at once, then waits ``shutdown_timeout_s``
(params file, default 3 s) for the window in flight: keep that below launch's
``sigterm_timeout`` (5 s unless given on the command line).
"""

# ruff takes the ROS 2 'launch' package for this folder (first-party); they are one block.
from launch import LaunchDescription  # noqa: I001
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.launch_context import LaunchContext
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

#: Launch arguments that override the parameter of the same name in params_file when non-empty.
PARAMETER_ARGUMENTS = ('model', 'device', 'checkpoint', 'predictor', 'output_dir')


def _mapper_node(context: LaunchContext) -> list[Node]:
    """
    Build mapper_node with the params file and the non-empty parameter arguments on top.

    :param context: the launch context (to read the arguments).
    :return: the node action.
    """
    overrides = {name: ParameterValue(value, value_type=str) for name in PARAMETER_ARGUMENTS
                 if (value := LaunchConfiguration(name).perform(context))}
    return [Node(
        package='vggt_mapper', executable='mapper_node', name='vggt_mapper',
        namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
        parameters=[LaunchConfiguration('params_file'),
                    {'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                                    value_type=bool), **overrides}],
        remappings=[('image', LaunchConfiguration('image')),
                    ('camera_info', LaunchConfiguration('camera_info'))])]


def generate_launch_description() -> LaunchDescription:
    """
    Build the launch description: arguments, mapper_node, and RViz when ``rviz:=true``.

    :return: the launch description.
    """
    share = FindPackageShare('vggt_mapper')
    arguments = [
        DeclareLaunchArgument(
            'params_file', default_value=PathJoinSubstitution([share, 'config', 'mapper.yaml']),
            description='YAML file with the mapper_node parameters (see config/mapper.yaml).'),
        DeclareLaunchArgument(
            'image', default_value='/camera/image_raw',
            description='Camera topic remapped onto the node\'s "image" input: sensor_msgs/Image, '
                        'or CompressedImage when the params file sets image_transport: '
                        'compressed.'),
        DeclareLaunchArgument(
            'camera_info', default_value='/camera/camera_info',
            description='sensor_msgs/CameraInfo topic recorded into the exports.'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the node (its topics become /<namespace>/vggt_mapper/...).'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='Use /clock (true when replaying a bag with "ros2 bag play --clock").'),
        DeclareLaunchArgument(
            'rviz', default_value='false',
            description='Also start RViz with config/mapper.rviz (map cloud, TF, path, image).'),
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
    mapper = OpaqueFunction(function=_mapper_node)
    rviz = Node(
        package='rviz2', executable='rviz2', name='rviz2', output='screen',
        arguments=['-d', PathJoinSubstitution([share, 'config', 'mapper.rviz'])],
        parameters=[{'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                                    value_type=bool)}],
        condition=IfCondition(LaunchConfiguration('rviz')))
    return LaunchDescription([*arguments, mapper, rviz])
