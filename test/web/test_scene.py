"""The official demo's visual filters on a cached scene (no server needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vggt_mapper.engine.types import KeyframePose
from vggt_mapper.web.scene import (
    BRANCH_DEPTH,
    BRANCH_POINTMAP,
    frame_filter_choices,
    KeyframeCloud,
    load_scene,
    render_glb,
    save_scene,
    Scene,
    select_points,
    ViewOptions,
)


def _keyframe(index: int, colour: int, with_map: bool = True) -> KeyframeCloud:
    height, width = 4, 5
    pose = KeyframePose(index, f'img{index}.png', index * 10**9, np.eye(4), np.eye(3),
                        (height, width), np.eye(3), (height, width))
    points = np.zeros((height, width, 3), np.float32)
    points[..., 0] = index
    points[..., 2] = 1 + np.arange(height * width, dtype=np.float32).reshape(height, width)
    conf = 1 + np.arange(height * width, dtype=np.float32).reshape(height, width)
    colors = np.full((height, width, 3), colour, np.uint8)
    return KeyframeCloud(pose, points, conf, colors,
                         points + 100 if with_map else None, conf[::-1].copy() if with_map
                         else None)


SCENE = Scene((_keyframe(0, 128), _keyframe(1, 5), _keyframe(2, 250)), log='test')


def test_percentile_keeps_the_most_confident_points() -> None:
    points, _, _, _ = select_points(SCENE, ViewOptions(conf_thres=0))
    assert len(points) == 60
    points, _, _, _ = select_points(SCENE, ViewOptions(conf_thres=50))
    assert len(points) == 30  # conf 11..20 of each frame
    assert points[:, 2].min() == 11


def test_black_and_white_backgrounds_are_masked() -> None:
    _, colors, _, _ = select_points(SCENE, ViewOptions(conf_thres=0, mask_black_bg=True))
    assert len(colors) == 40 and colors.min() == 128  # r + g + b = 15 < 16 is black
    _, colors, _, _ = select_points(SCENE, ViewOptions(conf_thres=0, mask_white_bg=True))
    assert len(colors) == 40 and colors.max() == 128  # all channels > 240 is white


def test_frame_filter_selects_one_keyframe_and_its_camera() -> None:
    choices = frame_filter_choices(SCENE)
    assert choices == ['All', '0: img0.png', '1: img1.png', '2: img2.png']
    points, _, poses, _ = select_points(SCENE, ViewOptions(conf_thres=0, frame_filter=choices[2]))
    assert len(points) == 20 and set(points[:, 0]) == {1.0}
    assert [p.index for p in poses] == [1]
    _, _, poses, _ = select_points(SCENE, ViewOptions(conf_thres=0, show_cam=False))
    assert poses == []


def test_pointmap_branch_uses_its_own_points_and_confidence() -> None:
    points, _, _, notes = select_points(SCENE, ViewOptions(conf_thres=50,
                                                           prediction_mode=BRANCH_POINTMAP))
    assert points[:, 2].min() > 100 and not notes
    # reversed confidence: the kept half is the other half of the pixels
    assert sorted(set(points[:, 2] - 100)) == list(range(1, 11))


def test_missing_pointmap_falls_back_with_a_note() -> None:
    scene = Scene((_keyframe(0, 128, with_map=False),))
    points, _, _, notes = select_points(scene, ViewOptions(prediction_mode=BRANCH_POINTMAP))
    assert points[:, 2].max() < 100
    assert 'no point-map branch' in notes[0]


def test_sky_filter_without_model_is_a_note_not_a_crash() -> None:
    points, _, _, notes = select_points(SCENE, ViewOptions(conf_thres=0, mask_sky=True))
    assert len(points) == 60
    assert any('--sky-model' in note for note in notes)


def test_sky_mask_zeroes_the_confidence_of_sky_pixels() -> None:
    def top_row_is_sky(image_rgb: np.ndarray) -> np.ndarray:
        mask = np.ones(image_rgb.shape[:2], bool)
        mask[0] = False
        return mask

    points, _, _, _ = select_points(SCENE, ViewOptions(conf_thres=0, mask_sky=True),
                                    top_row_is_sky)
    assert len(points) == 45 and points[:, 2].min() == 6


def test_render_writes_a_glb_within_the_point_budget(tmp_path: Path) -> None:
    import trimesh

    result = render_glb(SCENE, ViewOptions(conf_thres=0, prediction_mode=BRANCH_DEPTH),
                        tmp_path / 'a.glb', max_points=25)
    assert result.num_points == 25 and 'budget' in result.notes[-1]
    scene = trimesh.load(str(result.path), file_type='glb', force='scene')
    clouds = [g for g in scene.geometry.values() if isinstance(g, trimesh.PointCloud)]
    assert len(clouds[0].vertices) == 25


def test_scene_round_trips_through_npz(tmp_path: Path) -> None:
    save_scene(SCENE, tmp_path / 'scene.npz')
    loaded = load_scene(tmp_path / 'scene.npz')
    assert loaded.log == 'test' and len(loaded.keyframes) == 3
    for before, after in zip(SCENE.keyframes, loaded.keyframes, strict=True):
        assert after.pose.name == before.pose.name and after.pose.model_hw == (4, 5)
        np.testing.assert_array_equal(after.points_depth_world, before.points_depth_world)
        np.testing.assert_array_equal(after.conf_map, before.conf_map)


def test_scene_file_of_another_format_is_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / 'x.npz', meta=np.array('{"format": "other"}'))
    with pytest.raises(ValueError, match='web_scene'):
        load_scene(tmp_path / 'x.npz')
