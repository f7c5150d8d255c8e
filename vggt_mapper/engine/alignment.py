"""
Carry a window into the world frame with a Sim(3) fitted to the overlap keyframes' depth.

The overlap keyframes were predicted twice: by an earlier window (their pose and depth are
known in the world) and by the new window (in its own frame and scale). The same pixel of the
same image thus gives two 3-D points, one in each frame; a confidence-weighted robust
Umeyama fit of the pairs gives ``world_from_window``. Dense depth keeps the problem well posed
when the overlap cameras barely move (their centres alone would be degenerate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.config import AlignmentConfig
from vggt_mapper.engine.errors import AlignmentError
from vggt_mapper.geometry.se3 import inverse_se3, transform_points
from vggt_mapper.geometry.sim3 import DegenerateSim3Error, fit_sim3_robust, Sim3
from vggt_mapper.geometry.unproject import unproject_pixels

__all__ = ['AlignmentReport', 'OverlapView', 'PointView', 'align_window', 'sample_view']


@dataclass(frozen=True)
class OverlapView:
    """
    One overlap keyframe as seen by one prediction.

    :param cam_pose: 4×4 ``frame_from_cam`` pose (frame = world for the old view, window for
        the new one).
    :param depth: (H, W) z-depth in that frame's units.
    :param conf: (H, W) confidence, larger is better.
    :param intrinsics: 3×3 K in the pixels of ``depth``.
    """

    cam_pose: NDArray[np.float64]
    depth: NDArray[np.float32]
    conf: NDArray[np.float32]
    intrinsics: NDArray[np.float64]


@dataclass(frozen=True)
class AlignmentReport:
    """
    A successful alignment and its diagnostics.

    :param world_from_window: the fitted Sim(3).
    :param num_pairs: pixel pairs used.
    :param residual_ratio: robust residual scale / median overlap depth (world units).
    :param inlier_fraction: confidence-weighted fraction of pairs within ``inlier_rel``.
    :param max_rotation_deg: largest orientation disagreement of an overlap camera.
    :param max_center_ratio: largest centre disagreement / median overlap depth.
    """

    world_from_window: Sim3
    num_pairs: int
    residual_ratio: float
    inlier_fraction: float
    max_rotation_deg: float
    max_center_ratio: float


def _view_points(view: OverlapView, rows: NDArray[np.intp], cols: NDArray[np.intp]
                 ) -> NDArray[np.float64]:
    """Points of the selected pixels in the view's frame (world or window), (N, 3) float64."""
    points_cam = unproject_pixels(np.stack([cols, rows], axis=-1), view.depth[rows, cols],
                                  view.intrinsics)
    return transform_points(view.cam_pose, points_cam)


def _mean_rotation(rotations: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
    """Chordal L2 mean of rotations: the rotation closest to their sum (SVD projection)."""
    u_mat, _, vt_mat = np.linalg.svd(np.sum(rotations, axis=0))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u_mat @ vt_mat))])
    return np.asarray(u_mat @ sign @ vt_mat, dtype=np.float64)


