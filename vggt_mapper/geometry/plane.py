"""
Planes in 3-D: total least squares and RANSAC with a tilt limit, in numpy.

A plane is the set of points ``p`` with ``normal · p = offset`` (``normal`` unit length), so
``normal · p - offset`` is a point's signed distance from it. ``ransac_plane`` scores a chunk of
hypotheses against every point in one matrix product: a thousand hypotheses on twenty thousand
points take a fraction of a second, where scikit-learn's ``RANSACRegressor``, which fits and
scores one hypothesis at a time, took 6 s (and 4 s to import) on this project's machine.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vggt_mapper.geometry.errors import GeometryError
from vggt_mapper.geometry.gravity import unit_vector

__all__ = ['Plane', 'fit_plane', 'ransac_plane']

# Hypotheses scored per matrix product (bounds the temporary to chunk × N floats).
_CHUNK = 128
# Draw at most this many batches of triples to find enough hypotheses within the tilt limit.
_MAX_DRAWS = 20
# The best hypotheses refitted to their inliers, and the refits each gets at most.
_LOCAL_CANDIDATES = 8
_LOCAL_STEPS = 5


@dataclass(frozen=True)
class Plane:
    """
    The points ``p`` with ``normal · p = offset``.

    :param normal: (3,) unit normal.
    :param offset: ``normal · p`` of the plane's points.
    """

    normal: NDArray[np.float64]
    offset: float

    def distance(self, points: ArrayLike) -> NDArray[np.float64]:
        """
        Signed distances of points from the plane (positive on the normal's side).

        :param points: (N, 3) points.
        :return: (N,) distances.
        """
        return np.asarray(np.asarray(points, dtype=np.float64).reshape(-1, 3) @ self.normal
                          - self.offset, dtype=np.float64)


def _check_points(points: ArrayLike, least: int) -> NDArray[np.float64]:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise GeometryError(f'points must be (N, 3), got shape {array.shape}')
    if len(array) < least:
        raise GeometryError(f'a plane needs at least {least} points, got {len(array)}')
    if not np.all(np.isfinite(array)):
        raise GeometryError('points hold non-finite values')
    return array


def fit_plane(points: ArrayLike, towards: ArrayLike | None = None) -> Plane:
    """
    Fit a plane by total least squares: through the centroid, normal along the least variance.

    :param points: (N, 3) points, N ≥ 3, not all on one line.
    :param towards: (3,) the normal is flipped to have a non-negative dot product with it.
    :return: the plane.
    :raises GeometryError: for fewer than 3 points, non-finite ones, or a line (no plane).
    """
    array = _check_points(points, 3)
    centroid = array.mean(axis=0)
    _, singular, vt = np.linalg.svd(array - centroid, full_matrices=False)
    if singular[1] <= 1e-12 * max(singular[0], 1e-300):
        raise GeometryError(f'the {len(array)} points lie on a line: no plane through them')
    normal = vt[2]
    if towards is not None and normal @ unit_vector(towards, 'towards') < 0:
        normal = -normal
    return Plane(normal, float(centroid @ normal))


def _hypotheses(points: NDArray[np.float64], trials: int, rng: np.random.Generator,
                axis: NDArray[np.float64] | None, min_cos: float) -> NDArray[np.float64]:
    """
    Up to ``trials`` planes ``[normal, offset]`` (M, 4) through random triples of points.

    With ``axis``, normals are oriented along it and those tilted more than allowed are
    dropped; triples are drawn in batches until ``trials`` are kept (a nearly level floor among
    walls keeps about one triple in ten) or ``_MAX_DRAWS`` times ``trials`` were drawn.
    """
    if axis is not None and min_cos >= 1.0:
        # The normal is given: a hypothesis is the height of one point.
        heights = points[rng.integers(0, len(points), trials)] @ axis
        return np.concatenate([np.tile(axis, (trials, 1)), heights[:, None]], axis=1)
    kept: list[NDArray[np.float64]] = []
    for _ in range(_MAX_DRAWS):
        triples = points[rng.integers(0, len(points), (trials, 3))]
        normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
        norms = np.linalg.norm(normals, axis=1)
        valid = norms > 1e-12 * max(float(np.abs(triples).max()) ** 2, 1e-300)  # not a line
        normals, triples = normals[valid] / norms[valid, None], triples[valid]
        if axis is not None:
            normals *= np.where(normals @ axis < 0, -1.0, 1.0)[:, None]
            within = normals @ axis >= min_cos
            normals, triples = normals[within], triples[within]
        offsets = np.einsum('ij,ij->i', normals, triples[:, 0])
        kept.append(np.concatenate([normals, offsets[:, None]], axis=1))
        if sum(len(batch) for batch in kept) >= trials:
            break
    return np.concatenate(kept)[:trials]


def _inlier_counts(points: NDArray[np.float64], planes: NDArray[np.float64], tolerance: float
                   ) -> NDArray[np.int64]:
    """Points within ``tolerance`` of each plane, scored in chunks of hypotheses."""
    return np.concatenate([
        (np.abs(points @ chunk[:, :3].T - chunk[:, 3]) < tolerance).sum(axis=0)
        for chunk in np.array_split(planes, max(1, math.ceil(len(planes) / _CHUNK)))])


def _optimise_locally(points: NDArray[np.float64], plane: Plane, tolerance: float,
                      axis: NDArray[np.float64] | None, min_cos: float) -> Plane:
    """Refit a hypothesis to its inliers until they stop changing (LO-RANSAC's inner step)."""
    for _ in range(_LOCAL_STEPS):
        inliers = points[np.abs(plane.distance(points)) < tolerance]
        if len(inliers) < 3:
            break
        if axis is not None and min_cos >= 1.0:
            refit = Plane(axis, float(np.median(inliers @ axis)))
        else:
            try:
                refit = fit_plane(inliers, towards=plane.normal if axis is None else axis)
            except GeometryError:
                break  # collinear inliers: keep the hypothesis
            if axis is not None and refit.normal @ axis < min_cos:
                break
        if np.allclose(refit.normal, plane.normal) and abs(refit.offset - plane.offset) < (
                1e-3 * tolerance):
            return refit
        plane = refit
    return plane


def ransac_plane(points: ArrayLike, tolerance: float, rng: np.random.Generator, *,
                 trials: int = 1000, axis: ArrayLike | None = None, max_tilt_deg: float = 90.0
                 ) -> tuple[Plane, NDArray[np.bool_]] | None:
    """
    Find the plane with the most points within ``tolerance``: LO-RANSAC.

    Hypotheses are planes through random triples of points (Fischler & Bolles 1981); with
    ``axis``, only those whose normal is within ``max_tilt_deg`` of it count (0: the normal is
    ``axis`` and a hypothesis is one point's height). The best few hypotheses are then refitted
    to their inliers by total least squares until they settle, and the one with the most
    inliers wins (the local optimisation of Chum, Matas & Kittler 2003): a plane through three
    noisy points is tilted, and a tilted floor loses inliers to a plane cutting diagonally
    through floor and walls.

    :param points: (N, 3) points, N ≥ 3.
    :param tolerance: inlier distance from the plane, > 0.
    :param rng: the random generator (seeded by the caller: reproducible).
    :param trials: hypotheses to score (over-tilted and degenerate draws do not count).
    :param axis: (3,) direction the normal must stay near; normals are oriented along it.
    :param max_tilt_deg: largest angle between the normal and ``axis``, in [0, 90].
    :return: the best plane (normal along ``axis`` when given) and its (N,) inlier mask, or
        None if no valid hypothesis was drawn.
    :raises GeometryError: for bad points, a non-positive tolerance or trial count, or a tilt
        outside [0, 90].
    """
    array = _check_points(points, 3)
    if not tolerance > 0:
        raise GeometryError(f'tolerance must be > 0, got {tolerance}')
    if trials < 1:
        raise GeometryError(f'trials must be >= 1, got {trials}')
    if not 0 <= max_tilt_deg <= 90:
        raise GeometryError(f'max_tilt_deg must be in [0, 90], got {max_tilt_deg}')
    direction = None if axis is None else unit_vector(axis, 'axis')
    min_cos = 1.0 if max_tilt_deg == 0 else math.cos(math.radians(max_tilt_deg))
    planes = _hypotheses(array, trials, rng, direction, min_cos)
    if not len(planes):
        return None
    counts = _inlier_counts(array, planes, tolerance)
    best: tuple[int, Plane] | None = None
    for index in np.argsort(counts)[::-1][:_LOCAL_CANDIDATES]:
        plane = _optimise_locally(array, Plane(planes[index, :3].copy(), float(planes[index, 3])),
                                  tolerance, direction, min_cos)
        support = int(np.count_nonzero(np.abs(plane.distance(array)) < tolerance))
        if best is None or support > best[0]:
            best = (support, plane)
    assert best is not None
    return best[1], np.abs(best[1].distance(array)) < tolerance
