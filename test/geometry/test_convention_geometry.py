"""Pin the geometry conventions: quaternion order and sign, extrinsic direction, pixel centres."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_mapper.geometry import (
    camera_centers_world,
    depth_to_points_world,
    extrinsics_intrinsics_to_pose_encoding,
    GeometryError,
    inverse_se3,
    matrix_to_quat_xyzw,
    pose_encoding_to_extrinsics_intrinsics,
    project_points_world,
    quat_xyzw_to_matrix,
    se3_to_4x4,
    transform_points,
    unproject_depth_maps,
)


def random_quats(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(count, 4))
    return quats / np.linalg.norm(quats, axis=-1, keepdims=True)


def random_cam_from_world(count: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rotation = quat_xyzw_to_matrix(random_quats(count, seed))
    translation = rng.normal(size=(count, 3, 1))
    return np.concatenate([rotation, translation], axis=-1)


def test_convention_quat_is_xyzw_scalar_last() -> None:
    # 90° about +z: (x, y, z, w) = (0, 0, sin 45°, cos 45°) maps +x to +y.
    half = np.sqrt(0.5)
    rotation = quat_xyzw_to_matrix([0.0, 0.0, half, half])
    np.testing.assert_allclose(rotation @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(quat_xyzw_to_matrix([0.0, 0.0, 0.0, 1.0]), np.eye(3), atol=0)


def test_convention_q_and_minus_q_are_one_rotation() -> None:
    quats = random_quats(50)
    np.testing.assert_allclose(quat_xyzw_to_matrix(quats), quat_xyzw_to_matrix(-quats),
                               atol=1e-12)


def test_convention_non_unit_quaternions_are_normalised() -> None:
    quats = random_quats(20)
    scales = np.linspace(0.1, 30.0, 20)[:, None]
    np.testing.assert_allclose(quat_xyzw_to_matrix(quats * scales), quat_xyzw_to_matrix(quats),
                               atol=1e-12)


def test_convention_quat_matrix_round_trip_with_w_non_negative() -> None:
    quats = random_quats(200, seed=3)
    back = matrix_to_quat_xyzw(quat_xyzw_to_matrix(quats))
    assert np.all(back[:, 3] >= 0)
    expected = np.where(quats[:, 3:4] < 0, -quats, quats)
    np.testing.assert_allclose(back, expected, atol=1e-12)
    rotations = quat_xyzw_to_matrix(quats)
    np.testing.assert_allclose(rotations @ np.swapaxes(rotations, 1, 2),
                               np.broadcast_to(np.eye(3), (200, 3, 3)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)


def test_convention_180_degree_rotations_round_trip() -> None:
    for axis in np.eye(3):
        quat = np.append(axis, 0.0)
        back = matrix_to_quat_xyzw(quat_xyzw_to_matrix(quat))
        np.testing.assert_allclose(quat_xyzw_to_matrix(back), quat_xyzw_to_matrix(quat),
                                   atol=1e-12)


def test_convention_camera_centre_is_minus_r_transpose_t() -> None:
    cam_from_world = random_cam_from_world(10)
    centres = camera_centers_world(cam_from_world)
    for extrinsic, centre in zip(cam_from_world, centres, strict=True):
        # The camera centre maps to the camera origin.
        np.testing.assert_allclose(transform_points(extrinsic, centre), np.zeros(3), atol=1e-12)
    world_from_cam = inverse_se3(cam_from_world)
    np.testing.assert_allclose(world_from_cam[:, :3, 3], centres, atol=1e-12)


def test_convention_inverse_se3_round_trip() -> None:
    cam_from_world = random_cam_from_world(10)
    product = se3_to_4x4(cam_from_world) @ inverse_se3(cam_from_world)
    np.testing.assert_allclose(product, np.broadcast_to(np.eye(4), (10, 4, 4)), atol=1e-12)
    np.testing.assert_allclose(inverse_se3(inverse_se3(cam_from_world)),
                               se3_to_4x4(cam_from_world), atol=1e-12)


def test_convention_pose_encoding_round_trip_and_first_camera_identity() -> None:
    image_hw = (392, 518)
    cam_from_world = random_cam_from_world(6)
    cam_from_world[0] = np.eye(3, 4)
    intrinsics = np.zeros((6, 3, 3))
    intrinsics[:, 0, 0] = np.linspace(300, 600, 6)
    intrinsics[:, 1, 1] = np.linspace(320, 620, 6)
    intrinsics[:, 0, 2] = 259.0
    intrinsics[:, 1, 2] = 196.0
    intrinsics[:, 2, 2] = 1.0
    encoding = extrinsics_intrinsics_to_pose_encoding(cam_from_world, intrinsics, image_hw)
    np.testing.assert_allclose(encoding[0, :7], [0, 0, 0, 0, 0, 0, 1], atol=0)
    np.testing.assert_allclose(encoding[:, :3], cam_from_world[:, :, 3], atol=0)
    back_extrinsics, back_intrinsics = pose_encoding_to_extrinsics_intrinsics(encoding, image_hw)
    np.testing.assert_allclose(back_extrinsics, cam_from_world, atol=1e-12)
    np.testing.assert_allclose(back_intrinsics, intrinsics, atol=1e-9)
    np.testing.assert_allclose(back_extrinsics[0], np.eye(3, 4), atol=0)


def test_convention_fov_to_focal_length() -> None:
    # fov_h = fov_w = 90° on a 392×518 image: fy = H/2, fx = W/2, principal point at the centre.
    encoding = np.array([0, 0, 0, 0, 0, 0, 1, np.pi / 2, np.pi / 2])
    _, intrinsics = pose_encoding_to_extrinsics_intrinsics(encoding, (392, 518))
    np.testing.assert_allclose(intrinsics, [[259, 0, 259], [0, 196, 196], [0, 0, 1]], atol=1e-9)


def test_convention_pixel_centres_at_integers_and_projection_inverts_unprojection() -> None:
    height, width = 5, 7
    cam_from_world = random_cam_from_world(2, seed=4)
    intrinsics = np.array([[[6.0, 0, 3.5], [0, 5.0, 2.5], [0, 0, 1]]] * 2)
    depth = np.random.default_rng(5).uniform(0.5, 3.0, (2, height, width))
    points = unproject_depth_maps(depth, cam_from_world, intrinsics)
    for index in range(2):
        uv, points_cam = project_points_world(points[index].reshape(-1, 3),
                                              cam_from_world[index:index + 1],
                                              intrinsics[index:index + 1])
        rows, cols = np.mgrid[0:height, 0:width]
        np.testing.assert_allclose(uv[0].reshape(height, width, 2),
                                   np.stack([cols, rows], axis=-1), atol=1e-9)
        np.testing.assert_allclose(points_cam[0, 2].reshape(height, width), depth[index],
                                   atol=1e-12)
    # Pixel (u, v) = (cx, cy) lies on the optical axis, in the camera frame of frame 0.
    world, cam, valid = depth_to_points_world(np.full((5, 7), 2.0), np.eye(3, 4), intrinsics[0])
    np.testing.assert_allclose(cam[2, 3], [-0.5 * 2.0 / 6.0, -0.5 * 2.0 / 5.0, 2.0])
    assert valid.all()
    np.testing.assert_allclose(world, cam, atol=0)


def test_convention_shape_errors_are_explicit() -> None:
    with pytest.raises(GeometryError, match=r'quat_xyzw must have shape \(\.\.\., 4\)'):
        quat_xyzw_to_matrix(np.zeros((3, 3)))
    with pytest.raises(GeometryError, match='transform must have shape'):
        inverse_se3(np.zeros((3, 3)))
    with pytest.raises(GeometryError, match='distortion must be'):
        project_points_world(np.zeros((2, 3)), np.eye(3, 4)[None], np.eye(3)[None],
                             distortion=np.zeros((1, 3)))
    with pytest.raises(GeometryError, match='image_hw'):
        pose_encoding_to_extrinsics_intrinsics(np.zeros(9), (0, 10))
