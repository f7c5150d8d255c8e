"""
The occupancy grid: what each keyframe shows free, what the map shows occupied, on the room.

The first tests cast rays by hand through small scenes (``Room.cast``: OpenCV-like world, y
down, floor at y = 1.2 m) to show one mechanism each; the last ones map the synthetic room and
check the grid against its true walls and boxes.
"""

from __future__ import annotations

import numpy as np
import pytest

from vggt_mapper.engine import (
    build_occupancy_grid,
    fit_floor,
    map_occupancy,
    Mapper,
    MapperConfig,
    OccupancyConfig,
    OccupancyError,
    OccupancyGrid,
)
from vggt_mapper.engine.occupancy import KeyframeRays
from vggt_mapper.io.ros_messages import level_map_from_world, MAP_FROM_WORLD
from vggt_mapper.synthetic import Box, NOISE_LEVELS, Room, SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.evaluation import feed, trajectory_error
from vggt_mapper.synthetic.odometry import OdometryNoise, simulate_odometry
from vggt_mapper.synthetic.world import ORBIT_CENTRE

UP = np.array([0.0, -1.0, 0.0])  # the synthetic world's up (y down)
FLOOR_Y = 1.2
CAMERA = np.array([0.0, -0.1, 0.0])  # 1.3 m above the floor
# Absolute settings (the scenes are in metres): 5 cm cells, obstacles from 10 cm to 2 m.
CONFIG = OccupancyConfig(resolution=0.05, min_obstacle_height=0.1, max_obstacle_height=2.0)
# A 2 m wide, 0.5 m tall box 3 m to 4 m ahead of the camera (world +z), in a large room.
BOX = Box((-1.0, 0.7, 3.0), (1.0, 1.2, 4.0))
SCENE = Room(Box((-8.0, -3.0, -8.0), (8.0, FLOOR_Y, 12.0)), (BOX,))
EMPTY = Room(SCENE.bounds)


def cast(room: Room, centre: np.ndarray, yaws_deg: np.ndarray, pitches_deg: np.ndarray
         ) -> KeyframeRays:
    """Cast rays from ``centre`` along a grid of bearings (yaw about -y, pitch down): a view."""
    yaw, pitch = np.meshgrid(np.radians(yaws_deg), np.radians(pitches_deg))
    directions = np.stack([np.sin(yaw) * np.cos(pitch), np.sin(pitch),
                           np.cos(yaw) * np.cos(pitch)], axis=-1).reshape(-1, 3)
    _, _, points = room.cast(centre, directions)
    return KeyframeRays(centre, points)


def forward_view(centre: np.ndarray = CAMERA, room: Room = SCENE) -> KeyframeRays:
    """Look 90° × 70° ahead and down, about 0.2° between rays."""
    return cast(room, centre, np.linspace(-45, 45, 451), np.linspace(-10, 60, 351))


def camera_at(centre: np.ndarray) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, 3] = centre
    return pose


def grid_of(views: list[KeyframeRays], map_points: np.ndarray | None = None,
            config: OccupancyConfig = CONFIG) -> OccupancyGrid:
    """Build a grid from views; the fused map is their points unless given."""
    points = np.concatenate([view.points_world for view in views]) if map_points is None \
        else map_points
    poses = np.stack([camera_at(view.centre_world) for view in views])
    floor = fit_floor(points, poses, config, up_world=UP)
    return build_occupancy_grid(points, poses, views, floor, MAP_FROM_WORLD, config)


