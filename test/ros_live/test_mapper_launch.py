"""
Live launch test: ``mapper.launch.py`` with the sample predictor, fed frames over a real graph.

It launches the installed launch file (``ros2 launch vggt_mapper mapper.launch.py``) with a
params file selecting ``predictor: vggt_mapper.synthetic.sample:sample_predictor`` (the true
geometry of the shipped sample; the tiny model's random weights give focal lengths the engine
now refuses, so it maps nothing), publishes the sample's frames on the remapped image topic, and
checks what a user sees:

* ``~/map`` (PointCloud2), ``~/path`` (nav_msgs/Path), the map -> camera_optical TF and the
  node's ``/diagnostics`` arrive (``WaitForTopics``);
* the map is latched: a transient-local subscriber created afterwards still gets it;
* ``~/save_map`` (std_srvs/Trigger) writes the map files into ``output_dir``;
* ``~/reset`` (std_srvs/Trigger) leaves an empty latched map;
* the lifecycle transitions (``lifecycle_msgs`` services, as ``ros2 lifecycle set`` calls
  them): deactivate pauses (the services still answer), activate resumes; the launch file
  auto-activates the node;
* the node exits cleanly when the launch shuts down (SIGINT, launch's default timeouts), saves
  the map at shutdown, and publishes or logs nothing on the dead ROS context.

It needs ROS 2 (rclpy, launch_testing, launch_testing_ros) and vggt_mapper installed in an
ament prefix (``colcon build`` then ``colcon test --packages-select vggt_mapper``), and is
skipped elsewhere. Run it alone with ``launch_test test/ros_live/test_mapper_launch.py`` or
``python3 -m pytest test/ros_live``.
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
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from launch_testing_ros import WaitForTopics  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from nav_msgs.msg import Path as PathMsg  # noqa: E402
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

from vggt_mapper.synthetic.sample import sample_sequence  # noqa: E402

try:
    SHARE_DIR = Path(get_package_share_directory('vggt_mapper'))
except PackageNotFoundError:
    pytest.skip('vggt_mapper is not installed in an ament prefix (colcon build it and source '
                'install/setup.bash)', allow_module_level=True)

IMAGE_TOPIC = '/vggt_mapper_live_test/image_raw'
NODE = '/vggt_mapper'
MAP_TOPIC = NODE + '/map'
PATH_TOPIC = NODE + '/path'
TF_TOPIC = '/tf'
DIAGNOSTICS_TOPIC = '/diagnostics'
SAVE_SERVICE = NODE + '/save_map'
RESET_SERVICE = NODE + '/reset'
#: Files ``~/save_map`` writes into the run's folder, ``output_dir/latest`` (map.pgm/map.yaml
#: too once a grid could be built: not asserted here, see test_localization_launch.py).
SAVED_FILES = ('map.glb', 'map.ply', 'trajectory.tum', 'cameras.json', 'map_frame.json',
               'map_state/manifest.json')
#: Small windows so that a few frames complete several VGGT windows on a CPU.
WINDOW_SIZE = 4
OVERLAP = 2
NUM_FRAMES = 24
FRAME_PERIOD_S = 0.2
#: Allow a slow shared CI machine; nothing is timed.
TOPIC_TIMEOUT_S = 120.0
SERVICE_TIMEOUT_S = 60.0


def _params_file(directory: Path) -> Path:
    """Write the node's parameters: the sample predictor, small windows, easy keyframes."""
    path = directory / 'mapper_live_test.yaml'
    path.write_text(
        '/**:\n'
        '  ros__parameters:\n'
        "    predictor: 'vggt_mapper.synthetic.sample:sample_predictor'\n"
        f'    window_size: {WINDOW_SIZE}\n'
        f'    overlap: {OVERLAP}\n'
        '    min_parallax_px: 2.0\n'
        '    max_gap: 2\n'
        '    conf_percentile: 0.0\n'
        '    queue_length: 64\n'
        '    map_publish_period_s: 1.0\n'
        '    use_camera_info: false\n'
        f"    output_dir: '{directory / 'output'}'\n"
        '    save_on_shutdown: true\n', encoding='utf-8')
    return path


