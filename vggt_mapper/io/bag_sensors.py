"""
What a rosbag2 knows about its camera besides the images: ``CameraInfo`` and TF.

* **CameraInfo** next to the image topic (``/camera/image_raw`` → ``/camera/camera_info``, the
  image_transport convention), or a named topic: every message is read up front (they are
  small); each image uses the latest calibration stamped at or before it (the first one for
  images before any). An ``image_rect*`` topic is already rectified: its K is ``P``'s left 3×3
  and it is not undistorted again (REP 104). Uncalibrated messages (K all zeros) are skipped.
* **TF** (``/tf`` and ``/tf_static``) into a ``TransformBuffer``: each image gets
  ``odom_from_camera`` = TF ``odom_frame → <image header frame_id>`` at its stamp, through
  ``base_link`` and the static mount, interpolated between TF samples. Outside the TF data (before
  the first or after the last ``odom → base_link`` sample) or across a gap of more than 0.5 s,
  the image gets no odometry pose: it is mapped all the same, and counted (``SensorLog``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
import logging
import posixpath
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.io import ros_messages as conv
from vggt_mapper.io.calibration import calibration_from_camera_info, CameraCalibration
from vggt_mapper.io.errors import ConversionError, InputError
from vggt_mapper.io.tf_buffer import TransformBuffer, TransformLookupError

__all__ = ['CAMERA_INFO_MSGTYPE', 'TF_MSGTYPE', 'CameraInfoTrack', 'SensorLog',
           'camera_info_topic', 'read_camera_infos', 'read_tf']

_LOG = logging.getLogger(__name__)

CAMERA_INFO_MSGTYPE = 'sensor_msgs/msg/CameraInfo'
TF_MSGTYPE = 'tf2_msgs/msg/TFMessage'
Messages = Iterable[tuple[int, bytes]]


def camera_info_topic(image_topic: str, topics: dict[str, str]) -> str | None:
    """
    Return the CameraInfo topic next to an image topic, if the bag has it.

    :param image_topic: e.g. ``/camera/image_raw`` (or ``.../image_raw/compressed``).
    :param topics: the bag's topics → message types.
    :return: e.g. ``/camera/camera_info``, or None.
    """
    base = image_topic[:-len('/compressed')] if image_topic.endswith('/compressed') \
        else image_topic
    candidate = posixpath.join(posixpath.dirname(base), 'camera_info')
    return candidate if topics.get(candidate) == CAMERA_INFO_MSGTYPE else None


@dataclass
class CameraInfoTrack:
    """
    The calibrations a CameraInfo topic gave, in stamp order.

    :param topic: the topic.
    :param stamps_ns: stamp of each calibration.
    :param calibrations: the calibrations.
    """

    topic: str
    stamps_ns: list[int] = field(default_factory=list)
    calibrations: list[CameraCalibration] = field(default_factory=list)

    def at(self, stamp_ns: int) -> CameraCalibration | None:
        """Return the latest calibration stamped at or before ``stamp_ns`` (else the first)."""
        if not self.calibrations:
            return None
        return self.calibrations[max(bisect_right(self.stamps_ns, stamp_ns) - 1, 0)]


def read_camera_infos(topic: str, messages: Messages, deserialize: Callable[[bytes], Any], *,
                      rectified: bool) -> CameraInfoTrack:
    """
    Read every CameraInfo of a topic; a calibration is kept when it differs from the last.

    :param topic: the topic (for messages).
    :param messages: ``(receive_ns, rawdata)`` of the topic.
    :param deserialize: raw bytes → message.
    :param rectified: the images are rectified (see the module docstring).
    :return: the track (empty when no message was usable; each reason logged once).
    """
    track = CameraInfoTrack(topic)
    refused: Counter[str] = Counter()
    for receive_ns, rawdata in messages:
        msg = deserialize(rawdata)
        try:
            calibration = calibration_from_camera_info(
                msg.k, msg.d, msg.distortion_model, msg.width, msg.height, p=msg.p,
                rectified=rectified, source=topic)
        except InputError as err:
            if not refused[str(err)]:
                _LOG.warning('ignoring CameraInfo on %s: %s', topic, err)
            refused[str(err)] += 1
            continue
        last = track.calibrations[-1] if track.calibrations else None
        if last is not None and last.to_json_dict() == calibration.to_json_dict():
            continue
        track.stamps_ns.append(conv.stamp_to_ns(msg.header.stamp) or int(receive_ns))
        track.calibrations.append(calibration)
    return track


def read_tf(dynamic: Messages, static: Messages, deserialize: Callable[[bytes, str], Any]
            ) -> TransformBuffer:
    """
    Fill a transform buffer from ``/tf`` and ``/tf_static`` messages.

    :param dynamic: ``(receive_ns, rawdata)`` of ``/tf``.
    :param static: ``(receive_ns, rawdata)`` of ``/tf_static``.
    :param deserialize: (raw bytes, message type) → message.
    :return: the buffer (malformed transforms are skipped and logged once).
    """
    buffer = TransformBuffer()
    bad = 0
    for messages, is_static in ((static, True), (dynamic, False)):
        for receive_ns, rawdata in messages:
            for transform in deserialize(rawdata, TF_MSGTYPE).transforms:
                try:
                    buffer.add(transform.header.frame_id, transform.child_frame_id,
                               conv.stamp_to_ns(transform.header.stamp) or int(receive_ns),
                               conv.transform_to_matrix(transform), is_static)
                except (ConversionError, TransformLookupError) as err:
                    bad += 1
                    if bad == 1:
                        _LOG.warning('skipping a TF transform: %s', err)
    if bad > 1:
        _LOG.warning('skipped %d malformed TF transforms in all', bad)
    return buffer


@dataclass
class SensorLog:
    """
    How many frames got a known K and an odometry pose, and why others did not.

    :param with_intrinsics: frames given a known K (from CameraInfo).
    :param with_odometry: frames given an odometry pose.
    :param without_odometry: frames without one, by reason.
    """

    with_intrinsics: int = 0
    with_odometry: int = 0
    without_odometry: Counter[str] = field(default_factory=Counter)

    def odometry_at(self, buffer: TransformBuffer | None, odom_frame: str, camera_frame: str,
                    stamp_ns: int) -> NDArray[np.float64] | None:
        """
        Look up ``odom_frame → camera_frame`` at a stamp, counting the frames without one.

        :param buffer: the bag's TF (None: the bag has none, or odometry is off).
        :param odom_frame: the odometry frame.
        :param camera_frame: the image's header frame_id.
        :param stamp_ns: the image stamp.
        :return: ``odom_from_camera``, or None.
        """
        if buffer is None:
            return None
        try:
            pose = buffer.lookup(odom_frame, camera_frame, stamp_ns)
        except TransformLookupError as err:
            reason = _odometry_reason(str(err))
            if not self.without_odometry[reason]:
                _LOG.warning('frame at %.3f s has no odometry pose (mapped without): %s',
                             stamp_ns / 1e9, err)
            self.without_odometry[reason] += 1
            return None
        self.with_odometry += 1
        return pose

    def describe(self) -> str:
        """:return: e.g. ``'120 with odometry, 3 without (outside the TF data)'``."""
        missing = sum(self.without_odometry.values())
        reasons = ', '.join(f'{count} {reason}' for reason, count in
                            self.without_odometry.most_common())
        return (f'{self.with_intrinsics} frames with a CameraInfo K, {self.with_odometry} with '
                f'an odometry pose' + (f', {missing} without ({reasons})' if missing else ''))


def _odometry_reason(message: str) -> str:
    if 'no extrapolation' in message:
        return 'outside the TF data'
    if 'gap' in message:
        return 'in a TF gap'
    if 'not connected' in message or 'is not in TF' in message:
        return 'no TF path'
    return 'TF error'
