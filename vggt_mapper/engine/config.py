"""Typed, validated configuration of the mapping engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from vggt_mapper.engine.errors import ConfigError, OccupancyError
from vggt_mapper.engine.pose_graph import PoseGraphConfig

__all__ = ['MIN_FLOOR_POINTS', 'SCALE_SOURCES', 'AlignmentConfig', 'GraphConfig',
           'KeyframeConfig', 'LocalizationConfig', 'LoopConfig', 'MapConfig', 'MapperConfig',
           'MetricScaleConfig', 'OccupancyConfig', 'RecoveryConfig', 'StoreConfig']

#: Where a segment's metres per unit come from (``MetricScaleConfig.source``).
SCALE_SOURCES = ('odometry', 'camera_height', 'fixed')

#: The fewest map points a floor fit is attempted on (``OccupancyConfig``).
MIN_FLOOR_POINTS = 50


@dataclass(frozen=True)
class KeyframeConfig:
    """
    When a frame becomes a keyframe.

    :param min_parallax_px: median optical-flow displacement (pixels, at the tracking
        resolution) of tracked corners since the last keyframe that makes a new keyframe.
    :param min_gap: at least this many frames between keyframes (1 = consecutive allowed).
    :param max_gap: a keyframe is forced after this many frames, whatever the parallax.
    :param track_width: frames are downscaled to this width (pixels) for corner tracking
        (never upscaled).
    :param duplicate_px: below this parallax (pixels, tracking resolution) a frame is a
        near-duplicate of the last keyframe and never becomes one, not even at ``max_gap``
        (a camera standing still adds no keyframes).
    :param max_corners: corners detected in each keyframe for tracking.
    """

    min_parallax_px: float = 12.0
    min_gap: int = 1
    max_gap: int = 30
    track_width: int = 320
    duplicate_px: float = 1.0
    max_corners: int = 200

    def __post_init__(self) -> None:
        if self.min_parallax_px < 0:
            raise ConfigError(f'min_parallax_px must be >= 0, got {self.min_parallax_px}')
        if self.min_gap < 1:
            raise ConfigError(f'min_gap must be >= 1, got {self.min_gap}')
        if self.max_gap < self.min_gap:
            raise ConfigError(f'max_gap ({self.max_gap}) must be >= min_gap ({self.min_gap})')
        if self.track_width < 32:
            raise ConfigError(f'track_width must be >= 32 pixels, got {self.track_width}')
        if not 0 <= self.duplicate_px <= max(self.min_parallax_px, 0.0):
            raise ConfigError(f'duplicate_px must be in [0, min_parallax_px = '
                              f'{self.min_parallax_px}], got {self.duplicate_px}')
        if self.max_corners < 8:
            raise ConfigError(f'max_corners must be >= 8, got {self.max_corners}')


@dataclass(frozen=True)
class MapConfig:
    """
    How predicted depth becomes map points.

    :param conf_percentile: drop the pixels below this percentile of depth confidence in each
        keyframe (0-100, like the official demo's ``conf_thres``).
    :param conf_min: absolute floor on depth confidence (VGGT confidences are >= 1).
    :param voxel_size: edge of the merging voxel grid in world units (0 disables merging).
    :param max_points: cap on the merged map; the voxel grid coarsens to stay below it. Each
        point holds 48 bytes (about twice that briefly while the grid coarsens).
    :param pixel_stride: keep every n-th pixel in each direction before filtering.

    Memory policy: the grid never holds more than ``max_points`` voxels per map segment (it
    doubles its voxel edge when it would); the points it is derived from live in the keyframe
    store (``StoreConfig``).
    """

    conf_percentile: float = 50.0
    conf_min: float = 1.0
    voxel_size: float = 0.01
    max_points: int = 400_000
    pixel_stride: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.conf_percentile <= 100.0:
            raise ConfigError(f'conf_percentile must be in [0, 100], got {self.conf_percentile}')
        if self.voxel_size < 0:
            raise ConfigError(f'voxel_size must be >= 0, got {self.voxel_size}')
        if self.max_points < 1:
            raise ConfigError(f'max_points must be >= 1, got {self.max_points}')
        if self.pixel_stride < 1:
            raise ConfigError(f'pixel_stride must be >= 1, got {self.pixel_stride}')
        if self.conf_min < 0:
            raise ConfigError(f'conf_min must be >= 0, got {self.conf_min}')


@dataclass(frozen=True)
class StoreConfig:
    """
    What each keyframe keeps for the whole run (see ``vggt_mapper.engine.keyframe_store``).

    :param points_per_keyframe: most points in a keyframe's local cloud (21 bytes each).
    :param local_voxel_rel: edge of the voxel grid that thins a keyframe's cloud, as a fraction
        of its median depth (grown until the cloud fits the budget).
    :param hot_keyframes: clouds kept in RAM (most recently used); the rest are read from disk.
    :param image_format: how keyframe images are kept for loop verification: ``png``
        (lossless: the model sees exactly the pixels of the first pass) or ``jpeg``
        (about 5 times smaller on disk).
    :param jpeg_quality: JPEG quality (1-100) when ``image_format`` is ``jpeg``.
    """

    points_per_keyframe: int = 4096
    local_voxel_rel: float = 0.004
    hot_keyframes: int = 64
    image_format: str = 'png'
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.points_per_keyframe < 1:
            raise ConfigError(f'points_per_keyframe must be >= 1, got {self.points_per_keyframe}')
        if not self.local_voxel_rel > 0:
            raise ConfigError(f'local_voxel_rel must be > 0, got {self.local_voxel_rel}')
        if self.hot_keyframes < 1:
            raise ConfigError(f'hot_keyframes must be >= 1, got {self.hot_keyframes}')
        if self.image_format not in ('png', 'jpeg'):
            raise ConfigError(f"image_format must be 'png' or 'jpeg', got {self.image_format!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f'jpeg_quality must be in [1, 100], got {self.jpeg_quality}')


@dataclass(frozen=True)
class AlignmentConfig:
    """
    How a window is carried into the world frame, and when its alignment is refused.

    The Sim(3) is fitted to dense depth of the overlap keyframes: the same pixel predicted by
    the previous windows (known in the world) and by the new window (known in its frame).

    :param sample_points: at most this many pixel pairs (over all overlap keyframes).
    :param conf_percentile: per image, pixels below this confidence percentile are not used.
    :param huber_k: Huber threshold of the IRLS fit, in robust residual standard deviations.
    :param iterations: IRLS iterations at most.
    :param min_points: refuse the window with fewer usable pixel pairs than this.
    :param max_residual_ratio: refuse if the robust residual scale exceeds this fraction of
        the median scene depth of the overlap.
    :param inlier_rel: a pair is an inlier if its residual is below this fraction of its depth.
    :param min_inlier_fraction: refuse if fewer (confidence-weighted) pairs are inliers.
    :param max_rotation_deg: refuse if an overlap camera's orientation, as the new window puts
        it in the world, differs from its known one by more than this.
    :param max_center_ratio: refuse if an overlap camera's centre moves by more than this
        fraction of the median scene depth.
    :param min_rank_ratio: refuse if the overlap points are (nearly) collinear: second
        singular value of their covariance below this fraction of the first.
    :param rotation_from: where the rotation comes from: ``cameras`` (the chordal mean of the
        overlap cameras' rotations, as the two predictions give them; the points then fit only
        scale and translation) or ``points`` (Umeyama on the depth points alone). A depth warp
        or tilt, which feed-forward models make per window, pulls a point-only fit by degrees
        over a few nearby overlap cameras; the camera head's rotations do not move with it.
        Measured on the synthetic orbit (60 keyframes, 2 seeds): ATE 0.12 % vs 0.15 %
        (default preset), 0.44 % vs 0.53 % (high), 0.9 % vs 1.6-2.0 % with 4-5 refused
        windows (realistic).
    """

    sample_points: int = 20_000
    conf_percentile: float = 30.0
    huber_k: float = 2.0
    iterations: int = 10
    min_points: int = 200
    max_residual_ratio: float = 0.15
    inlier_rel: float = 0.1
    min_inlier_fraction: float = 0.5
    max_rotation_deg: float = 5.0
    max_center_ratio: float = 0.1
    min_rank_ratio: float = 1e-3
    rotation_from: str = 'cameras'

    def __post_init__(self) -> None:
        if self.rotation_from not in ('points', 'cameras'):
            raise ConfigError(f"rotation_from must be 'points' or 'cameras', got "
                              f'{self.rotation_from!r}')
        if self.sample_points < 3:
            raise ConfigError(f'sample_points must be >= 3, got {self.sample_points}')
        if not 0.0 <= self.conf_percentile < 100.0:
            raise ConfigError(f'conf_percentile must be in [0, 100), got {self.conf_percentile}')
        if not self.huber_k > 0:
            raise ConfigError(f'huber_k must be > 0, got {self.huber_k}')
        if self.iterations < 0:
            raise ConfigError(f'iterations must be >= 0, got {self.iterations}')
        if self.min_points < 3:
            raise ConfigError(f'min_points must be >= 3, got {self.min_points}')
        for name in ('max_residual_ratio', 'inlier_rel', 'max_rotation_deg',
                     'max_center_ratio', 'min_rank_ratio'):
            if not getattr(self, name) > 0:
                raise ConfigError(f'{name} must be > 0, got {getattr(self, name)}')
        if not 0.0 <= self.min_inlier_fraction <= 1.0:
            raise ConfigError(f'min_inlier_fraction must be in [0, 1], got '
                              f'{self.min_inlier_fraction}')


@dataclass(frozen=True)
class RecoveryConfig:
    """
    What happens when a window is refused (its alignment failed or the predictor failed).

    A refused window keeps its keyframes. First it is retried as a *bridge*: the same anchors
    with only the first half of its new keyframes (closer to the anchors, so more overlap), down
    to ``min_bridge_keyframes``. If even that is refused, the link to the map is lost and the
    keyframes start a new map *segment* (its own frame and scale), which a later loop closure
    merges back. Only keyframes that fail as the start of a segment too are given up (counted).

    :param enabled: retry and start segments (False: a refused window's keyframes are lost).
    :param min_bridge_keyframes: fewest new keyframes in a retried window (>= 1).
    :param max_failed_windows: after this many windows in a row for which the predictor did not
        answer at any attempt (exceptions, something that is not a prediction of the frames),
        the mapper raises ``PredictorFailedError``: the model is gone (a server down, a broken
        install), not one window bad. The map built so far stays readable.
    :param min_frame_consistency: a new keyframe must agree with another frame of its window
        (earlier or later: photo sets come in any order): at least this share of its points,
        projected with the window's own poses, must land on the other's depth (within 10 %).
        Catches a frame the model got wrong (wrong rotation, collapsed depth) that the anchor
        alignment cannot see. 0 disables the check.
    :param relative_frame_consistency: ... and at least this fraction of the window's median
        agreement (a wrong frame stands out against its window's own noise level).
    """

    enabled: bool = True
    min_bridge_keyframes: int = 2
    max_failed_windows: int = 2
    min_frame_consistency: float = 0.3
    relative_frame_consistency: float = 0.5

    def __post_init__(self) -> None:
        if self.min_bridge_keyframes < 1:
            raise ConfigError(f'min_bridge_keyframes must be >= 1, got '
                              f'{self.min_bridge_keyframes}')
        if self.max_failed_windows < 1:
            raise ConfigError(f'max_failed_windows must be >= 1, got {self.max_failed_windows}')
        for name in ('min_frame_consistency', 'relative_frame_consistency'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f'{name} must be in [0, 1], got {getattr(self, name)}')


@dataclass(frozen=True)
class LoopConfig:
    """
    Loop closure: place recognition proposes, the model verifies, the pose graph corrects.

    :param enabled: look for revisits at all.
    :param min_similarity: descriptor cosine similarity a candidate needs to be verified.
    :param exclusion_keyframes: a candidate of the query's own segment must be at least this
        many keyframes older than the query (recent keyframes are neighbours, not revisits).
    :param candidates: nearest neighbours searched per query.
    :param max_verifications_per_window: model calls for verification per mapped window.
    :param neighbours: keyframes on each side of the candidate (and before the query) that go
        into the loop window with them, so each side can be aligned to its known poses.
    :param min_covisible: share of the query's points that must land on the candidate's
        depth (within 10 %) in the loop window's prediction: the two must see the same place.
    :param cooldown_keyframes: after an accepted loop, candidates within this many keyframes
        of its candidate are skipped for queries within this many keyframes of its query.
    :param max_drift_rel: within one segment, a loop may move its query by at most this
        fraction of the distance travelled since its candidate (plus a tenth of the scene
        depth): more than that is not drift but a look-alike place the model took for the
        same one (repeated texture, identical rooms).
    :param max_drift_log_scale: ... and rescale the map by at most exp(± this).
    :param alignment: the checks each side of the loop window must pass (as between windows).
    """

    enabled: bool = True
    min_similarity: float = 0.8
    exclusion_keyframes: int = 30
    candidates: int = 5
    max_verifications_per_window: int = 1
    neighbours: int = 1
    min_covisible: float = 0.3
    cooldown_keyframes: int = 8
    max_drift_rel: float = 0.15
    max_drift_log_scale: float = 0.3
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)

    def __post_init__(self) -> None:
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ConfigError(f'min_similarity must be in [-1, 1], got {self.min_similarity}')
        for name in ('exclusion_keyframes', 'neighbours', 'cooldown_keyframes',
                     'max_verifications_per_window'):
            if getattr(self, name) < 0:
                raise ConfigError(f'{name} must be >= 0, got {getattr(self, name)}')
        if self.candidates < 1:
            raise ConfigError(f'candidates must be >= 1, got {self.candidates}')
        if not 0.0 <= self.min_covisible <= 1.0:
            raise ConfigError(f'min_covisible must be in [0, 1], got {self.min_covisible}')
        for name in ('max_drift_rel', 'max_drift_log_scale'):
            if not getattr(self, name) > 0:
                raise ConfigError(f'{name} must be > 0, got {getattr(self, name)}')


@dataclass(frozen=True)
class LocalizationConfig:
    """
    Localization mode: each keyframe is placed against the map, which is not extended.

    A keyframe's place descriptor finds map keyframes that look alike; each candidate is then
    verified like a loop (``LoopConfig``'s ``neighbours``, ``min_covisible`` and
    ``alignment``): the model predicts the candidate, its neighbours and the keyframe
    together, the candidate side must align with the map's stored points, and the keyframe's
    points must land on the candidate's depth. The first candidate that passes places it.

    :param min_similarity: descriptor cosine similarity a candidate needs (lower than loop
        closure's: the verification decides, and a robot that is lost wants recall).
    :param candidates: map keyframes proposed per keyframe, most similar first.
    :param max_verifications: candidates verified per keyframe at most (model calls).
    """

    min_similarity: float = 0.6
    candidates: int = 5
    max_verifications: int = 2

    def __post_init__(self) -> None:
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ConfigError(f'min_similarity must be in [-1, 1], got {self.min_similarity}')
        for name in ('candidates', 'max_verifications'):
            if getattr(self, name) < 1:
                raise ConfigError(f'{name} must be >= 1, got {getattr(self, name)}')


@dataclass(frozen=True)
class GraphConfig:
    """
    The keyframe pose graph: how much each edge is trusted, and the solver.

    Sigmas of an edge are in its first keyframe's frame: rotations in degrees, translations as a
    fraction of that keyframe's median scene depth (so they hold at any window scale), scale as
    a log-ratio.

    :param odometry_rot_deg: rotation sigma of an edge between keyframes of one window (also
        the floor of alignment and loop edges).
    :param odometry_trans_rel: translation sigma of such an edge / median depth.
    :param odometry_log_scale: log-scale sigma of such an edge (one window shares one scale).
    :param min_alignment_rel: floor of the translation / log-scale sigma of alignment and loop
        edges, which otherwise follow the alignment's robust residual.
    :param optimize_at_end: optimise the whole graph when the stream ends (``flush``), loops or
        not: windows measure the keyframes they share again, and the optimisation averages it.
    :param solver: the optimiser's settings (robust kernel of loop edges, LM parameters).
    """

    odometry_rot_deg: float = 0.3
    odometry_trans_rel: float = 0.005
    odometry_log_scale: float = 0.003
    min_alignment_rel: float = 0.003
    optimize_at_end: bool = True
    solver: PoseGraphConfig = field(default_factory=PoseGraphConfig)

    def __post_init__(self) -> None:
        for name in ('odometry_rot_deg', 'odometry_trans_rel', 'odometry_log_scale',
                     'min_alignment_rel'):
            if not getattr(self, name) > 0:
                raise ConfigError(f'{name} must be > 0, got {getattr(self, name)}')


@dataclass(frozen=True)
class MetricScaleConfig:
    """
    How each map segment's unit becomes metres (see ``vggt_mapper.engine.metric_scale``).

    :param source: ``odometry`` (from the frames' ``odom_from_camera``; the default, and a
        no-op for frames without one), ``camera_height`` (a known camera height above a
        detected floor plane) or ``fixed`` (``MapperConfig.scale`` only, taken as metric).
        Without a metric sample, a ``MapperConfig.scale`` other than 1 is taken as metric.
    :param min_motion_m: least odometry translation between the two keyframes of a pair,
        metres (shorter pairs are dominated by noise; rotation on the spot gives none).
    :param max_samples: the estimate is the median of the newest this many pairs (or keyframes
        for ``camera_height``): a sliding set that follows the map's slow scale drift.
    :param min_samples: samples needed before a segment is metric.
    :param camera_height_m: the camera's height above the floor, metres (``camera_height``).
    :param max_floor_tilt_deg: the floor's normal is at most this far from "down".
    """

    source: str = 'odometry'
    min_motion_m: float = 0.8
    max_samples: int = 50
    min_samples: int = 5
    camera_height_m: float = 0.0
    max_floor_tilt_deg: float = 30.0

    def __post_init__(self) -> None:
        if self.source not in SCALE_SOURCES:
            raise ConfigError(f'scale source must be one of {SCALE_SOURCES}, got '
                              f'{self.source!r}')
        if not self.min_motion_m > 0:
            raise ConfigError(f'min_motion_m must be > 0, got {self.min_motion_m}')
        if self.min_samples < 1 or self.max_samples < self.min_samples:
            raise ConfigError(f'need 1 <= min_samples <= max_samples, got {self.min_samples} '
                              f'and {self.max_samples}')
        if self.source == 'camera_height' and not self.camera_height_m > 0:
            raise ConfigError(f'scale source camera_height needs camera_height_m > 0 (metres), '
                              f'got {self.camera_height_m}')
        if not 0 < self.max_floor_tilt_deg < 90:
            raise ConfigError(f'max_floor_tilt_deg must be in (0, 90), got '
                              f'{self.max_floor_tilt_deg}')


@dataclass(frozen=True)
class MapperConfig:
    """
    Everything the engine needs besides a predictor.

    :param window_size: keyframes per window sent to the predictor.
    :param overlap: keyframes shared by consecutive windows (used for alignment).
    :param first_window_size: keyframes of the very first window, None for ``window_size``. A
        smaller first window gives a live map sooner (it needs fewer keyframes and a shorter
        model call); every later window has ``window_size`` keyframes.
    :param scale: factor applied to the first window's arbitrary unit (set it to make the map
        metric when the true scale is known; see ``metric``).
    :param keyframes: keyframe selection settings.
    :param map: map building settings.
    :param alignment: window alignment settings.
    :param store: what each keyframe keeps (points budget, images).
    :param recovery: refused windows: bridges and new segments.
    :param loops: loop closure.
    :param graph: the pose graph's edge sigmas and solver.
    :param localization: localization mode (placing keyframes in a loaded map).
    :param metric: how segments become metric (odometry, camera height, fixed scale).
    """

    window_size: int = 16
    overlap: int = 4
    first_window_size: int | None = None
    scale: float = 1.0
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    map: MapConfig = field(default_factory=MapConfig)  # noqa: A003 (public API name)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    loops: LoopConfig = field(default_factory=LoopConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    localization: LocalizationConfig = field(default_factory=LocalizationConfig)
    metric: MetricScaleConfig = field(default_factory=MetricScaleConfig)

    def __post_init__(self) -> None:
        if self.window_size < 2:
            raise ConfigError(f'window_size must be >= 2, got {self.window_size}')
        if not 1 <= self.overlap < self.window_size:
            raise ConfigError(f'overlap must be in [1, window_size - 1] = '
                              f'[1, {self.window_size - 1}], got {self.overlap}')
        first = self.first_window_size
        if first is not None and not self.overlap < first <= self.window_size:
            # Above the overlap: the second window's anchors are all from the first window.
            raise ConfigError(f'first_window_size must be in [overlap + 1, window_size] = '
                              f'[{self.overlap + 1}, {self.window_size}], got {first}')
        if not self.scale > 0:
            raise ConfigError(f'scale must be > 0, got {self.scale}')


@dataclass(frozen=True)
class OccupancyConfig:
    """
    How the 2D occupancy grid is built (``vggt_mapper.engine.occupancy``, ``engine.floor``).

    Lengths are absolute, in map units (the engine's world units: metres only when the map is
    metric, ``MapperConfig.scale``), or None (the default) for a length relative to the scene:
    to the *scene scale* (median distance from a map point to its nearest keyframe camera) or
    to the *camera height* (the keyframe cameras' median height above the floor), so the
    defaults hold whatever the map's scale.

    :param resolution: cell edge; None: ``resolution_rel`` × scene scale.
    :param resolution_rel: cell edge relative to the scene scale (0.02: 5 cm in a room seen
        from 2.5 m).
    :param min_obstacle_height: lowest obstacle height above the floor (lower: floor, cables,
        depth noise); None: ``min_obstacle_height_rel`` × camera height.
    :param min_obstacle_height_rel: 0.1: 13 cm for a camera 1.3 m above the floor.
    :param max_obstacle_height: highest obstacle height above the floor (higher: ceiling,
        lamps, the robot passes under); None: ``max_obstacle_height_rel`` × camera height.
    :param max_obstacle_height_rel: 1.2: 1.56 m for a camera 1.3 m above the floor.
    :param min_hits: fused map points in a cell's obstacle band that make it occupied (2: a
        lone outlier does not).
    :param max_range_rel: points and rays farther than this × scene scale from their (nearest)
        keyframe camera are ignored: far depth is the least reliable, and outliers would
        stretch the grid.
    :param bearing_bin_deg: angular width of the bins a keyframe's rays are grouped in; each
        bin's free area stops at its nearest obstacle (a virtual laser scan). About the angle
        between neighbouring rays: finer leaves gaps, coarser lets one hit shade more.
    :param floor_gap_rel: floor seen beyond an obstacle is free where a keyframe saw it without
        a gap longer than this fraction of its distance (a longer gap is the shadow of
        something standing there: 0.1 is the shadow of one a tenth of the camera height tall).
    :param floor_tolerance_rel: distance of a floor inlier from the plane, × scene scale.
    :param max_floor_tilt_deg: the floor's normal is searched within this angle of the
        cameras' mean image-up direction (images roughly upright on average).
    :param min_floor_share: the share of the (sampled) points a plane needs to be the floor.
    :param floor_trials: RANSAC hypotheses drawn per plane search.
    :param max_fit_points: points sampled for the floor fit and the scene scale.
    :param max_cells: a grid of more cells is refused (6 bytes a cell while it is built).
    :param seed: seed of the sampling and of RANSAC.
    """

    resolution: float | None = None
    resolution_rel: float = 0.02
    min_obstacle_height: float | None = None
    min_obstacle_height_rel: float = 0.1
    max_obstacle_height: float | None = None
    max_obstacle_height_rel: float = 1.2
    min_hits: int = 2
    max_range_rel: float = 4.0
    bearing_bin_deg: float = 1.0
    floor_gap_rel: float = 0.1
    floor_tolerance_rel: float = 0.015
    max_floor_tilt_deg: float = 30.0
    min_floor_share: float = 0.05
    floor_trials: int = 1000
    max_fit_points: int = 20_000
    max_cells: int = 16_000_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ('resolution', 'min_obstacle_height', 'max_obstacle_height'):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f'{name} must be > 0 or None, got {value}')
        for name in ('resolution_rel', 'min_obstacle_height_rel', 'max_obstacle_height_rel',
                     'max_range_rel', 'floor_gap_rel', 'floor_tolerance_rel'):
            if not getattr(self, name) > 0:
                raise ConfigError(f'{name} must be > 0, got {getattr(self, name)}')
        band = self._band_or_none()
        if band is not None and not band[0] < band[1]:
            raise ConfigError(f'the minimum obstacle height ({band[0]}) must be below the '
                              f'maximum ({band[1]})')
        if not 0 < self.bearing_bin_deg <= 45:
            raise ConfigError(f'bearing_bin_deg must be in (0, 45], got {self.bearing_bin_deg}')
        if not 0 <= self.max_floor_tilt_deg < 90:
            raise ConfigError(f'max_floor_tilt_deg must be in [0, 90), got '
                              f'{self.max_floor_tilt_deg}')
        if not 0 < self.min_floor_share <= 1:
            raise ConfigError(f'min_floor_share must be in (0, 1], got {self.min_floor_share}')
        for name in ('min_hits', 'floor_trials', 'max_cells'):
            if getattr(self, name) < 1:
                raise ConfigError(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.max_fit_points < MIN_FLOOR_POINTS:
            raise ConfigError(f'max_fit_points must be >= {MIN_FLOOR_POINTS}, got '
                              f'{self.max_fit_points}')

    def _band_or_none(self) -> tuple[float, float] | None:
        """Both band limits when they are of one kind (absolute or relative), else None."""
        if self.min_obstacle_height is not None and self.max_obstacle_height is not None:
            return self.min_obstacle_height, self.max_obstacle_height
        if self.min_obstacle_height is None and self.max_obstacle_height is None:
            return self.min_obstacle_height_rel, self.max_obstacle_height_rel
        return None

    def obstacle_band(self, camera_height: float) -> tuple[float, float]:
        """
        Return the obstacle heights above the floor, in map units.

        :param camera_height: the cameras' median height above the floor.
        :return: ``(min_height, max_height)``.
        :raises OccupancyError: if the minimum is not below the maximum.
        """
        low = (self.min_obstacle_height if self.min_obstacle_height is not None
               else self.min_obstacle_height_rel * camera_height)
        high = (self.max_obstacle_height if self.max_obstacle_height is not None
                else self.max_obstacle_height_rel * camera_height)
        if not low < high:
            raise OccupancyError(f'the minimum obstacle height ({low:.4g}) is not below the '
                                 f'maximum ({high:.4g}) for a camera height of '
                                 f'{camera_height:.4g}; set both heights in map units')
        return low, high
