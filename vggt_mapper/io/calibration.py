"""
Camera calibration in: files, ``CameraInfo``, flags; undistortion to a pinhole image (OpenCV).

A ``CameraCalibration`` is the camera as its calibration describes it: image size, K, and a
distortion model with its coefficients, as ROS names them: ``plumb_bob`` (k1, k2, p1, p2, k3),
``rational_polynomial`` (k1, k2, p1, p2, k3, k4, k5, k6) and ``equidistant`` (fisheye: k1..k4).
Read from:

* a ROS ``camera_info`` YAML, as ``camera_calibration`` writes it (``camera_matrix``,
  ``distortion_model``, ``distortion_coefficients``, ``image_width``, ``image_height``);
* an OpenCV ``FileStorage`` file, YAML (``%YAML:1.0``) or JSON, with ``camera_matrix`` (or
  ``K``, ``cameraMatrix``) and ``distortion_coefficients`` (or ``D``, ``distCoeffs``),
  ``image_width``/``image_height`` and an optional ``distortion_model`` string (say
  ``equidistant`` for a fisheye: four coefficients are plumb_bob's k1, k2, p1, p2 otherwise);
* a plain JSON object with ``K`` (3×3 or 9 values) or ``fx``/``fy``/``cx``/``cy``, ``D``,
  ``distortion_model``, ``width``/``height`` (also the node's ``camera_info.json``: ``k``, ``d``);
* a ``sensor_msgs/CameraInfo`` (``calibration_from_camera_info``) or ``--fx --fy --cx --cy``.

``Undistorter`` turns images of one calibrated camera into pinhole images of the same size
(``cv2.initUndistortRectifyMap`` / ``cv2.fisheye``; the new K keeps only valid pixels, so the
model never sees the black border), and ``apply_calibration`` hands each frame to the engine
with the K of the image it gets. A calibration of another size than the images is scaled when
the aspect ratio matches (a video recorded at half resolution), refused otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.types import InputFrame
from vggt_mapper.io.errors import InputError

__all__ = ['DISTORTION_MODELS', 'CameraCalibration', 'Undistorter', 'UndistorterCache',
           'apply_calibration',
           'calibration_from_camera_info', 'pinhole_calibration', 'read_calibration',
           'undistort_frame']

_LOG = logging.getLogger(__name__)

#: Distortion model → number of coefficients OpenCV takes for it ('none': no distortion).
DISTORTION_MODELS = {'none': 0, 'plumb_bob': 5, 'rational_polynomial': 8, 'equidistant': 4}
_ALIASES = {'': 'none', 'pinhole': 'none', 'radtan': 'plumb_bob', 'fisheye': 'equidistant',
            'kannala_brandt': 'equidistant'}
_K_KEYS = ('camera_matrix', 'K', 'cameraMatrix', 'k', 'intrinsics')
_D_KEYS = ('distortion_coefficients', 'D', 'distCoeffs', 'dist_coeffs', 'd', 'distortion')
_ASPECT_TOLERANCE = 0.01


@dataclass(frozen=True)
class CameraCalibration:
    """
    One camera's intrinsic calibration.

    :param width: image width in pixels (0: unknown, taken from the images).
    :param height: image height in pixels (0: unknown).
    :param k: 3×3 float64 K in pixels (pixel centres at integers, as OpenCV and ROS).
    :param distortion_model: ``none``, ``plumb_bob``, ``rational_polynomial`` or
        ``equidistant``.
    :param d: the distortion coefficients (``DISTORTION_MODELS`` gives how many; fewer are
        padded with zeros for plumb_bob and rational_polynomial).
    :param source: where it came from (a file, a topic, flags), for logs and exports.
    """

    width: int
    height: int
    k: NDArray[np.float64]
    distortion_model: str = 'none'
    d: tuple[float, ...] = ()
    source: str = ''

    def __post_init__(self) -> None:
        k = np.asarray(self.k, dtype=np.float64)
        if k.shape != (3, 3) or not np.all(np.isfinite(k)) or not (k[0, 0] > 0 and k[1, 1] > 0):
            raise InputError(f'calibration {self.source!r}: K must be a finite 3x3 matrix with '
                             f'positive focal lengths, got {np.asarray(self.k).tolist()}')
        model = _ALIASES.get(self.distortion_model, self.distortion_model)
        if model not in DISTORTION_MODELS:
            raise InputError(f'calibration {self.source!r}: unsupported distortion model '
                             f'{self.distortion_model!r}; supported: '
                             f'{", ".join(DISTORTION_MODELS)}')
        coefficients = tuple(float(value) for value in self.d)
        wanted = DISTORTION_MODELS[model]
        # plumb_bob and rational_polynomial may come short (zeros follow) or padded with zeros.
        if (model == 'equidistant' and len(coefficients) != wanted) or any(coefficients[wanted:]):
            raise InputError(f'calibration {self.source!r}: {model} takes {wanted} distortion '
                             f'coefficients, got {len(coefficients)}: {list(coefficients)}')
        if not all(np.isfinite(coefficients)):
            raise InputError(f'calibration {self.source!r}: distortion coefficients must be '
                             f'finite, got {list(coefficients)}')
        if self.width < 0 or self.height < 0:
            raise InputError(f'calibration {self.source!r}: image size must be >= 0, got '
                             f'{self.width}x{self.height}')
        object.__setattr__(self, 'k', k)
        object.__setattr__(self, 'distortion_model', model)
        padded = coefficients[:wanted] + (0.0,) * max(wanted - len(coefficients), 0)
        object.__setattr__(self, 'd', padded if model != 'none' else ())

    @property
    def distorted(self) -> bool:
        """Return True if images need undistortion (a model with a non-zero coefficient)."""
        return any(value != 0.0 for value in self.d)

    def for_image_size(self, image_hw: tuple[int, int]) -> CameraCalibration:
        """
        Return this calibration for images of ``image_hw`` (scaled if the aspect ratio matches).

        :param image_hw: (height, width) of the images.
        :return: the calibration of that size (itself when it already matches).
        :raises InputError: if the sizes differ in aspect ratio.
        """
        height, width = image_hw
        if (self.width, self.height) in ((width, height), (0, 0)):
            return replace(self, width=width, height=height)
        sx, sy = width / self.width, height / self.height
        if abs(sx / sy - 1.0) > _ASPECT_TOLERANCE:
            raise InputError(f'calibration {self.source!r} is for {self.width}x{self.height} '
                             f'images, the input is {width}x{height} (another aspect ratio); '
                             'give the calibration of this camera mode')
        # Pixel centres at integers: u' + 0.5 = s (u + 0.5).
        scale = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5],
                          [0.0, 0.0, 1.0]])
        _LOG.info('calibration %s is for %dx%d images: scaled by %.4g to the %dx%d input',
                  self.source, self.width, self.height, sx, width, height)
        return replace(self, width=width, height=height, k=scale @ self.k)

    def to_json_dict(self) -> dict[str, Any]:
        """:return: the calibration as plain JSON types (``K`` row-major 3×3)."""
        return {'width': self.width, 'height': self.height, 'K': self.k.tolist(),
                'distortion_model': self.distortion_model, 'D': list(self.d),
                'source': self.source}


def pinhole_calibration(fx: float, fy: float, cx: float, cy: float, *, width: int = 0,
                        height: int = 0, source: str = 'flags') -> CameraCalibration:
    """
    Return a distortion-free calibration from focal lengths and principal point (pixels).

    :param fx: focal length along u, pixels.
    :param fy: focal length along v, pixels.
    :param cx: principal point column, pixels (pixel centres at integers).
    :param cy: principal point row, pixels.
    :param width: image width (0: the images').
    :param height: image height (0: the images').
    :param source: where the values came from.
    :return: the calibration.
    :raises InputError: for non-positive or non-finite focal lengths.
    """
    return CameraCalibration(width, height, np.array([[fx, 0.0, cx], [0.0, fy, cy],
                                                      [0.0, 0.0, 1.0]]), 'none', (), source)


def calibration_from_camera_info(k: Iterable[float], d: Iterable[float], distortion_model: str,
                                 width: int, height: int, *, p: Iterable[float] | None = None,
                                 rectified: bool = False, source: str = 'CameraInfo'
                                 ) -> CameraCalibration:
    """
    Return the calibration a ``sensor_msgs/CameraInfo`` describes.

    :param k: its ``k`` (9 values, row-major).
    :param d: its ``d``.
    :param distortion_model: its ``distortion_model`` (empty: none).
    :param width: its ``width``.
    :param height: its ``height``.
    :param p: its ``p`` (12 values), used when ``rectified``.
    :param rectified: the images are already rectified (an ``image_rect`` topic): their K is
        ``p``'s left 3×3 and they have no distortion (REP 104).
    :param source: a name for logs (the topic).
    :return: the calibration.
    :raises InputError: if K is all zeros (an uncalibrated camera) or malformed.
    """
    k_values = np.asarray(list(k), dtype=np.float64)
    if k_values.size != 9:
        raise InputError(f'{source}: CameraInfo K has {k_values.size} values, need 9')
    if not np.any(k_values):
        raise InputError(f'{source}: CameraInfo K is all zeros (an uncalibrated camera); '
                         'calibrate it or pass a calibration file')
    if rectified and p is not None:
        projection = np.asarray(list(p), dtype=np.float64).reshape(3, 4)
        return CameraCalibration(int(width), int(height), projection[:, :3], 'none', (), source)
    return CameraCalibration(int(width), int(height), k_values.reshape(3, 3),
                             distortion_model or 'none', tuple(float(v) for v in d), source)


def _matrix(value: Any, name: str, source: str) -> NDArray[np.float64]:
    """Read a matrix from ROS YAML ``{rows, cols, data}``, a nested list or a flat list."""
    if isinstance(value, dict) and 'data' in value:
        value = value['data']
    try:
        return np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise InputError(f'calibration {source!r}: {name} is not a list of numbers: '
                         f'{value!r}') from err


def _first(document: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in document:
            return document[key]
    return None


def _from_mapping(document: dict[str, Any], source: str) -> CameraCalibration:
    """Build a calibration from a ROS YAML or plain JSON mapping."""
    k_value = _first(document, _K_KEYS)
    if k_value is None and all(key in document for key in ('fx', 'fy', 'cx', 'cy')):
        k_value = [document['fx'], 0.0, document['cx'], 0.0, document['fy'], document['cy'],
                   0.0, 0.0, 1.0]
    if k_value is None:
        raise InputError(f'calibration {source!r} has no camera matrix (looked for '
                         f'{", ".join(_K_KEYS)} or fx/fy/cx/cy)')
    k_flat = _matrix(k_value, 'the camera matrix', source)
    if k_flat.size != 9:
        raise InputError(f'calibration {source!r}: the camera matrix has {k_flat.size} values, '
                         'need 9')
    d_value = _first(document, _D_KEYS)
    d_flat = _matrix(d_value, 'the distortion coefficients', source) if d_value is not None \
        else np.empty(0)
    model = document.get('distortion_model')
    if model is None:
        model = 'plumb_bob' if d_flat.size <= 5 else 'rational_polynomial'
    width = document.get('image_width', document.get('width', 0))
    height = document.get('image_height', document.get('height', 0))
    return CameraCalibration(int(width), int(height), k_flat.reshape(3, 3), str(model),
                             tuple(float(v) for v in d_flat), source)


def _read_file_storage(path: Path) -> CameraCalibration:
    """Read an OpenCV FileStorage file (YAML or JSON) with ``cv2.FileStorage``."""
    storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    try:
        if not storage.isOpened():
            raise InputError(f'OpenCV cannot read the calibration file {str(path)!r}')
        document: dict[str, Any] = {}
        for key in (*_K_KEYS, *_D_KEYS):
            node = storage.getNode(key)
            if node.empty():
                continue
            if node.isSeq():
                document[key] = [node.at(i).real() for i in range(node.size())]
            elif node.isMap():
                document[key] = node.mat()
        for key in ('image_width', 'image_height', 'width', 'height'):
            node = storage.getNode(key)
            if not node.empty():
                document[key] = int(node.real())
        node = storage.getNode('distortion_model')
        if not node.empty():
            document['distortion_model'] = node.string()
    finally:
        storage.release()
    return _from_mapping(document, str(path))


def read_calibration(path: Path | str) -> CameraCalibration:
    """
    Read a camera calibration file (ROS camera_info YAML, OpenCV YAML/JSON, plain JSON).

    :param path: the file.
    :return: the calibration.
    :raises InputError: if the file is missing, unreadable, or holds no usable calibration
        (the message says what is missing).
    """
    source = Path(path)
    try:
        text = source.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f'cannot read the calibration file {str(source)!r}: {err}') from err
    if text.lstrip().startswith('%YAML') or 'opencv-matrix' in text:
        return _read_file_storage(source)
    if source.suffix.lower() == '.json':
        try:
            document = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f'calibration file {str(source)!r} is not JSON: {err}') from err
    else:
        import yaml

        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise InputError(f'calibration file {str(source)!r} is not YAML: {err}') from err
    if not isinstance(document, dict):
        raise InputError(f'calibration file {str(source)!r} holds no mapping of calibration '
                         'keys')
    return _from_mapping(document, str(source))


class Undistorter:
    """
    Undistort images of one camera to pinhole images of the same size (OpenCV remap).

    :param calibration: the camera (its size must be the images').
    :ivar new_k: 3×3 K of the undistorted images; the calibration's K when it has no
        distortion (images then pass through unchanged).
    """

    def __init__(self, calibration: CameraCalibration) -> None:
        if calibration.width <= 0 or calibration.height <= 0:
            raise InputError(f'calibration {calibration.source!r} needs an image size to '
                             'undistort (use for_image_size)')
        self.calibration = calibration
        size = (calibration.width, calibration.height)
        k = calibration.k
        d = np.asarray(calibration.d, dtype=np.float64)
        self._maps: tuple[Any, Any] | None = None
        new_k: Any = k
        if calibration.distorted and calibration.distortion_model == 'equidistant':
            # balance 0: the new K shows valid pixels only (no black border).
            new_k = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(
                k, d, size, np.eye(3), balance=0.0)
            self._maps = cv2.fisheye.initUndistortRectifyMap(k, d, np.eye(3), new_k, size,
                                                             cv2.CV_32FC1)
        elif calibration.distorted:
            # alpha 0: every pixel of the undistorted image is a valid one (no black border).
            new_k, _ = cv2.getOptimalNewCameraMatrix(k, d, size, 0.0, size)
            self._maps = cv2.initUndistortRectifyMap(k, d, None, new_k, size, cv2.CV_32FC1)
        self.new_k: NDArray[np.float64] = np.array(new_k, dtype=np.float64)

    def __call__(self, image_rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """
        Undistort one image.

        :param image_rgb: (H, W, 3) uint8 image of the calibrated size.
        :return: the pinhole image (the input itself when there is no distortion).
        :raises InputError: if the image is not of the calibrated size.
        """
        height, width = image_rgb.shape[:2]
        if (width, height) != (self.calibration.width, self.calibration.height):
            raise InputError(f'image of {width}x{height} pixels, calibration '
                             f'{self.calibration.source!r} is for '
                             f'{self.calibration.width}x{self.calibration.height}')
        if self._maps is None:
            return image_rgb
        return np.asarray(cv2.remap(image_rgb, self._maps[0], self._maps[1], cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_CONSTANT), dtype=np.uint8)


class UndistorterCache:
    """The ``Undistorter`` of the latest (calibration, image size): maps are built once."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, tuple[int, int]], Undistorter] = {}

    def get(self, calibration: CameraCalibration, image_hw: tuple[int, int]) -> Undistorter:
        """
        Return the undistorter of a calibration for images of ``image_hw``.

        :param calibration: the camera.
        :param image_hw: (height, width) of the images.
        :return: the undistorter (built on first use).
        :raises InputError: if the calibration does not fit that size.
        """
        key = (id(calibration), image_hw)
        found = self._cache.get(key)
        if found is None:
            found = Undistorter(calibration.for_image_size(image_hw))
            self._cache = {key: found}  # one camera mode at a time: keep the latest only
        return found


def undistort_frame(frame: InputFrame, calibration: CameraCalibration,
                    cache: UndistorterCache | None = None) -> InputFrame:
    """
    Undistort one frame and attach the K of the image the engine gets.

    :param frame: the raw frame.
    :param calibration: its camera.
    :param cache: reuse undistortion maps across frames.
    :return: the frame with the pinhole image and ``intrinsics`` set.
    :raises InputError: if the calibration does not fit the image size.
    """
    undistorter = (cache or UndistorterCache()).get(calibration, frame.image_rgb.shape[:2])
    return replace(frame, image_rgb=undistorter(frame.image_rgb), intrinsics=undistorter.new_k)


def apply_calibration(frames: Iterable[InputFrame], calibration: CameraCalibration
                      ) -> Iterator[InputFrame]:
    """
    Undistort every frame of one camera and hand it on with its pinhole K.

    :param frames: raw frames.
    :param calibration: the camera.
    :return: the frames, undistorted, with ``intrinsics`` set.
    :raises InputError: if the calibration does not fit the images (at the first frame).
    """
    cache = UndistorterCache()
    for frame in frames:
        yield undistort_frame(frame, calibration, cache)
