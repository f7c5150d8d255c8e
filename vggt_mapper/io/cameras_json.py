"""
Per-keyframe camera records as JSON (``cameras.json``): name, stamps, intrinsics, poses.

Layout (``format`` = ``vggt_mapper.cameras/1``)::

    {"format": ..., "conventions": {...},
     "camera": {"calibration": {...}, "undistorted": bool},       (when the door knew it)
     "units": {"<segment>": {"metric", "source", "factor", ...}}, (when the engine said)
     "cameras": [{"index", "name", "stamp_ns", "timestamp",
                  "intrinsics": {"source": "known" | "predicted",
                                 "model": {"K", "width", "height"},
                                 "original": {"K", "width", "height"},
                                 "predicted": {"K", "width", "height"}},  (when known)
                  "cam_from_world": 4×4, "world_from_cam": 4×4, "segment"}, ...]}

``stamp_ns`` is exact; ``timestamp`` is the same time in seconds as a float for convenience.
Matrices are nested row-major lists. ``model`` intrinsics are in the pixels of the image the
model saw, ``original`` ones in the pixels of the image the engine was given: the undistorted
image when ``camera.undistorted`` is true (``camera.calibration`` is then the raw, distorted
camera it came from). ``source`` says whether K is a known calibration (``known``: then
``predicted`` is the model's own guess, in model pixels) or the model's. ``segment`` is the map
segment of the keyframe: poses of different segments are in different frames (each its own
first keyframe's camera) until a loop closure merges them; ``units`` says, per segment, whether
its poses are in metres and where that came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.types import KeyframePose, MetricScale
from vggt_mapper.io.atomic import atomic_write_bytes
from vggt_mapper.io.errors import InputError

__all__ = ['CAMERAS_FORMAT', 'camera_record', 'read_cameras_json', 'scale_record',
           'write_cameras_json']

CAMERAS_FORMAT = 'vggt_mapper.cameras/1'

_CONVENTIONS = {
    'camera_axes': 'OpenCV: x right, y down, z forward',
    'world_frame': 'camera frame of the first keyframe of the segment, in metres when the '
                   "segment's units say metric, else in its first window's unit (segments "
                   'are separate maps until merged)',
    'cam_from_world': 'x_cam = R @ x_world + t (extrinsics)',
    'world_from_cam': 'inverse of cam_from_world; its translation is the camera centre',
    'intrinsics': 'pinhole K, pixel centres at integer (u, v) = (column, row)',
    'stamp_ns': 'integer nanoseconds; timestamp = stamp_ns / 1e9 seconds',
}


def _intrinsics_record(matrix: NDArray[np.float64], hw: tuple[int, int]) -> dict[str, Any]:
    """K and the image size it belongs to."""
    return {'K': np.asarray(matrix, dtype=np.float64).tolist(),
            'width': int(hw[1]), 'height': int(hw[0])}


def camera_record(pose: KeyframePose) -> dict[str, Any]:
    """
    One keyframe as a JSON-ready dict.

    :param pose: the keyframe.
    :return: the record (see the module docstring).
    """
    return {
        'index': int(pose.index),
        'name': pose.name,
        'stamp_ns': int(pose.stamp_ns),
        'timestamp': pose.stamp_ns / 1e9,
        'intrinsics': {
            'source': pose.intrinsics_source,
            'model': _intrinsics_record(pose.intrinsics, pose.model_hw),
            'original': _intrinsics_record(pose.intrinsics_original, pose.original_hw),
            **({} if pose.intrinsics_predicted is None else {
                'predicted': _intrinsics_record(pose.intrinsics_predicted, pose.model_hw)}),
        },
        'cam_from_world': pose.cam_from_world.tolist(),
        'world_from_cam': np.asarray(pose.world_from_cam, dtype=np.float64).tolist(),
        'segment': int(pose.segment),
    }


def scale_record(scale: MetricScale) -> dict[str, Any]:
    """
    One segment's units as a JSON-ready dict (NaN spread as null).

    :param scale: the engine's estimate.
    :return: ``metric``, ``source``, ``factor`` (metres per internal unit applied), ``samples``,
        ``spread_rel`` and ``stderr_rel``.
    """
    def number(value: float) -> float | None:
        return float(value) if np.isfinite(value) else None

    return {'metric': scale.metric, 'source': scale.source, 'factor': float(scale.factor),
            'samples': scale.samples, 'spread_rel': number(scale.spread_rel),
            'stderr_rel': number(scale.stderr_rel)}


def write_cameras_json(path: Path | str, poses: Sequence[KeyframePose], *,
                       overwrite: bool = False, camera: Mapping[str, Any] | None = None,
                       units: Mapping[int, MetricScale] | None = None,
                       world_frame: str | None = None) -> Path:
    """
    Write the keyframes' cameras as JSON, atomically.

    :param path: output file (``cameras.json``).
    :param poses: the keyframes, in order.
    :param overwrite: replace an existing file.
    :param camera: the camera as the door knew it (``calibration``: the raw camera's K and
        distortion; ``undistorted``: whether images were undistorted before mapping).
    :param units: each segment's metric scale (``Mapper.metric_scales``).
    :param world_frame: what "world" is when the poses are not in the engine's world (the ROS
        node saves in its ``map`` frame); None for the engine's.
    :return: the written path.
    :raises ExportError: if the file exists without ``overwrite`` or cannot be written.
    """
    conventions = _CONVENTIONS if world_frame is None else {**_CONVENTIONS,
                                                            'world_frame': world_frame}
    document: dict[str, Any] = {'format': CAMERAS_FORMAT, 'conventions': conventions}
    if camera is not None:
        document['camera'] = dict(camera)
    if units is not None:
        document['units'] = {str(segment): scale_record(scale)
                             for segment, scale in sorted(units.items())}
    document['cameras'] = [camera_record(pose) for pose in poses]
    text = json.dumps(document, indent=1, allow_nan=False) + '\n'
    return atomic_write_bytes(path, text.encode('utf-8'), overwrite=overwrite)


def read_cameras_json(path: Path | str) -> list[KeyframePose]:
    """
    Read a ``cameras.json`` written by ``write_cameras_json`` back into keyframe poses.

    :param path: the file.
    :return: the poses in file order.
    :raises InputError: if the file is missing, not JSON, or not in this format.
    """
    source = Path(path)
    try:
        document = json.loads(source.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f'Cannot read cameras file {str(source)!r}: {err}') from err
    if not isinstance(document, dict) or document.get('format') != CAMERAS_FORMAT:
        raise InputError(f'{str(source)!r} is not a {CAMERAS_FORMAT!r} cameras file')
    poses = []
    for number, record in enumerate(document.get('cameras', [])):
        try:
            model = record['intrinsics']['model']
            original = record['intrinsics']['original']
            poses.append(KeyframePose(
                index=int(record['index']),
                name=str(record['name']),
                stamp_ns=int(record['stamp_ns']),
                world_from_cam=np.array(record['world_from_cam'], dtype=np.float64),
                intrinsics=np.array(model['K'], dtype=np.float64),
                model_hw=(int(model['height']), int(model['width'])),
                intrinsics_original=np.array(original['K'], dtype=np.float64),
                original_hw=(int(original['height']), int(original['width'])),
                segment=int(record.get('segment', 0)),
                intrinsics_predicted=(np.array(record['intrinsics']['predicted']['K'],
                                               dtype=np.float64)
                                      if 'predicted' in record['intrinsics'] else None),
            ))
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f'{str(source)!r}: camera {number} is malformed: {err!r}') from err
    return poses
