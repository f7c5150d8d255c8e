"""Input readers: image folders (natural order, corrupt files skipped) and videos (PyAV)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image
import pytest

from vggt_mapper.io import (
    detect_input_kind,
    InputError,
    InputKind,
    iter_image_folder,
    iter_input,
    iter_video,
    ReadStats,
)
from vggt_mapper.io.readers import natural_sort_key


def _save_image(path: Path, value: int, size: tuple[int, int] = (40, 30)) -> None:
    """Save a flat image whose red channel is ``value`` (to recognise it after reading)."""
    width, height = size
    array = np.zeros((height, width, 3), np.uint8)
    array[..., 0] = value
    array[..., 1] = np.arange(width, dtype=np.uint8)[None, :]
    Image.fromarray(array).save(path)


def _write_video(path: Path, num_frames: int, rate: int = 10, codec: str = 'mpeg4') -> None:
    """Write a short video whose frame n is grey level 6 * n."""
    with av.open(str(path), 'w') as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, 'yuv420p'
        for number in range(num_frames):
            image = np.full((48, 64, 3), 6 * number, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format='rgb24')
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_natural_sort_orders_numbers_by_value() -> None:
    names = ['frame10.png', 'frame2.png', 'Frame1.png', 'frame02b.png', 'a.png']
    assert sorted(names, key=natural_sort_key) == [
        'a.png', 'Frame1.png', 'frame2.png', 'frame02b.png', 'frame10.png']


def test_image_folder_natural_order_stamps_and_pixels(tmp_path: Path) -> None:
    for number in (10, 2, 1):
        _save_image(tmp_path / f'frame{number}.png', value=number)
    (tmp_path / 'notes.txt').write_text('not an image')
    _save_image(tmp_path / 'upper.PNG', value=200)

    frames = list(iter_image_folder(tmp_path, rate_hz=10.0))

    assert [frame.name for frame in frames] == ['frame1.png', 'frame2.png', 'frame10.png',
                                                'upper.PNG']
    assert [frame.stamp_ns for frame in frames] == [0, 100_000_000, 200_000_000, 300_000_000]
    assert [int(frame.image_rgb[0, 0, 0]) for frame in frames] == [1, 2, 10, 200]
    assert frames[0].image_rgb.dtype == np.uint8 and frames[0].image_rgb.shape == (30, 40, 3)


def test_image_folder_skips_and_counts_corrupt_images(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    _save_image(tmp_path / 'a1.png', value=1)
    (tmp_path / 'a2.jpg').write_bytes(b'\xff\xd8\xff garbage, not a jpeg')
    good = tmp_path / 'a3.png'
    _save_image(good, value=3)
    truncated = tmp_path / 'a4.png'
    _save_image(truncated, value=4, size=(400, 300))
    truncated.write_bytes(truncated.read_bytes()[:200])
    stats = ReadStats()

    frames = list(iter_image_folder(tmp_path, stats=stats))

    assert [frame.name for frame in frames] == ['a1.png', 'a3.png']
    # The index-based stamp of a3 is unchanged by the skipped a2 (default 30 Hz).
    assert frames[1].stamp_ns == round(2 * 1e9 / 30)
    assert stats.frames_read == 2
    assert stats.frames_skipped == 2
    assert stats.skipped == ['a2.jpg', 'a4.png']
    assert 'a2.jpg' in caplog.text and 'a4.png' in caplog.text


def test_image_folder_max_frames_and_rgba_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((30, 40, 4), np.uint8)  # the size of the other frames
    rgba[..., 3] = 0  # fully transparent: becomes white, as in the VGGT loader
    Image.fromarray(rgba, mode='RGBA').save(tmp_path / 'f0.png')
    for number in range(1, 5):
        _save_image(tmp_path / f'f{number}.png', value=number)

    frames = list(iter_image_folder(tmp_path, max_frames=3))

    assert len(frames) == 3
    assert (frames[0].image_rgb == 255).all()


def test_empty_folder_is_an_input_error_naming_folder_and_extensions(tmp_path: Path) -> None:
    (tmp_path / 'readme.txt').write_text('no images here')
    with pytest.raises(InputError) as info:
        iter_image_folder(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert '.png' in str(info.value) and '.jpg' in str(info.value)


def test_folder_of_only_corrupt_images_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / 'x.png').write_bytes(b'not a png')
    with pytest.raises(InputError, match='None of the 1 images'):
        list(iter_image_folder(tmp_path))


def test_missing_folder_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match='not a folder'):
        iter_image_folder(tmp_path / 'nope')


def test_video_default_samples_one_frame_per_second_with_pts_stamps(tmp_path: Path) -> None:
    video = tmp_path / 'clip.mp4'
    _write_video(video, num_frames=35, rate=10)
    stats = ReadStats()

    frames = list(iter_video(video, stats=stats))

    assert [frame.name for frame in frames] == [
        'frame_000000', 'frame_000010', 'frame_000020', 'frame_000030']
    assert [frame.stamp_ns for frame in frames] == [0, 1_000_000_000, 2_000_000_000,
                                                    3_000_000_000]
    assert stats.frames_read == 4
    grey = [float(frame.image_rgb.mean()) for frame in frames]
    assert np.allclose(grey, [0, 60, 120, 180], atol=4)
    assert frames[0].image_rgb.shape == (48, 64, 3) and frames[0].image_rgb.dtype == np.uint8


def test_video_every_and_fps_and_max_frames(tmp_path: Path) -> None:
    video = tmp_path / 'clip.mkv'
    _write_video(video, num_frames=20, rate=10)

    every = [frame.name for frame in iter_video(video, every=7)]
    fast = [frame.stamp_ns for frame in iter_video(video, fps=4.0, max_frames=3)]
    everything = list(iter_video(video, fps=None))

    assert every == ['frame_000000', 'frame_000007', 'frame_000014']
    # Kept when the frame time reaches the next multiple of 0.25 s: 0, 0.3, 0.5.
    assert fast == [0, 300_000_000, 500_000_000]
    assert len(everything) == 20
    assert [frame.stamp_ns for frame in everything] == [n * 100_000_000 for n in range(20)]


def test_non_video_file_is_an_input_error_naming_it(tmp_path: Path) -> None:
    fake = tmp_path / 'notes.mp4'
    fake.write_text('this is text, not a video')
    with pytest.raises(InputError, match='notes.mp4'):
        iter_video(fake)


def test_video_without_frames_is_an_input_error(tmp_path: Path) -> None:
    video = tmp_path / 'empty.mkv'
    _write_video(video, num_frames=0)
    with pytest.raises(InputError):
        list(iter_video(video))


def test_detect_input_kind(tmp_path: Path) -> None:
    folder = tmp_path / 'images'
    folder.mkdir()
    bag = tmp_path / 'bag'
    bag.mkdir()
    (bag / 'metadata.yaml').write_text('rosbag2_bagfile_information: {}\n')
    mcap_bag = tmp_path / 'bag2'
    mcap_bag.mkdir()
    (mcap_bag / 'bag2_0.mcap').write_bytes(b'')
    video = tmp_path / 'clip.mp4'
    video.write_bytes(b'')

    assert detect_input_kind(folder) is InputKind.IMAGE_FOLDER
    assert detect_input_kind(bag) is InputKind.ROSBAG2
    assert detect_input_kind(mcap_bag) is InputKind.ROSBAG2
    assert detect_input_kind(video) is InputKind.VIDEO
    with pytest.raises(InputError, match='does not exist'):
        detect_input_kind(tmp_path / 'missing')


def test_iter_input_every_applies_to_folders(tmp_path: Path) -> None:
    for number in range(7):
        _save_image(tmp_path / f'img_{number}.png', value=number)
    names = [frame.name for frame in iter_input(tmp_path, every=3, max_frames=2)]
    assert names == ['img_0.png', 'img_3.png']


def test_importing_io_does_not_import_rosbags_or_torch() -> None:
    import subprocess
    import sys

    probe = ('import sys, vggt_mapper.io; '
             'print(sorted(m for m in ("rosbags", "torch") if m in sys.modules))')
    completed = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                               timeout=120, check=True)
    assert completed.stdout.strip() == '[]'


def test_odd_sized_first_image_does_not_decide_the_folder_size(tmp_path: Path) -> None:
    _save_image(tmp_path / 'a_thumbnail.png', value=9, size=(16, 12))
    for number in range(5):
        _save_image(tmp_path / f'frame{number}.png', value=number)
    stats = ReadStats()

    frames = list(iter_input(tmp_path, stats=stats))

    # The majority size (40x30) wins; the thumbnail is skipped, counted and named.
    assert [frame.name for frame in frames] == [f'frame{n}.png' for n in range(5)]
    assert stats.skipped == ['a_thumbnail.png']
    assert stats.reasons == {'other size': 1}
    assert stats.frames_expected == 5
    assert stats.describe_skips() == '1 skipped: 1 other size'


def _truncate(path: Path, fraction: float) -> Path:
    cut = path.with_name('cut_' + path.name)
    data = path.read_bytes()
    cut.write_bytes(data[:int(len(data) * fraction)])
    return cut


def _write_fast_start_mp4(path: Path, num_frames: int) -> None:
    """Write an mp4 whose index comes first (as streamed files), so a cut file still opens."""
    with av.open(str(path), 'w', options={'movflags': 'faststart'}) as container:
        stream = container.add_stream('mpeg4', rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, 'yuv420p'
        for number in range(num_frames):
            image = np.full((48, 64, 3), 6 * number, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format='rgb24')):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_truncated_mp4_maps_its_readable_part_and_says_what_was_cut(tmp_path: Path) -> None:
    video = tmp_path / 'clip.mp4'
    _write_fast_start_mp4(video, num_frames=40)
    stats = ReadStats()

    frames = list(iter_video(_truncate(video, 0.6), fps=None, stats=stats))

    assert 0 < len(frames) < 40
    assert [frame.name for frame in frames] == [f'frame_{n:06d}' for n in range(len(frames))]
    assert len(stats.notes) == 1
    assert f'decoded {len(frames)} of the 40 frames' in stats.notes[0]
    assert 'truncated' in stats.notes[0]


def test_truncated_mkv_without_frame_count_is_told_by_its_duration(tmp_path: Path) -> None:
    video = tmp_path / 'clip.mkv'
    _write_video(video, num_frames=40, rate=10)
    stats = ReadStats()

    frames = list(iter_video(_truncate(video, 0.6), fps=None, stats=stats))

    assert 0 < len(frames) < 40
    assert len(stats.notes) == 1 and 's of 4.0 s' in stats.notes[0]


def test_complete_video_has_no_note(tmp_path: Path) -> None:
    video = tmp_path / 'clip.mp4'
    _write_fast_start_mp4(video, num_frames=12)
    stats = ReadStats()
    assert len(list(iter_video(video, fps=None, stats=stats))) == 12
    assert stats.notes == []


@pytest.mark.parametrize(('fps', 'every', 'max_frames'), [
    (None, None, None), (10.0, None, None), (1.0, None, None), (3.0, None, None),
    (None, 4, None), (1.0, None, 2)])
def test_expected_frames_of_a_video_are_known_before_reading(
        tmp_path: Path, fps: float | None, every: int | None, max_frames: int | None) -> None:
    video = tmp_path / 'clip.mp4'
    _write_video(video, num_frames=35, rate=10)
    stats = ReadStats()

    frames = iter_input(video, fps=fps, every=every, max_frames=max_frames, stats=stats)
    expected = stats.frames_expected  # for the progress bar, before the first frame

    assert expected == len(list(frames))


def test_expected_frames_of_a_folder_follow_every_and_max_frames(tmp_path: Path) -> None:
    for number in range(7):
        _save_image(tmp_path / f'img_{number}.png', value=number)
    for every, max_frames in ((None, None), (3, None), (2, 3)):
        stats = ReadStats()
        frames = iter_input(tmp_path, every=every, max_frames=max_frames, stats=stats)
        assert stats.frames_expected == len(list(frames))
