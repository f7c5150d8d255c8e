"""Typed, validated configuration of the mapping engine."""

from __future__ import annotations

from dataclasses import dataclass, field

from vggt_mapper.engine.errors import ConfigError

__all__ = ['KeyframeConfig', 'MapConfig', 'MapperConfig']


@dataclass(frozen=True)
class KeyframeConfig:
    """
    When a frame becomes a keyframe.

    :param min_parallax_px: median optical-flow displacement (pixels, at the tracking
        resolution) of tracked corners since the last keyframe that makes a new keyframe.
    :param min_gap: at least this many frames between keyframes (1 = consecutive allowed).
    :param max_gap: a keyframe is forced after this many frames, whatever the parallax.
    :param track_width: frames are downscaled to this width (pixels) for corner tracking.
    """

    min_parallax_px: float = 12.0
    min_gap: int = 1
    max_gap: int = 30
    track_width: int = 320

    def __post_init__(self) -> None:
        if self.min_parallax_px < 0:
            raise ConfigError(f'min_parallax_px must be >= 0, got {self.min_parallax_px}')
        if self.min_gap < 1:
            raise ConfigError(f'min_gap must be >= 1, got {self.min_gap}')
        if self.max_gap < self.min_gap:
            raise ConfigError(f'max_gap ({self.max_gap}) must be >= min_gap ({self.min_gap})')
        if self.track_width < 32:
            raise ConfigError(f'track_width must be >= 32 pixels, got {self.track_width}')


@dataclass(frozen=True)
class MapConfig:
    """
    How predicted depth becomes map points.

    :param conf_percentile: drop the pixels below this percentile of depth confidence in each
        keyframe (0-100, like the official demo's ``conf_thres``).
    :param conf_min: absolute floor on depth confidence (VGGT confidences are >= 1).
    :param voxel_size: edge of the merging voxel grid in world units (0 disables merging).
    :param max_points: cap on the merged map; the voxel grid coarsens to stay below it.
    :param pixel_stride: keep every n-th pixel in each direction before filtering.
    """

    conf_percentile: float = 50.0
    conf_min: float = 1.0
    voxel_size: float = 0.01
    max_points: int = 2_000_000
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
    """

    window_size: int = 8
    overlap: int = 3
    scale: float = 1.0
    keyframes: KeyframeConfig = field(default_factory=KeyframeConfig)
    map: MapConfig = field(default_factory=MapConfig)

    def __post_init__(self) -> None:
        if self.window_size < 2:
            raise ConfigError(f'window_size must be >= 2, got {self.window_size}')
        if not 1 <= self.overlap < self.window_size:
            raise ConfigError(f'overlap must be in [1, window_size - 1] = '
                              f'[1, {self.window_size - 1}], got {self.overlap}')
        if not self.scale > 0:
            raise ConfigError(f'scale must be > 0, got {self.scale}')