@pytest.mark.launch_test
def generate_test_description() -> tuple[LaunchDescription, dict[str, Any]]:
    """
    Launch ``mapper.launch.py`` from the installed share directory with a test params file.

    :return: the launch description and the test context (``output_dir``, and ``workdir``
        which keeps the temporary directory alive while the tests run).
    """
    # Removed when the TemporaryDirectory is garbage-collected, at the latest at exit.
    tmp = tempfile.TemporaryDirectory(prefix='vggt_mapper_live_')
    workdir = Path(tmp.name)
    mapper = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(SHARE_DIR / 'launch' / 'mapper.launch.py')),
        launch_arguments={'image': IMAGE_TOPIC,
                          'params_file': str(_params_file(workdir))}.items())
    return (LaunchDescription([mapper, launch_testing.actions.ReadyToTest()]),
            {'output_dir': workdir / 'output', 'workdir': tmp})


def _image_msg(image_rgb: np.ndarray, stamp_ns: int) -> Image:
    """Build an rgb8 sensor_msgs/Image (written here, not with the node's conversions)."""
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    msg.header.frame_id = 'camera_optical'
    msg.height, msg.width = image_rgb.shape[:2]
    msg.encoding = 'rgb8'
    msg.step = 3 * msg.width
    msg.data = np.ascontiguousarray(image_rgb).tobytes()
    return msg


class _FramePublisher(threading.Thread):
    """Publish the synthetic sequence on ``IMAGE_TOPIC`` (reliable) until stopped."""

    def __init__(self, node: Any) -> None:
        super().__init__(daemon=True)
        self._publisher = node.create_publisher(Image, IMAGE_TOPIC, 10)
        sequence = sample_sequence()  # the frames sample_predictor knows
        self._frames = [sequence.frame(index) for index in range(NUM_FRAMES)]
        self.published = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        start_ns = time.time_ns()
        for index, frame in enumerate(self._frames):
            if self.stop_event.wait(FRAME_PERIOD_S):
                return
            self._publisher.publish(_image_msg(frame, start_ns + index * 100_000_000))
            self.published += 1


