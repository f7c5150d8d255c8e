"""Tests of Sim(3) estimation (Umeyama 1991, weighted and robust) and its conventions."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vggt_mapper.geometry.sim3 import DegenerateSim3Error, fit_sim3_robust, Sim3, umeyama_sim3


def _random_sim3(rng: np.random.Generator) -> Sim3:
    rotation, _ = cv2.Rodrigues(rng.normal(size=3))
    return Sim3(float(np.exp(rng.uniform(-1, 1))), rotation, rng.normal(size=3) * 3)


def _close(a: Sim3, b: Sim3, tol: float = 1e-8) -> bool:
    return bool(np.allclose(a.matrix(), b.matrix(), atol=tol))


def test_umeyama_recovers_exact_transform() -> None:
    rng = np.random.default_rng(0)
    truth = _random_sim3(rng)
    source = rng.normal(size=(50, 3))
    assert _close(umeyama_sim3(source, truth.apply(source)), truth)


def test_umeyama_weights_ignore_zero_weight_pairs() -> None:
    rng = np.random.default_rng(1)
    truth = _random_sim3(rng)
    source = rng.normal(size=(60, 3))
    target = truth.apply(source)
    target[:20] += rng.normal(size=(20, 3)) * 5
    weights = np.ones(60)
    weights[:20] = 0
    assert _close(umeyama_sim3(source, target, weights), truth)
    assert not _close(umeyama_sim3(source, target), truth, tol=1e-2)


def test_robust_fit_rejects_gross_outliers() -> None:
    rng = np.random.default_rng(2)
    truth = _random_sim3(rng)
    source = rng.normal(size=(2000, 3))
    target = truth.apply(source) + rng.normal(size=(2000, 3)) * 0.01
    target[:600] = rng.normal(size=(600, 3)) * 10  # 30 % garbage
    fit = fit_sim3_robust(source, target)
    assert fit.transform.scale == pytest.approx(truth.scale, rel=0.01)
    assert np.allclose(fit.transform.rotation, truth.rotation, atol=0.01)
    # Plain least squares is pulled away by the same outliers.
    plain = umeyama_sim3(source, target)
    assert abs(plain.scale - truth.scale) > 0.05 * truth.scale


def test_planar_points_are_enough() -> None:
    rng = np.random.default_rng(3)
    truth = _random_sim3(rng)
    source = np.column_stack([rng.normal(size=(100, 2)), np.zeros(100)])
    assert _close(umeyama_sim3(source, truth.apply(source)), truth, tol=1e-6)


@pytest.mark.parametrize('case', ['collinear', 'coincident', 'too_few'])
def test_degenerate_input_raises_domain_error(case: str) -> None:
    rng = np.random.default_rng(4)
    if case == 'collinear':
        source = np.outer(rng.normal(size=40), [1.0, 2.0, 3.0])
    elif case == 'coincident':
        source = np.ones((40, 3))
    else:
        source = rng.normal(size=(2, 3))
    with pytest.raises(DegenerateSim3Error):
        umeyama_sim3(source, source * 2)


def test_malformed_input_raises_value_error() -> None:
    with pytest.raises(ValueError, match='must both be'):
        umeyama_sim3(np.zeros((5, 3)), np.zeros((4, 3)))
    bad = np.ones((5, 3))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match='not finite'):
        umeyama_sim3(bad, bad)


def test_convention_sim3_matrix_inverse_compose_round_trip() -> None:
    rng = np.random.default_rng(5)
    a, b = _random_sim3(rng), _random_sim3(rng)
    points = rng.normal(size=(10, 3))
    assert _close(Sim3.from_matrix(a.matrix()), a)
    assert np.allclose(a.inverse().apply(a.apply(points)), points)
    assert np.allclose(a.compose(b).apply(points), a.apply(b.apply(points)))
    assert np.allclose(a.matrix() @ np.append(points[0], 1.0), np.append(a.apply(points[0]), 1))
    assert _close(a.compose(a.inverse()), Sim3.identity())


def test_convention_apply_to_pose_keeps_rigid_pose_and_moves_centre() -> None:
    rng = np.random.default_rng(6)
    transform = _random_sim3(rng)
    rotation, _ = cv2.Rodrigues(rng.normal(size=3))
    source_from_cam = np.eye(4)
    source_from_cam[:3, :3] = rotation
    source_from_cam[:3, 3] = rng.normal(size=3)
    target_from_cam = transform.apply_to_pose(source_from_cam)
    assert np.allclose(target_from_cam[:3, :3] @ target_from_cam[:3, :3].T, np.eye(3))
    assert np.allclose(target_from_cam[:3, 3], transform.apply(source_from_cam[:3, 3]))
    # A point at depth d in the camera lands at s·d from the carried centre along its ray.
    point_cam = np.array([0.1, -0.2, 2.0])
    in_source = source_from_cam[:3, :3] @ point_cam + source_from_cam[:3, 3]
    carried = target_from_cam[:3, :3] @ (transform.scale * point_cam) + target_from_cam[:3, 3]
    assert np.allclose(carried, transform.apply(in_source))


def test_invalid_scale_is_refused() -> None:
    with pytest.raises(ValueError, match='scale'):
        Sim3(0.0, np.eye(3), np.zeros(3))


def test_a_rotation_off_so3_by_rounding_is_projected_back_and_a_non_rotation_refused() -> None:
    rotation, _ = cv2.Rodrigues(np.array([0.3, -0.2, 0.5]))
    nearly = rotation + 1e-7 * np.arange(9).reshape(3, 3)
    fixed = Sim3(1.0, nearly, np.zeros(3)).rotation
    assert np.abs(fixed.T @ fixed - np.eye(3)).max() < 1e-12
    assert np.allclose(fixed, rotation, atol=1e-6)
    with pytest.raises(ValueError, match='not a rotation'):
        Sim3(1.0, 1.1 * rotation, np.zeros(3))
    with pytest.raises(ValueError, match='not a rotation'):
        Sim3(1.0, -rotation, np.zeros(3))  # a reflection
