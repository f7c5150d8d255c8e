"""Typed, validated settings of the web server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import tempfile

from vggt_mapper.engine.config import KeyframeConfig, MapperConfig

__all__ = ['WebSettings', 'default_mapper_config']


def default_mapper_config() -> MapperConfig:
    """
    Mapper settings for uploads: every uploaded image or sampled video frame is a keyframe.

    The user already chose the frames (or the sampling rate), so the parallax test is off; the
    engine's windows (``MapperConfig`` defaults) keep memory bounded for any sequence length.

    :return: the configuration.
    """
    return MapperConfig(keyframes=KeyframeConfig(
        min_parallax_px=0.0, duplicate_px=0.0, min_gap=1, max_gap=1))


@dataclass(frozen=True)
class WebSettings:
    """
    Everything the web app needs besides a predictor.

    :param host: interface to bind; 127.0.0.1 keeps the server private to this machine.
    :param port: TCP port (0 picks a free one).
    :param max_upload_mb: largest total size of one upload (all files together), in MiB.
    :param max_files: most image files in one upload.
    :param max_frames: most frames kept from one video (sampling stops there).
    :param video_fps: default frames per second sampled from a video (official demo: 1).
    :param queue_size: most requests waiting for the model; more are refused at once.
    :param workdir_root: where upload working folders live (None: a folder in the temp dir).
    :param workdir_max_age_s: working folders older than this are deleted.
    :param sky_model_path: ONNX sky-segmentation model for "Filter Sky" (None: unavailable).
    :param max_glb_points: the 3D viewer's point budget; more points are subsampled evenly.
    :param mapper: the mapping engine's settings (windows, overlap, map).
    """

    host: str = '127.0.0.1'
    port: int = 7860
    max_upload_mb: float = 500.0
    max_files: int = 500
    max_frames: int = 1000
    video_fps: float = 1.0
    queue_size: int = 20
    workdir_root: Path | None = None
    workdir_max_age_s: float = 3600.0
    sky_model_path: Path | None = None
    max_glb_points: int = 1_000_000
    mapper: MapperConfig = field(default_factory=default_mapper_config)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f'port must be in [0, 65535], got {self.port}')
        if not self.max_upload_mb > 0:
            raise ValueError(f'max_upload_mb must be > 0, got {self.max_upload_mb}')
        for name in ('max_files', 'max_frames', 'queue_size', 'max_glb_points'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if not 0 < self.video_fps <= 120:
            raise ValueError(f'video_fps must be in (0, 120], got {self.video_fps}')
        if not self.workdir_max_age_s > 0:
            raise ValueError(f'workdir_max_age_s must be > 0, got {self.workdir_max_age_s}')

    @property
    def workdir_path(self) -> Path:
        """Return the folder that holds the upload working folders."""
        if self.workdir_root is not None:
            return Path(self.workdir_root)
        return Path(tempfile.gettempdir()) / 'vggt_mapper_web'

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)
