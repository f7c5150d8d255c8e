"""Tests of the keyframe store: bounded local clouds, write-through to disk, a small hot set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vggt_mapper.engine.config import MapConfig, StoreConfig
from vggt_mapper.engine.keyframe_store import (
    KeyframeCloud,
    KeyframeRecord,
    KeyframeStore,
    POINT_BYTES,
    select_keyframe_points,
    StoreError,
)
from vggt_mapper.synthetic import SyntheticSequence


def _record(index: int, cloud: KeyframeCloud) -> KeyframeRecord:
    return KeyframeRecord(index, f'f{index:05d}', index * 1000, np.eye(3), (98, 126), np.eye(3),
                          (120, 160), 2.0, cloud.num_points)


def _cloud(num: int, seed: int = 0) -> KeyframeCloud:
    rng = np.random.default_rng(seed)
    return KeyframeCloud(rng.uniform(-1, 3, (num, 3)).astype(np.float32),
                         rng.integers(0, 256, (num, 3), dtype=np.uint8),
                         rng.integers(0, 126, (num, 2)).astype(np.uint16),
                         rng.uniform(1, 5, num).astype(np.float16))


def test_cloud_selection_keeps_confident_real_pixels_within_budget() -> None:
    sequence = SyntheticSequence.orbit(2)
    depth = sequence.depth(0)
    conf = np.tile(np.linspace(1.0, 5.0, depth.shape[1], dtype=np.float32), (depth.shape[0], 1))
    image = sequence.frame(0)
    budget = StoreConfig(points_per_keyframe=300)
    cloud = select_keyframe_points(depth, conf, sequence.intrinsics, image,
                                   MapConfig(conf_percentile=50.0, pixel_stride=1), budget)
    assert 0 < cloud.num_points <= 300
    # Only the confident half of the image (confidence grows with the column) is kept.
    assert cloud.pixels_uv[:, 0].min() >= depth.shape[1] // 2 - 1
    # Every point is its pixel's back-projection, with that pixel's colour.
    u = cloud.pixels_uv[:, 0].astype(int)
    v = cloud.pixels_uv[:, 1].astype(int)
    assert np.allclose(cloud.points_local[:, 2], depth[v, u], rtol=1e-5)
    k = sequence.intrinsics
    assert np.allclose(cloud.points_local[:, 0], (u - k[0, 2]) / k[0, 0] * depth[v, u],
                       atol=1e-4)
    assert np.array_equal(cloud.colors_rgb, image[v, u])


def test_cloud_selection_spreads_points_over_the_image() -> None:
    sequence = SyntheticSequence.orbit(2)
    depth = sequence.depth(0)
    cloud = select_keyframe_points(depth, np.full(depth.shape, 2.0, np.float32),
                                   sequence.intrinsics, sequence.frame(0),
                                   MapConfig(conf_percentile=0.0, pixel_stride=1),
                                   StoreConfig(points_per_keyframe=200))
    # A voxel grid, not the first 200 pixels: all four image quadrants are represented.
    u, v = cloud.pixels_uv[:, 0], cloud.pixels_uv[:, 1]
    for left in (u < 80, u >= 80):
        for top in (v < 60, v >= 60):
            assert np.count_nonzero(left & top) > 10


def test_cloud_selection_of_an_unusable_depth_map_is_empty() -> None:
    depth = np.full((20, 30), np.nan, np.float32)
    cloud = select_keyframe_points(depth, np.ones_like(depth), np.eye(3),
                                   np.zeros((20, 30, 3), np.uint8), MapConfig(), StoreConfig())
    assert cloud.num_points == 0


def test_clouds_and_images_round_trip_through_the_disk(tmp_path: Path) -> None:
    images = [np.random.default_rng(i).integers(0, 256, (40, 50, 3), dtype=np.uint8)
              for i in range(5)]
    with KeyframeStore(StoreConfig(hot_keyframes=2), tmp_path / 'store') as store:
        clouds = [_cloud(100 + i, seed=i) for i in range(5)]
        for index, (cloud, image) in enumerate(zip(clouds, images, strict=True)):
            store.add(_record(index, cloud), cloud, image)
        # Only two clouds stay in RAM; the others are read back from the file.
        assert store.memory_bytes == (103 + 104) * POINT_BYTES
        assert store.disk_bytes >= sum(c.nbytes for c in clouds)
        for index, cloud in enumerate(clouds):
            read = store.cloud(index)
            assert np.array_equal(read.points_local, cloud.points_local)
            assert np.array_equal(read.colors_rgb, cloud.colors_rgb)
            assert np.array_equal(read.pixels_uv, cloud.pixels_uv)
            assert np.array_equal(read.conf, cloud.conf)
            assert np.array_equal(store.image(index), images[index])  # PNG: lossless
        assert [i for i, _ in store.iter_clouds([4, 0])] == [4, 0]
        assert store.indices() == [0, 1, 2, 3, 4] and 3 in store and len(store) == 5
    assert (tmp_path / 'store').is_dir()  # a folder given by the caller stays


def test_jpeg_images_are_smaller_and_close() -> None:
    image = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 1, 3))
    with KeyframeStore(StoreConfig(image_format='jpeg')) as store:
        store.add(_record(0, KeyframeCloud.empty()), KeyframeCloud.empty(), image)
        assert np.abs(store.image(0).astype(int) - image).max() < 8
        folder = store.directory
    assert not folder.exists()  # a private temporary folder is removed


def test_a_truncated_store_file_is_a_clear_error(tmp_path: Path) -> None:
    store = KeyframeStore(StoreConfig(hot_keyframes=1), tmp_path)
    for index in range(2):
        cloud = _cloud(50, seed=index)
        store.add(_record(index, cloud), cloud, np.zeros((8, 8, 3), np.uint8))
    with open(tmp_path / 'points.bin', 'r+b') as handle:
        handle.truncate(10)
    with pytest.raises(StoreError, match='truncated'):
        store.cloud(0)
    store.close()


def test_a_keyframe_is_stored_once() -> None:
    with KeyframeStore(StoreConfig()) as store:
        cloud = _cloud(10)
        store.add(_record(0, cloud), cloud, np.zeros((8, 8, 3), np.uint8))
        with pytest.raises(ValueError, match='already stored'):
            store.add(_record(0, cloud), cloud, np.zeros((8, 8, 3), np.uint8))
