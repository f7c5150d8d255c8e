"""Reproduce the reference VGGT geometry utilities' outputs (``geometry_vectors.npz``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
import pytest

from vggt_mapper.geometry import (
    apply_distortion,
    depth_to_points_cam,
    depth_to_points_world,
    extrinsics_intrinsics_to_pose_encoding,
    inverse_se3,
    matrix_to_quat_xyzw,
    pose_encoding_to_extrinsics_intrinsics,
    project_points_world,
    quat_xyzw_to_matrix,
    unproject_depth_maps,
)

REFERENCE_DIR = Path(__file__).resolve().parents[1] / 'data' / 'reference'


@pytest.fixture(scope='module')
def vectors() -> dict[str, NDArray[Any]]:
    with np.load(REFERENCE_DIR / 'geometry_vectors.npz') as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope='module')
def tolerances() -> dict[str, dict[str, float]]:
    with open(REFERENCE_DIR / 'tolerances.json', encoding='utf-8') as stream:
        loaded: dict[str, dict[str, float]] = json.load(stream)['geometry_vectors']
        return loaded


def assert_matches(ours: NDArray[Any], ref: NDArray[Any], tolerances: dict[str, Any],
                   *, precision: str | None = None) -> None:
    """Compare with the tolerance of the reference result's precision (tolerances.json)."""
    assert ours.shape == ref.shape
    key = precision or ('float64 results' if ref.dtype == np.float64 else 'float32 results')
    tol = tolerances[key]
    np.testing.assert_allclose(ours, ref, rtol=tol['rtol'], atol=tol['atol'])


@pytest.mark.parametrize('image_hw', [(392, 518), (518, 518), (294, 518)])
def test_pose_encoding_to_extrinsics_intrinsics(vectors, tolerances, image_hw) -> None:
    tag = f'{image_hw[0]}x{image_hw[1]}'
    extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(vectors['p2e.pose_enc'],
                                                                    image_hw)
    assert extrinsics.dtype == np.float32
    assert_matches(extrinsics, vectors[f'p2e.extrinsics.{tag}'], tolerances)
    assert_matches(intrinsics, vectors[f'p2e.intrinsics.{tag}'], tolerances)


def test_extrinsics_intrinsics_to_pose_encoding_and_back(vectors, tolerances) -> None:
    encoding = extrinsics_intrinsics_to_pose_encoding(vectors['e2p.extrinsics'],
                                                      vectors['e2p.intrinsics'], (392, 518))
    assert_matches(encoding, vectors['e2p.pose_enc'], tolerances)
    extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(encoding, (392, 518))
    assert_matches(extrinsics, vectors['e2p.roundtrip_extrinsics'], tolerances)
    assert_matches(intrinsics, vectors['e2p.roundtrip_intrinsics'], tolerances)


def test_quat_xyzw_to_matrix(vectors, tolerances) -> None:
    assert_matches(quat_xyzw_to_matrix(vectors['rot.quat_in']), vectors['rot.quat_to_mat'],
                   tolerances)


def test_matrix_to_quat_xyzw(vectors, tolerances) -> None:
    quat = matrix_to_quat_xyzw(vectors['rot.mat_in'])
    assert_matches(quat, vectors['rot.mat_to_quat'], tolerances)
    assert np.all(quat[:, 3] >= 0)


def test_inverse_se3(vectors, tolerances) -> None:
    assert_matches(inverse_se3(vectors['inv.se3_3x4']), vectors['inv.numpy_out'], tolerances)
    inverse32 = inverse_se3(vectors['inv.se3_3x4'].astype(np.float32))
    assert inverse32.dtype == np.float32
    assert_matches(inverse32, vectors['inv.torch_out'], tolerances)


def test_depth_to_points(vectors, tolerances) -> None:
    depth, intrinsic, extrinsic = (vectors['d2w.depth'], vectors['d2w.intrinsic'],
                                   vectors['d2w.extrinsic'])
    assert_matches(depth_to_points_cam(depth, intrinsic), vectors['d2w.cam_points'], tolerances)
    world, cam, valid = depth_to_points_world(depth, extrinsic, intrinsic)
    assert world.dtype == np.float64
    # float64 output computed from float32 inputs: the reference inverts the extrinsic in
    # float32 (BLAS order decides the last ulp), so the float32 tolerance is the honest one.
    assert_matches(world, vectors['d2w.world_points'], tolerances, precision='float32 results')
    assert_matches(cam, vectors['d2w.cam_points'], tolerances)
    np.testing.assert_array_equal(valid, vectors['d2w.mask'])
    assert not valid[0, 0] and not valid[1, 2] and not valid[4, 6]


@pytest.mark.parametrize('suffix', ['f32in', 'f64in'])
def test_unproject_depth_maps(vectors, tolerances, suffix) -> None:
    dtype = np.float32 if suffix == 'f32in' else np.float64
    extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(vectors['unproj.pose_enc'][0],
                                                                    (6, 8))
    assert_matches(extrinsics, vectors['unproj.extrinsics'], tolerances)
    assert_matches(intrinsics, vectors['unproj.intrinsics'], tolerances)
    # The reference fed its own float32 extrinsics/intrinsics; use them to compare like for like.
    points = unproject_depth_maps(vectors['unproj.depth'].astype(dtype),
                                  vectors['unproj.extrinsics'].astype(dtype),
                                  vectors['unproj.intrinsics'].astype(dtype))
    assert points.dtype == np.float64
    # The reference rounds camera points to float32 even for float64 input (we keep float64),
    # so both of its results carry float32 accuracy; the 1e-9 float64 criterion is applied to
    # the computations the reference does in float64 (SE(3) inverse, projection).
    assert_matches(points, vectors[f'unproj.world_points_{suffix}'], tolerances,
                   precision='float32 results')


def test_unproject_tiny_model_depth_pipeline(vectors, tolerances) -> None:
    depth = vectors['pipe.depth']
    extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(vectors['pipe.pose_enc'][0],
                                                                    depth.shape[1:3])
    points = unproject_depth_maps(depth, extrinsics, intrinsics)
    # The pose decoding is float32 on both sides (op order may differ by an ulp), so the
    # float64 world points carry float32 accuracy.
    assert_matches(points, vectors['pipe.world_points'], tolerances, precision='float32 results')


def test_project_points_world(vectors, tolerances) -> None:
    points, extrinsics, intrinsics = (vectors['proj.points3d'], vectors['proj.extrinsics'],
                                      vectors['proj.intrinsics'])
    uv, points_cam = project_points_world(points, extrinsics, intrinsics)
    assert_matches(uv, vectors['proj.torch_image_points'], tolerances)
    assert_matches(points_cam, vectors['proj.torch_cam_points'], tolerances)
    assert_matches(uv, vectors['proj.np_image_points'], tolerances)
    assert_matches(points_cam, vectors['proj.np_cam_points'], tolerances)


@pytest.mark.parametrize('count', [1, 2, 4])
def test_project_points_world_distorted(vectors, tolerances, count) -> None:
    uv, _ = project_points_world(vectors['proj.points3d'], vectors['proj.extrinsics'],
                                 vectors['proj.intrinsics'],
                                 distortion=vectors[f'proj.np_extra_params_{count}'])
    assert_matches(uv, vectors[f'proj.np_image_points_distorted_{count}'], tolerances)


def test_apply_distortion(vectors, tolerances) -> None:
    u_out, v_out = apply_distortion(vectors['dist.params4'], vectors['dist.u'], vectors['dist.v'])
    assert_matches(u_out, vectors['dist.u_out'], tolerances)
    assert_matches(v_out, vectors['dist.v_out'], tolerances)
