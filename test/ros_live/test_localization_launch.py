"""
Live launch test: a saved map loaded at configure (``map``), localization mode, ``~/grid``.

A map folder is made first, offline, from the shipped sample frames with the sample predictor
(``vggt_mapper.synthetic.sample``: it answers the sample's JPEGs with their true geometry, so
the run is deterministic). ``mapper.launch.py`` then starts the node with ``map:`` that folder
and ``mode: localization``, and the same frames are published over a real ROS graph. What a
Nav2 user sees is checked:

* ``~/grid`` (nav_msgs/OccupancyGrid, latched) of the loaded map, in ``map``;
* ``~/map`` is the loaded map, latched, before any frame;
* each keyframe placed in the map gives ``~/pose`` and the ``map -> camera_optical`` TF;
* diagnostics say ``mode: localization`` with keyframes localized;
* the map does not grow (same point count after the frames).

Skipped without ROS 2 (rclpy, launch_testing, launch_testing_ros) or an ament install of
vggt_mapper, as ``test_mapper_launch.py``.
"""

from __future__ import annotations

from pathlib import Path
import tempfile
import threading
import time
from typing import Any
import unittest

import pytest

for _module in ('rclpy', 'launch', 'launch_ros', 'launch_testing', 'launch_testing_ros'):
    pytest.importorskip(_module, reason=f'{_module} (ROS 2) is not installed')

from ament_index_python.packages import (  # noqa: E402, I100 (after the skips)
    get_package_share_directory,
    PackageNotFoundError,
)
import cv2  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from launch_testing_ros import WaitForTopics  # noqa: E402
from nav_msgs.msg import OccupancyGrid  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

import vggt_mapper  # noqa: E402
from vggt_mapper.engine.config import MapperConfig  # noqa: E402
from vggt_mapper.engine.mapper import Mapper  # noqa: E402
from vggt_mapper.io.export import save_map_folder  # noqa: E402
from vggt_mapper.synthetic.sample import sample_predictor  # noqa: E402

try:
    SHARE_DIR = Path(get_package_share_directory('vggt_mapper'))
except PackageNotFoundError:
    pytest.skip('vggt_mapper is not installed in an ament prefix (colcon build it and source '
                'install/setup.bash)', allow_module_level=True)

IMAGE_TOPIC = '/vggt_mapper_localization_test/image_raw'
NODE = '/vggt_mapper'
SAMPLE_DIR = Path(vggt_mapper.__file__).parent / 'data' / 'sample'
WINDOW_SIZE = 8
OVERLAP = 2
FRAME_PERIOD_S = 0.2
STEP_NS = 100_000_000
#: Generous: a loaded CI machine; nothing is timed.
TOPIC_TIMEOUT_S = 120.0


def _sample_frames() -> list[np.ndarray]:
    paths = sorted(SAMPLE_DIR.glob('frame_*.jpg'))
    return [cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB) for path in paths]


def _make_map(folder: Path) -> None:
    """Map the sample offline and save it as a map folder (what ``vggt-mapper map`` writes)."""
    config = MapperConfig(window_size=WINDOW_SIZE, overlap=OVERLAP)
    with Mapper(config, sample_predictor()) as mapper:
        for index, image in enumerate(_sample_frames()):
            mapper.add_frame(image, (index + 1) * STEP_NS, f'frame_{index:03d}')
        mapper.flush()
        with mapper.map_state() as state:
            save_map_folder(folder, state)


def _params_file(directory: Path, map_folder: Path) -> Path:
    path = directory / 'localization_live_test.yaml'
    path.write_text(
        '/**:\n'
        '  ros__parameters:\n'
        "    predictor: 'vggt_mapper.synthetic.sample:sample_predictor'\n"
        f'    window_size: {WINDOW_SIZE}\n'
        f'    overlap: {OVERLAP}\n'
        '    queue_length: 64\n'
        '    map_publish_period_s: 1.0\n'
        '    use_camera_info: false\n'
        f"    map: '{map_folder}'\n"
        '    mode: localization\n'
        f"    output_dir: '{directory / 'output'}'\n"
        '    save_on_shutdown: false\n', encoding='utf-8')
    return path


@pytest.mark.launch_test
def generate_test_description() -> tuple[LaunchDescription, dict[str, Any]]:
    """
    Make the map folder, then launch ``mapper.launch.py`` loading it in localization mode.

    :return: the launch description and the test context (``workdir`` keeps the temporary
        directory alive while the tests run).
    """
    tmp = tempfile.TemporaryDirectory(prefix='vggt_mapper_localization_')
    workdir = Path(tmp.name)
    _make_map(workdir / 'map')
    mapper = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(SHARE_DIR / 'launch' / 'mapper.launch.py')),
        launch_arguments={'image': IMAGE_TOPIC,
                          'params_file': str(_params_file(workdir, workdir / 'map'))}.items())
    return LaunchDescription([mapper, launch_testing.actions.ReadyToTest()]), {'workdir': tmp}


