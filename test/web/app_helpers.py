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
