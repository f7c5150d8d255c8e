"""Typed, validated configuration of the mapping engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from vggt_mapper.engine.errors import ConfigError

__all__ = ['AlignmentConfig', 'KeyframeConfig', 'MapConfig', 'MapperConfig']


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
    :param active_keyframes: how many recent keyframes keep their points in keyframe-local
        coordinates (so a pose correction moves them); older keyframes' points live only in
        the voxel grid. Bounds the per-keyframe store.

    Memory policy: every accepted keyframe's points are fused into the voxel grid at once
    (per-voxel sums, so a correction subtracts and re-adds them); the grid never holds more
    than ``max_points`` voxels (it doubles its voxel edge when it would), and only the last
    ``active_keyframes`` keyframes keep a local copy of their points.
    """

    conf_percentile: float = 50.0
    conf_min: float = 1.0
    voxel_size: float = 0.01
    max_points: int = 400_000
    pixel_stride: int = 2
    active_keyframes: int = 16

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
        if self.active_keyframes < 0:
            raise ConfigError(f'active_keyframes must be >= 0, got {self.active_keyframes}')


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

    def __post_init__(self) -> None:
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
class MapperConfig:
    """
    Everything the engine needs besides a predictor.

    :param window_size: keyframes per window sent to the predictor.
    :param overlap: keyframes shared by consecutive windows (used for alignment).
    :param scale: factor applied to the first window's arbitrary unit (set it to make the map
        metric when the true scale is known).
    :param keyframes: keyframe selection settings.
    :param map: map building settings.
    :param alignment: window alignment settings.
    """

    window_size: int = 16
    overlap: int = 4
    scale: float = 1.0
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    map: MapConfig = field(default_factory=MapConfig)  # noqa: A003 (public API name)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)

    def __post_init__(self) -> None:
        if self.window_size < 2:
            raise ConfigError(f'window_size must be >= 2, got {self.window_size}')
        if not 1 <= self.overlap < self.window_size:
            raise ConfigError(f'overlap must be in [1, window_size - 1] = '
                              f'[1, {self.window_size - 1}], got {self.overlap}')
        if not self.scale > 0:
            raise ConfigError(f'scale must be > 0, got {self.scale}')
