"""
A rendered synthetic sequence: a camera path through a world, its frames and ground truth.

``SyntheticSequence`` renders frames on demand, remembers which image is which frame (a hash of
its pixels, or its thumbnail after lossy storage) so a predictor can answer from ground truth,
and knows the true covisibility of any two frames (``covisibility``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
import hashlib

import cv2
import numpy as np
from numpy.typing import NDArray

from vggt_mapper.predictor.base import ImageMapping
from vggt_mapper.synthetic.covisibility import covisible_fractions, depth_points_world
from vggt_mapper.synthetic.errors import UnknownFrameError
from vggt_mapper.synthetic.world import (
    CORRIDOR_LOOKAHEAD_M,
    corridor_path,
    corridor_room,
    default_room,
    intrinsics_for,
    loop_path,
    orbit_path,
    RepeatingRoom,
    Room,
)

__all__ = ['COVISIBILITY_GRID_HW', 'PATCH', 'SyntheticSequence', 'model_mapping']

PATCH = 14
COVISIBILITY_GRID_HW = (24, 32)
"""Coarse pixel grid (height, width) on which covisibility is measured."""
_COARSE_CACHE = 512
_PAIR_CACHE = 16384


def _pixel_affine(scale_x: float, scale_y: float, top: float = 0.0) -> NDArray[np.float64]:
    # Pixel centres at integers on both sides: u_m + 0.5 = s (u_o + 0.5).
    return np.array([[scale_x, 0.0, 0.5 * scale_x - 0.5],
                     [0.0, scale_y, 0.5 * scale_y - 0.5 - top],
                     [0.0, 0.0, 1.0]])


def model_mapping(original_hw: tuple[int, int], model_width: int) -> ImageMapping:
    """
    Return VGGT's "crop" preprocessing as an ImageMapping.

    Width → ``model_width``, height scaled and rounded to a multiple of 14, centre-cropped to
    ``model_width`` if taller.

    :param original_hw: (height, width) of the original image.
    :param model_width: model width in pixels (a multiple of 14, e.g. 518).
    :return: the mapping from original to model pixels.
    """
    height, width = original_hw
    resized_h = int(round(height * model_width / width / PATCH)) * PATCH
    model_h = min(resized_h, model_width)
    top = (resized_h - model_h) // 2
    matrix = _pixel_affine(model_width / width, resized_h / height, top)
    return ImageMapping((height, width), (model_h, model_width), matrix)


def _image_key(image_rgb: NDArray[np.uint8]) -> bytes:
    digest = hashlib.blake2b(np.ascontiguousarray(image_rgb).tobytes(), digest_size=16)
    digest.update(repr(image_rgb.shape).encode())
    return digest.digest()


def _thumbnail(image_rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
    return cv2.resize(image_rgb, (24, 18), interpolation=cv2.INTER_AREA).astype(np.float32)


class SyntheticSequence:
    """
    A camera path through a room, rendered on demand; remembers which image is which frame.

    :param poses_world_from_cam: (N, 4, 4) camera poses in the room's world frame.
    :param room: the scene (default: ``default_room()``).
    :param height: original image height in pixels.
    :param width: original image width in pixels.
    :param hfov_deg: horizontal field of view, degrees.
    :param match_thumbnails: also remember a 24×18 thumbnail of each rendered frame, so that
        images that went through lossy storage (JPEG) are still recognised by nearest thumbnail.
    :param cache_renders: keep this many most recent renders (any resolution) to answer
        repeated requests without ray casting again (tests feed one sequence many times).
    """

    def __init__(self, poses_world_from_cam: NDArray[np.floating], room: Room | None = None,
                 height: int = 120, width: int = 160, hfov_deg: float = 70.0,
                 match_thumbnails: bool = False, cache_renders: int = 0) -> None:
        self.poses_world_from_cam = np.asarray(poses_world_from_cam, dtype=np.float64)
        self.room = room if room is not None else default_room()
        self.height = height
        self.width = width
        self.intrinsics = intrinsics_for(height, width, hfov_deg)
        self.match_thumbnails = match_thumbnails
        self._index_by_key: dict[bytes, int] = {}
        self._intrinsics_by_key: dict[bytes, NDArray[np.float64]] = {}
        self._thumbs: dict[int, NDArray[np.float32]] = {}
        self.cache_renders = cache_renders
        self._renders: OrderedDict[tuple[int, bytes, int, int],
                                   tuple[NDArray[np.uint8], NDArray[np.float32]]] = OrderedDict()
        grid_h, grid_w = COVISIBILITY_GRID_HW
        self._grid_intrinsics = _pixel_affine(grid_w / width, grid_h / height) @ self.intrinsics
        self._coarse: OrderedDict[int, tuple[NDArray[np.float32], NDArray[np.float64]]] = (
            OrderedDict())
        self._pairs: OrderedDict[tuple[int, int], float] = OrderedDict()

    def render(self, index: int, intrinsics: NDArray[np.floating], height: int, width: int
               ) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        """
        Render frame ``index``'s pose with any pinhole camera (cached if ``cache_renders``).

        :param index: 0-based frame number.
        :param intrinsics: 3×3 K in pixels.
        :param height: image height in pixels.
        :param width: image width in pixels.
        :return: ``image_rgb`` (H, W, 3) uint8 and ``depth_m`` (H, W) float32.
        """
        k_matrix = np.asarray(intrinsics, dtype=np.float64)
        key = (index, k_matrix.tobytes(), height, width)
        cached = self._renders.get(key)
        if cached is not None:
            self._renders.move_to_end(key)
            return cached
        rendered = self.room.render(self.poses_world_from_cam[index], k_matrix, height, width)
        if self.cache_renders > 0:
            self._renders[key] = rendered
            while len(self._renders) > self.cache_renders:
                self._renders.popitem(last=False)
        return rendered

    @classmethod
    def orbit(cls, num_frames: int, step_m: float = 0.02, static_frames: int = 0,
              **kwargs: object) -> SyntheticSequence:
        """
        Sequence along ``orbit_path`` in the default room.

        :param num_frames: number of frames.
        :param step_m: metres travelled per frame.
        :param static_frames: leading frames with the camera standing still.
        :param kwargs: passed to the constructor (height, width, ...).
        :return: the sequence.
        """
        poses = orbit_path(num_frames, step_m=step_m, static_frames=static_frames)
        return cls(poses, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def loop(cls, frames_per_lap: int = 400, laps: float = 1.0, **kwargs: object
             ) -> SyntheticSequence:
        """
        Sequence along ``loop_path`` in the default room: back near frame 0 every lap.

        :param frames_per_lap: frames per lap of about 7.7 m.
        :param laps: number of laps (``round(laps * frames_per_lap) + 1`` frames).
        :param kwargs: passed to the constructor (height, width, ...).
        :return: the sequence; frame ``k * frames_per_lap`` revisits frame 0.
        """
        return cls(loop_path(frames_per_lap, laps), **kwargs)  # type: ignore[arg-type]

    @classmethod
    def corridor(cls, num_frames: int, step_m: float = 0.02, period_m: float = 2.4,
                 **kwargs: object) -> SyntheticSequence:
        """
        Sequence along ``corridor_path`` in a ``corridor_room`` just long enough for it.

        :param num_frames: number of frames.
        :param step_m: metres travelled per frame along the corridor.
        :param period_m: repetition period of the corridor, metres; frames
            ``round(period_m / step_m)`` apart look alike.
        :param kwargs: passed to the constructor (height, width, ...).
        :return: the sequence (its ``room`` is a ``RepeatingRoom``).
        """
        needed = 1.0 + (num_frames - 1) * step_m + CORRIDOR_LOOKAHEAD_M
        periods = max(int(np.ceil(needed / period_m)), 2)
        room: RepeatingRoom = corridor_room(periods * period_m, period_m)
        poses = corridor_path(num_frames, room, step_m)
        return cls(poses, room, **kwargs)  # type: ignore[arg-type]

    def __len__(self) -> int:
        """Return the number of frames."""
        return int(self.poses_world_from_cam.shape[0])

    def frame(self, index: int) -> NDArray[np.uint8]:
        """
        Render frame ``index`` (RGB uint8 H×W×3) and register it for the predictor.

        :param index: 0-based frame number.
        :return: the image.
        """
        image, _ = self.render(index, self.intrinsics, self.height, self.width)
        self._index_by_key[_image_key(image)] = index
        if self.match_thumbnails:
            self._thumbs[index] = _thumbnail(image)
        return image

    def depth(self, index: int) -> NDArray[np.float32]:
        """Render the true z-depth of frame ``index``: (H, W) float32, metres."""
        _, depth = self.render(index, self.intrinsics, self.height, self.width)
        return depth

    def register(self, image_rgb: NDArray[np.uint8], index: int,
                 intrinsics: NDArray[np.floating]) -> None:
        """
        Recognise ``image_rgb`` as frame ``index`` from now on (e.g. a resized copy of it).

        :param image_rgb: the image.
        :param index: its frame.
        :param intrinsics: 3×3 K of that image, in its pixels.
        """
        key = _image_key(image_rgb)
        self._index_by_key[key] = index
        self._intrinsics_by_key[key] = np.asarray(intrinsics, dtype=np.float64)

    def intrinsics_of(self, image_rgb: NDArray[np.uint8]) -> NDArray[np.float64]:
        """
        Return the K of an image of this sequence (a registered copy's own, else the original's).

        :param image_rgb: a frame or a registered copy.
        :return: 3×3 K in the image's pixels.
        """
        return self._intrinsics_by_key.get(_image_key(image_rgb), self.intrinsics)

    def index_of(self, image_rgb: NDArray[np.uint8]) -> int:
        """
        Which frame an image is.

        :param image_rgb: an image returned by ``frame`` (or a lossy copy of one when
            ``match_thumbnails`` is set).
        :return: its frame index.
        :raises UnknownFrameError: if the image was never rendered by this sequence.
        """
        index = self._index_by_key.get(_image_key(image_rgb))
        if index is not None:
            return index
        if self.match_thumbnails and self._thumbs:
            query = _thumbnail(image_rgb)
            keys = list(self._thumbs)
            errors = [float(np.mean(np.abs(self._thumbs[k] - query))) for k in keys]
            best = int(np.argmin(errors))
            if errors[best] < 12.0:
                return keys[best]
        raise UnknownFrameError(f'image of shape {image_rgb.shape} was not rendered by this '
                                f'sequence; pass frames from SyntheticSequence.frame()')

    def covisibility(self, seeing: int, seen: int) -> float:
        """
        Share of frame ``seen``'s surface that frame ``seeing`` sees (ground truth, cached).

        Measured on a ``COVISIBILITY_GRID_HW`` grid of the true depth with a 5 % depth
        tolerance (``covisibility.covisible_fractions``); 1 for a frame and itself.

        :param seeing: index of the frame that looks.
        :param seen: index of the frame whose points are looked for.
        :return: the fraction in [0, 1].
        """
        return float(self.covisibility_matrix([seeing, seen])[0, 1])

    def covisibility_matrix(self, indices: Sequence[int]) -> NDArray[np.float64]:
        """
        Covisibility of every ordered pair of frames of a window (cached per pair).

        :param indices: S frame indices.
        :return: (S, S) float64, entry ``[a, b]`` = share of frame ``indices[b]``'s points that
            frame ``indices[a]`` sees; the diagonal is 1.
        """
        frame_ids = np.asarray(indices)
        # A frame sees itself whole (also when a window holds the same frame twice).
        matrix: NDArray[np.float64] = (frame_ids[:, None] == frame_ids[None, :]).astype(np.float64)
        for col, seen in enumerate(indices):
            rows = [row for row, seeing in enumerate(indices) if seeing != seen]
            missing = [row for row in rows if (indices[row], seen) not in self._pairs]
            if missing:
                seeing_indices = [indices[row] for row in missing]
                fractions = covisible_fractions(
                    self._coarse_view(seen)[1], self.poses_world_from_cam[seeing_indices],
                    self._grid_intrinsics,
                    np.stack([self._coarse_view(i)[0] for i in seeing_indices]))
                for seeing, fraction in zip(seeing_indices, fractions, strict=True):
                    self._remember_pair((seeing, seen), float(fraction))
                matrix[missing, col] = fractions
            cached = [row for row in rows if row not in missing]
            matrix[cached, col] = [self._pairs[(indices[row], seen)] for row in cached]
        return matrix

    def _remember_pair(self, key: tuple[int, int], fraction: float) -> None:
        self._pairs[key] = fraction
        while len(self._pairs) > _PAIR_CACHE:
            self._pairs.popitem(last=False)

    def _coarse_view(self, index: int) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        cached = self._coarse.get(index)
        if cached is not None:
            self._coarse.move_to_end(index)
            return cached
        grid_h, grid_w = COVISIBILITY_GRID_HW
        _, depth_m = self.room.render(self.poses_world_from_cam[index], self._grid_intrinsics,
                                      grid_h, grid_w)
        view = (depth_m, depth_points_world(depth_m, self.poses_world_from_cam[index],
                                            self._grid_intrinsics))
        self._coarse[index] = view
        while len(self._coarse) > _COARSE_CACHE:
            self._coarse.popitem(last=False)
        return view
