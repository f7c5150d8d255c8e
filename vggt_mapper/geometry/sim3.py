"""
Similarity transforms (Sim(3)) and their least-squares estimation from point pairs.

Convention: a ``Sim3`` maps points of a *source* frame into a *target* frame,
``x_target = scale * rotation @ x_source + translation``. The engine names them after the
frames, e.g. ``world_from_window``.

The closed form is S. Umeyama, "Least-squares estimation of transformation parameters between
two point patterns", IEEE TPAMI 13(4), 1991; equation numbers below refer to that paper. The
weighted form replaces the means and the covariance by their weighted versions; the robust
form wraps it in iteratively reweighted least squares (Huber, then Tukey biweight).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    'DegenerateSim3Error',
    'RobustSim3Fit',
    'Sim3',
    'fit_sim3_robust',
    'umeyama_sim3',
]


# A rotation further off SO(3) than this is projected back onto it; further than the second,
# refused.
_ORTHONORMAL_TOL = 1e-10
_NOT_A_ROTATION = 1e-3


class DegenerateSim3Error(ValueError):
    """The point sets cannot determine a Sim(3): too few, collinear, or of zero spread."""


@dataclass(frozen=True)
class Sim3:
    """
    A similarity transform ``x_target = scale * rotation @ x_source + translation``.

    :param scale: positive scale factor.
    :param rotation: 3×3 float64 rotation matrix (det = +1); one off SO(3) by rounding only
        (up to 1e-3) is projected onto it, anything else is refused.
    :param translation: (3,) float64 translation, in target units.
    """

    scale: float
    rotation: NDArray[np.float64]
    translation: NDArray[np.float64]

    def __post_init__(self) -> None:
        rotation = np.asarray(self.rotation, dtype=np.float64)
        translation = np.asarray(self.translation, dtype=np.float64).reshape(3)
        if rotation.shape != (3, 3):
            raise ValueError(f'rotation must be 3x3, got shape {rotation.shape}')
        if not self.scale > 0:
            raise ValueError(f'scale must be > 0, got {self.scale}')
        drift = float(np.max(np.abs(rotation.T @ rotation - np.eye(3))))
        # Products of many rotations drift off SO(3) by rounding; a matrix far off it, or a
        # reflection, is not a rotation at all.
        if drift > _NOT_A_ROTATION or not np.linalg.det(rotation) > 0:
            raise ValueError(f'rotation is not a rotation (|RᵀR - I| = {drift:.3g}, '
                             f'det = {np.linalg.det(rotation):.3g})')
        if drift > _ORTHONORMAL_TOL:
            u_mat, _, vt_mat = np.linalg.svd(rotation)
            rotation = u_mat @ vt_mat
        object.__setattr__(self, 'scale', float(self.scale))
        object.__setattr__(self, 'rotation', rotation)
        object.__setattr__(self, 'translation', translation)

    @classmethod
    def identity(cls) -> Sim3:
        """Return the identity transform."""
        return cls(1.0, np.eye(3), np.zeros(3))

    @classmethod
    def from_matrix(cls, matrix: NDArray[np.floating]) -> Sim3:
        """
        Build from a 4×4 matrix ``[[s R, t], [0, 1]]`` (or 3×4 ``[s R | t]``).

        :param matrix: the homogeneous similarity matrix.
        :return: the transform.
        :raises ValueError: if the 3×3 block is not a positive multiple of a rotation.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.shape not in ((4, 4), (3, 4)):
            raise ValueError(f'matrix must be 4x4 or 3x4, got shape {matrix.shape}')
        block = matrix[:3, :3]
        det = float(np.linalg.det(block))
        if not det > 0:
            raise ValueError(f'the 3x3 block must have a positive determinant, got {det}')
        scale = det ** (1.0 / 3.0)
        return cls(scale, block / scale, np.asarray(matrix[:3, 3], dtype=np.float64))

    def matrix(self) -> NDArray[np.float64]:
        """Return the 4×4 float64 homogeneous matrix ``[[s R, t], [0, 1]]``."""
        out = np.eye(4)
        out[:3, :3] = self.scale * self.rotation
        out[:3, 3] = self.translation
        return out

    def inverse(self) -> Sim3:
        """Return the inverse transform (target to source)."""
        inv_rotation = self.rotation.T
        inv_scale = 1.0 / self.scale
        return Sim3(inv_scale, inv_rotation, -inv_scale * inv_rotation @ self.translation)

    def compose(self, other: Sim3) -> Sim3:
        """
        Return ``self ∘ other`` (apply ``other`` first).

        :param other: transform whose target frame is this transform's source frame.
        :return: the composed transform.
        """
        return Sim3(self.scale * other.scale, self.rotation @ other.rotation,
                    self.scale * self.rotation @ other.translation + self.translation)

    def apply(self, points: NDArray[np.floating]) -> NDArray[np.float64]:
        """
        Transform points.

        :param points: (..., 3) points in the source frame.
        :return: (..., 3) float64 points in the target frame.
        """
        pts = np.asarray(points, dtype=np.float64)
        return self.scale * pts @ self.rotation.T + self.translation

    def apply_to_pose(self, target_from_cam: NDArray[np.floating]) -> NDArray[np.float64]:
        """
        Carry a rigid camera pose from the source frame into the target frame.

        The camera keeps a rigid (SE(3)) pose; only its centre is scaled.

        :param target_from_cam: 4×4 ``source_from_cam`` pose (rotation + translation).
        :return: 4×4 float64 ``target_from_cam`` pose.
        """
        pose = np.asarray(target_from_cam, dtype=np.float64)
        out = np.eye(4)
        out[:3, :3] = self.rotation @ pose[:3, :3]
        out[:3, 3] = self.scale * self.rotation @ pose[:3, 3] + self.translation
        return out


