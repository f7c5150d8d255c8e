"""
A 2D occupancy grid on the floor, from the point map, the keyframe cameras and gravity (Nav2).

The grid lies on the floor (``engine.floor``) of a map frame levelled by gravity: the frame the
caller passes (REP 103's ``map``: ``io.ros_messages.MAP_FROM_WORLD``) rotated so that up is +z
(``geometry.gravity.level_frame``). Its square cells, ``resolution`` on a side, sit on a lattice
anchored at multiples of the resolution and hold ``nav_msgs/OccupancyGrid`` values:

* **occupied** (100): at least ``min_hits`` points of the fused map lie in the cell between the
  minimum and maximum obstacle heights above the floor (the band a ground robot runs into).
* **free** (0): a keyframe saw the band empty there (below), saw the floor there, or stood over
  it. Occupied wins over free.
* **unknown** (-1): everything else.

Free space comes from the rays between each keyframe camera and its points, read like a laser
scan (as ``pointcloud_to_laserscan`` turns a depth camera into one): each ray is clipped to the
obstacle band in 3-D, the rays are grouped by bearing, and in each bearing the free range runs
as far as the rays showed the band empty (to a floor point, to where a ray leaves the band, to
just before a hit) but never past that bearing's nearest hit. Behind an obstacle stays unknown,
also where rays pass *over* it in 3-D (over a low box, to the wall behind): a single ray cannot
say the column under it is empty. Each keyframe's sectors are filled in one OpenCV call
(``fillPoly``, sub-cell corners), so a few hundred keyframes take well under a second
(``benchmarks/occupancy_grid.py``).

**Units.** Every length of ``OccupancyConfig`` is absolute (map units) or, by default, relative
to the scene (``FloorPlane.scene_scale``, ``FloorPlane.camera_height``), because the map has the
first window's arbitrary scale unless it is made metric (``MapperConfig.scale``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import math
from typing import ClassVar, TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from vggt_mapper.engine.config import OccupancyConfig
from vggt_mapper.engine.errors import OccupancyError
from vggt_mapper.engine.floor import as_points, as_poses, fit_floor, FloorPlane
from vggt_mapper.geometry.gravity import level_frame

if TYPE_CHECKING:
    from vggt_mapper.engine.mapper import Mapper

__all__ = ['KeyframeRays', 'OccupancyGrid', 'build_occupancy_grid', 'map_occupancy']

# Sub-cell precision of the drawn sectors: coordinates in 1/16 cell (OpenCV's ``shift``).
_SHIFT = 4


@dataclass(frozen=True)
class KeyframeRays:
    """
    One keyframe's camera centre and points: the rays that show free space.

    :param centre_world: (3,) camera centre, world frame.
    :param points_world: (N, 3) the keyframe's points, world frame.
    """

    centre_world: NDArray[np.float64]
    points_world: NDArray[np.floating]


@dataclass(frozen=True)
class OccupancyGrid:
    """
    A 2D occupancy grid on the floor of a levelled map frame.

    Cell ``cells[row, col]`` covers ``x ∈ [x0 + col·r, x0 + (col+1)·r)`` and ``y ∈ [y0 +
    row·r, y0 + (row+1)·r)`` of the map frame (``r = resolution``, ``(x0, y0) = origin_xy``):
    row 0 is the lowest y, as in ``nav_msgs/OccupancyGrid`` data (an image's rows run the other
    way). With ``origin_yaw`` the lattice is rotated by that angle about the origin (map_server
    files may say so; built grids have 0).

    :param cells: (height, width) int8: ``UNKNOWN`` (-1), ``FREE`` (0), ``OCCUPIED`` (100).
    :param resolution: cell edge, map units.
    :param origin_xy: map-frame (x, y) of the lower-left corner of cell (0, 0).
    :param origin_yaw: rotation of the lattice about +z, radians.
    :param floor_z: map-frame height of the floor, where the grid lies.
    :param map_from_world: 4×4 levelled map frame of the grid from the engine's world (None
        for a grid read from a file).
    :param floor: the floor it was built on (None when read from a file).
    :param obstacle_band: the ``(min, max)`` obstacle heights above the floor it used.
    """

    UNKNOWN: ClassVar[int] = -1
    FREE: ClassVar[int] = 0
    OCCUPIED: ClassVar[int] = 100

    cells: NDArray[np.int8]
    resolution: float
    origin_xy: tuple[float, float]
    origin_yaw: float = 0.0
    floor_z: float = 0.0
    map_from_world: NDArray[np.float64] | None = None
    floor: FloorPlane | None = None
    obstacle_band: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.cells.dtype != np.int8 or self.cells.ndim != 2:
            raise ValueError(f'cells must be a 2D int8 array, got {self.cells.dtype} '
                             f'{self.cells.shape}')
        if not (math.isfinite(self.resolution) and self.resolution > 0):
            raise ValueError(f'resolution must be > 0, got {self.resolution}')

    @property
    def width(self) -> int:
        """Cells along x (columns)."""
        return int(self.cells.shape[1])

    @property
    def height(self) -> int:
        """Cells along y (rows)."""
        return int(self.cells.shape[0])

    def count(self, value: int) -> int:
        """
        Count the cells holding a value.

        :param value: ``UNKNOWN``, ``FREE`` or ``OCCUPIED``.
        :return: how many cells hold it.
        """
        return int(np.count_nonzero(self.cells == value))

    def cell_of(self, points_xy: ArrayLike) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """
        Return the cells that map-frame points fall in (they may lie outside the grid).

        :param points_xy: (N, 2) (or (N, 3), z ignored) map-frame points.
        :return: ``(rows, cols)`` int64 indices, each (N,).
        """
        points = np.asarray(points_xy, dtype=np.float64)
        points = points.reshape(-1, points.shape[-1])[:, :2] - np.asarray(self.origin_xy)
        cos, sin = math.cos(self.origin_yaw), math.sin(self.origin_yaw)
        along_x = points[:, 0] * cos + points[:, 1] * sin
        along_y = -points[:, 0] * sin + points[:, 1] * cos
        return (np.floor(along_y / self.resolution).astype(np.int64),
                np.floor(along_x / self.resolution).astype(np.int64))

    def values_at(self, points_xy: ArrayLike) -> NDArray[np.int8]:
        """
        Return the cell values at map-frame points; ``UNKNOWN`` outside the grid.

        :param points_xy: (N, 2) (or (N, 3)) map-frame points.
        :return: (N,) int8 values.
        """
        rows, cols = self.cell_of(points_xy)
        inside = (rows >= 0) & (rows < self.height) & (cols >= 0) & (cols < self.width)
        values = np.full(rows.shape, self.UNKNOWN, np.int8)
        values[inside] = self.cells[rows[inside], cols[inside]]
        return values


# ---------------------------------------------------------------------------------------------
# The grid


@dataclass(frozen=True)
class _Layout:
    """Where the grid lies: its levelled frame, lattice and obstacle band."""

    level_from_world: NDArray[np.float64]
    floor_z: float
    band: tuple[float, float]
    resolution: float
    origin_xy: NDArray[np.float64]
    shape: tuple[int, int]
    max_range: float
    bins: int
    floor_gap_rel: float

    def to_level(self, points_world: NDArray[np.float64]) -> NDArray[np.float64]:
        """Map-frame points with z measured from the floor."""
        rotation, translation = self.level_from_world[:3, :3], self.level_from_world[:3, 3]
        local = points_world @ rotation.T + translation
        local[:, 2] -= self.floor_z
        return np.asarray(local, dtype=np.float64)

    def cells_of(self, xy: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        index = np.floor((xy - self.origin_xy) / self.resolution).astype(np.int64)
        return index[:, 1], index[:, 0]

    def inside(self, rows: NDArray[np.int64], cols: NDArray[np.int64]) -> NDArray[np.bool_]:
        return (rows >= 0) & (rows < self.shape[0]) & (cols >= 0) & (cols < self.shape[1])


def _lattice(xy: NDArray[np.float64], resolution: float, max_cells: int
             ) -> tuple[NDArray[np.float64], tuple[int, int]]:
    """Lay a lattice anchored at multiples of the resolution over ``xy``, a cell to spare."""
    low = (np.floor(xy.min(axis=0) / resolution) - 1) * resolution
    high = (np.floor(xy.max(axis=0) / resolution) + 2) * resolution
    cols, rows = (int(round(n)) for n in (high - low) / resolution)
    if rows * cols > max_cells:
        raise OccupancyError(f'a {cols}×{rows} grid ({rows * cols} cells) at resolution '
                             f'{resolution:.4g} exceeds max_cells={max_cells}; coarsen the '
                             f'resolution or lower max_range_rel')
    return low, (rows, cols)


@dataclass(frozen=True)
class _View:
    """One keyframe's usable rays in the levelled frame, heights from the floor."""

    centre: NDArray[np.float64]
    bins: NDArray[np.int64]
    span: NDArray[np.float64]
    hit: NDArray[np.bool_]
    on_floor: NDArray[np.bool_]
    points: NDArray[np.float64]
    reach: NDArray[np.float64]
    enter: NDArray[np.float64]


