"""The shipped sample: present, small, reproducible, and mapped by the stand-in predictor."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vggt_mapper.synthetic.make_sample import write_sample
from vggt_mapper.synthetic.sample import SAMPLE_FRAMES, SAMPLE_HW

SAMPLE = Path(__file__).resolve().parents[2] / 'vggt_mapper' / 'data' / 'sample'


def test_sample_is_shipped_small_and_sorted() -> None:
    frames = sorted(SAMPLE.glob('frame_*.jpg'))
    assert len(frames) == SAMPLE_FRAMES
    assert sum(path.stat().st_size for path in SAMPLE.iterdir()) < 2_000_000
    assert (SAMPLE / 'README.md').is_file()
    image = cv2.imread(str(frames[0]))
    assert image.shape[:2] == SAMPLE_HW


def test_sample_regenerates(tmp_path: Path) -> None:
    write_sample(tmp_path, num_frames=3)
    for name in ('frame_000.jpg', 'frame_002.jpg'):
        shipped = cv2.imread(str(SAMPLE / name)).astype(np.int16)
        fresh = cv2.imread(str(tmp_path / name)).astype(np.int16)
        assert np.mean(np.abs(shipped - fresh)) < 1.0
    shipped_truth = (SAMPLE / 'groundtruth_tum.txt').read_text().splitlines()
    fresh_truth = (tmp_path / 'groundtruth_tum.txt').read_text().splitlines()
    assert fresh_truth == shipped_truth[:4]


def test_sample_maps_with_the_stand_in_predictor() -> None:
    from vggt_mapper.engine import Mapper, MapperConfig
    from vggt_mapper.synthetic.evaluation import trajectory_error
    from vggt_mapper.synthetic.sample import sample_predictor

    predictor = sample_predictor(model_width=168)
    mapper = Mapper(MapperConfig(), predictor)
    for index, path in enumerate(sorted(SAMPLE.glob('frame_*.jpg'))):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        mapper.add_frame(rgb, index * 33_333_333, f'f{index:05d}')
    results = mapper.flush()
    assert results and all(result.accepted for result in results)
    assert mapper.stats.windows_rejected == 0
    error = trajectory_error(mapper.trajectory(), predictor.sequence)
    assert mapper.stats.windows_done >= 2
    assert error.rmse_percent < 1.0