def _image_msg(image_rgb: np.ndarray, stamp_ns: int) -> Image:
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    msg.header.frame_id = 'camera_optical'
    msg.height, msg.width = image_rgb.shape[:2]
    msg.encoding = 'rgb8'
    msg.step = 3 * msg.width
    msg.data = np.ascontiguousarray(image_rgb).tobytes()
    return msg


class _FramePublisher(threading.Thread):
    """Publish the sample frames on ``IMAGE_TOPIC`` (reliable) until stopped."""

    def __init__(self, node: Any) -> None:
        super().__init__(daemon=True)
        self._publisher = node.create_publisher(Image, IMAGE_TOPIC, 10)
        self._frames = _sample_frames()
        self.published = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        start_ns = time.time_ns()
        for index, frame in enumerate(self._frames):
            if self.stop_event.wait(FRAME_PERIOD_S):
                return
            self._publisher.publish(_image_msg(frame, start_ns + index * STEP_NS))
            self.published += 1


class TestLocalizationLive(unittest.TestCase):
    """A loaded map, its grid, and the camera placed in it."""

    @classmethod
    def setUpClass(cls) -> None:
        """Create the test's own node."""
        rclpy.init()
        cls.node = rclpy.create_node('vggt_mapper_localization_test')

    @classmethod
    def tearDownClass(cls) -> None:
        """Destroy the test node."""
        cls.node.destroy_node()
        rclpy.shutdown()

    def _latched(self, msg_type: Any, topic: str) -> Any:
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        received: list[Any] = []
        subscription = self.node.create_subscription(msg_type, topic, received.append, latched)
        deadline = time.monotonic() + TOPIC_TIMEOUT_S
        while not received and time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.node.destroy_subscription(subscription)
        self.assertTrue(received, f'no latched {topic}')
        return received[0]

    def test_loaded_map_grid_and_localized_poses(self) -> None:
        """The loaded map and its grid are latched; placed keyframes give pose and TF."""
        grid = self._latched(OccupancyGrid, NODE + '/grid')
        self.assertEqual(grid.header.frame_id, 'map')
        self.assertEqual(len(grid.data), grid.info.width * grid.info.height)
        self.assertIn(100, set(grid.data), 'the grid of the loaded map has no obstacle')
        loaded = self._latched(PointCloud2, NODE + '/map')
        self.assertGreater(loaded.width, 0)

        frames = _FramePublisher(self.node)
        deadline = time.monotonic() + TOPIC_TIMEOUT_S
        while self.node.count_subscribers(IMAGE_TOPIC) == 0:
            self.assertLess(time.monotonic(), deadline, 'mapper_node never subscribed')
            time.sleep(0.1)
        waiter = WaitForTopics([(NODE + '/pose', PoseStamped), ('/tf', TFMessage),
                                ('/diagnostics', DiagnosticArray)], timeout=TOPIC_TIMEOUT_S)
        try:
            frames.start()
            self.assertTrue(waiter.wait(), f'no message on {waiter.topics_not_received()}')
            pose = waiter.received_messages(NODE + '/pose')[-1]
            transforms = [t for m in waiter.received_messages('/tf') for t in m.transforms]
        finally:
            waiter.shutdown()
            frames.stop_event.set()
            frames.join()
        self.assertEqual(pose.header.frame_id, 'map')
        self.assertIn(('map', 'camera_optical'),
                      {(t.header.frame_id, t.child_frame_id) for t in transforms})
        values = self._diagnostics_until_localized()
        self.assertEqual(values['mode'], 'localization')
        self.assertGreater(int(values['keyframes_localized']), 0, values)
        self.assertEqual(int(values['map_points']), loaded.width, 'the map grew')

    def _diagnostics_until_localized(self) -> dict[str, str]:
        received: list[dict[str, str]] = []

        def keep(msg: DiagnosticArray) -> None:
            received.extend({kv.key: kv.value for kv in status.values}
                            for status in msg.status if status.hardware_id == NODE)

        subscription = self.node.create_subscription(DiagnosticArray, '/diagnostics', keep, 10)
        deadline = time.monotonic() + TOPIC_TIMEOUT_S
        while time.monotonic() < deadline and not (
                received and int(received[-1].get('keyframes_localized', '0')) > 0):
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.node.destroy_subscription(subscription)
        self.assertTrue(received, 'no diagnostics from the node')
        return received[-1]


@launch_testing.post_shutdown_test()
class TestLocalizationShutdown(unittest.TestCase):
    """The node stops cleanly when the launch ends."""

    def test_exit_code(self, proc_info: Any) -> None:
        """mapper_node exits with status 0 on SIGINT."""
        launch_testing.asserts.assertExitCodes(proc_info)