def _rotation_angle_deg(rotation_a: NDArray[np.float64], rotation_b: NDArray[np.float64]
                        ) -> float:
    cosine = (np.trace(rotation_a.T @ rotation_b) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


@dataclass(frozen=True)
class PointView:
    """
    One overlap keyframe as already known in the world: points at known model pixels.

    Mapped keyframes keep such a sparse cloud for the whole run (the keyframe store), so a new
    window, or a loop window, is aligned to the map through the pixels both predicted.

    :param cam_pose: 4×4 ``world_from_cam`` pose (rigid).
    :param points_world: (N, 3) points in the world frame.
    :param rows: (N,) model-image row v of each point.
    :param cols: (N,) model-image column u of each point.
    :param conf: (N,) confidence of each point, larger is better.
    :param image_hw: (height, width) of the model image the pixels refer to.
    """

    cam_pose: NDArray[np.float64]
    points_world: NDArray[np.float64]
    rows: NDArray[np.intp]
    cols: NDArray[np.intp]
    conf: NDArray[np.float64]
    image_hw: tuple[int, int]


def sample_view(view: OverlapView, budget: int) -> PointView:
    """
    Sample a dense view on a regular pixel grid of about ``budget`` pixels.

    :param view: a dense view whose ``cam_pose`` is ``world_from_cam``.
    :param budget: the number of pixels wanted.
    :return: the usable pixels (finite, positive depth) as a point view.
    """
    height, width = view.depth.shape
    stride = max(int(np.sqrt(height * width / max(budget, 1))), 1)
    rows, cols = np.mgrid[stride // 2:height:stride, stride // 2:width:stride]
    rows, cols = rows.ravel(), cols.ravel()
    depth = view.depth[rows, cols]
    conf = view.conf[rows, cols].astype(np.float64)
    usable = np.isfinite(depth) & (depth > 0) & np.isfinite(conf)
    rows, cols = rows[usable], cols[usable]
    points = _view_points(view, rows, cols)
    return PointView(view.cam_pose, points, rows, cols, conf[usable], (height, width))


def _pairs(old: PointView, new: OverlapView, config: AlignmentConfig
           ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    if tuple(old.image_hw) != tuple(new.depth.shape):
        raise AlignmentError(f'overlap keyframe predicted at two sizes {tuple(old.image_hw)} '
                             f'and {new.depth.shape}; the predictor must keep one model size',
                             'size')
    rows, cols = old.rows, old.cols
    c_old = old.conf
    c_new = new.conf[rows, cols].astype(np.float64)
    d_new = new.depth[rows, cols]
    usable = np.isfinite(c_old) & np.isfinite(c_new) & np.isfinite(d_new) & (d_new > 0)
    if not np.any(usable):
        empty = np.empty((0, 3))
        return empty, empty, np.empty(0)
    keep = usable.copy()
    keep &= c_old >= np.percentile(c_old[usable], config.conf_percentile)
    keep &= c_new >= np.percentile(c_new[usable], config.conf_percentile)
    points_window = _view_points(new, rows[keep], cols[keep])
    weights = np.sqrt(c_old[keep] * c_new[keep])
    return points_window, old.points_world[keep], weights


def align_window(old_views: Sequence[OverlapView | PointView],
                 new_views: Sequence[OverlapView], config: AlignmentConfig) -> AlignmentReport:
    """
    Fit ``world_from_window`` from overlap keyframes predicted by both sides, and vet it.

    :param old_views: overlap keyframes as known in the world: dense views (pose
        ``world_from_cam``, depth in world units) or point views (a keyframe's stored points).
    :param new_views: the same keyframes, same order, as the new window predicted them (pose
        ``window_from_cam``, depth in window units).
    :param config: alignment settings and refusal thresholds.
    :return: the alignment and its diagnostics.
    :raises AlignmentError: if the alignment is ill-conditioned or fails a check; the message
        says which check and by how much.
    """
    if len(old_views) != len(new_views) or not old_views:
        raise AlignmentError(f'need the same non-zero number of old and new overlap views, '
                             f'got {len(old_views)} and {len(new_views)}', 'views')
    budget = max(config.sample_points // len(old_views), 1)
    known = [old if isinstance(old, PointView) else sample_view(old, budget)
             for old in old_views]
    parts = [_pairs(old, new, config) for old, new in zip(known, new_views, strict=True)]
    source = np.concatenate([p[0] for p in parts])
    target = np.concatenate([p[1] for p in parts])
    weights = np.concatenate([p[2] for p in parts])
    if source.shape[0] < config.min_points:
        raise AlignmentError(f'only {source.shape[0]} confident overlap pixel pairs, need '
                             f'{config.min_points}', 'pairs')
    rotation = None
    if config.rotation_from == 'cameras':
        rotation = _mean_rotation([old.cam_pose[:3, :3] @ new.cam_pose[:3, :3].T
                                   for old, new in zip(known, new_views, strict=True)])
    try:
        fit = fit_sim3_robust(source, target, weights, huber_k=config.huber_k,
                              iterations=config.iterations,
                              min_rank_ratio=config.min_rank_ratio, rotation=rotation)
    except DegenerateSim3Error as err:
        raise AlignmentError(f'ill-conditioned overlap: {err}', 'degenerate') from err
    transform = fit.transform
    # Scene depth of the overlap in world units: the yardstick of every relative check.
    depth_world = np.concatenate([
        np.linalg.norm(p[1] - old.cam_pose[:3, 3], axis=1)
        for p, old in zip(parts, known, strict=True)])
    scene = float(np.median(depth_world))
    if not (np.isfinite(scene) and scene > 0):
        raise AlignmentError(f'overlap scene depth is {scene}; cannot judge the alignment',
                             'degenerate')
    residual = np.linalg.norm(transform.apply(source) - target, axis=1)
    residual_ratio = fit.residual_scale / scene
    inliers = residual <= config.inlier_rel * depth_world
    inlier_fraction = float(weights[inliers].sum() / max(weights.sum(), 1e-300))
    rotations, centres = [], []
    for old, new in zip(known, new_views, strict=True):
        carried = transform.apply_to_pose(new.cam_pose)
        rotations.append(_rotation_angle_deg(carried[:3, :3], old.cam_pose[:3, :3]))
        centres.append(float(np.linalg.norm(carried[:3, 3] - old.cam_pose[:3, 3])) / scene)
    report = AlignmentReport(transform, int(source.shape[0]), float(residual_ratio),
                             inlier_fraction, max(rotations), max(centres))
    if residual_ratio > config.max_residual_ratio:
        raise AlignmentError(f'overlap residual {residual_ratio:.3f} of scene depth exceeds '
                             f'max_residual_ratio {config.max_residual_ratio}', 'residual')
    if inlier_fraction < config.min_inlier_fraction:
        raise AlignmentError(f'only {inlier_fraction:.2f} of overlap pixels agree within '
                             f'{config.inlier_rel:.0%} of depth, need '
                             f'{config.min_inlier_fraction}', 'inliers')
    if report.max_rotation_deg > config.max_rotation_deg:
        raise AlignmentError(f'overlap cameras disagree by {report.max_rotation_deg:.1f} deg '
                             f'in orientation, more than max_rotation_deg '
                             f'{config.max_rotation_deg}', 'rotation')
    if report.max_center_ratio > config.max_center_ratio:
        raise AlignmentError(f'overlap camera centres disagree by {report.max_center_ratio:.3f}'
                             f' of scene depth, more than max_center_ratio '
                             f'{config.max_center_ratio}', 'centre')
    return report


def covisible_fraction(depth_a: NDArray[np.floating], intrinsics_a: NDArray[np.floating],
                       frame_from_cam_a: NDArray[np.floating], depth_b: NDArray[np.floating],
                       intrinsics_b: NDArray[np.floating],
                       frame_from_cam_b: NDArray[np.floating], samples: int = 1024,
                       depth_tolerance: float = 0.1) -> float:
    """
    Share of camera b's points that camera a sees on its own depth, as one prediction puts them.

    b's depth is sampled on a grid of about ``samples`` pixels, back-projected, carried into a's
    camera with the two poses (same frame, same unit) and projected with a's intrinsics; a point
    counts when it lands inside a's image, in front of it, within ``depth_tolerance`` (relative)
    of a's depth there. Points b sees that a does not (out of view, occluded) count against.
    A model that got one frame wrong (rotation, collapsed depth) or two frames' relation wrong
    scores low; two frames of one place, consistently predicted, score high.

    :param depth_a: (H, W) z-depth of camera a.
    :param intrinsics_a: 3×3 K of a, in the pixels of ``depth_a``.
    :param frame_from_cam_a: 4×4 pose of a in the shared frame.
    :param depth_b: (H, W) z-depth of camera b.
    :param intrinsics_b: 3×3 K of b.
    :param frame_from_cam_b: 4×4 pose of b in the shared frame.
    :param samples: pixels of b to test.
    :param depth_tolerance: relative depth agreement needed.
    :return: the share in [0, 1] (0 when b has no usable depth).
    """
    height_b, width_b = depth_b.shape
    stride = max(int(np.sqrt(height_b * width_b / max(samples, 1))), 1)
    rows, cols = np.mgrid[stride // 2:height_b:stride, stride // 2:width_b:stride]
    rows, cols = rows.ravel(), cols.ravel()
    depth = np.asarray(depth_b, dtype=np.float64)[rows, cols]
    usable = np.isfinite(depth) & (depth > 0)
    total = int(usable.sum())
    if total == 0:
        return 0.0
    points_b = unproject_pixels(np.stack([cols[usable], rows[usable]], axis=-1),
                                depth[usable], intrinsics_b)
    a_from_b = inverse_se3(frame_from_cam_a) @ np.asarray(frame_from_cam_b, dtype=np.float64)
    points_a = transform_points(a_from_b, points_b)
    z = points_a[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        pixels = points_a @ np.asarray(intrinsics_a, dtype=np.float64).T
        u = np.rint(pixels[:, 0] / z)
        v = np.rint(pixels[:, 1] / z)
    height_a, width_a = depth_a.shape
    inside = (z > 0) & (u >= 0) & (u < width_a) & (v >= 0) & (v < height_a)
    rows_a, cols_a = v[inside].astype(np.intp), u[inside].astype(np.intp)
    seen = np.asarray(depth_a, dtype=np.float64)[rows_a, cols_a]
    agree = np.isfinite(seen) & (np.abs(z[inside] - seen) <= depth_tolerance * seen)
    return float(agree.sum()) / total
