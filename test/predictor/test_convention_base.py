"""Pin the conventions of the predictor contract (``vggt_mapper/predictor/base.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_mapper.geometry import depth_to_points_cam, inverse_se3, transform_points
from vggt_mapper.predictor import ImageMapping, preprocess_frames, WindowPrediction


def make_prediction(frames: int = 2, height: int = 4, width: int = 6,
                    **overrides: object) -> WindowPrediction:
    fields: dict[str, object] = {
        'cam_from_window': np.tile(np.eye(3, 4), (frames, 1, 1)),
        'intrinsics': np.tile(np.array([[5.0, 0, 3], [0, 5.0, 2], [0, 0, 1]]), (frames, 1, 1)),
        'depth': np.ones((frames, height, width), np.float32),
        'depth_conf': np.full((frames, height, width), 2.0, np.float32),
        'images_rgb': np.zeros((frames, height, width, 3), np.uint8),
        'mappings': tuple(ImageMapping((height * 2, width * 2), (height, width),
                                       np.diag([0.5, 0.5, 1.0])) for _ in range(frames)),
    }
    fields.update(overrides)
    return WindowPrediction(**fields)  # type: ignore[arg-type]


def test_convention_mapping_pixel_centres_at_integers() -> None:
    # Downscaling 600 → 294 columns (s = 0.49): model pixel 0 covers original [-0.5, 0.5/s - 0.5 +
    # 0.5/s), so its centre is at original 0.5/s - 0.5 (not 0): centres sit at integers.
    window = preprocess_frames([np.zeros((400, 600, 3), np.uint8)], target_size=300 - 300 % 14)
    mapping = window.mappings[0]
    scale = mapping.model_from_original[0, 0]
    np.testing.assert_allclose(mapping.to_original([0.0, 0.0]),
                               [0.5 / scale - 0.5, 0.5 / mapping.model_from_original[1, 1] - 0.5])
    # The outer pixel edges (-0.5 and W - 0.5) map onto each other.
    model_w = mapping.model_hw[1]
    np.testing.assert_allclose(mapping.to_original([-0.5, 0.0])[0], -0.5)
    np.testing.assert_allclose(mapping.to_original([model_w - 0.5, 0.0])[0], 600 - 0.5)


def test_convention_mapping_inverse_and_intrinsics() -> None:
    matrix = np.array([[0.8, 0.0, 10.0], [0.0, 0.75, -3.0], [0.0, 0.0, 1.0]])
    mapping = ImageMapping((480, 640), (392, 518), matrix)
    uv_original = np.array([[12.0, 40.0], [600.0, 300.0]])
    uv_model = uv_original @ matrix[:2, :2].T + matrix[:2, 2]
    np.testing.assert_allclose(mapping.to_original(uv_model), uv_original)
    k_model = np.array([[400.0, 0, 259], [0, 400.0, 196], [0, 0, 1]])
    k_original = mapping.intrinsics_to_original(k_model)
    np.testing.assert_allclose(k_original @ np.array([0.1, -0.2, 1.0]),
                               np.append(mapping.to_original((k_model @ [0.1, -0.2, 1.0])[:2]),
                                         1.0))


def test_convention_cam_from_window_maps_window_points_into_cameras() -> None:
    # Camera 1 sits 1 unit to the right of camera 0 (the window frame): x_cam = x_window - 1.
    cam_from_window = np.stack([np.eye(3, 4), np.hstack([np.eye(3), [[-1.0], [0.0], [0.0]]])])
    prediction = make_prediction(cam_from_window=cam_from_window)
    window_from_cam = inverse_se3(prediction.cam_from_window)
    np.testing.assert_allclose(window_from_cam[:, :3, 3], [[0, 0, 0], [1, 0, 0]])
    # Depth is the camera z: the point at depth 1 on camera 0's optical axis is at (0, 0, 1).
    points_cam = depth_to_points_cam(prediction.depth[0], prediction.intrinsics[0])
    point_window = transform_points(window_from_cam[0], points_cam[2, 3])
    np.testing.assert_allclose(point_window, [0.0, 0.0, 1.0])
    # Camera 1 sees it 1 unit to its left: pixel u = cx - fx · 1 / 1.
    in_cam1 = transform_points(prediction.cam_from_window[1], point_window)
    np.testing.assert_allclose(prediction.intrinsics[1] @ (in_cam1 / in_cam1[2]),
                               [3.0 - 5.0, 2.0, 1.0])


@pytest.mark.parametrize(('overrides', 'message'), [
    ({'cam_from_window': np.zeros((2, 4, 4))}, r'cam_from_window must have shape \(2, 3, 4\)'),
    ({'intrinsics': np.zeros((3, 3, 3))}, r'intrinsics must have shape \(2, 3, 3\)'),
    ({'depth': np.ones((2, 4), np.float32)}, r'depth must be \(S, H, W\)'),
    ({'images_rgb': np.zeros((2, 4, 6, 3), np.float32)}, 'images_rgb must be uint8'),
    ({'points_window': np.zeros((2, 4, 6), np.float32)}, 'points_window must have shape'),
])
def test_convention_window_prediction_checks_shapes(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_prediction(**overrides)


def test_convention_window_prediction_sizes() -> None:
    prediction = make_prediction(frames=3, height=4, width=6)
    assert prediction.num_frames == 3
    assert prediction.model_hw == (4, 6)
