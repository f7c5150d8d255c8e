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
from vggt_mapper.geometry.se3 import transform_points
from vggt_mapper.geometry.sim3 import DegenerateSim3Error, fit_sim3_robust, Sim3
from vggt_mapper.geometry.unproject import unproject_pixels

__all__ = ['AlignmentReport', 'OverlapView', 'align_window']


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


def _rotation_angle_deg(rotation_a: NDArray[np.float64], rotation_b: NDArray[np.float64]
                        ) -> float:
    cosine = (np.trace(rotation_a.T @ rotation_b) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def _pairs(old: OverlapView, new: OverlapView, config: AlignmentConfig, budget: int
           ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    if old.depth.shape != new.depth.shape:
        raise AlignmentError(f'overlap keyframe predicted at two sizes {old.depth.shape} and '
                             f'{new.depth.shape}; the predictor must keep one model size')
    height, width = old.depth.shape
    stride = max(int(np.sqrt(height * width / max(budget, 1))), 1)
    rows, cols = np.mgrid[stride // 2:height:stride, stride // 2:width:stride]
    rows, cols = rows.ravel(), cols.ravel()
    c_old = old.conf[rows, cols].astype(np.float64)
    c_new = new.conf[rows, cols].astype(np.float64)
    d_old = old.depth[rows, cols]
    d_new = new.depth[rows, cols]
    usable = (np.isfinite(c_old) & np.isfinite(c_new) & np.isfinite(d_old) & np.isfinite(d_new)
              & (d_old > 0) & (d_new > 0))
    if not np.any(usable):
        empty = np.empty((0, 3))
        return empty, empty, np.empty(0)
    keep = usable.copy()
    keep &= c_old >= np.percentile(c_old[usable], config.conf_percentile)
    keep &= c_new >= np.percentile(c_new[usable], config.conf_percentile)
    rows, cols = rows[keep], cols[keep]
    points_world = _view_points(old, rows, cols)
    points_window = _view_points(new, rows, cols)
    weights = np.sqrt(c_old[keep] * c_new[keep])
    return points_window, points_world, weights


def align_window(old_views: Sequence[OverlapView], new_views: Sequence[OverlapView],
                 config: AlignmentConfig) -> AlignmentReport:
    """
    Fit ``world_from_window`` from overlap keyframes predicted by both sides, and vet it.

    :param old_views: overlap keyframes as known in the world (pose ``world_from_cam``, depth
        in world units).
    :param new_views: the same keyframes, same order, as the new window predicted them (pose
        ``window_from_cam``, depth in window units).
    :param config: alignment settings and refusal thresholds.
    :return: the alignment and its diagnostics.
    :raises AlignmentError: if the alignment is ill-conditioned or fails a check; the message
        says which check and by how much.
    """
    if len(old_views) != len(new_views) or not old_views:
        raise AlignmentError(f'need the same non-zero number of old and new overlap views, '
                             f'got {len(old_views)} and {len(new_views)}')
    budget = max(config.sample_points // len(old_views), 1)
    parts = [_pairs(old, new, config, budget)
             for old, new in zip(old_views, new_views, strict=True)]
    source = np.concatenate([p[0] for p in parts])
    target = np.concatenate([p[1] for p in parts])
    weights = np.concatenate([p[2] for p in parts])
    if source.shape[0] < config.min_points:
        raise AlignmentError(f'only {source.shape[0]} confident overlap pixel pairs, need '
                             f'{config.min_points}')
    try:
        fit = fit_sim3_robust(source, target, weights, huber_k=config.huber_k,
                              iterations=config.iterations,
                              min_rank_ratio=config.min_rank_ratio)
    except DegenerateSim3Error as err:
        raise AlignmentError(f'ill-conditioned overlap: {err}') from err
    transform = fit.transform
    # Scene depth of the overlap in world units: the yardstick of every relative check.
    depth_world = np.concatenate([
        np.linalg.norm(p[1] - old.cam_pose[:3, 3], axis=1)
        for p, old in zip(parts, old_views, strict=True)])
    scene = float(np.median(depth_world))
    if not (np.isfinite(scene) and scene > 0):
        raise AlignmentError(f'overlap scene depth is {scene}; cannot judge the alignment')
    residual = np.linalg.norm(transform.apply(source) - target, axis=1)
    residual_ratio = fit.residual_scale / scene
    inliers = residual <= config.inlier_rel * depth_world
    inlier_fraction = float(weights[inliers].sum() / max(weights.sum(), 1e-300))
    rotations, centres = [], []
    for old, new in zip(old_views, new_views, strict=True):
        carried = transform.apply_to_pose(new.cam_pose)
        rotations.append(_rotation_angle_deg(carried[:3, :3], old.cam_pose[:3, :3]))
        centres.append(float(np.linalg.norm(carried[:3, 3] - old.cam_pose[:3, 3])) / scene)
    report = AlignmentReport(transform, int(source.shape[0]), float(residual_ratio),
                             inlier_fraction, max(rotations), max(centres))
    if residual_ratio > config.max_residual_ratio:
        raise AlignmentError(f'overlap residual {residual_ratio:.3f} of scene depth exceeds '
                             f'max_residual_ratio {config.max_residual_ratio}')
    if inlier_fraction < config.min_inlier_fraction:
        raise AlignmentError(f'only {inlier_fraction:.2f} of overlap pixels agree within '
                             f'{config.inlier_rel:.0%} of depth, need '
                             f'{config.min_inlier_fraction}')
    if report.max_rotation_deg > config.max_rotation_deg:
        raise AlignmentError(f'overlap cameras disagree by {report.max_rotation_deg:.1f} deg '
                             f'in orientation, more than max_rotation_deg '
                             f'{config.max_rotation_deg}')
    if report.max_center_ratio > config.max_center_ratio:
        raise AlignmentError(f'overlap camera centres disagree by {report.max_center_ratio:.3f}'
                             f' of scene depth, more than max_center_ratio '
                             f'{config.max_center_ratio}')
    return report
