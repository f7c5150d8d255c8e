"""Tests of the synthetic room, its renderer and the ground-truth predictor."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vggt_mapper.synthetic import NOISE_LEVELS, SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.predictor import model_mapping, UnknownFrameError


@pytest.fixture(scope='module')
def sequence() -> SyntheticSequence:
    return SyntheticSequence.orbit(40, step_m=0.03)


def _backproject(depth: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    height, width = depth.shape
    vs, us = np.mgrid[0:height, 0:width]
    pix = np.stack([us.ravel(), vs.ravel(), np.ones(us.size)], axis=1)
    return (pix @ np.linalg.inv(intrinsics).T) * depth.reshape(-1, 1)


def test_render_depth_lies_on_the_surfaces(sequence: SyntheticSequence) -> None:
    image = sequence.frame(5)
    depth = sequence.depth(5)
    assert image.shape == (120, 160, 3) and image.dtype == np.uint8
    assert depth.shape == (120, 160) and np.all(depth > 0.1)
    pose = sequence.poses_world_from_cam[5]
    points_world = _backproject(depth, sequence.intrinsics) @ pose[:3, :3].T + pose[:3, 3]
    distance = sequence.room.distance_to_surfaces(points_world)
    assert np.max(distance) < 1e-4
    # And a point off the surfaces is far from them.
    assert sequence.room.distance_to_surfaces(np.array([[0.0, 0.0, 0.5]]))[0] > 0.5


def test_texture_gives_corners_to_track(sequence: SyntheticSequence) -> None:
    grey = cv2.cvtColor(sequence.frame(0), cv2.COLOR_RGB2GRAY)
    corners = cv2.goodFeaturesToTrack(grey, maxCorners=200, qualityLevel=0.01, minDistance=7)
    assert corners is not None and len(corners) >= 100


def test_model_mapping_is_vggt_crop_mode() -> None:
    mapping = model_mapping((480, 640), 518)
    assert mapping.model_hw == (392, 518)
    # Pixel centres: the original's corner centres map to the model's.
    corners = mapping.to_original(np.array([[-0.5, -0.5], [517.5, 391.5]]))
    assert np.allclose(corners, [[-0.5, -0.5], [639.5, 479.5]])
    tall = model_mapping((640, 480), 518)
    assert tall.model_hw == (518, 518)


def test_noise_free_prediction_matches_ground_truth(sequence: SyntheticSequence) -> None:
    frames = [sequence.frame(i) for i in (10, 14, 18)]
    prediction = SyntheticPredictor(sequence, NOISE_LEVELS['none'], model_width=112).predict(
        frames)
    assert prediction.model_hw == (84, 112)
    assert np.allclose(prediction.cam_from_window[0], np.eye(4)[:3])
    # Relative pose, up to the window's scale: recover the scale from the depth.
    true_depth = cv2.resize(sequence.depth(10), (112, 84), interpolation=cv2.INTER_NEAREST)
    scale = np.median(prediction.depth[0]) / np.median(true_depth)
    truth = np.linalg.inv(sequence.poses_world_from_cam[18]) @ sequence.poses_world_from_cam[10]
    assert np.allclose(prediction.cam_from_window[2][:, :3], truth[:3, :3], atol=1e-9)
    assert np.allclose(prediction.cam_from_window[2][:, 3], truth[:3, 3] * scale, atol=1e-3)
    k_model = prediction.mappings[0].model_from_original @ sequence.intrinsics
    assert np.allclose(prediction.intrinsics[1], k_model)
    assert np.all(prediction.depth_conf >= 1.0)


def test_predictions_are_reproducible_and_scale_varies(sequence: SyntheticSequence) -> None:
    frames = [sequence.frame(i) for i in (0, 3)]
    first = SyntheticPredictor(sequence, model_width=112, seed=3)
    second = SyntheticPredictor(sequence, model_width=112, seed=3)
    a, b = first.predict(frames), second.predict(frames)
    assert np.array_equal(a.depth, b.depth)
    c = first.predict(frames)
    assert not np.allclose(np.median(a.depth[0]), np.median(c.depth[0]), rtol=1e-3)


def test_unknown_frames_are_refused(sequence: SyntheticSequence) -> None:
    predictor = SyntheticPredictor(sequence, model_width=112)
    with pytest.raises(UnknownFrameError):
        predictor.predict([np.zeros((120, 160, 3), np.uint8)])


def test_lossy_copies_are_recognised_by_thumbnail() -> None:
    sequence = SyntheticSequence.orbit(10, match_thumbnails=True)
    image = sequence.frame(7)
    ok, jpeg = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    decoded = cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)
    assert sequence.index_of(decoded) == 7
