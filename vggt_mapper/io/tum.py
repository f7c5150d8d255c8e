"""
TUM RGB-D trajectory files: one line ``t tx ty tz qx qy qz qw`` per keyframe.

Each line is the world-from-camera pose (camera centre and orientation in the world frame),
``t`` in seconds written from the integer nanosecond stamp with all nine decimals, so no
precision is lost; quaternion in x, y, z, w order with ``qw >= 0``. Lines starting with ``#``
are comments (evo and the TUM tools skip them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.types import KeyframePose
from vggt_mapper.geometry.rotation import matrix_to_quat_xyzw, quat_xyzw_to_matrix
from vggt_mapper.io.atomic import atomic_write_bytes
from vggt_mapper.io.errors import ExportError, InputError

__all__ = ['TumPose', 'format_stamp', 'parse_stamp', 'read_tum', 'tum_line', 'write_tum']

_HEADER = '# timestamp tx ty tz qx qy qz qw (world_from_cam, written by vggt_mapper)\n'


@dataclass(frozen=True)
class TumPose:
    """
    One line of a TUM trajectory.

    :param stamp_ns: time in integer nanoseconds.
    :param world_from_cam: 4×4 float64 pose.
    """

    stamp_ns: int
    world_from_cam: NDArray[np.float64]


def format_stamp(stamp_ns: int) -> str:
    """
    Integer nanoseconds as exact decimal seconds (``1500000001`` → ``1.500000001``).

    :param stamp_ns: time in nanoseconds (may be negative).
    :return: seconds with nine decimals.
    """
    sign = '-' if stamp_ns < 0 else ''
    seconds, nanoseconds = divmod(abs(int(stamp_ns)), 1_000_000_000)
    return f'{sign}{seconds}.{nanoseconds:09d}'


def parse_stamp(text: str) -> int:
    """
    Decimal seconds as integer nanoseconds, exactly (``'1.5'`` → ``1500000000``).

    :param text: seconds as written in a TUM file (decimal or exponent notation).
    :return: nanoseconds, rounded to the nearest integer.
    :raises ValueError: if ``text`` is not a number.
    """
    try:
        value = Decimal(text)
    except InvalidOperation as err:
        raise ValueError(f'not a number: {text!r}') from err
    if not value.is_finite():
        raise ValueError(f'not a finite time: {text!r}')
    return int((value * 1_000_000_000).to_integral_value())


def tum_line(stamp_ns: int, world_from_cam: NDArray[np.floating]) -> str:
    """
    Format one pose as a TUM line (no newline).

    :param stamp_ns: time in integer nanoseconds.
    :param world_from_cam: 4×4 pose.
    :return: ``t tx ty tz qx qy qz qw``.
    :raises ExportError: if the pose is not a finite 4×4 rigid transform.
    """
    pose = np.asarray(world_from_cam, dtype=np.float64)
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise ExportError(f'world_from_cam must be a finite 4x4 matrix, got {pose!r}')
    rotation = pose[:3, :3]
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-5):
        raise ExportError(f'world_from_cam at stamp {stamp_ns} ns has a non-orthonormal '
                          f'rotation block:\n{rotation}')
    quat_xyzw = matrix_to_quat_xyzw(rotation)  # q and -q are one rotation: qw >= 0 is chosen
    values = [*pose[:3, 3], *quat_xyzw]
    return ' '.join([format_stamp(stamp_ns), *(repr(float(value)) for value in values)])


def write_tum(path: Path | str, poses: Sequence[KeyframePose], *,
              overwrite: bool = False) -> Path:
    """
    Write keyframe poses as a TUM trajectory, atomically.

    :param path: output file (``.tum`` / ``.txt``).
    :param poses: the keyframes, in order.
    :param overwrite: replace an existing file.
    :return: the written path.
    :raises ExportError: on a bad pose, an existing file without ``overwrite``, or a write error.
    """
    lines = [_HEADER] + [tum_line(pose.stamp_ns, pose.world_from_cam) + '\n' for pose in poses]
    return atomic_write_bytes(path, ''.join(lines).encode('ascii'), overwrite=overwrite)


def read_tum(path: Path | str) -> list[TumPose]:
    """
    Read a TUM trajectory file.

    :param path: the file.
    :return: its poses in file order.
    :raises InputError: if the file is missing or a line is not 8 numbers.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f'Cannot read TUM file {str(source)!r}: {err}') from err
    poses = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith('#'):
            continue
        fields = stripped.replace(',', ' ').split()
        try:
            if len(fields) != 8:
                raise ValueError(f'{len(fields)} fields instead of 8')
            stamp_ns = parse_stamp(fields[0])
            values = np.array([float(field) for field in fields[1:]])
        except ValueError as err:
            raise InputError(f'{str(source)!r} line {number}: expected "t tx ty tz qx qy qz qw",'
                             f' got {stripped!r} ({err})') from err
        quat_xyzw = values[3:]
        if not np.isfinite(values).all() or np.linalg.norm(quat_xyzw) < 1e-9:
            raise InputError(f'{str(source)!r} line {number}: non-finite value or zero '
                             f'quaternion in {stripped!r}')
        world_from_cam = np.eye(4)
        world_from_cam[:3, :3] = quat_xyzw_to_matrix(quat_xyzw)  # normalises q
        world_from_cam[:3, 3] = values[:3]
        poses.append(TumPose(stamp_ns=stamp_ns, world_from_cam=world_from_cam))
    return poses
