"""
COLMAP export: written with pycolmap, read back and checked against the map.

Read back with pycolmap and with a plain parser of the classic binary format (what gsplat's
and nerfstudio's readers parse).
"""

from __future__ import annotations

from pathlib import Path
import struct

import numpy as np
import pytest

from vggt_mapper.engine import Mapper, MapperConfig
from vggt_mapper.engine.types import KeyframePose
from vggt_mapper.io.export import save_map_folder
from vggt_mapper.synthetic import NOISE_LEVELS, SyntheticPredictor, SyntheticSequence
from vggt_mapper.synthetic.evaluation import feed

pycolmap = pytest.importorskip('pycolmap')


@pytest.fixture(scope='module')
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[KeyframePose], int]:
    sequence = SyntheticSequence.orbit(60)
    predictor = SyntheticPredictor(sequence, NOISE_LEVELS['default'], model_width=126)
    folder = tmp_path_factory.mktemp('colmap') / 'map'
    with Mapper(MapperConfig(window_size=8, overlap=3), predictor) as mapper:
        feed(mapper, sequence)
        with mapper.map_state() as state:
            save_map_folder(folder, state, colmap=True)
        points = sum(mapper.store.record(i).num_points for i in mapper.store.indices())
        return folder / 'colmap', mapper.trajectory(), points


def test_the_model_reads_back_with_the_map_poses_and_cameras(
        exported: tuple[Path, list[KeyframePose], int]) -> None:
    folder, trajectory, _ = exported
    model = pycolmap.Reconstruction(str(folder / 'sparse' / '0'))
    assert model.num_reg_images() == len(trajectory)
    by_name = {image.name: image for image in model.images.values()}
    for pose in trajectory:
        image = by_name[f'{pose.index:06d}.png']
        assert (folder / 'images' / image.name).is_file()
        np.testing.assert_allclose(image.cam_from_world().matrix(), pose.cam_from_world[:3],
                                   atol=1e-9)
        camera = model.cameras[image.camera_id]
        assert camera.model_name == 'PINHOLE'
        assert (camera.height, camera.width) == pose.model_hw
        k_matrix = pose.intrinsics
        np.testing.assert_allclose(camera.params, [k_matrix[0, 0], k_matrix[1, 1],
                                                   k_matrix[0, 2] + 0.5, k_matrix[1, 2] + 0.5])


def test_points_carry_colours_and_tracks_that_reproject_onto_their_pixels(
        exported: tuple[Path, list[KeyframePose], int]) -> None:
    folder, trajectory, stored_points = exported
    model = pycolmap.Reconstruction(str(folder / 'sparse' / '0'))
    points = list(model.points3D.items())
    # Voxel-merged, so fewer points than stored, and some seen by several keyframes.
    assert 0.2 * stored_points < len(points) < stored_points
    assert model.compute_mean_track_length() > 1.0
    colours = np.array([point.color for _, point in points])
    assert colours.std() > 10  # the room's texture, not a default colour
    errors = []
    for point_id, point in points[::50]:
        for element in point.track.elements:
            image = model.images[element.image_id]
            observed = image.points2D[element.point2D_idx]
            assert observed.point3D_id == point_id  # tracks and observations agree
            projected = image.project_point(point.xyz)
            errors.append(np.linalg.norm(projected - observed.xy))
    # Merged points sit within a voxel (1 cm) of their pixels' points: about a pixel.
    assert np.median(errors) < 1.0 and np.percentile(errors, 95) < 3.0


def test_colmap_pixels_are_this_projects_plus_a_half(
        exported: tuple[Path, list[KeyframePose], int]) -> None:
    folder, trajectory, _ = exported
    model = pycolmap.Reconstruction(str(folder / 'sparse' / '0'))
    pose = trajectory[2]
    image = model.find_image_with_name(f'{pose.index:06d}.png')
    point_cam = np.array([0.3, -0.2, 2.0])
    ours = pose.intrinsics @ point_cam
    theirs = model.cameras[image.camera_id].img_from_cam(point_cam[None])[0]
    # COLMAP's top-left pixel centre is (0.5, 0.5), ours (0, 0).
    np.testing.assert_allclose(theirs, ours[:2] / ours[2] + 0.5, atol=1e-9)


def _read_classic_images_bin(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Parse images.bin as COLMAP's read_write_model.py does (the format gsplat reads)."""
    data = path.read_bytes()
    (count,), at = struct.unpack_from('<Q', data, 0), 8
    images = {}
    for _ in range(count):
        image_id, *qt, camera_id = struct.unpack_from('<I7dI', data, at)
        at += 4 + 56 + 4
        end = data.index(b'\0', at)
        name, at = data[at:end].decode(), end + 1
        (num_points,), at = struct.unpack_from('<Q', data, at), at + 8
        at += num_points * 24  # x, y double; point3D_id int64
        images[name] = (np.array(qt[:4]), np.array(qt[4:]), camera_id)
    assert at == len(data)
    return images


def test_images_bin_is_the_classic_format_other_tools_parse(
        exported: tuple[Path, list[KeyframePose], int]) -> None:
    from scipy.spatial.transform import Rotation

    folder, trajectory, _ = exported
    images = _read_classic_images_bin(folder / 'sparse' / '0' / 'images.bin')
    assert len(images) == len(trajectory)
    for pose in trajectory:
        qvec_wxyz, tvec, _ = images[f'{pose.index:06d}.png']
        rotation = Rotation.from_quat(np.roll(qvec_wxyz, -1)).as_matrix()
        np.testing.assert_allclose(rotation, pose.cam_from_world[:3, :3], atol=1e-9)
        np.testing.assert_allclose(tvec, pose.cam_from_world[:3, 3], atol=1e-9)
