"""
Recordings and predictors for the cluster tests, importable by Ray workers (on PYTHONPATH).

The recordings are short renders of ``cli_fakes.orbit()``, which ``cli_fakes``'s synthetic
predictor answers from the ground truth: the real engine maps them in seconds without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
from pathlib import Path

import cli_fakes
import numpy as np
from numpy.typing import NDArray

from vggt_mapper.predictor.base import WindowPrediction
from vggt_mapper.synthetic.predictor import SyntheticPredictor

#: Map options that make the fakes' recordings map in a few windows.
MAP_OPTIONS = ['--predictor', 'cluster_fakes:counting_predictor', '--window-size', '4',
               '--overlap', '2', '--no-loops']
FOLDER_FRAMES = 10


def state_dir() -> Path:
    """Return the folder the test shares with the workers (``$VGGT_TEST_STATE``)."""
    return Path(os.environ['VGGT_TEST_STATE'])


def write_recordings(root: Path) -> Path:
    """
    Write six recordings and a manifest: three image folders, two bags, one broken bag.

    :param root: an empty folder.
    :return: the manifest (bags with their ``--topic``, one folder with its own options).
    """
    for index in range(3):
        folder = root / 'folders' / f'walk{index}'
        folder.mkdir(parents=True)
        cli_fakes.write_frames(folder, FOLDER_FRAMES)
    for index in range(2):
        cli_fakes.write_bag(root / 'bags' / f'bag{index}')
    broken = root / 'bags' / 'broken'
    broken.mkdir()
    (broken / 'metadata.yaml').write_text('rosbag2_bagfile_information: [unterminated\n')
    manifest = root / 'fleet.txt'
    manifest.write_text(
        '# the fleet of the day: PATH [map options]\n'
        'folders/walk0\n'
        'folders/walk1 --every 1\n'
        'folders/walk2\n'
        'bags/bag0 --topic /camera/image_raw\n'
        'bags/bag1 --topic /camera/image_raw\n'
        'bags/broken --topic /camera/image_raw   # its metadata.yaml is cut\n')
    return manifest


def counting_predictor() -> SyntheticPredictor:
    """Build the synthetic predictor, noting each build in ``$VGGT_TEST_STATE/builds``."""
    with (state_dir() / 'builds').open('a') as stream:
        stream.write(f'{os.getpid()}\n')
    return cli_fakes.synthetic_predictor()


class _DiesOnce:
    """Kills its worker process on the first window it ever sees (a crash, an OOM kill)."""

    def __init__(self) -> None:
        self.inner = cli_fakes.synthetic_predictor()

    def predict(self, frames_rgb: Sequence[NDArray[np.uint8]]) -> WindowPrediction:
        flag = state_dir() / 'died'
        if not flag.exists():
            flag.write_text(str(os.getpid()))
            os._exit(3)  # no cleanup, no exception: the process is gone
        return self.inner.predict(frames_rgb)


def dies_once_predictor() -> _DiesOnce:
    """Build a predictor whose first window kills the worker."""
    return _DiesOnce()


#: Model image width of ``tiny_predictor``: the tiny model answers a window in a blink.
TINY_SIZE = 112


def tiny_predictor() -> object:
    """Build the tiny VGGT (synthetic weights) on one CPU thread, at a small image size."""
    import torch

    from vggt_mapper.model import VGGTConfig
    from vggt_mapper.model.synthetic import build_vggt
    from vggt_mapper.predictor.vggt_predictor import VGGTPredictor

    torch.set_num_threads(1)  # two replicas share two cores
    return VGGTPredictor(build_vggt(VGGTConfig.tiny()), device='cpu', target_size=TINY_SIZE)