def _check_pairs(source: NDArray[np.floating], target: NDArray[np.floating],
                 weights: NDArray[np.floating] | None
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.ndim != 2 or src.shape[1] != 3 or src.shape != dst.shape:
        raise ValueError(f'source and target must both be (N, 3), got {src.shape} and '
                         f'{dst.shape}')
    if weights is None:
        wts = np.ones(src.shape[0])
    else:
        wts = np.asarray(weights, dtype=np.float64).reshape(-1)
        if wts.shape[0] != src.shape[0]:
            raise ValueError(f'weights must have N = {src.shape[0]} entries, got {wts.shape[0]}')
        if np.any(wts < 0) or not np.all(np.isfinite(wts)):
            raise ValueError('weights must be finite and >= 0')
    finite = np.all(np.isfinite(src), axis=1) & np.all(np.isfinite(dst), axis=1)
    if not np.all(finite):
        raise ValueError(f'{int((~finite).sum())} point pairs are not finite; drop them first')
    return src, dst, wts


def umeyama_sim3(source: NDArray[np.floating], target: NDArray[np.floating],
                 weights: NDArray[np.floating] | None = None,
                 min_rank_ratio: float = 1e-6,
                 rotation: NDArray[np.floating] | None = None) -> Sim3:
    """
    Least-squares similarity ``target ≈ s R source + t`` (Umeyama 1991), optionally weighted.

    :param source: (N, 3) points in the source frame.
    :param target: (N, 3) matching points in the target frame.
    :param weights: optional (N,) non-negative weights (all ones if omitted).
    :param min_rank_ratio: the second singular value of the weighted source covariance must be
        at least this fraction of the first; below it the points are (nearly) collinear and
        the rotation about their line is undetermined.
    :param rotation: a known 3×3 rotation: then only scale and translation are estimated
        (eqs. (41)-(42) with R fixed: ``c = Σ w (R x̃)·ỹ / Σ w |x̃|²``).
    :return: the transform ``target_from_source``.
    :raises DegenerateSim3Error: fewer than 3 weighted pairs, zero spread, or collinear points.
    :raises ValueError: on malformed input (shapes, non-finite values, negative weights).
    """
    src, dst, wts = _check_pairs(source, target, weights)
    if int(np.count_nonzero(wts)) < 3:
        raise DegenerateSim3Error(f'need at least 3 point pairs with weight > 0, got '
                                  f'{int(np.count_nonzero(wts))}')
    wts = wts / wts.sum()
    # Weighted means, eqs. (34)-(35).
    mean_src = wts @ src
    mean_dst = wts @ dst
    src_c = src - mean_src
    dst_c = dst - mean_dst
    # Variance of the source set, eq. (36).
    var_src = float(wts @ np.sum(src_c * src_c, axis=1))
    if not var_src > 1e-18:
        raise DegenerateSim3Error(f'source points have no spread (variance {var_src:.3g}); '
                                  f'a Sim(3) needs non-coincident points')
    if rotation is not None:
        fixed: NDArray[np.float64] = np.asarray(rotation, dtype=np.float64)
        scale = float(wts @ np.sum((src_c @ fixed.T) * dst_c, axis=1)) / var_src
        if not scale > 0:
            raise DegenerateSim3Error(f'estimated scale {scale:.3g} is not positive; the point '
                                      f'sets do not correspond')
        return Sim3(scale, fixed, mean_dst - scale * fixed @ mean_src)
    # Covariance Σ_xy = 1/n Σ (y - μy)(x - μx)^T, eq. (38).
    covariance = (dst_c * wts[:, None]).T @ src_c
    src_cov = (src_c * wts[:, None]).T @ src_c
    src_sv = np.linalg.svd(src_cov, compute_uv=False)
    if src_sv[1] < min_rank_ratio * src_sv[0]:
        raise DegenerateSim3Error(f'source points are collinear (covariance singular values '
                                  f'{src_sv[0]:.3g}, {src_sv[1]:.3g}); rotation is undetermined')
    u_mat, d_vec, vt_mat = np.linalg.svd(covariance)
    # S = diag(1, 1, -1) when det(U) det(V) < 0 so that R is a proper rotation, eq. (43).
    sign = np.ones(3)
    if np.linalg.det(u_mat) * np.linalg.det(vt_mat) < 0:
        sign[2] = -1.0
    # R = U S V^T, eq. (40); c = tr(D S) / σx², eq. (42); t = μy - c R μx, eq. (41).
    fitted = u_mat @ np.diag(sign) @ vt_mat
    scale = float(d_vec @ sign) / var_src
    if not scale > 0:
        raise DegenerateSim3Error(f'estimated scale {scale:.3g} is not positive; the point '
                                  f'sets do not correspond')
    return Sim3(scale, fitted, mean_dst - scale * fitted @ mean_src)


@dataclass(frozen=True)
class RobustSim3Fit:
    """
    Result of ``fit_sim3_robust``.

    :param transform: the fitted ``target_from_source``.
    :param residual_scale: robust scale (1.4826 × median absolute residual) of the final fit,
        in target units.
    :param inlier_fraction: weighted fraction of pairs within the Huber threshold.
    :param weights: (N,) final per-pair weights (prior × Huber).
    :param iterations: IRLS iterations run.
    """

    transform: Sim3
    residual_scale: float
    inlier_fraction: float
    weights: NDArray[np.float64]
    iterations: int


def fit_sim3_robust(source: NDArray[np.floating], target: NDArray[np.floating],
                    weights: NDArray[np.floating] | None = None, huber_k: float = 1.345,
                    iterations: int = 10, min_rank_ratio: float = 1e-3,
                    huber_iterations: int = 3, tukey_c: float = 4.685,
                    rotation: NDArray[np.floating] | None = None) -> RobustSim3Fit:
    """
    Sim(3) by iteratively reweighted least squares (IRLS) on the residual norms.

    Each iteration solves the weighted Umeyama problem, measures residuals
    ``r_i = |s R x_i + t - y_i|`` and their robust scale σ = 1.4826 · median(r), and reweights
    ``w_i = prior_i · ρ'(r_i) / r_i``: Huber (``min(1, kσ/r)``) for the first
    ``huber_iterations`` (convex, so it cannot be trapped by a bad start), then Tukey's biweight
    (``(1 - (r/cσ)²)²`` inside ``cσ``, 0 outside), whose zero weight on gross outliers lets the
    fit converge in a few steps where Huber's constant influence would keep pulling it.

    :param source: (N, 3) points in the source frame.
    :param target: (N, 3) matching points in the target frame.
    :param weights: optional (N,) prior weights, e.g. confidences.
    :param huber_k: Huber threshold in units of σ.
    :param iterations: maximum IRLS iterations in all (stops early when weights settle).
    :param min_rank_ratio: passed to ``umeyama_sim3`` (collinearity guard).
    :param huber_iterations: leading iterations with Huber weights.
    :param tukey_c: Tukey biweight threshold in units of σ.
    :param rotation: a known rotation (only scale and translation are fitted), see
        ``umeyama_sim3``.
    :return: the fit and its diagnostics.
    :raises DegenerateSim3Error: if any weighted solve is degenerate.
    :raises ValueError: on malformed input.
    """
    src, dst, prior = _check_pairs(source, target, weights)
    current = prior.copy()
    transform = umeyama_sim3(src, dst, current, min_rank_ratio, rotation)
    done = 0
    for step in range(iterations):
        done += 1
        residual = np.linalg.norm(transform.apply(src) - dst, axis=1)
        sigma = max(1.4826 * float(np.median(residual[prior > 0])), 1e-12)
        if step < huber_iterations:
            robust = np.minimum(1.0, huber_k * sigma / np.maximum(residual, 1e-300))
        else:
            robust = np.square(np.clip(1.0 - np.square(residual / (tukey_c * sigma)), 0, None))
        updated = prior * robust
        transform = umeyama_sim3(src, dst, updated, min_rank_ratio, rotation)
        change = float(np.max(np.abs(updated - current))) / max(float(prior.max()), 1e-300)
        current = updated
        if step >= huber_iterations and change < 1e-4:
            break
    residual = np.linalg.norm(transform.apply(src) - dst, axis=1)
    sigma = 1.4826 * float(np.median(residual[prior > 0]))
    inliers = residual <= huber_k * max(sigma, 1e-12)
    inlier_fraction = float(prior[inliers].sum() / max(prior.sum(), 1e-300))
    return RobustSim3Fit(transform, sigma, inlier_fraction, current, done)
