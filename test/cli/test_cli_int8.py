"""``vggt-mapper map --int8`` reaches the predictor spec (and its validation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
import pytest

from vggt_mapper.cli import main


def test_int8_flag_reaches_the_predictor_spec(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / 'frames').mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / 'frames' / '0.png')
    status = main(['map', str(tmp_path / 'frames'), '-o', str(tmp_path / 'out'), '--int8',
                   '--device', 'cuda'])

    err = capsys.readouterr().err
    assert status != 0
    assert 'int8 is a CPU mode' in err and 'Traceback' not in err