def _view(rays: KeyframeRays, layout: _Layout) -> _View:
    """Clip a keyframe's rays to the band and measure how far along the floor each shows it."""
    centre = layout.to_level(np.asarray(rays.centre_world, dtype=np.float64).reshape(1, 3))[0]
    points = layout.to_level(as_points(rays.points_world, 'points_world'))
    delta = points - centre
    span = np.hypot(delta[:, 0], delta[:, 1])
    low, high = layout.band
    enter, leave = _band_interval(centre[2], delta[:, 2], layout.band)
    hit = (points[:, 2] >= low) & (points[:, 2] <= high)
    on_floor = (points[:, 2] < low) & (points[:, 2] > -low)
    # A point under the floor is noise, and a ray that never enters the band (from a camera
    # above it, up to the ceiling) shows nothing.
    usable = ((np.linalg.norm(delta, axis=1) <= layout.max_range) & (span > 0)
              & (points[:, 2] > -low) & (hit | on_floor | (leave > enter)))
    # How far along the floor each ray shows the band empty: to just before its hit, to the
    # floor point, or to where it leaves the band.
    reach = np.where(hit, span - 0.5 * layout.resolution, np.where(on_floor, span, leave * span))
    bearing = np.arctan2(delta[:, 1], delta[:, 0])
    bins = np.minimum(np.floor((bearing + np.pi) / (2 * np.pi) * layout.bins).astype(np.int64),
                      layout.bins - 1)
    return _View(centre, bins[usable], span[usable], hit[usable], on_floor[usable],
                 points[usable], reach[usable], enter[usable] * span[usable])


