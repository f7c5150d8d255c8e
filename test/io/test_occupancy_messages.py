"""nav_msgs/OccupancyGrid from a grid (rosbags and rclpy-like classes), and the levelled map."""

from __future__ import annotations

import array
import math

import numpy as np
import pytest
from rosbags.typesys import get_typestore, Stores
from scipy.spatial.transform import Rotation

from vggt_mapper.engine import OccupancyGrid
from vggt_mapper.io import ros_messages
from vggt_mapper.io.errors import ConversionError
from vggt_mapper.io.ros_messages import (
    grid_to_occupancy_msg,
    level_map_from_world,
    MAP_FROM_WORLD,
    MessageTypes,
    rosbags_message_types,
)

TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


def rclpy_like_types() -> MessageTypes:
    """Classes built like rclpy's (keywords), with rclpy's array.array storage."""
    def make(name: str) -> type:
        def init(self: object, **kwargs: object) -> None:
            self.__dict__.update(kwargs)
        return type(name, (), {'__init__': init})

    classes = {key: make(key) for key in ros_messages._TYPE_NAMES}
    return MessageTypes(**classes, byte_array=ros_messages._array_bytes,
                        int8_array=ros_messages._array_int8)


def grid() -> OccupancyGrid:
    cells = np.full((3, 4), OccupancyGrid.UNKNOWN, np.int8)
    cells[0, 0] = OccupancyGrid.OCCUPIED  # lower-left corner
    cells[0, 3] = OccupancyGrid.FREE  # lower-right
    cells[2, 0] = OccupancyGrid.FREE  # upper-left
    return OccupancyGrid(cells, 0.05, (1.5, -2.0), origin_yaw=math.pi / 3, floor_z=-1.3)


def test_message_layout_survives_a_bag() -> None:
    stamp_ns = 1_700_000_000_123_456_789
    msg = grid_to_occupancy_msg(grid(), stamp_ns, 'map', rosbags_message_types())
    msgtype = 'nav_msgs/msg/OccupancyGrid'
    back = TYPESTORE.deserialize_cdr(TYPESTORE.serialize_cdr(msg, msgtype), msgtype)
    assert back.header.frame_id == 'map'
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert back.info.map_load_time == back.header.stamp
    assert (back.info.width, back.info.height) == (4, 3)
    assert back.info.resolution == pytest.approx(0.05)  # float32 in the message
    position, orientation = back.info.origin.position, back.info.origin.orientation
    assert (position.x, position.y, position.z) == (1.5, -2.0, -1.3)
    yaw = Rotation.from_quat([orientation.x, orientation.y, orientation.z,
                              orientation.w]).as_euler('xyz')[2]
    assert yaw == pytest.approx(math.pi / 3)
    data = np.asarray(back.data)
    assert data.dtype == np.int8 and data.shape == (12,)
    # Row-major from cell (0, 0), rows along +y: data[row * width + col].
    assert (data[0], data[3], data[8]) == (100, 0, 0)
    np.testing.assert_array_equal(data.reshape(3, 4), grid().cells)


def test_rclpy_like_classes_get_an_int8_array() -> None:
    msg = grid_to_occupancy_msg(grid(), 5, 'map', rclpy_like_types())
    assert isinstance(msg.data, array.array) and msg.data.typecode == 'b'
    assert list(msg.data) == grid().cells.reshape(-1).tolist()
    assert msg.info.width == 4 and msg.info.origin.position.z == -1.3


def test_values_outside_the_message_range_are_refused() -> None:
    bad = OccupancyGrid(np.array([[101]], np.int8), 0.1, (0.0, 0.0))
    with pytest.raises(ConversionError, match='-1..100'):
        grid_to_occupancy_msg(bad, 0, 'map', rosbags_message_types())


def test_convention_level_map_is_map_from_world_for_a_level_camera() -> None:
    # The engine's world is the first camera's OpenCV frame: up is -y when it was level.
    np.testing.assert_allclose(level_map_from_world([0.0, -1.0, 0.0]), MAP_FROM_WORLD,
                               atol=1e-12)


def test_convention_level_map_is_level_and_keeps_the_first_cameras_heading() -> None:
    # A first camera pitched 14° down: its optical axis (+z) is 14° below the horizon, so up,
    # in its frame, leans away from it.
    pitch = math.radians(14.0)
    up_world = np.array([0.0, -math.cos(pitch), -math.sin(pitch)])
    levelled = level_map_from_world(up_world)
    np.testing.assert_allclose(levelled[2, :3], up_world, atol=1e-12)  # map z = up
    forward_map = levelled[:3, :3] @ [0.0, 0.0, 1.0]  # the camera's optical axis
    assert forward_map[1] == pytest.approx(0.0, abs=1e-12)  # no yaw: still along map x
    # ... and 14° below the levelled map's horizon.
    assert math.degrees(math.atan2(-forward_map[2], forward_map[0])) == pytest.approx(14.0)
    left_map = levelled[:3, :3] @ [-1.0, 0.0, 0.0]  # the camera's left stays map +y
    np.testing.assert_allclose(left_map, [0.0, 1.0, 0.0], atol=1e-12)


def test_rclpy_messages_when_ros_is_here() -> None:
    pytest.importorskip('nav_msgs.msg')
    msg = grid_to_occupancy_msg(grid(), 5, 'map', ros_messages.rclpy_message_types())
    assert list(msg.data) == grid().cells.reshape(-1).tolist()
