"""Pin the geometry conventions: quaternion order and sign, extrinsic direction, pixel centres."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_mapper.geometry import (
    depth_to_points_cam,
    GeometryError,
    inverse_se3,
    matrix_to_quat_xyzw,
    pose_encoding_to_extrinsics_intrinsics,
    project_points,
    quat_xyzw_to_matrix,
    transform_points,
    unproject_pixels,
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
    world_from_cam = inverse_se3(cam_from_world)
    for extrinsic, pose in zip(cam_from_world, world_from_cam, strict=True):
        centre = pose[:3, 3]
        np.testing.assert_allclose(centre, -extrinsic[:, :3].T @ extrinsic[:, 3], atol=1e-12)
        # The camera centre maps to the camera origin.
        np.testing.assert_allclose(transform_points(extrinsic, centre), np.zeros(3), atol=1e-12)


def test_convention_inverse_se3_round_trip() -> None:
    cam_from_world = random_cam_from_world(10)
    homogeneous = np.concatenate([cam_from_world, np.tile([[[0.0, 0, 0, 1]]], (10, 1, 1))],
                                 axis=1)
    product = homogeneous @ inverse_se3(cam_from_world)
    np.testing.assert_allclose(product, np.broadcast_to(np.eye(4), (10, 4, 4)), atol=1e-12)
    np.testing.assert_allclose(inverse_se3(inverse_se3(cam_from_world)), homogeneous,
                               atol=1e-12)
    assert inverse_se3(cam_from_world.astype(np.float32)).dtype == np.float32


def test_convention_pose_encoding_is_cam_from_world_t_quat_xyzw_fov() -> None:
    image_hw = (392, 518)
    cam_from_world = random_cam_from_world(6)
    cam_from_world[0] = np.eye(3, 4)
    focal_x, focal_y = np.linspace(300, 600, 6), np.linspace(320, 620, 6)
    encoding = np.concatenate([
        cam_from_world[:, :, 3], matrix_to_quat_xyzw(cam_from_world[:, :, :3]),
        2 * np.arctan(image_hw[0] / 2 / focal_y)[:, None],
        2 * np.arctan(image_hw[1] / 2 / focal_x)[:, None]], axis=1)
    extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(encoding, image_hw)
    np.testing.assert_allclose(extrinsics, cam_from_world, atol=1e-12)
    np.testing.assert_allclose(extrinsics[0], np.eye(3, 4), atol=0)
    np.testing.assert_allclose(intrinsics[:, 0, 0], focal_x, rtol=1e-12)
    np.testing.assert_allclose(intrinsics[:, 1, 1], focal_y, rtol=1e-12)
    np.testing.assert_allclose(intrinsics[:, :2, 2], [[259.0, 196.0]] * 6, atol=0)
    # The network's quaternions are not unit: only their direction matters.
    scaled = encoding.copy()
    scaled[:, 3:7] *= 3.0
    np.testing.assert_allclose(pose_encoding_to_extrinsics_intrinsics(scaled, image_hw)[0],
                               cam_from_world, atol=1e-12)


def test_convention_fov_to_focal_length() -> None:
    # fov_h = fov_w = 90° on a 392×518 image: fy = H/2, fx = W/2, principal point at the centre.
    encoding = np.array([0, 0, 0, 0, 0, 0, 1, np.pi / 2, np.pi / 2])
    _, intrinsics = pose_encoding_to_extrinsics_intrinsics(encoding, (392, 518))
    np.testing.assert_allclose(intrinsics, [[259, 0, 259], [0, 196, 196], [0, 0, 1]], atol=1e-9)


def test_convention_pixel_centres_at_integers_and_projection_inverts_unprojection() -> None:
    height, width = 5, 7
    intrinsics = np.array([[6.0, 0, 3.5], [0, 5.0, 2.5], [0, 0, 1]])
    depth = np.random.default_rng(5).uniform(0.5, 3.0, (height, width))
    points_cam = depth_to_points_cam(depth, intrinsics)
    # Projecting back (K · p / z, written out here) lands on the integer pixel centres.
    projected = (points_cam / points_cam[..., 2:3]) @ intrinsics.T
    rows, cols = np.mgrid[0:height, 0:width]
    np.testing.assert_allclose(projected[..., :2], np.stack([cols, rows], axis=-1), atol=1e-12)
    np.testing.assert_allclose(points_cam[..., 2], depth, atol=0)
    # Pixel (u, v) = (cx, cy) lies on the optical axis; (3, 2) is half a pixel up-left of it.
    np.testing.assert_allclose(unproject_pixels([3.5, 2.5], 2.0, intrinsics), [0, 0, 2.0])
    np.testing.assert_allclose(depth_to_points_cam(np.full((5, 7), 2.0), intrinsics)[2, 3],
                               [-0.5 * 2.0 / 6.0, -0.5 * 2.0 / 5.0, 2.0])


def test_convention_selected_pixels_unproject_like_the_whole_map() -> None:
    # The engine unprojects selected pixels, the web door whole maps: one formula for both.
    intrinsics = np.array([[40.0, 0, 15.5], [0, 42.0, 11.0], [0, 0, 1]])
    depth = np.random.default_rng(6).uniform(0.5, 3.0, (24, 32))
    rows, cols = np.mgrid[1:24:5, 2:32:7]
    rows, cols = rows.ravel(), cols.ravel()
    selected = unproject_pixels(np.stack([cols, rows], axis=-1), depth[rows, cols], intrinsics)
    np.testing.assert_array_equal(selected, depth_to_points_cam(depth, intrinsics)[rows, cols])
    # Depth 1 gives rays with z = 1 (the frustum corners of the GLB, the renderer's rays).
    rays = unproject_pixels([[-0.5, -0.5], [31.5, 23.5]], 1.0, intrinsics)
    np.testing.assert_allclose(rays, [[-16 / 40, -11.5 / 42, 1], [16 / 40, 12.5 / 42, 1]])


def test_convention_shape_errors_are_explicit() -> None:
    with pytest.raises(GeometryError, match=r'quat_xyzw must have shape \(\.\.\., 4\)'):
        quat_xyzw_to_matrix(np.zeros((3, 3)))
    with pytest.raises(GeometryError, match='transform must have shape'):
        inverse_se3(np.zeros((3, 3)))
    with pytest.raises(GeometryError, match='image_hw'):
        pose_encoding_to_extrinsics_intrinsics(np.zeros(9), (0, 10))
    with pytest.raises(GeometryError, match='does not broadcast'):
        unproject_pixels(np.zeros((4, 2)), np.ones(3), np.eye(3))


@pytest.mark.parametrize('intrinsics', [
    [[5.0, 0.5, 3], [0, 5.0, 2], [0, 0, 1]],  # skew
    [[5.0, 0, 3], [0, 5.0, 2], [0.1, 0, 1]],  # projective last row
    [[0.0, 0, 3], [0, 5.0, 2], [0, 0, 1]],  # zero focal length
    [[np.nan, 0, 3], [0, 5.0, 2], [0, 0, 1]],
])
def test_convention_unprojection_refuses_a_non_pinhole_k(intrinsics) -> None:
    with pytest.raises(GeometryError, match='pinhole K'):
        depth_to_points_cam(np.ones((2, 3)), intrinsics)


def test_convention_projection_inverts_unprojection() -> None:
    intrinsics = np.array([[300.0, 0.0, 159.5], [0.0, 310.0, 119.5], [0.0, 0.0, 1.0]])
    pixels = np.array([[0.0, 0.0], [159.5, 119.5], [319.0, 239.0], [10.25, 200.75]])
    depth = np.array([1.0, 2.5, 0.3, 7.0])
    uv, z = project_points(unproject_pixels(pixels, depth, intrinsics), intrinsics)
    np.testing.assert_allclose(uv, pixels, atol=1e-9)
    np.testing.assert_allclose(z, depth)
    # A point on the optical axis lands on the principal point, u along +x (OpenCV axes).
    uv, _ = project_points(np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 2.0]]), intrinsics)
    np.testing.assert_allclose(uv, [[159.5, 119.5], [309.5, 119.5]])