def _scan(view: _View, layout: _Layout, occupied: NDArray[np.bool_]
          ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """
    Scan like a laser: in each bearing bin, the stretch the keyframe's rays showed empty.

    It runs from where the first ray enters the band to the farthest reach, but never past the
    bin's nearest hit, nor a neighbouring bin's (an obstacle whose points in one bin were lost
    to the confidence filter must not let that bin clear a stripe through it), nor the first
    cell the whole map knows occupied.

    :return: the bins swept and each one's near and far distances.
    """
    near = np.full(layout.bins, np.inf)
    far = np.zeros(layout.bins)
    nearest_hit = np.full(layout.bins, np.inf)
    np.minimum.at(near, view.bins, view.enter)
    np.maximum.at(far, view.bins, view.reach)
    np.minimum.at(nearest_hit, view.bins[view.hit], view.reach[view.hit])
    shade = np.minimum(nearest_hit, np.minimum(np.roll(nearest_hit, 1), np.roll(nearest_hit, -1)))
    far = np.minimum(far, shade)
    swept = np.flatnonzero(far > near)
    if not len(swept):
        return swept, near[swept], far[swept]
    far[swept] = np.minimum(far[swept], _first_occupied(occupied, layout, view.centre, swept,
                                                        near[swept], far[swept]))
    swept = swept[far[swept] > near[swept]]
    return swept, near[swept], far[swept]


def _floor_runs(view: _View, layout: _Layout
                ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """
    Find the stretches of floor a keyframe saw without a gap, per bearing bin.

    A camera above a low obstacle sees the floor behind it, past its shadow; the scan stops at
    the obstacle, so the floor seen beyond is filled here between consecutive floor points of a
    bin whose gap is short (``floor_gap_rel`` of their distance, at least two cells). A longer
    gap is a shadow, or a hole: left as it is.

    :return: each run's bin and its near and far distances.
    """
    floor = np.flatnonzero(view.on_floor)
    order = floor[np.lexsort((view.span[floor], view.bins[floor]))]
    bins, span = view.bins[order], view.span[order]
    gap = np.maximum(2.0 * layout.resolution, layout.floor_gap_rel * span[:-1])
    joined = (bins[1:] == bins[:-1]) & (span[1:] - span[:-1] <= gap)
    return bins[:-1][joined], span[:-1][joined], span[1:][joined]


def _fill_sectors(free: NDArray[np.uint8], centre: NDArray[np.float64],
                  bins: NDArray[np.int64], near: NDArray[np.float64], far: NDArray[np.float64],
                  layout: _Layout) -> None:
    """Mark the annular sectors ``[near, far]`` of bearing bins free (one OpenCV call)."""
    if not len(bins):
        return
    angles = np.stack([bins, bins + 1], axis=1) * (2 * np.pi / layout.bins) - np.pi
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=2)  # (M, 2 edges, 2)
    corners = centre[:2] + np.concatenate([near[:, None, None] * directions,
                                           far[:, None, None] * directions[:, ::-1]], axis=1)
    # Cell (col, row) is OpenCV pixel (x, y), whose centre sits at integer coordinates.
    pixels = np.round(((corners - layout.origin_xy) / layout.resolution - 0.5)
                      * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(free, pixels, 1, cv2.LINE_8, _SHIFT)


def _sweep(free: NDArray[np.uint8], occupied: NDArray[np.bool_], rays: KeyframeRays,
           layout: _Layout) -> None:
    """Mark what one keyframe saw free: its scan, the floor runs beyond it, the floor seen."""
    view = _view(rays, layout)
    scan = _scan(view, layout, occupied)
    runs = _floor_runs(view, layout)
    bins, near, far = (np.concatenate(pair) for pair in zip(scan, runs, strict=True))
    _fill_sectors(free, view.centre, bins, near, far, layout)
    rows, cols = layout.cells_of(view.points[view.on_floor, :2])
    inside = layout.inside(rows, cols)
    free[rows[inside], cols[inside]] = 1


def _first_occupied(occupied: NDArray[np.bool_], layout: _Layout, centre: NDArray[np.float64],
                    bins: NDArray[np.int64], near: NDArray[np.float64], far: NDArray[np.float64]
                    ) -> NDArray[np.float64]:
    """
    Measure along each bin's middle bearing the distance to the map's first occupied cell.

    :return: (M,) distances (``inf`` where the bearing meets no occupied cell before ``far``),
        half a cell short of the occupied cell.
    """
    step = 0.5 * layout.resolution
    steps = np.arange(int(np.ceil(far.max() / step)) + 1) * step  # (S,)
    angles = (bins + 0.5) * (2 * np.pi / layout.bins) - np.pi
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (M, 2)
    samples = centre[:2] + steps[None, :, None] * directions[:, None, :]  # (M, S, 2)
    rows, cols = layout.cells_of(samples.reshape(-1, 2))
    inside = layout.inside(rows, cols)
    blocked = np.zeros(rows.shape, bool)
    blocked[inside] = occupied[rows[inside], cols[inside]]
    blocked = blocked.reshape(len(bins), len(steps)) & (steps >= near[:, None])
    first = np.where(blocked.any(axis=1), steps[np.argmax(blocked, axis=1)] - step, np.inf)
    return np.asarray(first, dtype=np.float64)


def _band_interval(height: float, rise: NDArray[np.float64], band: tuple[float, float]
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """
    Find where rays from a camera at ``height`` are inside the band: ``t ∈ [enter, leave]``.

    :param height: the camera's height above the floor.
    :param rise: (N,) each ray's height change from the camera to its point.
    :param band: the obstacle heights ``(low, high)``.
    :return: ``enter`` and ``leave`` (N,), fractions of the ray in [0, 1] (``leave <= enter``
        for a ray that never enters the band).
    """
    low, high = band
    level = np.abs(rise) < 1e-12
    with np.errstate(divide='ignore', invalid='ignore'):
        at_low = (low - height) / rise
        at_high = (high - height) / rise
    inside = low <= height <= high
    enter = np.where(level, 0.0 if inside else 1.0, np.minimum(at_low, at_high))
    leave = np.where(level, 1.0 if inside else 0.0, np.maximum(at_low, at_high))
    return np.clip(enter, 0.0, 1.0), np.clip(leave, 0.0, 1.0)


def build_occupancy_grid(points_world: ArrayLike, world_from_cams: ArrayLike,
                         rays: Iterable[KeyframeRays], floor: FloorPlane,
                         map_from_world: ArrayLike, config: OccupancyConfig) -> OccupancyGrid:
    """
    Build the grid from a fused map, its keyframes' rays and its floor.

    :param points_world: (N, 3) fused map points (one segment's), world frame: occupancy.
    :param world_from_cams: (K, 4, 4) the segment's keyframe camera poses: where the camera
        stood is free, and the grid covers it.
    :param rays: each keyframe's centre and points, world frame (read once, one at a time).
    :param floor: the floor (``fit_floor``).
    :param map_from_world: 4×4 map frame (from the world) to level and lay the grid in, e.g.
        ``vggt_mapper.io.ros_messages.MAP_FROM_WORLD``; the grid's frame is this frame
        levelled by ``floor.up_world`` (``grid.map_from_world``).
    :param config: resolution, obstacle band, hits, range.
    :return: the grid.
    :raises OccupancyError: for malformed inputs, an empty map or a grid over ``max_cells``.
    """
    points = as_points(points_world, 'points_world')
    centres = as_poses(world_from_cams)[:, :3, 3]
    level = level_frame(map_from_world, floor.up_world)
    floor_z = floor.offset + float(level[2, 3])
    band = config.obstacle_band(floor.camera_height)
    resolution = config.resolution or config.resolution_rel * floor.scene_scale
    max_range = config.max_range_rel * floor.scene_scale
    near = cKDTree(centres).query(points)[0] <= max_range if len(points) else np.zeros(0, bool)
    bins = max(1, round(360.0 / config.bearing_bin_deg))
    partial = _Layout(level, floor_z, band, resolution, np.zeros(2), (0, 0), max_range, bins,
                      config.floor_gap_rel)
    local = partial.to_level(points[near])
    obstacles = local[(local[:, 2] >= band[0]) & (local[:, 2] <= band[1]), :2]
    seen_floor = local[np.abs(local[:, 2]) < band[0], :2]
    cameras = partial.to_level(centres)[:, :2]
    origin, shape = _lattice(np.concatenate([obstacles, seen_floor, cameras]), resolution,
                             config.max_cells)
    layout = _Layout(level, floor_z, band, resolution, origin, shape, max_range, bins,
                     config.floor_gap_rel)
    hits = np.zeros(shape, np.int32)
    np.add.at(hits, layout.cells_of(obstacles), 1)
    occupied = hits >= config.min_hits
    free = np.zeros(shape, np.uint8)
    for keyframe in rays:
        _sweep(free, occupied, keyframe, layout)
    free[layout.cells_of(cameras)] = 1
    cells = np.full(shape, OccupancyGrid.UNKNOWN, np.int8)
    cells[free > 0] = OccupancyGrid.FREE
    cells[occupied] = OccupancyGrid.OCCUPIED
    return OccupancyGrid(cells, float(resolution), (float(origin[0]), float(origin[1])), 0.0,
                         floor_z, level, floor, band)


def map_occupancy(mapper: Mapper, map_from_world: ArrayLike, config: OccupancyConfig, *,
                  up_world: ArrayLike | None = None, segment: int | None = None
                  ) -> OccupancyGrid:
    """
    Build the occupancy grid of a mapper's segment now: floor, then rays from the store.

    :param mapper: the mapper (read between windows, from the thread that feeds it).
    :param map_from_world: 4×4 map frame to level, e.g. ``ros_messages.MAP_FROM_WORLD``.
    :param config: the grid settings.
    :param up_world: (3,) up in the world frame when known (TF, ``camera_up_world``); None fits
        the floor plane.
    :param segment: the map segment; None: the segment of the latest keyframe (the active one).
    :return: the grid.
    :raises OccupancyError: if nothing is mapped in the segment yet, or as ``fit_floor`` and
        ``build_occupancy_grid``.
    """
    trajectory = mapper.trajectory()
    if not trajectory:
        raise OccupancyError('nothing is mapped yet: no occupancy grid')
    segment = trajectory[-1].segment if segment is None else segment
    poses = [pose for pose in trajectory if pose.segment == segment]
    if not poses:
        raise OccupancyError(f'segment {segment} has no keyframes; segments are '
                             f'{sorted({pose.segment for pose in trajectory})}')
    snapshot = mapper.map_snapshot()
    points = snapshot.points_world[snapshot.segments == segment].astype(np.float64)
    world_from_cams = np.stack([pose.world_from_cam for pose in poses])
    floor = fit_floor(points, world_from_cams, config, up_world)
    graph = mapper.pose_graph
    # The trajectory and snapshot are in the segment's output unit (metres once metric); the
    # graph and the store are in the engine's: the rays are scaled to match.
    scale = mapper.metric_scales.get(segment)
    factor = scale.factor if scale is not None else 1.0
    rays = (KeyframeRays(factor * graph.value(index).translation, factor * graph.value(
        index).apply(cloud.points_local)) for index, cloud in mapper.store.iter_clouds(
            [pose.index for pose in poses]))
    return build_occupancy_grid(points, world_from_cams, rays, floor, map_from_world, config)
