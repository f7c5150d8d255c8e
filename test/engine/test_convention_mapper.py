"""Convention tests: world = first keyframe's camera; world_from_cam / cam_from_world; K."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_mapper.engine import Mapper, MapperConfig
from vggt_mapper.synthetic import NOISE_LEVELS, SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.evaluation import feed, trajectory_error


@pytest.fixture(scope='module')
def mapped() -> tuple[Mapper, SyntheticSequence]:
    sequence = SyntheticSequence.orbit(60, step_m=0.03)
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS['none'], model_width=126)
    mapper = Mapper(MapperConfig(window_size=6, overlap=2), predictor)
    feed(mapper, sequence)
    return mapper, sequence


def test_convention_world_is_the_first_keyframe_camera(
        mapped: tuple[Mapper, SyntheticSequence]) -> None:
    mapper, _ = mapped
    first = mapper.trajectory()[0]
    assert np.allclose(first.world_from_cam, np.eye(4), atol=1e-9)


def test_convention_cam_from_world_is_the_inverse_of_world_from_cam(
        mapped: tuple[Mapper, SyntheticSequence]) -> None:
    mapper, _ = mapped
    for pose in mapper.trajectory():
        assert np.allclose(pose.cam_from_world @ pose.world_from_cam, np.eye(4), atol=1e-9)
        assert np.allclose(pose.world_from_cam[:3, :3] @ pose.world_from_cam[:3, :3].T,
                           np.eye(3), atol=1e-9)
        assert np.linalg.det(pose.world_from_cam[:3, :3]) == pytest.approx(1.0)
        assert np.allclose(pose.position_world, pose.world_from_cam[:3, 3])


def test_convention_poses_match_the_truth_up_to_one_similarity(
        mapped: tuple[Mapper, SyntheticSequence]) -> None:
    mapper, sequence = mapped
    error = trajectory_error(mapper.trajectory(), sequence)
    assert error.rmse < 1e-6
    gt_from_world = error.gt_from_world
    for pose in mapper.trajectory():
        truth = sequence.poses_world_from_cam[int(pose.name[1:])]
        carried = gt_from_world.apply_to_pose(pose.world_from_cam)
        assert np.allclose(carried, truth, atol=1e-6)


def test_convention_map_points_project_with_cam_from_world_and_original_intrinsics(
        mapped: tuple[Mapper, SyntheticSequence]) -> None:
    mapper, sequence = mapped
    error = trajectory_error(mapper.trajectory(), sequence)
    points_world = mapper.map_snapshot().points_world.astype(np.float64)
    pose = mapper.trajectory()[5]
    # Project with the mapper's pose and original-image K ...
    points_cam = points_world @ pose.cam_from_world[:3, :3].T + pose.cam_from_world[:3, 3]
    in_front = points_cam[:, 2] > 0.05
    uvw = points_cam[in_front] @ pose.intrinsics_original.T
    uv_mapper = uvw[:, :2] / uvw[:, 2:]
    # ... and with the true pose and K in the true world: the same pixels.
    truth = sequence.poses_world_from_cam[int(pose.name[1:])]
    points_gt = error.gt_from_world.apply(points_world[in_front])
    cam_gt = (points_gt - truth[:3, 3]) @ truth[:3, :3]
    uvw_gt = cam_gt @ sequence.intrinsics.T
    uv_gt = uvw_gt[:, :2] / uvw_gt[:, 2:]
    assert np.allclose(uv_mapper, uv_gt, atol=1e-3)
    assert np.allclose(pose.intrinsics_original, sequence.intrinsics, atol=1e-6)
