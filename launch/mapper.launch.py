"""
Launch vggt_mapper's mapper_node on a camera topic, optionally with RViz.

Examples::

    ros2 launch vggt_mapper mapper.launch.py image:=/camera/image_raw
    ros2 launch vggt_mapper mapper.launch.py image:=/camera/image_raw rviz:=true
    # with image_transport: compressed in my.yaml:
    ros2 launch vggt_mapper mapper.launch.py params_file:=my.yaml image:=/cam/image/compressed
"""

# ruff takes the ROS 2 'launch' package for this folder (first-party); they are one block.
from launch import LaunchDescription  # noqa: I001
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


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
    ]
    mapper = Node(
        package='vggt_mapper', executable='mapper_node', name='vggt_mapper',
        namespace=LaunchConfiguration('namespace'), output='screen', emulate_tty=True,
        parameters=[LaunchConfiguration('params_file'),
                    {'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                                    value_type=bool)}],
        remappings=[('image', LaunchConfiguration('image')),
                    ('camera_info', LaunchConfiguration('camera_info'))])
    rviz = Node(
        package='rviz2', executable='rviz2', name='rviz2', output='screen',
        arguments=['-d', PathJoinSubstitution([share, 'config', 'mapper.rviz'])],
        parameters=[{'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'),
                                                    value_type=bool)}],
        condition=IfCondition(LaunchConfiguration('rviz')))
    return LaunchDescription([*arguments, mapper, rviz])
