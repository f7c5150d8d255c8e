"""Helpers shared by the web tests (imported by ``conftest.py`` and the test modules)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
import socket

import numpy as np

from vggt_mapper.synthetic.predictor import PredictionNoise, SyntheticSequence
from vggt_mapper.web.settings import default_mapper_config, WebSettings

NUM_FRAMES = 12
MODEL_WIDTH = 154  # a multiple of 14, small so that tests stay fast
EXACT = PredictionNoise(0.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # deterministic answers


def free_port() -> int:
    """Return a TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A running server and what it was built from."""

    url: str
    settings: WebSettings
    sequence: SyntheticSequence
    image_paths: list[Path]
    app: object


def web_settings(root: Path, **changes: object) -> WebSettings:
    """Test settings: free port, private working folders, windows of 4 keyframes."""
    mapper = replace(default_mapper_config(), window_size=4, overlap=2)
    base = WebSettings(port=free_port(), workdir_root=root, queue_size=32, mapper=mapper)
    return replace(base, **changes)  # type: ignore[arg-type]


def glb_points(path: str | Path) -> np.ndarray:
    """Return the vertices of every point cloud in a GLB file."""
    import trimesh

    scene = trimesh.load(str(path), file_type='glb', force='scene')
    clouds = [g.vertices for g in scene.geometry.values() if isinstance(g, trimesh.PointCloud)]
    return np.concatenate(clouds) if clouds else np.zeros((0, 3))


def glb_camera_count(path: str | Path) -> int:
    """Count the camera frustum meshes in a GLB file."""
    import trimesh

    scene = trimesh.load(str(path), file_type='glb', force='scene')
    return sum(1 for name in scene.geometry if str(name).startswith('camera_'))


def make_synthetic_predictor() -> object:
    """Build the test server's predictor, for ``vggt-mapper serve --predictor app_helpers:...``."""
    from vggt_mapper.synthetic.predictor import SyntheticPredictor

    sequence = SyntheticSequence.orbit(NUM_FRAMES, step_m=0.05)
    for index in range(len(sequence)):
        sequence.frame(index)  # the predictor recognises only frames its sequence rendered
    return SyntheticPredictor(sequence, noise=EXACT, model_width=MODEL_WIDTH)


