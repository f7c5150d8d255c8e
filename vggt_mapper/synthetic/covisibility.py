"""
Ground-truth covisibility of camera views: which share of one view's surface another view sees.

Covisibility of views ``a`` and ``b`` (``b`` seen by ``a``): the share of ``b``'s points (its
true depth on a coarse pixel grid, unprojected) that project inside ``a``'s image, in front of
``a``, with a z-depth that agrees with ``a``'s true depth there (bilinear, within ``rel_tol``):
points hidden from ``a`` behind something else do not count. It is not symmetric (a close-up
``b`` of a wall that ``a`` sees whole is fully seen by ``a``, not the other way round).
Conventions: ``world_from_cam`` poses, OpenCV camera axes, pinhole K in pixels of the coarse
grid, pixel centres at integer coordinates, z-depth in metres.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components

from vggt_mapper.geometry import (
    inverse_se3,
    pixel_grid_uv,
    project_points,
    transform_points,
    unproject_pixels,
)

__all__ = ['components_of_window', 'covisible_fractions', 'depth_points_world']


def depth_points_world(depth_m: NDArray[np.floating], world_from_cam: NDArray[np.floating],
                       intrinsics: NDArray[np.floating]) -> NDArray[np.float64]:
    """
    Unproject one depth map into world points, valid pixels only.

    :param depth_m: (h, w) true z-depth, metres.
    :param world_from_cam: 4×4 camera pose.
    :param intrinsics: 3×3 K of the depth map's pixel grid.
    :return: (P, 3) float64 world points of the pixels with a positive, finite depth.
    """
    depth = np.asarray(depth_m, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    pixels = pixel_grid_uv(*depth.shape)[valid]
    return transform_points(np.asarray(world_from_cam, dtype=np.float64),
                            unproject_pixels(pixels, depth[valid], intrinsics))


def _bilinear(depth_m: NDArray[np.floating], u: NDArray[np.float64], v: NDArray[np.float64]
              ) -> NDArray[np.float64]:
    # (B, h, w) maps sampled at (B, P) positions inside [0, w - 1] x [0, h - 1].
    height, width = depth_m.shape[1:]
    u0 = np.clip(np.floor(u).astype(np.int64), 0, width - 2)
    v0 = np.clip(np.floor(v).astype(np.int64), 0, height - 2)
    du, dv = u - u0, v - v0
    rows = np.arange(depth_m.shape[0])[:, None]
    top = depth_m[rows, v0, u0] * (1 - du) + depth_m[rows, v0, u0 + 1] * du
    bottom = depth_m[rows, v0 + 1, u0] * (1 - du) + depth_m[rows, v0 + 1, u0 + 1] * du
    return np.asarray(top * (1 - dv) + bottom * dv, dtype=np.float64)


def covisible_fractions(points_world: NDArray[np.floating],
                        world_from_cam: NDArray[np.floating],
                        intrinsics: NDArray[np.floating], depth_m: NDArray[np.floating],
                        rel_tol: float = 0.05) -> NDArray[np.float64]:
    """
    Return the share of a view's points that each of B other views sees (see the module).

    :param points_world: (P, 3) points of the seen view, world frame, metres.
    :param world_from_cam: (B, 4, 4) poses of the seeing views.
    :param intrinsics: (3, 3) K of the seeing views' depth grid (shared).
    :param depth_m: (B, h, w) true z-depth of the seeing views on that grid, metres.
    :param rel_tol: largest relative depth disagreement of a point that is seen.
    :return: (B,) fractions in [0, 1] (0 for an empty point set).
    """
    num_views, height, width = depth_m.shape
    if points_world.shape[0] == 0:
        return np.zeros(num_views)
    cam_from_world = inverse_se3(np.asarray(world_from_cam, dtype=np.float64))
    points_cam = (np.einsum('bij,pj->bpi', cam_from_world[:, :3, :3], points_world)
                  + cam_from_world[:, None, :3, 3])
    uv, z = project_points(points_cam, intrinsics)
    u, v = uv[..., 0], uv[..., 1]
    # The image covers [-0.5, w - 0.5] (pixel centres at integers); the depth between the
    # outermost centres and the border is the outermost one's.
    inside = ((z > 1e-6) & (u >= -0.5) & (u <= width - 0.5) & (v >= -0.5)
              & (v <= height - 0.5))
    seen_depth = _bilinear(np.asarray(depth_m, dtype=np.float64),
                           np.clip(np.where(inside, u, 0.0), 0, width - 1),
                           np.clip(np.where(inside, v, 0.0), 0, height - 1))
    agrees = np.abs(z - seen_depth) <= rel_tol * np.maximum(seen_depth, 1e-9)
    return np.asarray(np.mean(inside & agrees, axis=1), dtype=np.float64)


def components_of_window(covisibility: NDArray[np.floating], threshold: float
                         ) -> NDArray[np.int64]:
    """
    Group a window's frames into sets connected through covisible pairs.

    Frames ``a`` and ``b`` are linked when either sees at least ``threshold`` of the other
    (``max(C[a, b], C[b, a]) >= threshold``); a frame belongs to frame 0's set if a chain of
    links joins them, like VGGT relating frames through the ones between them.

    :param covisibility: (S, S) matrix, ``C[a, b]`` = share of frame b's points frame a sees.
    :param threshold: least covisibility of a link, in (0, 1].
    :return: (S,) component label per frame; frame 0's label is 0.
    """
    linked = np.maximum(covisibility, covisibility.T) >= threshold
    _, labels = connected_components(linked, directed=False)
    # Relabel so that frame 0's component is 0 and the others keep their first-seen order.
    order = list(dict.fromkeys(labels.tolist()))
    return np.array([order.index(label) for label in labels], dtype=np.int64)
