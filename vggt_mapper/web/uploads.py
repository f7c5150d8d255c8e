"""Uploaded images and videos → a working folder of frames, within the server's limits."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
import json
import os
from pathlib import Path
import re
import shutil

import cv2
from PIL import Image, UnidentifiedImageError

from vggt_mapper.engine.types import InputFrame
from vggt_mapper.io.images import decode_image
from vggt_mapper.web.errors import UploadError
from vggt_mapper.web.settings import WebSettings
from vggt_mapper.web.workdirs import Workdir

__all__ = ['UploadSummary', 'import_upload', 'iter_frames', 'list_frames', 'upload_source']

_META_NAME = 'meta.json'
_UNSAFE = re.compile(r'[^A-Za-z0-9._-]')


@dataclass(frozen=True)
class UploadSummary:
    """
    What an upload put into its working folder.

    :param image_paths: the frames, sorted by name (the order they are mapped in).
    :param source: ``'images'`` or ``'video'``.
    :param period_ns: time between frames, used for their stamps.
    :param note: a remark for the log (e.g. frames dropped at the limit), empty if none.
    """

    image_paths: tuple[Path, ...]
    source: str
    period_ns: int
    note: str = ''


def _safe_name(name: str, taken: set[str]) -> str:
    stem, suffix = os.path.splitext(_UNSAFE.sub('_', name).lstrip('.') or 'image')
    candidate, counter = stem + suffix.lower(), 1
    while candidate in taken:
        candidate = f'{stem}_{counter}{suffix.lower()}'
        counter += 1
    taken.add(candidate)
    return candidate


def _without_paths(err: BaseException, path: Path) -> str:
    """Return an error's message with the server path of ``path`` replaced by its name."""
    message = str(err)
    for text in (str(path.resolve()), str(path)):
        message = message.replace(text, path.name)
    return message


def _check_sizes(paths: Sequence[Path], settings: WebSettings) -> None:
    total = 0
    for path in paths:
        if not path.is_file():
            raise UploadError(f'uploaded file {path.name!r} is missing on the server')
        total += path.stat().st_size
    if total > settings.max_upload_bytes:
        raise UploadError(f'upload is {total / 2**20:.1f} MiB, more than the server limit of '
                          f'{settings.max_upload_mb:g} MiB; send fewer or smaller files')


def _import_images(paths: Sequence[Path], workdir: Workdir, settings: WebSettings) -> list[Path]:
    if len(paths) > settings.max_files:
        raise UploadError(f'{len(paths)} files uploaded, more than the server limit of '
                          f'{settings.max_files}; send fewer images')
    _check_sizes(paths, settings)
    taken: set[str] = set()
    copied = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as err:
            raise UploadError(f'{path.name!r} is not a readable image '
                              f'({_without_paths(err, path)})') from err
        target = workdir.images_dir / _safe_name(path.name, taken)
        shutil.copyfile(path, target)
        copied.append(target)
    return copied


def _import_video(path: Path, workdir: Workdir, fps: float,
                  settings: WebSettings) -> tuple[list[Path], str]:
    _check_sizes([path], settings)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UploadError(f'{path.name!r} is not a video this server can decode')
    saved: list[Path] = []
    note = ''
    next_time_s = 0.0
    try:
        while True:
            ok, frame_bgr = capture.read()
            if not ok:
                break
            time_s = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            # Keep the first frame at or after each multiple of 1/fps (PTS-based, so variable
            # frame-rate videos are sampled evenly in time).
            if time_s + 1e-6 < next_time_s:
                continue
            if len(saved) == settings.max_frames:
                note = (f'kept the first {settings.max_frames} frames (server limit); lower '
                        'the frame rate to cover the whole video')
                break
            target = workdir.images_dir / f'{len(saved):06d}.png'
            cv2.imwrite(str(target), frame_bgr)
            saved.append(target)
            next_time_s += 1.0 / fps
            while next_time_s <= time_s:
                next_time_s += 1.0 / fps
    finally:
        capture.release()
    if not saved:
        raise UploadError(f'no frame could be decoded from {path.name!r}')
    return saved, note


