"""Working folders (no client path is ever opened) and upload limits."""

from __future__ import annotations

import os
from pathlib import Path
import stat
import tempfile
import time

import cv2
import numpy as np
from PIL import Image
import pytest

from vggt_mapper.predictor.base import Predictor
from vggt_mapper.web.errors import UnsafeFolderError, UploadError, WorkdirError
from vggt_mapper.web.settings import WebSettings
from vggt_mapper.web.state import ServerState
from vggt_mapper.web.uploads import import_upload, iter_frames
from vggt_mapper.web.workdirs import make_private_root, WorkdirRegistry


def _no_model() -> Predictor:
    raise AssertionError('these tests never run the model')


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


def test_private_root_is_new_private_and_unpredictable(tmp_path: Path) -> None:
    first, second = make_private_root(tmp_path), make_private_root(tmp_path)
    assert first != second and first.parent == second.parent == tmp_path.resolve()
    assert stat.S_IMODE(first.stat().st_mode) == 0o700
    assert first.name.startswith('vggt_mapper_web_')


def test_a_planted_symlink_in_the_temp_dir_is_not_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another local user plants the old, predictable $TMPDIR/vggt_mapper_web → their folder.
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    victim = tmp_path / 'victim'
    victim.mkdir()
    (tmp_path / 'vggt_mapper_web').symlink_to(victim)
    state = ServerState(_no_model, WebSettings())
    try:
        workdir = state.upload(None, [_png(tmp_path / 'a.png')], 1.0).workdir
        assert state.root.parent == tmp_path.resolve() and not state.root.is_symlink()
        assert workdir.path.is_relative_to(state.root)
        assert stat.S_IMODE(state.root.stat().st_mode) == 0o700
        assert list(victim.iterdir()) == []
    finally:
        state.close()
    assert not state.root.exists()


def test_a_symlink_a_file_or_someone_elses_folder_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / 'real').mkdir()
    (tmp_path / 'link').symlink_to(tmp_path / 'real')
    with pytest.raises(UnsafeFolderError, match='symlink'):
        make_private_root(tmp_path / 'link')
    (tmp_path / 'file').write_text('x')
    with pytest.raises(UnsafeFolderError, match='not a folder'):
        make_private_root(tmp_path / 'file')
    monkeypatch.setattr(os, 'geteuid', lambda: os.stat(tmp_path).st_uid + 1)
    with pytest.raises(UnsafeFolderError, match='belongs to user id'):
        make_private_root(tmp_path / 'real')


def test_expired_folders_go_on_a_timer_without_requests(tmp_path: Path) -> None:
    registry = WorkdirRegistry(make_private_root(tmp_path), max_age_s=0.2)
    registry.start_expiry(period_s=0.05)
    try:
        workdir = registry.create()
        deadline = time.monotonic() + 120  # only a guard against hanging; no speed is asserted
        while workdir.path.exists():
            assert time.monotonic() < deadline, 'the expiry timer never deleted the folder'
            time.sleep(0.05)
    finally:
        registry.close()


def test_a_refused_upload_leaves_no_partial_copy(tmp_path: Path) -> None:
    state = ServerState(_no_model, WebSettings(workdir_root=tmp_path / 'work'))
    (tmp_path / 'broken.png').write_bytes(b'not a png')
    sources = [_png(tmp_path / 'a.png'), _png(tmp_path / 'b.png'), str(tmp_path / 'broken.png')]
    try:
        with pytest.raises(UploadError, match="'broken.png' is not a readable image"):
            state.upload(None, sources, 1.0)
        assert list(state.root.iterdir()) == []  # the two good copies went with the folder
    finally:
        state.close()


def test_upload_errors_name_the_file_never_a_server_path(tmp_path: Path) -> None:
    state = ServerState(_no_model, WebSettings(workdir_root=tmp_path / 'work'))
    (tmp_path / 'broken.png').write_bytes(b'not a png')
    try:
        with pytest.raises(UploadError) as refused:
            state.upload(None, [str(tmp_path / 'broken.png')], 1.0)
        with pytest.raises(UploadError) as window:
            state.predict_window([tmp_path / 'broken.png'])
    finally:
        state.close()
    for message in (str(refused.value), str(window.value)):
        assert 'broken.png' in message and str(tmp_path) not in message


def test_user_errors_log_one_line_and_bugs_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    import gradio as gr

    from vggt_mapper.web.handlers import INTERNAL_ERROR, user_facing

    @user_facing
    def refuse(target_dir: str) -> None:
        raise WorkdirError(f'target_dir {target_dir!r} is unknown')

    @user_facing
    def crash(target_dir: str) -> None:
        raise KeyError(f'/srv/secret/{target_dir}')

    with caplog.at_level('WARNING', logger='vggt_mapper.web.handlers'):
        with pytest.raises(gr.Error, match='is unknown') as user_error:
            refuse('x')
        assert [(r.levelname, r.exc_info) for r in caplog.records] == [('WARNING', None)]
        caplog.clear()
        with pytest.raises(gr.Error) as bug:
            crash('x')
    assert not user_error.value.print_exception and not bug.value.print_exception
    assert bug.value.message == INTERNAL_ERROR and 'secret' not in bug.value.message
    [record] = caplog.records
    assert record.levelname == 'ERROR' and record.exc_info is not None  # the traceback