def load_compact() -> object:
    """
    Load ``compact`` from ``tools/derive_official_api.py`` (a script, not a package module).

    :return: the function that reduces a ``view_api`` dict to the compared contract.
    """
    import importlib.util

    path = Path(__file__).parent / 'tools' / 'derive_official_api.py'
    spec = importlib.util.spec_from_file_location('derive_official_api', path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compact


def covisibility(sequence: SyntheticSequence, i: int, j: int, grid: tuple[int, int] = (12, 16)
                 ) -> float:
    """
    Return the share of frame ``j``'s surface points that frame ``i`` sees (ground truth).

    A coarse grid of ``j``'s true depth is carried into ``i``'s camera; a point counts when it
    lands inside ``i``'s image with a depth within 5 % of ``i``'s true depth there.
    """
    height, width = sequence.height, sequence.width
    k_matrix = sequence.intrinsics
    rows, cols = np.mgrid[height // (2 * grid[0]):height:height // grid[0],
                          width // (2 * grid[1]):width:width // grid[1]]
    depth_j = sequence.depth(j)[rows, cols].ravel()
    usable = np.isfinite(depth_j) & (depth_j > 0)
    u, v, z = cols.ravel()[usable], rows.ravel()[usable], depth_j[usable]
    points_cam_j = np.stack([(u - k_matrix[0, 2]) / k_matrix[0, 0] * z,
                             (v - k_matrix[1, 2]) / k_matrix[1, 1] * z, z], axis=1)
    cam_i_from_cam_j = (np.linalg.inv(sequence.poses_world_from_cam[i])
                        @ sequence.poses_world_from_cam[j])
    points_i = points_cam_j @ cam_i_from_cam_j[:3, :3].T + cam_i_from_cam_j[:3, 3]
    z_i = points_i[:, 2]
    front = z_i > 1e-6
    safe_z = np.where(front, z_i, 1.0)
    u_i = k_matrix[0, 0] * points_i[:, 0] / safe_z + k_matrix[0, 2]
    v_i = k_matrix[1, 1] * points_i[:, 1] / safe_z + k_matrix[1, 2]
    inside = front & (u_i >= 0) & (u_i <= width - 1) & (v_i >= 0) & (v_i <= height - 1)
    col_i = np.clip(np.round(u_i).astype(int), 0, width - 1)
    row_i = np.clip(np.round(v_i).astype(int), 0, height - 1)
    seen = inside & (np.abs(sequence.depth(i)[row_i, col_i] - z_i) < 0.05 * z_i)
    return float(seen.sum() / max(int(usable.sum()), 1))


class CovisibilityPredictor:
    """
    A stand-in that fails like VGGT where views do not overlap.

    It answers from ground truth (``SyntheticPredictor``) for the frames of a window that are
    connected to the window's first frame through pairs that see each other (``covisibility``
    at least ``min_overlap``); every other frame gets a wildly wrong pose (tens of degrees, a
    translation of the order of the scene depth), as a feed-forward model gives a view that
    shares nothing with the rest of its window.

    :param inner: the ground-truth predictor.
    :param min_overlap: the covisibility below which a pair does not connect.
    """

    def __init__(self, inner: object, min_overlap: float = 0.7) -> None:
        self.inner = inner
        self.sequence: SyntheticSequence = inner.sequence  # type: ignore[attr-defined]
        self.min_overlap = min_overlap
        self.rng = np.random.default_rng(7)
        self.failed_frames = 0
        self._pairs: dict[tuple[int, int], float] = {}

    def _overlap(self, i: int, j: int) -> float:
        if (i, j) not in self._pairs:
            self._pairs[(i, j)] = min(covisibility(self.sequence, i, j),
                                      covisibility(self.sequence, j, i))
        return self._pairs[(i, j)]

    def _connected(self, indices: list[int]) -> set[int]:
        reached, frontier = {0}, [0]
        while frontier:
            slot = frontier.pop()
            for other in range(len(indices)):
                if other not in reached and self._overlap(
                        indices[slot], indices[other]) >= self.min_overlap:
                    reached.add(other)
                    frontier.append(other)
        return reached

    def predict(self, frames_rgb: list[np.ndarray]) -> object:
        """Predict a window; frames not connected to frame 0 get wrong poses."""
        import cv2

        prediction = self.inner.predict(frames_rgb)  # type: ignore[attr-defined]
        indices = [self.sequence.index_of(frame) for frame in frames_rgb]
        connected = self._connected(indices)
        cams = prediction.cam_from_window.copy()
        depth_unit = float(np.median(prediction.depth[0]))
        for slot in range(len(indices)):
            if slot in connected:
                continue
            self.failed_frames += 1
            axis = self.rng.normal(size=3)
            angle = np.radians(self.rng.uniform(30.0, 90.0))
            rotation, _ = cv2.Rodrigues(axis / np.linalg.norm(axis) * angle)
            cams[slot, :, :3] = rotation @ cams[slot, :, :3]
            cams[slot, :, 3] = rotation @ cams[slot, :, 3] + depth_unit * self.rng.normal(size=3)
        return replace(prediction, cam_from_window=cams)


def glb_colors(path: str | Path) -> np.ndarray:
    """Return the RGB colours (N, 3) uint8 of every point cloud in a GLB file."""
    import trimesh

    scene = trimesh.load(str(path), file_type='glb', force='scene')
    colors = [np.asarray(g.colors)[:, :3] for g in scene.geometry.values()
              if isinstance(g, trimesh.PointCloud)]
    return np.concatenate(colors) if colors else np.zeros((0, 3), np.uint8)


class PaintedPredictor:
    """
    Paints the left quarter of every model image black and the right quarter white.

    The colours of those pixels' points become pure background for the black/white filters.
    """

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def predict(self, frames_rgb: list[np.ndarray]) -> object:
        """Predict with the inner predictor, then paint its images."""
        prediction = self.inner.predict(frames_rgb)  # type: ignore[attr-defined]
        images = prediction.images_rgb.copy()
        quarter = images.shape[2] // 4
        images[:, :, :quarter] = 0
        images[:, :, -quarter:] = 255
        return replace(prediction, images_rgb=images)


class GatedPredictor:
    """Holds each model pass until ``release`` is set; ``entered`` says one has started."""

    def __init__(self, inner: object) -> None:
        import threading

        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def predict(self, frames_rgb: list[np.ndarray]) -> object:
        """Wait for the release (at most 10 minutes), then predict."""
        self.entered.set()
        self.release.wait(600)
        return self.inner.predict(frames_rgb)  # type: ignore[attr-defined]


def make_client(url: str) -> object:
    """Open a gradio_client session with generous timeouts (tests run on loaded machines)."""
    from gradio_client import Client

    return Client(url, verbose=False, httpx_kwargs={'timeout': 300})