def _unify_sizes(paths: Sequence[Path]) -> int:
    """
    Bring every frame to the first frame's size (the engine maps one camera at a time).

    A frame of another size is centre-cropped to the first frame's aspect ratio, then resized.

    :param paths: the frames in mapping order; changed frames are rewritten in place.
    :return: how many frames were changed.
    """
    changed = 0
    reference: tuple[int, int] | None = None
    for path in paths:
        with Image.open(path) as image:
            size = image.size
            if reference is None:
                reference = size
                continue
            if size == reference:
                continue
            width, height = size
            target_w, target_h = reference
            scale = min(width / target_w, height / target_h)
            crop_w, crop_h = round(target_w * scale), round(target_h * scale)
            left, top = (width - crop_w) // 2, (height - crop_h) // 2
            fitted = image.convert('RGB').crop((left, top, left + crop_w, top + crop_h)).resize(
                reference, Image.Resampling.LANCZOS)
        fitted.save(path)
        changed += 1
    return changed


def import_upload(workdir: Workdir, video_path: str | None, image_paths: Sequence[str] | None,
                  fps: float, settings: WebSettings) -> UploadSummary:
    """
    Copy uploaded images, or sample a video, into ``workdir.images_dir``.

    Like the official demo, images and a video may come together; the video's frames are
    named ``000000.png``… and sorted with the images.

    :param workdir: the fresh working folder.
    :param video_path: the uploaded video file on this server, or None.
    :param image_paths: the uploaded image files on this server, or None.
    :param fps: frames per second sampled from the video.
    :param settings: the server's limits.
    :return: what was imported.
    :raises UploadError: when a limit is broken or nothing usable was uploaded.
    """
    if not 0 < fps <= 120:
        raise UploadError(f'video sampling rate must be in (0, 120] frames per second, got {fps}')
    frames: list[Path] = []
    note = ''
    if image_paths:
        frames += _import_images([Path(p) for p in image_paths], workdir, settings)
    if video_path:
        video_frames, note = _import_video(Path(video_path), workdir, fps, settings)
        frames += video_frames
    if not frames:
        raise UploadError('nothing was uploaded; choose a video or some images')
    frames = sorted(frames)
    resized = _unify_sizes(frames)
    if resized:
        message = (f'{resized} frames whose size differs from the first frame were '
                   'centre-cropped and resized to its size (one camera per map)')
        note = f'{note}; {message}' if note else message
    source = 'video' if video_path else 'images'
    period_ns = int(round(1e9 / fps)) if video_path else 1_000_000_000
    (workdir.path / _META_NAME).write_text(
        json.dumps({'source': source, 'period_ns': period_ns}), encoding='utf-8')
    return UploadSummary(tuple(frames), source, period_ns, note)


def list_frames(workdir: Workdir) -> list[Path]:
    """
    List the frames of a working folder, in mapping order (sorted by name).

    :param workdir: the working folder.
    :return: the image files.
    """
    if not workdir.images_dir.is_dir():
        return []
    return sorted(p for p in workdir.images_dir.iterdir() if p.is_file())


def _meta(workdir: Workdir) -> dict[str, object]:
    meta_path = workdir.path / _META_NAME
    if not meta_path.is_file():
        return {}
    meta: dict[str, object] = json.loads(meta_path.read_text(encoding='utf-8'))
    return meta


def upload_source(workdir: Workdir) -> str:
    """
    Say what an upload was.

    :param workdir: the working folder.
    :return: ``'images'`` (a photo set) or ``'video'`` (a video, possibly with images).
    """
    return str(_meta(workdir).get('source', 'images'))


def iter_frames(workdir: Workdir, order: Sequence[int] | None = None) -> Iterator[InputFrame]:
    """
    Decode a working folder's frames one at a time (a long video never sits in memory whole).

    :param workdir: the working folder.
    :param order: positions in name order to yield, in this order (None: name order).
    :return: an iterator of frames with stamps ``index × period`` (index in the order given).
    """
    period_ns = int(_meta(workdir).get('period_ns', 1_000_000_000))  # type: ignore[call-overload]
    paths = list_frames(workdir)
    if order is not None:
        paths = [paths[position] for position in order]
    for index, path in enumerate(paths):
        yield InputFrame(image_rgb=decode_image(path), stamp_ns=index * period_ns, name=path.name)
