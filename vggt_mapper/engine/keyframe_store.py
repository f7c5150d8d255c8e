"""
Every mapped keyframe's points, in its own camera frame, and its image, for the whole run.

The map must move with its poses (a loop closure corrects old keyframes), so no keyframe's
geometry is ever baked into world coordinates: each keyframe keeps a bounded cloud of points in
its camera frame (OpenCV axes) and its *home unit* (the depth unit of the window that mapped it),
and the world map is derived from these clouds and the keyframes' current Sim(3) poses.

Memory budget: a cloud holds at most ``StoreConfig.points_per_keyframe`` points of 21 bytes
(xyz float32, rgb, the model pixel it came from as two uint16, confidence float16). Clouds and
images are written to two append-only files in the store's folder when the keyframe is added
(write-through); RAM keeps only the ``hot_keyframes`` most recently used clouds and the small
per-keyframe record (about 0.3 kB). RSS is therefore bounded by the hot set whatever the run's
length; the disk holds about ``points_per_keyframe * 21`` bytes plus one encoded image per
keyframe.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
import logging
import os
from pathlib import Path
import shutil
import tempfile

import cv2
import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.config import MapConfig, StoreConfig
from vggt_mapper.engine.errors import EngineError
from vggt_mapper.geometry.unproject import unproject_pixels

__all__ = ['KeyframeCloud', 'KeyframeRecord', 'KeyframeStore', 'KeyframeStoreView', 'StoreError',
           'image_extension', 'select_keyframe_points']

_LOG = logging.getLogger(__name__)

_POINTS_FILE = 'points.bin'
_IMAGES_FILE = 'images.bin'
# Bytes per stored point: xyz float32, rgb uint8, uv uint16, conf float16.
POINT_BYTES = 12 + 3 + 4 + 2


class StoreError(EngineError):
    """The keyframe store cannot read or write its files (disk full, folder removed...)."""


@dataclass(frozen=True)
class KeyframeCloud:
    """
    One keyframe's points in its own camera frame.

    :param points_local: (N, 3) float32 points, camera frame (OpenCV axes), home depth unit.
    :param colors_rgb: (N, 3) uint8 colours.
    :param pixels_uv: (N, 2) uint16 model-image pixel (column u, row v) each point came from,
        so a later prediction of the same image can be paired with it pixel for pixel.
    :param conf: (N,) float16 depth confidence of each point (larger is better).
    """

    points_local: NDArray[np.float32]
    colors_rgb: NDArray[np.uint8]
    pixels_uv: NDArray[np.uint16]
    conf: NDArray[np.float16]

    @property
    def num_points(self) -> int:
        """Return the number of points N."""
        return int(self.points_local.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return self.num_points * POINT_BYTES

    @classmethod
    def empty(cls) -> KeyframeCloud:
        """Return a cloud without points."""
        return cls(np.empty((0, 3), np.float32), np.empty((0, 3), np.uint8),
                   np.empty((0, 2), np.uint16), np.empty(0, np.float16))

    def to_bytes(self) -> bytes:
        """Serialise as the four arrays one after another (little-endian)."""
        return b''.join([self.points_local.astype('<f4').tobytes(),
                         self.colors_rgb.tobytes(),
                         self.pixels_uv.astype('<u2').tobytes(),
                         self.conf.astype('<f2').tobytes()])

    @classmethod
    def from_bytes(cls, data: bytes, num_points: int) -> KeyframeCloud:
        """
        Read a cloud written by ``to_bytes``.

        :param data: exactly ``num_points * POINT_BYTES`` bytes.
        :param num_points: N.
        :return: the cloud.
        :raises StoreError: if the size does not match.
        """
        if len(data) != num_points * POINT_BYTES:
            raise StoreError(f'keyframe cloud record has {len(data)} bytes, expected '
                             f'{num_points * POINT_BYTES} for {num_points} points')
        buffer = np.frombuffer(data, np.uint8)
        ends = np.cumsum([0, 12 * num_points, 3 * num_points, 4 * num_points, 2 * num_points])
        points = buffer[ends[0]:ends[1]].view('<f4').reshape(-1, 3).astype(np.float32)
        colours = buffer[ends[1]:ends[2]].reshape(-1, 3).copy()
        pixels = buffer[ends[2]:ends[3]].view('<u2').reshape(-1, 2).astype(np.uint16)
        conf = buffer[ends[3]:ends[4]].view('<f2').astype(np.float16)
        return cls(points, colours, pixels, conf)


@dataclass(frozen=True)
class KeyframeRecord:
    """
    What is always kept in memory about a mapped keyframe.

    :param index: keyframe number (0-based, selection order).
    :param name: frame name.
    :param stamp_ns: timestamp, integer nanoseconds.
    :param intrinsics: 3×3 K in model-image pixels, as its home window predicted it.
    :param model_hw: (height, width) of the model image.
    :param intrinsics_original: 3×3 K in original-image pixels.
    :param original_hw: (height, width) of the original image.
    :param median_depth: median depth of its cloud in its home unit (the scene yardstick).
    :param num_points: points in its cloud.
    :param intrinsics_predicted: the model's own K (model pixels) when ``intrinsics`` is a
        known one the door gave; None when ``intrinsics`` is the model's.
    """

    index: int
    name: str
    stamp_ns: int
    intrinsics: NDArray[np.float64]
    model_hw: tuple[int, int]
    intrinsics_original: NDArray[np.float64]
    original_hw: tuple[int, int]
    median_depth: float
    num_points: int
    intrinsics_predicted: NDArray[np.float64] | None = None


def _write_at(descriptor: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(descriptor, view, offset)
        view, offset = view[written:], offset + written


@dataclass(frozen=True)
class _Location:
    points_offset: int
    image_offset: int
    image_bytes: int


def select_keyframe_points(depth: NDArray[np.floating], conf: NDArray[np.floating],
                           intrinsics: NDArray[np.floating], image_rgb: NDArray[np.uint8],
                           map_config: MapConfig, store_config: StoreConfig
                           ) -> KeyframeCloud:
    """
    Turn one predicted depth map into a keyframe's bounded local cloud.

    Pixels on a ``pixel_stride`` grid with finite positive depth and a confidence at least the
    ``conf_percentile`` of the frame (and ``conf_min``) are back-projected; a voxel grid in the
    camera frame (edge ``local_voxel_rel`` × median depth, coarsened ×1.5 until at most
    ``points_per_keyframe`` remain) keeps the most confident pixel of each voxel, so every kept
    point is a real pixel with a real colour.

    :param depth: (H, W) z-depth in the home unit.
    :param conf: (H, W) confidence.
    :param intrinsics: 3×3 K in the same pixels.
    :param image_rgb: (H, W, 3) the model image (colours).
    :param map_config: confidence filter and pixel stride.
    :param store_config: the point budget and local voxel size.
    :return: the cloud (possibly empty).
    """
    height, width = depth.shape
    stride = map_config.pixel_stride
    rows, cols = np.mgrid[0:height:stride, 0:width:stride]
    rows, cols = rows.ravel(), cols.ravel()
    depth_s = np.asarray(depth, dtype=np.float64)[rows, cols]
    conf_s = np.asarray(conf, dtype=np.float64)[rows, cols]
    valid = np.isfinite(conf_s) & np.isfinite(depth_s) & (depth_s > 0)
    if not np.any(valid):
        return KeyframeCloud.empty()
    threshold = max(float(np.percentile(conf_s[valid], map_config.conf_percentile)),
                    map_config.conf_min)
    valid &= conf_s >= threshold
    rows, cols, conf_s = rows[valid], cols[valid], conf_s[valid]
    points = unproject_pixels(np.stack([cols, rows], axis=-1), depth_s[valid], intrinsics)
    if points.shape[0] == 0:
        return KeyframeCloud.empty()
    keep = _voxel_keep(points, conf_s, store_config)
    return KeyframeCloud(points[keep].astype(np.float32), image_rgb[rows[keep], cols[keep]],
                         np.stack([cols[keep], rows[keep]], axis=1).astype(np.uint16),
                         conf_s[keep].astype(np.float16))


def _voxel_keep(points: NDArray[np.float64], conf: NDArray[np.float64],
                config: StoreConfig) -> NDArray[np.intp]:
    """Return the most confident point of each voxel, the voxel grown until under budget."""
    voxel = max(config.local_voxel_rel * float(np.median(points[:, 2])), 1e-9)
    # Most confident first, so the first occurrence of each voxel key is the one to keep.
    order = np.argsort(-conf, kind='stable')
    ordered = points[order]
    while True:
        cells = np.floor(ordered / voxel).astype(np.int64)
        _, first = np.unique(cells, axis=0, return_index=True)
        if first.shape[0] <= config.points_per_keyframe:
            return np.sort(order[first])
        voxel *= 1.5


class KeyframeStore:
    """
    Keyframe records in memory; clouds and images on disk with a small hot cache.

    Used by one thread at a time (the mapper's). With ``directory`` the files go there (created
    if missing, kept by ``close``); otherwise a private temporary folder is made in ``parent``
    (or the system's temporary folder) and ``close`` removes it.

    :param config: the store's budget.
    :param directory: where the two data files go (kept), or None.
    :param parent: where to make the private temporary folder when ``directory`` is None: put
        it on a disk with room, not a RAM-backed /tmp, for long runs.
    :raises StoreError: if the folder cannot be made or the files cannot be opened.
    """

    def __init__(self, config: StoreConfig, directory: Path | None = None, *,
                 parent: Path | None = None) -> None:
        self.config = config
        self._owns_directory = directory is None
        self.directory = Path(directory or parent or tempfile.gettempdir())
        try:
            if directory is None:
                if parent is not None:
                    Path(parent).mkdir(parents=True, exist_ok=True)
                directory = Path(tempfile.mkdtemp(prefix='.vggt_mapper_keyframes_',
                                                  dir=parent))
            self.directory = Path(directory)
            self.directory.mkdir(parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC
            self._points_fd = os.open(self.directory / _POINTS_FILE, flags, 0o600)
            self._images_fd = os.open(self.directory / _IMAGES_FILE, flags, 0o600)
        except OSError as err:
            raise StoreError(f'cannot create the keyframe store in {str(self.directory)!r}: '
                             f'{err}') from err
        self._records: dict[int, KeyframeRecord] = {}
        self._where: dict[int, _Location] = {}
        self._hot: OrderedDict[int, KeyframeCloud] = OrderedDict()
        self._points_end = 0
        self._images_end = 0

    def __enter__(self) -> KeyframeStore:
        """Return the store; ``close`` on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the store."""
        self.close()

    def __len__(self) -> int:
        """Return the number of keyframes stored."""
        return len(self._records)

    def __contains__(self, index: object) -> bool:
        """Tell whether keyframe ``index`` is stored."""
        return index in self._records

    def indices(self) -> list[int]:
        """Return the stored keyframe indices in ascending order."""
        return sorted(self._records)

    def record(self, index: int) -> KeyframeRecord:
        """
        Return keyframe ``index``'s record.

        :param index: keyframe index.
        :return: the record.
        :raises KeyError: if it is not stored.
        """
        return self._records[index]

    def add(self, record: KeyframeRecord, cloud: KeyframeCloud,
            image_rgb: NDArray[np.uint8]) -> None:
        """
        Store a keyframe (written to disk now, kept hot).

        :param record: its metadata (``record.num_points`` must match the cloud).
        :param cloud: its local points.
        :param image_rgb: the image to keep for later re-predictions (uint8 H×W×3).
        :raises ValueError: if the keyframe is already stored or the record does not match.
        :raises StoreError: if the files cannot be written.
        """
        self.add_encoded(record, cloud, self._encode(image_rgb))

    def add_encoded(self, record: KeyframeRecord, cloud: KeyframeCloud, image: bytes) -> None:
        """
        Store a keyframe whose image is already encoded (a saved map being loaded).

        :param record: its metadata (``record.num_points`` must match the cloud).
        :param cloud: its local points.
        :param image: the image as a PNG or JPEG file's bytes (checked by its signature).
        :raises ValueError: if the keyframe is already stored, the record does not match or
            the image is neither PNG nor JPEG.
        :raises StoreError: if the files cannot be written.
        """
        if record.index in self._records:
            raise ValueError(f'keyframe {record.index} is already stored')
        if record.num_points != cloud.num_points:
            raise ValueError(f'record says {record.num_points} points, cloud has '
                             f'{cloud.num_points}')
        image_extension(image)
        try:
            _write_at(self._points_fd, cloud.to_bytes(), self._points_end)
            _write_at(self._images_fd, image, self._images_end)
        except OSError as err:
            raise StoreError(f'cannot write keyframe {record.index} to the store in '
                             f'{str(self.directory)!r}: {err}') from err
        self._where[record.index] = _Location(self._points_end, self._images_end, len(image))
        self._points_end += cloud.nbytes
        self._images_end += len(image)
        self._records[record.index] = record
        self._remember(record.index, cloud)

    def cloud(self, index: int) -> KeyframeCloud:
        """
        Return the cloud of keyframe ``index`` (from the hot cache or the disk).

        :param index: keyframe index.
        :return: the cloud (do not modify it).
        :raises KeyError: if it is not stored.
        :raises StoreError: if the file cannot be read.
        """
        cached = self._hot.get(index)
        if cached is not None:
            self._hot.move_to_end(index)
            return cached
        record = self._records[index]
        data = self._read(self._points_fd, self._where[index].points_offset,
                          record.num_points * POINT_BYTES)
        cloud = KeyframeCloud.from_bytes(data, record.num_points)
        self._remember(index, cloud)
        return cloud

    def iter_clouds(self, indices: Iterable[int]) -> Iterator[tuple[int, KeyframeCloud]]:
        """
        Yield ``(index, cloud)`` without promoting cold clouds into the hot cache.

        For whole-map passes (rebuilding the world map after a loop closure): RSS stays at the
        hot set plus one cloud.

        :param indices: keyframe indices.
        :return: an iterator of pairs.
        """
        for index in indices:
            cached = self._hot.get(index)
            if cached is not None:
                yield index, cached
                continue
            record = self._records[index]
            data = self._read(self._points_fd, self._where[index].points_offset,
                              record.num_points * POINT_BYTES)
            yield index, KeyframeCloud.from_bytes(data, record.num_points)

    def image(self, index: int) -> NDArray[np.uint8]:
        """
        Decode keyframe ``index``'s stored image.

        :param index: keyframe index.
        :return: (H, W, 3) uint8 RGB.
        :raises KeyError: if it is not stored.
        :raises StoreError: if the file cannot be read or decoded.
        """
        return _decode(self.encoded_image(index), index)

    def encoded_image(self, index: int) -> bytes:
        """
        Return keyframe ``index``'s stored image as written: a PNG or JPEG file's bytes.

        :param index: keyframe index.
        :return: the bytes (``image_extension`` tells the format).
        :raises KeyError: if it is not stored.
        :raises StoreError: if the file cannot be read.
        """
        where = self._where[index]
        return self._read(self._images_fd, where.image_offset, where.image_bytes)

    def view(self) -> KeyframeStoreView:
        """
        Return a read-only view of the keyframes stored now, usable from another thread.

        The view has its own file descriptors and copies of the (small) records and offsets;
        the files are append-only, so what it reads never changes while the store goes on
        adding keyframes, and it stays readable after the store is closed (even when its
        folder is removed: an open file outlives its name). Close it when done.

        :return: the view.
        :raises StoreError: if the files cannot be opened again.
        """
        return KeyframeStoreView(dict(self._records), dict(self._where), self._points_fd,
                                 self._images_fd)

    @property
    def memory_bytes(self) -> int:
        """Bytes of point data held in RAM (the hot clouds)."""
        return sum(cloud.nbytes for cloud in self._hot.values())

    @property
    def disk_bytes(self) -> int:
        """Bytes written to the store's files."""
        return self._points_end + self._images_end

    @property
    def num_points(self) -> int:
        """Points held by all stored clouds."""
        return sum(record.num_points for record in self._records.values())

    def close(self) -> None:
        """Close the files; remove the folder if the store made it."""
        for descriptor in (self._points_fd, self._images_fd):
            if descriptor >= 0:
                os.close(descriptor)
        self._points_fd = self._images_fd = -1
        self._hot.clear()
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _remember(self, index: int, cloud: KeyframeCloud) -> None:
        self._hot[index] = cloud
        self._hot.move_to_end(index)
        while len(self._hot) > self.config.hot_keyframes:
            self._hot.popitem(last=False)

    def _encode(self, image_rgb: NDArray[np.uint8]) -> bytes:
        bgr = np.ascontiguousarray(np.asarray(image_rgb, dtype=np.uint8)[:, :, ::-1])
        if self.config.image_format == 'png':
            ok, buffer = cv2.imencode('.png', bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        else:
            ok, buffer = cv2.imencode('.jpg', bgr,
                                      [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        if not ok:
            raise StoreError(f'cannot encode a keyframe image of shape {image_rgb.shape}')
        return bytes(buffer.tobytes())

    @staticmethod
    def _read(descriptor: int, offset: int, size: int) -> bytes:
        try:
            data = os.pread(descriptor, size, offset)
        except OSError as err:
            raise StoreError(f'cannot read the keyframe store: {err}') from err
        if len(data) != size:
            raise StoreError(f'keyframe store file is truncated: read {len(data)} of {size} '
                             f'bytes at offset {offset}')
        return data


def image_extension(image: bytes) -> str:
    """
    Tell a stored image's format by its file signature.

    :param image: an encoded image file's bytes.
    :return: ``'png'`` or ``'jpg'``.
    :raises ValueError: if it is neither.
    """
    if image.startswith(b'\x89PNG\r\n\x1a\n'):
        return 'png'
    if image.startswith(b'\xff\xd8\xff'):
        return 'jpg'
    raise ValueError(f'a keyframe image must be a PNG or JPEG file, got one starting with '
                     f'{image[:8]!r}')


def _decode(data: bytes, index: int) -> NDArray[np.uint8]:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise StoreError(f'the stored image of keyframe {index} cannot be decoded')
    return np.ascontiguousarray(bgr[:, :, ::-1])


class KeyframeStoreView:
    """
    The keyframes of a ``KeyframeStore`` as they were when ``KeyframeStore.view`` was called.

    Read-only and independent of the store's thread: it reads the store's append-only files
    through descriptors of its own (``os.dup``) and keeps no cache.

    :param records: the records at the time of the view.
    :param where: where each keyframe's data is in the files.
    :param points_fd: the store's points file descriptor (duplicated here).
    :param images_fd: the store's images file descriptor (duplicated here).
    :raises StoreError: if the descriptors cannot be duplicated.
    """

    def __init__(self, records: dict[int, KeyframeRecord], where: dict[int, _Location],
                 points_fd: int, images_fd: int) -> None:
        self._records = records
        self._where = where
        try:
            self._points_fd = os.dup(points_fd)
            self._images_fd = os.dup(images_fd)
        except OSError as err:
            raise StoreError(f'cannot open the keyframe store again: {err}') from err

    def __enter__(self) -> KeyframeStoreView:
        """Return the view; ``close`` on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the view."""
        self.close()

    def __len__(self) -> int:
        """Return the number of keyframes in the view."""
        return len(self._records)

    def indices(self) -> list[int]:
        """Return the keyframe indices in ascending order."""
        return sorted(self._records)

    def record(self, index: int) -> KeyframeRecord:
        """
        Return keyframe ``index``'s record.

        :param index: keyframe index.
        :return: the record.
        :raises KeyError: if it is not in the view.
        """
        return self._records[index]

    def cloud(self, index: int) -> KeyframeCloud:
        """
        Read keyframe ``index``'s cloud.

        :param index: keyframe index.
        :return: the cloud.
        :raises KeyError: if it is not in the view.
        :raises StoreError: if the file cannot be read.
        """
        record = self._records[index]
        data = KeyframeStore._read(self._points_fd, self._where[index].points_offset,
                                   record.num_points * POINT_BYTES)
        return KeyframeCloud.from_bytes(data, record.num_points)

    def encoded_image(self, index: int) -> bytes:
        """
        Read keyframe ``index``'s image as stored (PNG or JPEG bytes).

        :param index: keyframe index.
        :return: the bytes.
        :raises KeyError: if it is not in the view.
        :raises StoreError: if the file cannot be read.
        """
        where = self._where[index]
        return KeyframeStore._read(self._images_fd, where.image_offset, where.image_bytes)

    def image(self, index: int) -> NDArray[np.uint8]:
        """
        Decode keyframe ``index``'s image.

        :param index: keyframe index.
        :return: (H, W, 3) uint8 RGB.
        :raises KeyError: if it is not in the view.
        :raises StoreError: if the file cannot be read or decoded.
        """
        return _decode(self.encoded_image(index), index)

    def close(self) -> None:
        """Close the view's descriptors (idempotent)."""
        for descriptor in (self._points_fd, self._images_fd):
            if descriptor >= 0:
                os.close(descriptor)
        self._points_fd = self._images_fd = -1
