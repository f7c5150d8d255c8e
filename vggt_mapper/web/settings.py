"""Typed, validated settings of the web server."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
    :param workdir_root: the folder in which the server makes its private working root (None:
        the system temp dir); it must be a real folder owned by this user.
    :param workdir_max_age_s: working folders older than this are deleted (on a timer).
    :param sky_model_path: ONNX sky-segmentation model for "Filter Sky" (None: unavailable).
    :param max_glb_points: the 3D viewer's point budget; more points are subsampled evenly.
    :param mapper: the mapping engine's settings (windows, overlap, map); videos are mapped in
        its windows.
    :param frames_per_pass: most frames the model sees in one pass (an image set up to this size
        is reconstructed in one pass); None derives it from the device (``capacity.py``).
    :param model_warning: a warning shown on the page (e.g. that the model is random).
    :param window_answers_kept: ``/predict_window`` answers kept on disk for their clients to
        download (older ones are deleted; Gradio keeps no copy of them).
    :param scenes_cached: reconstructions kept in memory for the viewer controls (the others
        are read back from their working folder).
    :param session_capacity: browser/client sessions whose Gradio state is kept in memory.
    :param shutdown_grace_s: on shutdown, how long a running model pass may take to finish
        before the process exits anyway.
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
    frames_per_pass: int | None = None
    model_warning: str = ''
    window_answers_kept: int = 32
    scenes_cached: int = 4
    session_capacity: int = 1000
    shutdown_grace_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f'port must be in [0, 65535], got {self.port}')
        if not self.max_upload_mb > 0:
            raise ValueError(f'max_upload_mb must be > 0, got {self.max_upload_mb}')
        for name in ('max_files', 'max_frames', 'queue_size', 'max_glb_points',
                     'window_answers_kept', 'scenes_cached', 'session_capacity'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if not 0 < self.video_fps <= 120:
            raise ValueError(f'video_fps must be in (0, 120], got {self.video_fps}')
        if not self.workdir_max_age_s > 0:
            raise ValueError(f'workdir_max_age_s must be > 0, got {self.workdir_max_age_s}')
        if self.frames_per_pass is not None and self.frames_per_pass < 2:
            raise ValueError(f'frames_per_pass must be >= 2 (or None), got '
                             f'{self.frames_per_pass}')
        if not self.shutdown_grace_s >= 0:
            raise ValueError(f'shutdown_grace_s must be >= 0, got {self.shutdown_grace_s}')

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)