def values_at(grid: OccupancyGrid, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Grid values at world floor points (x right, z ahead): a level camera's map frame."""
    world = np.stack([x, np.full_like(x, FLOOR_Y), z], axis=-1).reshape(-1, 3)
    assert grid.map_from_world is not None
    return grid.values_at(world @ grid.map_from_world[:3, :3].T + grid.map_from_world[:3, 3])


def region(x: tuple[float, float], z: tuple[float, float], step: float = 0.02
           ) -> tuple[np.ndarray, np.ndarray]:
    xs, zs = np.meshgrid(np.arange(*x, step), np.arange(*z, step))
    return xs.ravel(), zs.ravel()


def test_a_box_shadows_the_floor_behind_it_and_its_front_is_occupied() -> None:
    grid = grid_of([forward_view()])
    front = values_at(grid, *region((-0.9, 0.9), (3.0, 3.05)))
    assert np.mean(front == OccupancyGrid.OCCUPIED) > 0.95
    # Inside the box and in its shadow (the floor is hidden up to z = 4 × 1.3 / 0.8 = 6.5 m),
    # nothing is free, though rays passed over it to the floor and the wall beyond.
    hidden = region((-0.8, 0.8), (3.15, 6.3))
    assert not np.any(values_at(grid, *hidden) == OccupancyGrid.FREE)
    beyond = values_at(grid, *region((-0.5, 0.5), (7.0, 8.0)))
    assert np.mean(beyond == OccupancyGrid.FREE) > 0.95
    ahead = values_at(grid, *region((-0.8, 0.8), (1.2, 2.9)))
    assert np.all(ahead == OccupancyGrid.FREE)
    # The keyframe's own hits stop its view, also where the map has too few points to call the
    # box occupied (here: none, with min_hits out of reach).
    blind_map = OccupancyConfig(resolution=0.05, min_obstacle_height=0.1,
                                max_obstacle_height=2.0, min_hits=10**6)
    grid = grid_of([forward_view()], config=blind_map)
    assert not np.any(values_at(grid, *hidden) == OccupancyGrid.FREE)


def test_a_bearing_that_lost_its_obstacle_points_is_shaded_by_its_neighbours() -> None:
    # The box's points in one bearing bin (1°) were lost (confidence filter, thinning): the
    # rays over the box in that bin must not clear a stripe through the box.
    view = forward_view()
    delta = view.points_world - view.centre_world
    bearing = np.degrees(np.arctan2(delta[:, 0], delta[:, 2]))
    on_box = np.all((view.points_world > np.array(BOX.lo) - 0.01)
                    & (view.points_world < np.array(BOX.hi) + 0.01), axis=1)
    kept = ~(on_box & (np.abs(bearing - 5.5) < 0.6))  # the bin [5°, 6°) and its edges
    # The map does not know the box either (min_hits out of reach): only the view's own hits
    # can stop it.
    blind_map = OccupancyConfig(resolution=0.05, min_obstacle_height=0.1,
                                max_obstacle_height=2.0, min_hits=10**6)
    grid = grid_of([KeyframeRays(view.centre_world, view.points_world[kept])], config=blind_map)
    stripe_x = 3.5 * np.tan(np.radians(5.5))
    inside = values_at(grid, *region((stripe_x - 0.02, stripe_x + 0.02), (3.2, 3.9)))
    assert not np.any(inside == OccupancyGrid.FREE)


def test_what_the_whole_map_knows_occupied_blocks_each_keyframes_view() -> None:
    # Keyframe B lost every point on the box; keyframe A saw it. B's rays pass over the box to
    # the floor behind, but the box's cells, occupied in the map, stop B's view.
    seen = forward_view()
    other = forward_view(np.array([0.6, -0.1, -0.5]))
    on_box = np.all((other.points_world > np.array(BOX.lo) - 0.01)
                    & (other.points_world < np.array(BOX.hi) + 0.01), axis=1)
    blind = KeyframeRays(other.centre_world, other.points_world[~on_box])
    grid = grid_of([seen, blind])
    assert not np.any(values_at(grid, *region((-0.8, 0.8), (3.15, 3.9))) == OccupancyGrid.FREE)


def test_a_ray_clears_the_band_only_where_it_passes_through_it() -> None:
    # Rays up to a 4.2 m ceiling, 20° to 40° above the horizon from a camera 1.3 m up: they
    # leave the obstacle band (2 m) within 0.7 / tan(40°) .. 0.7 / tan(20°) = 0.8 .. 1.9 m.
    up = cast(EMPTY, CAMERA, np.linspace(-20, 20, 81), np.linspace(-40, -20, 41))
    near_floor = cast(EMPTY, CAMERA, np.linspace(-80, 80, 161), np.linspace(60, 80, 21))
    far_floor = cast(EMPTY, CAMERA, np.linspace(25, 35, 11), np.linspace(10, 15, 6))  # 7 m
    grid = grid_of([KeyframeRays(CAMERA, np.concatenate([
        up.points_world, near_floor.points_world, far_floor.points_world]))])
    assert grid.values_at([[6.0, 0.0]])[0] == OccupancyGrid.UNKNOWN  # inside the grid
    assert np.all(values_at(grid, *region((-0.2, 0.2), (0.3, 0.75))) == OccupancyGrid.FREE)
    assert not np.any(values_at(grid, *region((-0.2, 0.2), (2.0, 6.0)))
                      == OccupancyGrid.FREE)


def test_the_floor_a_ray_ends_on_is_free_and_points_under_the_floor_show_nothing() -> None:
    # A 0.5 m barrier 1.5 m ahead stops the scan; three floor points far apart, seen over it,
    # are free where they lie (nothing between them: the gaps are shadows, or unknown).
    barrier = np.array([[x, 0.7, 1.5] for x in np.linspace(-0.3, 0.3, 31)])
    seen = np.array([[0.0, FLOOR_Y, 3.0], [0.0, FLOOR_Y, 4.5], [0.0, FLOOR_Y, 6.0]])
    floor = forward_view(room=EMPTY).points_world
    grid = grid_of([KeyframeRays(CAMERA, np.concatenate([barrier, seen]))],
                   map_points=np.concatenate([floor, barrier, seen]))
    assert np.all(values_at(grid, seen[:, 0], seen[:, 2]) == OccupancyGrid.FREE)
    between = values_at(grid, np.zeros(4), np.array([2.5, 3.5, 4.0, 5.0]))
    assert not np.any(between == OccupancyGrid.FREE)
    # Stray points a metre under the floor (noise, a reflection) show nothing free.
    on_floor = floor[np.abs(floor[:, 1] - FLOOR_Y) < 1e-6]
    under = on_floor[::50] + [0.0, 1.0, 0.0]
    grid = grid_of([KeyframeRays(CAMERA, under)], map_points=np.concatenate([floor, under]))
    assert not np.any(values_at(grid, *region((-2.0, 2.0), (0.5, 6.0))) == OccupancyGrid.FREE)


def test_a_cell_is_occupied_with_min_hits_points_in_the_band() -> None:
    floor = forward_view(room=EMPTY).points_world
    lone = np.array([[2.02, 0.5, 2.02]])  # 0.7 m up, alone in its cell
    pair = np.array([[-2.02, 0.5, 2.02], [-2.03, 0.6, 2.03]])  # two in one cell
    grid = grid_of([KeyframeRays(CAMERA, floor)], np.concatenate([floor, lone, pair]))
    assert values_at(grid, lone[:, 0], lone[:, 2])[0] != OccupancyGrid.OCCUPIED
    assert values_at(grid, pair[:1, 0], pair[:1, 2])[0] == OccupancyGrid.OCCUPIED


def test_where_a_camera_stood_is_free_even_without_rays() -> None:
    floor = forward_view(room=EMPTY).points_world
    still = KeyframeRays(np.array([-3.0, -0.1, -3.0]), np.empty((0, 3)))  # behind the view
    grid = grid_of([KeyframeRays(CAMERA, floor), still], map_points=floor)
    assert values_at(grid, np.array([-3.0]), np.array([-3.0]))[0] == OccupancyGrid.FREE
    assert values_at(grid, np.array([-3.0]), np.array([-2.5]))[0] == OccupancyGrid.UNKNOWN


def test_far_outliers_neither_count_nor_stretch_the_grid() -> None:
    view = forward_view()
    outliers = np.array([[500.0, 0.5, 500.0], [500.01, 0.5, 500.01]])
    grid = grid_of([view], np.concatenate([view.points_world, outliers]))
    assert grid.cells.shape == grid_of([view]).cells.shape
    assert values_at(grid, outliers[:, 0], outliers[:, 2])[0] == OccupancyGrid.UNKNOWN


def test_a_grid_over_max_cells_is_refused() -> None:
    config = OccupancyConfig(resolution=0.05, min_obstacle_height=0.1, max_obstacle_height=2.0,
                             max_cells=1000)
    with pytest.raises(OccupancyError, match='max_cells'):
        grid_of([forward_view()], config=config)


def test_convention_grid_is_in_the_levelled_map_frame() -> None:
    # map frame (REP 103): x = ahead of the first camera, y = its left, z = up. A box 3.5 m
    # ahead is at x ≈ 3.5; one 3 m to the camera's left (world -x) is at y ≈ +3.
    left = Box((-3.2, 0.7, -0.2), (-2.8, 1.2, 0.2))
    room = Room(SCENE.bounds, (BOX, left))
    views = [forward_view(room=room), cast(room, CAMERA, np.linspace(-135, -45, 451),
                                           np.linspace(-10, 60, 351))]
    grid = grid_of(views)
    assert grid.map_from_world is not None
    np.testing.assert_allclose(grid.map_from_world, level_map_from_world(UP), atol=1e-12)
    np.testing.assert_allclose(grid.map_from_world, MAP_FROM_WORLD, atol=1e-12)  # level camera
    assert grid.floor_z == pytest.approx(-FLOOR_Y, abs=1e-3)  # under the world origin
    assert grid.values_at([[3.0, 0.0]])[0] == OccupancyGrid.OCCUPIED  # the box's front face
    assert grid.values_at([[0.0, 2.8]])[0] == OccupancyGrid.OCCUPIED  # the left box's face
    assert grid.values_at([[0.0, -2.8]])[0] == OccupancyGrid.UNKNOWN  # never looked right
    rows, cols = grid.cell_of([[3.0, 0.0], [0.0, 2.8]])
    assert cols[0] > cols[1] and rows[1] > rows[0]  # columns along +x, rows along +y


@pytest.mark.parametrize('kwargs, match', [
    ({'resolution': 0.0}, 'resolution'),
    ({'min_obstacle_height': 1.0, 'max_obstacle_height': 0.5}, 'below'),
    ({'min_obstacle_height_rel': 2.0, 'max_obstacle_height_rel': 1.0}, 'below'),
    ({'bearing_bin_deg': 0.0}, 'bearing_bin_deg'),
    ({'max_floor_tilt_deg': 90.0}, 'max_floor_tilt_deg'),
    ({'min_floor_share': 0.0}, 'min_floor_share'),
    ({'min_hits': 0}, 'min_hits'),
    ({'max_fit_points': 10}, 'max_fit_points'),
])
def test_config_is_validated_when_built(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OccupancyConfig(**kwargs)  # type: ignore[arg-type]


def test_mixed_absolute_and_relative_heights_are_checked_on_the_scene() -> None:
    config = OccupancyConfig(min_obstacle_height=1.0)  # above 1.2 × a 0.5 m camera height
    with pytest.raises(OccupancyError, match='not below'):
        config.obstacle_band(camera_height=0.5)
    assert config.obstacle_band(camera_height=1.3) == pytest.approx((1.0, 1.56))


# -- the mapped room -------------------------------------------------------------------------


class MappedRoom:
    """One lap around the synthetic room, mapped, with its grid and the way to the truth."""

    def __init__(self) -> None:
        self.sequence = SyntheticSequence.orbit(118, step_m=0.07)
        predictor = SyntheticPredictor(self.sequence, NOISE_LEVELS['default'], model_width=126)
        with Mapper(MapperConfig(window_size=8, overlap=2), predictor) as mapper:
            feed(mapper, self.sequence)
            self.grid = map_occupancy(mapper, MAP_FROM_WORLD, OccupancyConfig())
            self.world_from_gt = trajectory_error(mapper.trajectory(),
                                                  self.sequence).gt_from_world.inverse()

    @property
    def cell_m(self) -> float:
        """Return the grid's resolution in metres."""
        return self.grid.resolution / self.world_from_gt.scale

    def values_at(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Grid values at true floor points (room metres)."""
        world = self.world_from_gt.apply(np.stack([x, np.full_like(x, FLOOR_Y), z], axis=-1))
        assert self.grid.map_from_world is not None
        rotation, translation = self.grid.map_from_world[:3, :3], self.grid.map_from_world[:3, 3]
        return self.grid.values_at(world @ rotation.T + translation)


@pytest.fixture(scope='module')
def room() -> MappedRoom:
    return MappedRoom()


def test_room_boxes_are_obstacles_and_never_free_inside(room: MappedRoom) -> None:
    margin = 3 * room.cell_m  # the model loses points at the boxes' edges
    for box in room.sequence.room.objects:
        (x0, _, z0), (x1, _, z1) = box.lo, box.hi
        inside = room.values_at(*region((x0 + margin, x1 - margin), (z0 + margin, z1 - margin)))
        assert not np.any(inside == OccupancyGrid.FREE), box
        footprint = room.values_at(*region((x0 - room.cell_m, x1 + room.cell_m),
                                           (z0 - room.cell_m, z1 + room.cell_m), room.cell_m))
        side_cells = (min(x1 - x0, z1 - z0)) / room.cell_m
        assert np.count_nonzero(footprint == OccupancyGrid.OCCUPIED) > side_cells, box


def test_room_walls_are_occupied(room: MappedRoom) -> None:
    (x0, _, z0), (x1, _, z1) = room.sequence.room.bounds.lo, room.sequence.room.bounds.hi
    inset = 0.5 * room.cell_m
    t = np.linspace(0.0, 1.0, 400)
    # Each wall: points along it just inside the room, and its outward direction (x, z).
    walls = {'left': (np.full_like(t, x0 + inset), z0 + t * (z1 - z0), (-1, 0)),
             'right': (np.full_like(t, x1 - inset), z0 + t * (z1 - z0), (1, 0)),
             'back': (x0 + t * (x1 - x0), np.full_like(t, z0 + inset), (0, -1)),
             'front': (x0 + t * (x1 - x0), np.full_like(t, z1 - inset), (0, 1))}
    for name, (x, z, (out_x, out_z)) in walls.items():
        values = room.values_at(x, z)
        assert np.mean(values == OccupancyGrid.OCCUPIED) > 0.5, name  # the rest hidden
        assert np.mean(values == OccupancyGrid.FREE) < 0.02, name
        behind = room.values_at(x + out_x * 4 * room.cell_m, z + out_z * 4 * room.cell_m)
        assert not np.any(behind == OccupancyGrid.FREE), name


def test_room_open_floor_around_the_path_is_free(room: MappedRoom) -> None:
    # The cameras look outward: the floor between the path and the walls is open.
    angles = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    for offset in (0.2, 0.4, 0.6):
        radius = 1.3 + offset
        x = ORBIT_CENTRE[0] + radius * np.cos(angles)
        z = ORBIT_CENTRE[2] + 0.9 * radius * np.sin(angles)
        clear = np.ones_like(x, dtype=bool)
        for box in room.sequence.room.objects:
            clear &= ~((x > box.lo[0] - 0.3) & (x < box.hi[0] + 0.3)
                       & (z > box.lo[2] - 0.3) & (z < box.hi[2] + 0.3))
        assert np.mean(room.values_at(x[clear], z[clear]) == OccupancyGrid.FREE) > 0.95


def test_room_grid_is_level_and_on_the_floor(room: MappedRoom) -> None:
    grid = room.grid
    assert grid.floor is not None and grid.map_from_world is not None
    true_up = room.world_from_gt.rotation @ UP
    np.testing.assert_allclose(grid.map_from_world[2, :3], grid.floor.up_world, atol=1e-9)
    assert np.degrees(np.arccos(np.clip(grid.floor.up_world @ true_up, -1, 1))) < 1.0
    # 1.3 m camera height, in the map's units.
    assert grid.floor.camera_height / room.world_from_gt.scale == pytest.approx(1.3, abs=0.05)
    assert grid.obstacle_band == pytest.approx((0.1 * grid.floor.camera_height,
                                                1.2 * grid.floor.camera_height))


def test_map_occupancy_needs_a_mapped_segment() -> None:
    sequence = SyntheticSequence.orbit(4, step_m=0.03)
    with Mapper(MapperConfig(window_size=8, overlap=2),
                SyntheticPredictor(sequence, model_width=126)) as mapper:
        with pytest.raises(OccupancyError, match='nothing is mapped'):
            map_occupancy(mapper, MAP_FROM_WORLD, OccupancyConfig())


def test_a_metric_map_gives_the_same_grid_in_metres() -> None:
    # Odometry makes the outputs metric (they are scaled, the engine's unit is not): the grid
    # built from them has the same cells, at a resolution in metres.
    sequence = SyntheticSequence.orbit(60, step_m=0.07)
    odometry = simulate_odometry(sequence.poses_world_from_cam, OdometryNoise(scale_error=0.0))
    grids, factors = [], []
    for odom in (None, odometry.odom_from_camera):
        predictor = SyntheticPredictor(sequence, NOISE_LEVELS['none'], model_width=126)
        with Mapper(MapperConfig(window_size=8, overlap=2), predictor) as mapper:
            feed(mapper, sequence, odom_from_camera=odom)
            grids.append(map_occupancy(mapper, MAP_FROM_WORLD, OccupancyConfig()))
            factors.append(mapper.metric_scales[0].factor)
    unit, metric = grids
    assert factors[0] == 1.0 and abs(np.log(factors[1])) > 0.1  # the test means something
    # (The floor fit samples at random: lengths agree to a percent or so, not exactly.)
    assert metric.resolution == pytest.approx(factors[1] * unit.resolution, rel=0.02)
    for value in (OccupancyGrid.FREE, OccupancyGrid.OCCUPIED):
        counts = [np.count_nonzero(grid.cells == value) for grid in grids]
        assert counts[0] > 100 and counts[1] == pytest.approx(counts[0], rel=0.1), value
