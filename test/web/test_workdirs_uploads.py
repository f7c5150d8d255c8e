"""Working folders (no client path is ever opened) and upload limits."""

from __future__ import annotations

from pathlib import Path
import time

import cv2
import numpy as np
from PIL import Image
import pytest

from vggt_mapper.web.errors import UploadError, WorkdirError
from vggt_mapper.web.settings import WebSettings
from vggt_mapper.web.uploads import import_upload, iter_frames
from vggt_mapper.web.workdirs import WorkdirRegistry


def test_created_folder_resolves_and_others_do_not(tmp_path: Path) -> None:
    registry = WorkdirRegistry(tmp_path / 'root', max_age_s=60)
    workdir = registry.create()
    assert registry.resolve(workdir.name).path == workdir.path
    assert workdir.images_dir.is_dir()
    forged = tmp_path / 'root' / ('upload_20250101T000000_' + 'a' * 32)
    forged.mkdir()
    for name in (str(workdir.path), '../' + workdir.name, workdir.name + '/..', forged.name,
                 '/etc/passwd', 'None', '', None, 42):
        with pytest.raises(WorkdirError):
            registry.resolve(name)


def test_old_folders_are_deleted(tmp_path: Path) -> None:
    registry = WorkdirRegistry(tmp_path, max_age_s=10)
    old = registry.create()
    assert registry.cleanup(now=time.monotonic() + 11) == [old.name]
    assert not old.path.exists()
    with pytest.raises(WorkdirError, match='expired'):
        registry.resolve(old.name)


def _png(path: Path, value: int = 90) -> str:
    Image.fromarray(np.full((20, 30, 3), value, np.uint8)).save(path)
    return str(path)


def test_images_are_copied_with_safe_names(tmp_path: Path) -> None:
    registry = WorkdirRegistry(tmp_path / 'root', max_age_s=60)
    workdir = registry.create()
    (tmp_path / 'in').mkdir()
    sources = [_png(tmp_path / 'in' / 'b image.png'), _png(tmp_path / 'in' / 'a.PNG', 10)]
    summary = import_upload(workdir, None, sources, 1.0, WebSettings())
    assert [p.name for p in summary.image_paths] == ['a.png', 'b_image.png']
    frames = list(iter_frames(workdir))
    assert [f.name for f in frames] == ['a.png', 'b_image.png']
    assert [f.stamp_ns for f in frames] == [0, 10**9]
    assert frames[0].image_rgb.shape == (20, 30, 3)


def test_frames_of_another_size_are_fitted_to_the_first(tmp_path: Path) -> None:
    registry = WorkdirRegistry(tmp_path / 'root', max_age_s=60)
    first = _png(tmp_path / 'a.png')
    other = tmp_path / 'b.png'
    Image.fromarray(np.full((60, 40, 3), 200, np.uint8)).save(other)
    summary = import_upload(registry.create(), None, [first, str(other)], 1.0, WebSettings())
    assert '1 frames whose size differs' in summary.note
    assert [f.image_rgb.shape for f in iter_frames(registry.resolve(
        summary.image_paths[0].parent.parent.name))] == [(20, 30, 3), (20, 30, 3)]


def test_upload_limits_are_enforced(tmp_path: Path) -> None:
    registry = WorkdirRegistry(tmp_path / 'root', max_age_s=60)
    sources = [_png(tmp_path / f'{i}.png') for i in range(3)]
    with pytest.raises(UploadError, match='limit of 2'):
        import_upload(registry.create(), None, sources, 1.0, WebSettings(max_files=2))
    with pytest.raises(UploadError, match='MiB'):
        import_upload(registry.create(), None, sources, 1.0, WebSettings(max_upload_mb=1e-4))
    (tmp_path / 'bad.png').write_bytes(b'not a png')
    with pytest.raises(UploadError, match='not a readable image'):
        import_upload(registry.create(), None, [str(tmp_path / 'bad.png')], 1.0, WebSettings())
    with pytest.raises(UploadError, match='nothing was uploaded'):
        import_upload(registry.create(), None, None, 1.0, WebSettings())


def _video(path: Path, seconds: float, fps: float = 10.0) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (64, 48))
    for index in range(int(seconds * fps)):
        writer.write(np.full((48, 64, 3), index % 255, np.uint8))
    writer.release()
    return str(path)


@pytest.mark.parametrize(('fps', 'expected'), [(1.0, 4), (2.0, 8), (0.5, 2)])
def test_video_is_sampled_at_the_requested_rate(tmp_path: Path, fps: float,
                                                expected: int) -> None:
    registry = WorkdirRegistry(tmp_path / 'root', max_age_s=60)
    video = _video(tmp_path / 'clip.mp4', seconds=4.0)
    summary = import_upload(registry.create(), video, None, fps, WebSettings())
    assert len(summary.image_paths) == expected
    assert summary.period_ns == int(round(1e9 / fps))


def test_video_frame_limit_keeps_the_first_frames_with_a_note(tmp_path: Path) -> None:
    registry = WorkdirRegistry(tmp_path / 'root', max_age_s=60)
    video = _video(tmp_path / 'clip.mp4', seconds=4.0)
    summary = import_upload(registry.create(), video, None, 10.0, WebSettings(max_frames=5))
    assert len(summary.image_paths) == 5 and 'first 5 frames' in summary.note


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match='video_fps'):
        WebSettings(video_fps=0)
    with pytest.raises(ValueError, match='queue_size'):
        WebSettings(queue_size=0)
    assert WebSettings().host == '127.0.0.1'
