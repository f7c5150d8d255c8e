"""
Input readers: a folder of images or a video file in, ``InputFrame`` records out.

Readers are generators, so a long video is never held in memory. Frames that cannot be
decoded are logged as warnings, counted in an optional ``ReadStats`` and skipped; an input that
cannot be read at all raises ``InputError`` saying what was looked for.

Timestamps (``stamp_ns``, integer nanoseconds):

* image folder: files have no reliable capture time, so the i-th file in sorted order (corrupt
  ones included, so a skipped file does not shift the rest) gets ``round(i * 1e9 / rate_hz)``
  with an assumed ``rate_hz`` (default 30 Hz, a common camera rate);
* video: the frame's presentation timestamp (PTS) relative to the stream's start time.

An image folder is one camera: its frame size is the size most of its images have (read from
the file headers before the first frame), and images of another size (a thumbnail, a stray
photo) are skipped, counted and named. A video that ends before the frame count or duration its
header announces (a truncated download or recording) gives the frames it has and a note in
``ReadStats.notes`` saying what was cut.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
import logging
from pathlib import Path
import re
from typing import Any, TYPE_CHECKING

import numpy as np

from vggt_mapper.engine.types import InputFrame
from vggt_mapper.io.errors import InputError
from vggt_mapper.io.images import decode_image, image_size

if TYPE_CHECKING:
    import av.container

    from vggt_mapper.io.calibration import CameraCalibration

__all__ = [
    'DEFAULT_FOLDER_RATE_HZ',
    'IMAGE_EXTENSIONS',
    'VIDEO_EXTENSIONS',
    'VideoInfo',
    'InputKind',
    'ReadStats',
    'detect_input_kind',
    'iter_image_folder',
    'iter_input',
    'iter_video',
    'list_images',
    'natural_sort_key',
]

_LOG = logging.getLogger(__name__)

IMAGE_EXTENSIONS: tuple[str, ...] = (
    '.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
VIDEO_EXTENSIONS: tuple[str, ...] = (
    '.mp4', '.mov', '.m4v', '.avi', '.mkv', '.webm', '.mpg', '.mpeg', '.wmv', '.flv', '.ts')
DEFAULT_FOLDER_RATE_HZ = 30.0


@dataclass
class ReadStats:
    """
    Counters a reader fills while it runs (pass one in to watch progress or report skips).

    :param frames_read: frames yielded.
    :param frames_skipped: frames that could not be used and were skipped.
    :param skipped: names of the skipped frames (file names, ``frame_<n>``, ``packet@<pts>``).
    :param reasons: skipped frames counted by reason (``unreadable``, ``other size``, a bag
        message's conversion error with its numbers left out, ...).
    :param notes: problems of the input as a whole (a truncated video or bag: what was cut).
    :param frames_expected: frames the reader expects to yield, known when it opens the input
        (from the folder listing, the video header or the bag index); None when unknown. An
        estimate for progress bars, not a promise.
    :param camera: the calibration a reader found in the input and applied (a rosbag2's
        CameraInfo: ``calibration``, ``undistorted``, ``topic``), for the exports; None if none.
    """

    frames_read: int = 0
    frames_skipped: int = 0
    skipped: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    frames_expected: int | None = None
    camera: dict[str, Any] | None = None

    def skip(self, name: str, reason: str = 'unreadable') -> None:
        """
        Count one skipped frame.

        :param name: the frame's name.
        :param reason: why it was skipped (a short phrase; frames are grouped by it).
        """
        self.frames_skipped += 1
        self.skipped.append(name)
        self.reasons[reason] += 1

    def note(self, message: str) -> None:
        """
        Record (and log as a warning) a problem of the whole input.

        :param message: what happened, in one sentence.
        """
        _LOG.warning('%s', message)
        self.notes.append(message)

    def describe_reasons(self) -> str:
        """
        List the skip reasons with their counts, most frequent first.

        :return: e.g. ``'2 other size, 1 unreadable'`` (empty if nothing was skipped).
        """
        return ', '.join(f'{count} {reason}' for reason, count in self.reasons.most_common())

    def describe_skips(self) -> str:
        """
        Say how many frames were skipped and why, for a summary line.

        :return: e.g. ``'3 skipped: 2 other size, 1 unreadable'``, or ``'0 skipped'``.
        """
        if not self.frames_skipped:
            return '0 skipped'
        return f'{self.frames_skipped} skipped: {self.describe_reasons()}'


def natural_sort_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """
    Sort key that orders digit runs by value, so ``frame2`` comes before ``frame10``.

    :param name: a file name.
    :return: a key for ``sorted``.
    """
    parts = re.split(r'(\d+)', name)
    # (0, number) sorts before (1, text) so the tuple never compares int with str.
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower())
                 for part in parts if part)


def list_images(folder: Path | str) -> list[Path]:
    """
    List the image files directly in ``folder``, in natural order of their names.

    :param folder: a directory.
    :return: paths whose extension is one of ``IMAGE_EXTENSIONS`` (any case), hidden files left
        out.
    :raises InputError: if ``folder`` is not a directory.
    """
    directory = Path(folder)
    if not directory.is_dir():
        raise InputError(f'{str(directory)!r} is not a folder')
    images = [path for path in directory.iterdir()
              if path.is_file() and not path.name.startswith('.')
              and path.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(images, key=lambda path: natural_sort_key(path.name))


def _majority_size(images: list[Path]
                   ) -> tuple[tuple[int, int] | None, dict[Path, tuple[int, int]]]:
    """
    Find the frame size most images of a folder have (headers only; ties: the earliest).

    :param images: the folder's image files in reading order.
    :return: the majority ``(height, width)`` (None if no header is readable) and each readable
        file's size.
    """
    from PIL import Image

    sizes: dict[Path, tuple[int, int]] = {}
    for path in images:
        try:
            sizes[path] = image_size(path)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            continue  # decoding it later will skip and count it as unreadable
    counts = Counter(sizes.values())
    return (counts.most_common(1)[0][0] if counts else None), sizes


def iter_image_folder(path: Path | str, max_frames: int | None = None, *,
                      rate_hz: float = DEFAULT_FOLDER_RATE_HZ,
                      stats: ReadStats | None = None) -> Iterator[InputFrame]:
    """
    Yield the images of a folder in natural name order (``frame2`` before ``frame10``).

    Unreadable or corrupt files are logged as warnings, counted in ``stats`` and skipped.

    :param path: the folder (not searched recursively).
    :param max_frames: stop after yielding this many frames (None: all).
    :param rate_hz: assumed frame rate for the index-based stamps (see the module docstring).
    :param stats: optional counters filled while reading.
    :return: an iterator of frames named by file name.
    :raises InputError: if ``path`` is not a folder or holds no image files (at once), or none of
        its images can be read (after trying them all).
    """
    if not rate_hz > 0:
        raise InputError(f'rate_hz must be > 0, got {rate_hz}')
    if max_frames is not None and max_frames < 1:
        raise InputError(f'max_frames must be >= 1, got {max_frames}')
    folder = Path(path)
    images = list_images(folder)
    if not images:
        raise InputError(f'No images in folder {str(folder)!r}: looked for files ending in '
                         f'{", ".join(IMAGE_EXTENSIONS)} (any case)')
    counters = stats if stats is not None else ReadStats()
    frame_hw, sizes = _majority_size(images)
    others = [path for path, size in sizes.items() if size != frame_hw]
    if others:
        listing = ', '.join(f'{path.name} ({sizes[path][1]}x{sizes[path][0]})'
                            for path in others[:5])
        _LOG.warning('%d of the %d images in %s are not %dx%d like the others and are skipped '
                     '(one camera per map): %s%s', len(others), len(images), folder,
                     frame_hw[1] if frame_hw else 0, frame_hw[0] if frame_hw else 0, listing,
                     ', ...' if len(others) > 5 else '')
    usable = len(sizes) - len(others)
    counters.frames_expected = usable if max_frames is None else min(usable, max_frames)
    return _generate_folder(folder, images, frame_hw, max_frames, rate_hz, counters)


def _generate_folder(folder: Path, images: list[Path], frame_hw: tuple[int, int] | None,
                     max_frames: int | None, rate_hz: float,
                     counters: ReadStats) -> Iterator[InputFrame]:
    """Yield the frames for ``iter_image_folder`` (arguments checked, majority size known)."""
    from PIL import Image

    yielded = 0
    for index, image_path in enumerate(images):
        try:
            image_rgb = decode_image(image_path)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            _LOG.warning('Skipping unreadable image %s: %s', image_path, err)
            counters.skip(image_path.name)
            continue
        if frame_hw is not None and image_rgb.shape[:2] != frame_hw:
            counters.skip(image_path.name, 'other size')
            continue
        stamp_ns = round(index * 1_000_000_000 / rate_hz)
        counters.frames_read += 1
        yielded += 1
        yield InputFrame(image_rgb=image_rgb, stamp_ns=stamp_ns, name=image_path.name)
        if max_frames is not None and yielded >= max_frames:
            return
    if yielded == 0:
        raise InputError(f'None of the {len(images)} images in {str(folder)!r} could be read '
                         f'({counters.describe_skips()}: {", ".join(counters.skipped[:5])}'
                         f'{", ..." if len(counters.skipped) > 5 else ""})')


def _open_video(path: Path) -> av.container.InputContainer:
    """Open a media file with PyAV, turning its errors into ``InputError``."""
    import av

    if not path.is_file():
        raise InputError(f'Video file {str(path)!r} does not exist or is not a file')
    try:
        return av.open(str(path), mode='r')
    except (av.FFmpegError, OSError, ValueError) as err:
        raise InputError(f'{str(path)!r} is not a readable video: {err}') from err


@dataclass(frozen=True)
class VideoInfo:
    """
    What a video's header says about its first video stream.

    :param num_frames: frames announced (the container's count, or duration × rate); None if
        the header says neither.
    :param duration_s: duration in seconds; None if unknown.
    :param rate_hz: average frame rate; None if unknown.
    """

    num_frames: int | None
    duration_s: float | None
    rate_hz: float | None


def _video_info(container: av.container.InputContainer) -> VideoInfo:
    """Read the frame count, duration and rate a container announces for its video stream."""
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    rate_hz = float(rate) if rate else None
    duration_s: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / 1_000_000  # av.time_base: microseconds
    num_frames: int | None = int(stream.frames) if stream.frames else None
    if num_frames is None and duration_s is not None and rate_hz is not None:
        num_frames = round(duration_s * rate_hz)
    return VideoInfo(num_frames, duration_s, rate_hz)


def _expected_sample(info: VideoInfo, fps: float | None, every: int | None,
                     max_frames: int | None) -> int | None:
    """Estimate how many frames the sampling keeps (for progress bars); None if unknown."""
    if info.num_frames is None:
        return None
    count = info.num_frames
    if every is not None:
        count = -(-count // every)
    elif fps is not None and info.rate_hz is not None and fps < info.rate_hz:
        count = -(-round(count * fps * 1000) // round(info.rate_hz * 1000))
    return count if max_frames is None else min(count, max_frames)


def iter_video(path: Path | str, fps: float | None = 1.0, every: int | None = None,
               max_frames: int | None = None, *,
               stats: ReadStats | None = None) -> Iterator[InputFrame]:
    """
    Decode a video file with PyAV and yield a sample of its frames.

    Sampling: with ``every`` set, every ``every``-th decoded frame (the first included);
    otherwise with ``fps`` set, about ``fps`` frames per second of video time (default 1, as
    the official VGGT demo): a frame is kept when its time reaches the next multiple of
    ``1 / fps`` after the first frame; with both None, every frame.

    Stamps are the frame PTS relative to the stream start, in integer nanoseconds; names are
    ``frame_<n>`` with ``n`` the decoded frame's 0-based number in the video.

    A file that ends early (fewer frames than its header announces, or a read error in the
    middle) gives what could be read; ``stats.notes`` says what was cut.

    :param path: the video file.
    :param fps: frames per second to keep (ignored when ``every`` is given).
    :param every: keep every N-th frame (N >= 1).
    :param max_frames: stop after yielding this many frames (None: all).
    :param stats: optional counters filled while reading (undecodable packets count as
        skipped; ``frames_expected`` is set from the header at once).
    :return: an iterator of frames.
    :raises InputError: if the file does not exist, is not a video or has no video stream (at
        once), or has no decodable frame (when iterated), or a sampling argument is out of range.
    """
    if every is not None and every < 1:
        raise InputError(f'every must be >= 1, got {every}')
    if every is None and fps is not None and not fps > 0:
        raise InputError(f'fps must be > 0, got {fps}')
    if max_frames is not None and max_frames < 1:
        raise InputError(f'max_frames must be >= 1, got {max_frames}')
    video_path = Path(path)
    container = _open_video(video_path)
    if not container.streams.video:
        kinds = [stream.type for stream in container.streams]
        container.close()
        raise InputError(f'{str(video_path)!r} has no video stream (streams: {kinds})')
    counters = stats if stats is not None else ReadStats()
    info = _video_info(container)
    counters.frames_expected = _expected_sample(info, fps, every, max_frames)
    return _generate_video(container, video_path, info, fps, every, max_frames, counters)


def _check_complete(video_path: Path, info: VideoInfo, decoded: int, end_s: float | None,
                    counters: ReadStats) -> None:
    """Note a video that ended before what its header announces (read to the end)."""
    period_s = 1.0 / info.rate_hz if info.rate_hz else 0.0
    short_count = info.num_frames is not None and decoded < info.num_frames
    # Without a frame count, time tells: the last frame should end near the duration.
    short_time = (info.duration_s is not None and end_s is not None
                  and end_s + 2 * period_s < info.duration_s)
    if not (short_count or short_time):
        return
    announced = f' of the {info.num_frames}' if info.num_frames is not None else ''
    span = (f' ({end_s or 0.0:.1f} s of {info.duration_s:.1f} s)'
            if info.duration_s is not None else '')
    counters.note(f'video {str(video_path)!r} ends early: decoded {decoded}{announced} frames '
                  f'its header announces{span}; the file is truncated or damaged, only the '
                  'part before the cut is mapped')


def _generate_video(container: av.container.InputContainer, video_path: Path, info: VideoInfo,
                    fps: float | None, every: int | None, max_frames: int | None,
                    counters: ReadStats) -> Iterator[InputFrame]:
    """Yield the frames for ``iter_video`` (container open, arguments checked)."""
    import av

    with container:
        stream = container.streams.video[0]
        stream.thread_type = 'AUTO'
        time_base = stream.time_base if stream.time_base is not None else Fraction(1, 90000)
        start_pts = stream.start_time if stream.start_time is not None else 0
        rate = stream.average_rate or stream.guessed_rate
        period_s = None if every is not None or fps is None else Fraction(1) / Fraction(fps)
        next_keep_s: Fraction | None = None
        decoded = 0
        yielded = 0
        end_s: float | None = None
        read_to_end = True
        packets = container.demux(stream)
        while max_frames is None or yielded < max_frames:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as err:
                if decoded == 0:
                    raise InputError(f'Cannot read {str(video_path)!r}: {err}') from err
                counters.note(f'video {str(video_path)!r}: reading stopped after {decoded} '
                              f'frames ({err}); only the part before it is mapped')
                read_to_end = False
                break
            try:
                frames = packet.decode()
            except av.FFmpegError as err:
                _LOG.warning('Skipping an undecodable packet in %s: %s', video_path, err)
                counters.skip(f'packet@{packet.pts}', 'undecodable packet')
                continue
            for frame in frames:
                number = decoded
                decoded += 1
                if frame.pts is not None:
                    time_s = Fraction(frame.pts - start_pts) * Fraction(time_base)
                elif rate:
                    time_s = Fraction(number) / Fraction(rate)
                else:
                    time_s = Fraction(number, 30)
                end_s = float(time_s) + (1.0 / float(rate) if rate else 0.0)
                if every is not None:
                    keep = number % every == 0
                elif period_s is not None:
                    if next_keep_s is None:
                        next_keep_s = time_s
                    keep = time_s >= next_keep_s
                    if keep:
                        # Next multiple of the period after this frame (no drift, no bursts).
                        steps = (time_s - next_keep_s) // period_s + 1
                        next_keep_s += steps * period_s
                else:
                    keep = True
                if not keep:
                    continue
                image_rgb = np.ascontiguousarray(frame.to_ndarray(format='rgb24'),
                                                 dtype=np.uint8)
                counters.frames_read += 1
                yielded += 1
                yield InputFrame(image_rgb=image_rgb, stamp_ns=round(time_s * 1_000_000_000),
                                 name=f'frame_{number:06d}')
                if max_frames is not None and yielded >= max_frames:
                    read_to_end = False
                    break
        if decoded == 0:
            raise InputError(f'{str(video_path)!r} contains no decodable video frame')
        if read_to_end:
            _check_complete(video_path, info, decoded, end_s, counters)


class InputKind(Enum):
    """What kind of input a path is."""

    IMAGE_FOLDER = 'image folder'
    VIDEO = 'video'
    ROSBAG2 = 'rosbag2'


def _is_rosbag2(path: Path) -> bool:
    """Tell a rosbag2: a folder with ``metadata.yaml`` or storage files, or one such file."""
    if path.is_file():
        return path.suffix in ('.db3', '.mcap')
    if (path / 'metadata.yaml').is_file():
        return True
    return any(child.suffix in ('.db3', '.mcap') for child in path.iterdir() if child.is_file())


def detect_input_kind(path: Path | str) -> InputKind:
    """
    Tell an image folder, a video file and a rosbag2 apart.

    A rosbag2 is a directory with ``metadata.yaml`` or ``.db3``/``.mcap`` files (or one such
    file); any other directory is an image folder; any other file is treated as a video.

    :param path: the input path.
    :return: its kind.
    :raises InputError: if ``path`` does not exist.
    """
    source = Path(path)
    if not source.exists():
        raise InputError(f'Input {str(source)!r} does not exist; give a folder of images, a '
                         'video file or a rosbag2 directory')
    if _is_rosbag2(source):
        return InputKind.ROSBAG2
    if source.is_dir():
        return InputKind.IMAGE_FOLDER
    return InputKind.VIDEO


def iter_input(path: Path | str, *, max_frames: int | None = None, fps: float | None = 1.0,
               every: int | None = None, topic: str | None = None,
               stats: ReadStats | None = None, calibration: CameraCalibration | None = None,
               camera_info: bool | str = True, odometry: bool = True,
               odom_frame: str = 'odom') -> Iterator[InputFrame]:
    """
    Yield the frames of any supported input (see ``detect_input_kind``).

    ``fps`` applies to videos only; ``every`` keeps every N-th frame of any input; ``topic``
    picks the image topic of a rosbag2 (None: the reader's choice). Rosbag2 reading is
    ``vggt_mapper.io.rosbag2.iter_bag_frames``, imported only when needed. A ``calibration``
    undistorts every frame and gives it its K (``io.calibration``); without one, a rosbag2's
    own CameraInfo does (``camera_info``), and its TF gives odometry poses (``odometry``).

    :param path: a folder of images, a video file or a rosbag2 directory.
    :param max_frames: stop after this many frames.
    :param fps: video sampling rate (frames per second of video time; None: all).
    :param every: keep every N-th frame.
    :param topic: rosbag2 image topic.
    :param stats: optional counters (frames read and skipped, why, notes on truncated inputs,
        and the expected frame count, set before the first frame).
    :param calibration: the camera's calibration (a file, flags); it replaces a bag's
        CameraInfo.
    :param camera_info: rosbag2 only: True (the CameraInfo next to the image topic, if any),
        a CameraInfo topic, or False.
    :param odometry: rosbag2 only: attach ``odom_from_camera`` from the bag's TF.
    :param odom_frame: rosbag2 only: the odometry frame of its TF.
    :return: an iterator of frames.
    :raises InputError: if the input cannot be read.
    """
    source = Path(path)
    kind = detect_input_kind(source)
    if every is not None and every < 1:
        raise InputError(f'every must be >= 1, got {every}')
    if max_frames is not None and max_frames < 1:
        raise InputError(f'max_frames must be >= 1, got {max_frames}')
    if kind is InputKind.VIDEO:
        video = iter_video(source, fps=fps, every=every, max_frames=max_frames, stats=stats)
        return video if calibration is None else _calibrated(video, calibration)
    counters = stats if stats is not None else ReadStats()
    if kind is InputKind.IMAGE_FOLDER:
        frames: Iterator[InputFrame] = iter_image_folder(source, stats=counters)
    else:
        from vggt_mapper.io.rosbag2 import iter_bag_frames

        frames = iter_bag_frames(source, topic, stats=counters,
                                 camera_info=camera_info if calibration is None else False,
                                 odometry=odometry, odom_frame=odom_frame)
    if counters.frames_expected is not None:
        expected = -(-counters.frames_expected // (every or 1))
        counters.frames_expected = expected if max_frames is None else min(expected, max_frames)
    sampled = _sampled(frames, every=every, max_frames=max_frames)
    return sampled if calibration is None else _calibrated(sampled, calibration)


def _calibrated(frames: Iterator[InputFrame], calibration: CameraCalibration
                ) -> Iterator[InputFrame]:
    """Undistort the frames kept (cv2 imported only when a calibration is given)."""
    from vggt_mapper.io.calibration import apply_calibration

    return apply_calibration(frames, calibration)


def _sampled(frames: Iterator[InputFrame], *, every: int | None,
             max_frames: int | None) -> Iterator[InputFrame]:
    """Keep every N-th frame and stop after ``max_frames``."""
    step = every or 1
    yielded = 0
    for number, frame in enumerate(frames):
        if number % step:
            continue
        yielded += 1
        yield frame
        if max_frames is not None and yielded >= max_frames:
            return