class TestMapperLive(unittest.TestCase):
    """Frames in; map, path, latched map and saved files out."""

    @classmethod
    def setUpClass(cls) -> None:
        """Create the test's own node (publisher, late subscriber, service client)."""
        rclpy.init()
        cls.node = rclpy.create_node('vggt_mapper_live_test')

    @classmethod
    def tearDownClass(cls) -> None:
        """Destroy the test node."""
        cls.node.destroy_node()
        rclpy.shutdown()

    def _wait_for_subscriber(self) -> None:
        deadline = time.monotonic() + TOPIC_TIMEOUT_S
        while self.node.count_subscribers(IMAGE_TOPIC) == 0:
            self.assertLess(time.monotonic(), deadline,
                            f'mapper_node never subscribed to {IMAGE_TOPIC}')
            time.sleep(0.1)

    def _late_map(self) -> PointCloud2 | None:
        """Subscribe to the map after it was published, as a late RViz would."""
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        received: list[PointCloud2] = []
        subscription = self.node.create_subscription(PointCloud2, MAP_TOPIC, received.append,
                                                     latched)
        deadline = time.monotonic() + 10.0
        while not received and time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.1)
        self.node.destroy_subscription(subscription)
        return received[0] if received else None

    def _call_trigger(self, service: str) -> Any:
        return self._call(Trigger, service, Trigger.Request())

    def _call(self, srv_type: Any, service: str, request: Any) -> Any:
        client = self.node.create_client(srv_type, service)
        try:
            self.assertTrue(client.wait_for_service(timeout_sec=SERVICE_TIMEOUT_S),
                            f'{service} is not offered')
            future = client.call_async(request)
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=SERVICE_TIMEOUT_S)
            self.assertTrue(future.done(), f'{service} did not answer')
            return future.result()
        finally:
            self.node.destroy_client(client)

    def _state(self) -> str:
        answer = self._call(GetState, NODE + '/get_state', GetState.Request())
        return str(answer.current_state.label)

    def _transition(self, transition_id: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition_id
        return bool(self._call(ChangeState, NODE + '/change_state', request).success)

    def test_lifecycle_pause_and_resume(self) -> None:
        """Auto-activated by the launch file; deactivate pauses, activate resumes."""
        self._wait_for_subscriber()
        self.assertEqual(self._state(), 'active')
        self.assertTrue(self._transition(Transition.TRANSITION_DEACTIVATE))
        self.assertEqual(self._state(), 'inactive')
        # Paused, not gone: the map's services still answer.
        self.assertIsNotNone(self._call(Trigger, SAVE_SERVICE, Trigger.Request()))
        self.assertTrue(self._transition(Transition.TRANSITION_ACTIVATE))
        self.assertEqual(self._state(), 'active')

    def test_map_path_latch_save_reset(self, output_dir: Path) -> None:
        """Map, path, TF and diagnostics arrive; the map is latched; save and reset work."""
        frames = _FramePublisher(self.node)
        self._wait_for_subscriber()
        waiter = WaitForTopics([(MAP_TOPIC, PointCloud2), (PATH_TOPIC, PathMsg),
                                (TF_TOPIC, TFMessage), (DIAGNOSTICS_TOPIC, DiagnosticArray)],
                               timeout=TOPIC_TIMEOUT_S)
        try:
            frames.start()
            received = waiter.wait()
            self.assertTrue(received, f'no message on {sorted(waiter.topics_not_received())} '
                                      f'after {frames.published} frames')
            cloud = waiter.received_messages(MAP_TOPIC)[-1]
            path = waiter.received_messages(PATH_TOPIC)[-1]
            transforms = [t for msg in waiter.received_messages(TF_TOPIC) for t in msg.transforms]
            statuses = [s for msg in waiter.received_messages(DIAGNOSTICS_TOPIC)
                        for s in msg.status]
        finally:
            waiter.shutdown()
            frames.stop_event.set()
            frames.join()

        self.assertEqual(cloud.header.frame_id, 'map')
        self.assertGreater(cloud.width * cloud.height, 0, 'the published map is empty')
        self.assertEqual(len(cloud.data), cloud.row_step * cloud.height)
        self.assertGreaterEqual(len(path.poses), WINDOW_SIZE)
        stamps = [pose.header.stamp.sec * 10**9 + pose.header.stamp.nanosec
                  for pose in path.poses]
        self.assertEqual(stamps, sorted(stamps), 'path poses out of time order')

        self.assertIn(('map', 'camera_optical'),
                      {(t.header.frame_id, t.child_frame_id) for t in transforms})
        mapper_status = [s for s in statuses if s.hardware_id == NODE]
        self.assertTrue(mapper_status, f'no diagnostics from {NODE}: {statuses}')
        values = {kv.key: kv.value for kv in mapper_status[-1].values}
        self.assertGreater(int(values['frames_received']), 0, values)

        late = self._late_map()
        self.assertIsNotNone(late, f'a transient-local subscriber got no {MAP_TOPIC}')
        self.assertGreater(late.width * late.height, 0)

        response = self._call_trigger(SAVE_SERVICE)
        self.assertTrue(response.success, response.message)
        for name in SAVED_FILES:
            saved = output_dir / 'latest' / name
            self.assertTrue(saved.is_file(), f'{saved} missing after save_map: '
                                             f'{response.message}')
            self.assertGreater(saved.stat().st_size, 0, f'{saved} is empty')

        # No frames arrive any more, so after ~/reset the latched map stays empty.
        response = self._call_trigger(RESET_SERVICE)
        self.assertTrue(response.success, response.message)
        emptied = self._late_map()
        self.assertIsNotNone(emptied, f'no {MAP_TOPIC} after {RESET_SERVICE}')
        self.assertEqual(emptied.width * emptied.height, 0, 'the map is not empty after reset')


@launch_testing.post_shutdown_test()
class TestMapperShutdown(unittest.TestCase):
    """The node stops cleanly when the launch ends."""

    def test_exit_code(self, proc_info: Any) -> None:
        """mapper_node exits with status 0 on SIGINT."""
        launch_testing.asserts.assertExitCodes(proc_info)

    def test_saved_at_shutdown_without_dead_context_errors(self, proc_output: Any) -> None:
        """The shutdown save is logged; nothing is published on the shut-down context."""
        # ROS 2 console logging goes to stderr (RCUTILS_LOGGING_USE_STDOUT unset): read both.
        text = ''.join(io.text.decode(errors='replace') for io in proc_output)
        self.assertIn('map saved at shutdown', text)
        for symptom in ('context is invalid', 'RCLError', 'Traceback'):
            self.assertNotIn(symptom, text)
