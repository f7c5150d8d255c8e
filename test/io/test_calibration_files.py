"""Calibration files in, images undistorted to pinhole ones with the K recorded."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vggt_mapper.engine.types import InputFrame
from vggt_mapper.io.calibration import (
    apply_calibration,
    calibration_from_camera_info,
    CameraCalibration,
    pinhole_calibration,
    read_calibration,
    Undistorter,
)
from vggt_mapper.io.errors import InputError
from vggt_mapper.io.readers import iter_input

DATA = Path(__file__).resolve().parents[1] / 'data' / 'calibration'


def test_ros_camera_info_yaml_as_camera_calibration_writes_it() -> None:
    calibration = read_calibration(DATA / 'ros_camera_info.yaml')
    assert (calibration.width, calibration.height) == (640, 480)
    np.testing.assert_allclose(calibration.k, [[524.8, 0, 321.5], [0, 523.9, 243.2], [0, 0, 1]])
    assert calibration.distortion_model == 'plumb_bob'
    assert calibration.d == (-0.2892, 0.0911, 0.0004, -0.0012, 0.0)
    assert calibration.distorted


def test_opencv_yaml_fisheye() -> None:
    calibration = read_calibration(DATA / 'fisheye_opencv.yaml')
    assert (calibration.width, calibration.height) == (848, 800)
    assert calibration.distortion_model == 'equidistant' and len(calibration.d) == 4
    assert calibration.k[0, 0] == pytest.approx(286.18)


def test_opencv_json_written_by_file_storage(tmp_path: Path) -> None:
    k = np.array([[500.0, 0.0, 319.5], [0.0, 501.0, 239.5], [0.0, 0.0, 1.0]])
    d = np.array([[-0.1, 0.01, 0.0, 0.0, 0.0, 0.002, 0.0, 0.0]])
    storage = cv2.FileStorage(str(tmp_path / 'cam.json'), cv2.FILE_STORAGE_WRITE)
    storage.write('image_width', 640)
    storage.write('image_height', 480)
    storage.write('camera_matrix', k)
    storage.write('distortion_coefficients', d)
    storage.release()
    calibration = read_calibration(tmp_path / 'cam.json')
    np.testing.assert_allclose(calibration.k, k)
    # Eight coefficients are OpenCV's rational model, ROS's rational_polynomial.
    assert calibration.distortion_model == 'rational_polynomial'
    assert calibration.d == tuple(d[0])


def test_plain_json_and_the_nodes_camera_info_json(tmp_path: Path) -> None:
    plain = tmp_path / 'plain.json'
    plain.write_text(json.dumps({'fx': 400.0, 'fy': 401.0, 'cx': 160.0, 'cy': 120.0,
                                 'width': 320, 'height': 240}))
    calibration = read_calibration(plain)
    assert calibration.k[1, 1] == 401.0 and not calibration.distorted
    node = tmp_path / 'camera_info.json'  # what the ROS node records (CameraInfoRecord)
    node.write_text(json.dumps({'frame_id': 'camera_optical', 'stamp_ns': 5, 'width': 320,
                                'height': 240, 'distortion_model': 'equidistant',
                                'd': [0.1, 0.0, 0.0, 0.0],
                                'k': [400.0, 0, 160, 0, 400.0, 120, 0, 0, 1], 'p': [0.0] * 12}))
    assert read_calibration(node).distortion_model == 'equidistant'


@pytest.mark.parametrize('content, message', [
    ('{"D": [0.1]}', 'no camera matrix'),
    ('{"K": [1, 2, 3]}', 'has 3 values, need 9'),
    ('{"K": [400, 0, 1, 0, 400, 1, 0, 0, 1], "distortion_model": "equidistant", "D": [0.1]}',
     'equidistant takes 4'),
    ('{"K": [400, 0, 1, 0, 400, 1, 0, 0, 1], "distortion_model": "mei"}',
     "unsupported distortion model 'mei'"),
    ('{"K": [0, 0, 1, 0, 400, 1, 0, 0, 1]}', 'positive focal lengths'),
    ('[1, 2]', 'no mapping'),
])
def test_unusable_calibration_files_say_why(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / 'bad.json'
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_calibration(path)


def test_uncalibrated_camera_info_is_refused() -> None:
    with pytest.raises(InputError, match='all zeros'):
        calibration_from_camera_info([0.0] * 9, [], '', 640, 480, source='/cam/camera_info')
    rectified = calibration_from_camera_info(
        [500.0, 0, 320, 0, 500, 240, 0, 0, 1], [-0.3, 0.1, 0, 0, 0], 'plumb_bob', 640, 480,
        p=[450.0, 0, 322, 0, 0, 451, 244, 0, 0, 0, 1, 0], rectified=True)
    assert not rectified.distorted and rectified.k[0, 0] == 450.0  # P, not K (REP 104)


def _undistorted_pixel_of(undistorter: Undistorter, points_cam: np.ndarray) -> np.ndarray:
    projected = points_cam @ undistorter.new_k.T
    return projected[:, :2] / projected[:, 2:]


@pytest.mark.parametrize('name', ['ros_camera_info.yaml', 'fisheye_opencv.yaml'])
def test_undistortion_maps_each_pinhole_pixel_to_where_the_lens_put_it(name: str) -> None:
    calibration = read_calibration(DATA / name)
    undistorter = Undistorter(calibration)
    rng = np.random.default_rng(0)
    # Pixel centres of the pinhole (new K) image, well inside it, and their rays.
    pixels = np.round(rng.uniform(0.2, 0.8, (50, 2)) * [calibration.width, calibration.height])
    rays = np.linalg.solve(undistorter.new_k, np.c_[pixels, np.ones(50)].T).T
    if calibration.distortion_model == 'equidistant':
        lens, _ = cv2.fisheye.projectPoints(rays[:, None], np.zeros(3), np.zeros(3),
                                            calibration.k, np.array(calibration.d))
    else:
        lens, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), calibration.k,
                                    np.array(calibration.d))
    np.testing.assert_allclose(_undistorted_pixel_of(undistorter, rays), pixels, atol=1e-9)
    # The remap reads pixel (u, v) of the pinhole image from the lens image where the lens
    # put that ray.
    map_u, map_v = undistorter._maps  # type: ignore[misc]
    cols, rows = pixels.astype(int).T
    np.testing.assert_allclose(np.c_[map_u[rows, cols], map_v[rows, cols]], lens[:, 0],
                               atol=1e-3)


def test_undistorted_images_have_no_black_border_and_frames_carry_the_new_k() -> None:
    calibration = read_calibration(DATA / 'ros_camera_info.yaml')
    grey = np.full((480, 640, 3), 128, np.uint8)
    frames = list(apply_calibration([InputFrame(grey, 0, 'a'), InputFrame(grey, 1, 'b')],
                                    calibration))
    assert frames[0].image_rgb.shape == grey.shape
    assert frames[0].image_rgb.min() > 100  # alpha 0: every pixel comes from the lens image
    assert frames[1].intrinsics is not None
    assert not np.allclose(frames[1].intrinsics, calibration.k)


def test_a_calibration_is_scaled_to_images_of_the_same_aspect_ratio() -> None:
    calibration = read_calibration(DATA / 'ros_camera_info.yaml')
    half = calibration.for_image_size((240, 320))
    assert half.k[0, 0] == pytest.approx(262.4) and half.k[0, 2] == pytest.approx(160.5)
    with pytest.raises(InputError, match='another aspect ratio'):
        calibration.for_image_size((240, 240))


def test_flags_calibrate_an_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(tmp_path / 'a.png')
    calibration = pinhole_calibration(50.0, 51.0, 31.5, 23.5)
    [frame] = list(iter_input(tmp_path, calibration=calibration))
    np.testing.assert_array_equal(frame.intrinsics, calibration.k)
    assert isinstance(calibration, CameraCalibration) and frame.odom_from_camera is None
