"""
What ``launch/mapper.launch.py`` derives from its arguments (pure; no launch, no rclpy).

* ``camera_info_topic``: the CameraInfo topic beside an image topic, as image_transport pairs
  them (``/cam/image_raw`` → ``/cam/camera_info``; ``/cam/image/compressed`` →
  ``/cam/camera_info``); a relative image topic gives a relative one, so a namespace applies to
  both.
* ``rviz_config``: ``config/mapper.rviz`` with the topics of this launch (the node's namespace,
  the image topic), so RViz shows what this node publishes.
"""

from __future__ import annotations

import yaml

__all__ = ['IMAGE_DISPLAY', 'NODE_DISPLAYS', 'camera_info_topic', 'resolve_topic', 'rviz_config']

#: RViz display name → the node's topic it shows (relative to the node: ``~/<topic>``).
NODE_DISPLAYS = {'Map': 'map', 'Window cloud': 'window_cloud', 'Path': 'path'}
#: The RViz display showing the camera image.
IMAGE_DISPLAY = 'Camera image'
_TRANSPORT_SUFFIXES = ('/compressed', '/compressedDepth', '/theora')


def camera_info_topic(image_topic: str) -> str:
    """
    Return the CameraInfo topic that goes with an image topic (image_transport's pairing).

    :param image_topic: e.g. ``/camera/image_raw``, ``camera/image/compressed``, ``image``.
    :return: e.g. ``/camera/camera_info``, ``camera/camera_info``, ``camera_info``.
    """
    base = image_topic
    for suffix in _TRANSPORT_SUFFIXES:
        base = base.removesuffix(suffix)
    parent, _, _ = base.rpartition('/')
    return f'{parent}/camera_info' if parent or base.startswith('/') else 'camera_info'


def resolve_topic(name: str, namespace: str) -> str:
    """
    Resolve a topic name the way ROS 2 does for a node in ``namespace`` (no ``~`` here).

    :param name: an absolute (``/a/b``) or relative (``a/b``) topic name.
    :param namespace: the node's namespace (``''``, ``robot1``, ``/robot1``).
    :return: the absolute topic name.
    """
    if name.startswith('/'):
        return name
    prefix = namespace.strip('/')
    return f'/{prefix}/{name}' if prefix else f'/{name}'


def rviz_config(template: str, namespace: str, image_topic: str,
                node_name: str = 'vggt_mapper') -> str:
    """
    Fill the RViz config with the topics of one launch.

    :param template: the text of ``config/mapper.rviz``.
    :param namespace: the node's namespace.
    :param image_topic: the image topic given to the node (remapped ``image``).
    :param node_name: the node's name.
    :return: the RViz config text with each display on this node's topics.
    :raises ValueError: if the template lacks one of the displays it should have.
    """
    config = yaml.safe_load(template)
    displays = {display['Name']: display
                for display in config['Visualization Manager']['Displays']}
    missing = sorted((set(NODE_DISPLAYS) | {IMAGE_DISPLAY}) - set(displays))
    if missing:
        raise ValueError(f'the RViz config has no display named {", ".join(missing)}')
    node = resolve_topic(node_name, namespace)
    for display_name, topic in NODE_DISPLAYS.items():
        displays[display_name]['Topic']['Value'] = f'{node}/{topic}'
    displays[IMAGE_DISPLAY]['Topic']['Value'] = resolve_topic(image_topic, namespace)
    return str(yaml.safe_dump(config, sort_keys=False))
