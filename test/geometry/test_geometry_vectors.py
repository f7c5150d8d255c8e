"""
Reproduce the reference VGGT geometry utilities' outputs (``geometry_vectors.npz``).

The fixture's camera encoding (``e2p``), projection (``proj``) and distortion (``dist``) vectors
are not read: the product never encodes cameras nor projects points, so those operations are
not in ``vggt_mapper.geometry``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
import pytest

from vggt_mapper.geometry import (
    depth_to_points_cam,
    inverse_se3,
    matrix_to_quat_xyzw,
    pose_encoding_to_extrinsics_intrinsics,
    quat_xyzw_to_matrix,
    transform_points,
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


def unproject_to_world(depth: NDArray[Any], cam_from_world: NDArray[Any],
                       intrinsics: NDArray[Any]) -> NDArray[np.float64]:
    """Unproject depth to world points as the reference does, one geometry function per step."""
    points_cam = depth_to_points_cam(depth, intrinsics)
    # The inverse is taken in the extrinsic's own precision (as the reference does), then widened.
    world_from_cam = inverse_se3(cam_from_world).astype(np.float64)
    return transform_points(world_from_cam, points_cam)


def test_depth_to_points(vectors, tolerances) -> None:
    depth, intrinsic, extrinsic = (vectors['d2w.depth'], vectors['d2w.intrinsic'],
                                   vectors['d2w.extrinsic'])
    cam = depth_to_points_cam(depth, intrinsic)
    assert cam.dtype == depth.dtype
    assert_matches(cam, vectors['d2w.cam_points'], tolerances)
    world = unproject_to_world(depth, extrinsic, intrinsic)
    assert world.dtype == np.float64
    # float64 output computed from float32 inputs: the reference inverts the extrinsic in
    # float32 (BLAS order decides the last ulp), so the float32 tolerance is the honest one.
    assert_matches(world, vectors['d2w.world_points'], tolerances, precision='float32 results')


@pytest.mark.parametrize('suffix', ['f32in', 'f64in'])
def test_unproject_depth_maps(vectors, tolerances, suffix) -> None:
    dtype = np.float32 if suffix == 'f32in' else np.float64
    extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(vectors['unproj.pose_enc'][0],
                                                                    (6, 8))
    assert_matches(extrinsics, vectors['unproj.extrinsics'], tolerances)
    assert_matches(intrinsics, vectors['unproj.intrinsics'], tolerances)
    # The reference fed its own float32 extrinsics/intrinsics; use them to compare like for like.
    points = np.stack([
        unproject_to_world(depth[..., 0], extrinsic, intrinsic)
        for depth, extrinsic, intrinsic in zip(vectors['unproj.depth'].astype(dtype),
                                               vectors['unproj.extrinsics'].astype(dtype),
                                               vectors['unproj.intrinsics'].astype(dtype),
                                               strict=True)])
    # The reference rounds camera points to float32 even for float64 input (we keep float64),
    # so both of its results carry float32 accuracy; the 1e-9 float64 criterion is applied to
    # the computations the reference does in float64 (SE(3) inverse).
    assert_matches(points, vectors[f'unproj.world_points_{suffix}'], tolerances,
                   precision='float32 results')


def test_unproject_tiny_model_depth_pipeline(vectors, tolerances) -> None:
    depth = vectors['pipe.depth']
    extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(vectors['pipe.pose_enc'][0],
                                                                    depth.shape[1:3])
    points = np.stack([unproject_to_world(depth[index, ..., 0], extrinsics[index],
                                          intrinsics[index]) for index in range(len(depth))])
    # The pose decoding is float32 on both sides (op order may differ by an ulp), so the
    # float64 world points carry float32 accuracy.
    assert_matches(points, vectors['pipe.world_points'], tolerances, precision='float32 results')
