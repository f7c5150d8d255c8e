"""
Render the sample sequence into a folder: JPEG frames and the TUM ground truth.

Usage: ``python -m vggt_mapper.synthetic.make_sample OUTDIR [--frames N] [--step M]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

import cv2

from vggt_mapper.geometry.rotation import matrix_to_quat_xyzw
from vggt_mapper.synthetic.sample import SAMPLE_FPS, SAMPLE_FRAMES, sample_sequence, SAMPLE_STEP_M

__all__ = ['main', 'write_sample']

JPEG_QUALITY = 90


def write_sample(outdir: Path, num_frames: int = SAMPLE_FRAMES,
                 step_m: float = SAMPLE_STEP_M) -> list[Path]:
    """
    Write ``frame_000.jpg`` … and ``groundtruth_tum.txt`` into ``outdir``.

    The ground truth is TUM format (``stamp_s tx ty tz qx qy qz qw``, world_from_cam of the
    synthetic room in metres, OpenCV camera axes, stamps ``index / 30 Hz`` like the
    image-folder reader's).

    :param outdir: destination folder (created if missing).
    :param num_frames: number of frames.
    :param step_m: metres travelled per frame.
    :return: the paths written.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    sequence = sample_sequence(num_frames, step_m)
    written = []
    lines = ['# stamp_s tx ty tz qx qy qz qw  (world_from_cam, metres, OpenCV camera axes)']
    for index in range(num_frames):
        path = outdir / f'frame_{index:03d}.jpg'
        bgr = cv2.cvtColor(sequence.frame(index), cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OSError(f'could not write {path}')
        written.append(path)
        pose = sequence.poses_world_from_cam[index]
        quat_xyzw = matrix_to_quat_xyzw(pose[:3, :3])
        values = [index / SAMPLE_FPS, *pose[:3, 3], *quat_xyzw]
        lines.append(' '.join(f'{value:.9f}' for value in values))
    truth = outdir / 'groundtruth_tum.txt'
    truth.write_text('\n'.join(lines) + '\n')
    written.append(truth)
    return written


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and write the sample."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('outdir', type=Path, help='destination folder')
    parser.add_argument('--frames', type=int, default=SAMPLE_FRAMES, help='number of frames')
    parser.add_argument('--step', type=float, default=SAMPLE_STEP_M,
                        help='metres travelled per frame')
    args = parser.parse_args(argv)
    paths = write_sample(args.outdir, args.frames, args.step)
    print(f'wrote {len(paths)} files to {args.outdir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
