"""The engine run behind Reconstruct: windows, progress, cache budget, world-frame clouds."""

from __future__ import annotations

from dataclasses import replace

from app_helpers import EXACT, MODEL_WIDTH
import numpy as np

from vggt_mapper.engine.mapper import Mapper
from vggt_mapper.engine.types import InputFrame
from vggt_mapper.predictor.base import WindowPrediction
from vggt_mapper.synthetic.predictor import SyntheticPredictor, SyntheticSequence
from vggt_mapper.web.reconstruction import estimate_windows, reconstruct
from vggt_mapper.web.settings import default_mapper_config


def _frames(sequence: SyntheticSequence) -> list[InputFrame]:
    return [InputFrame(sequence.frame(i), i * 10**9, f'f{i:02d}.png')
            for i in range(len(sequence))]


def test_windows_progress_and_world_clouds() -> None:
    sequence = SyntheticSequence.orbit(10, step_m=0.05)
    config = replace(default_mapper_config(), window_size=4, overlap=2)
    calls: list[tuple[int, int]] = []
    predictor = SyntheticPredictor(sequence, model_width=MODEL_WIDTH, seed=1)
    scene = reconstruct(_frames(sequence), 10, predictor, config, Mapper,
                        progress=lambda done, expected: calls.append((done, expected)))
    assert estimate_windows(10, config) == 4
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert predictor.calls == 4  # windows of 4, never one giant batch
    assert [kf.pose.name for kf in scene.keyframes] == [f'f{i:02d}.png' for i in range(10)]
    assert '10 frames, 10 keyframes, 4 windows' in scene.log
    # Every keyframe's cloud sits at the true depth in front of its camera, in world units
    # of the first window: check the depth scale against the ground truth up to one factor.
    ratios = []
    for index, keyframe in enumerate(scene.keyframes):
        cam_from_world = keyframe.pose.cam_from_world
        points_cam = keyframe.points_depth_world @ cam_from_world[:3, :3].T + cam_from_world[:3, 3]
        truth = sequence.depth(index)
        ratios.append(np.median(points_cam[..., 2]) / np.median(truth))
    np.testing.assert_allclose(ratios, np.median(ratios), rtol=0.03)


def test_long_uploads_are_cached_at_a_coarser_stride() -> None:
    sequence = SyntheticSequence.orbit(6, step_m=0.05)
    config = replace(default_mapper_config(), window_size=4, overlap=2)
    predictor = SyntheticPredictor(sequence, noise=EXACT, model_width=MODEL_WIDTH)
    full = reconstruct(_frames(sequence), 6, predictor, config, Mapper)
    coarse = reconstruct(_frames(sequence), 6, predictor, config, Mapper, pixel_budget=10_000)
    height, width = full.keyframes[0].conf_depth.shape
    assert (height, width) == full.keyframes[0].pose.model_hw
    small = coarse.keyframes[0].conf_depth.shape
    assert small[0] * small[1] * 6 <= 10_000 and small[0] < height


class _WithPointMap:
    """Adds an exact point-map branch (the depth unprojected into the window frame)."""

    def __init__(self, inner: SyntheticPredictor) -> None:
        self.inner = inner

    def predict(self, frames_rgb: list[np.ndarray]) -> WindowPrediction:
        from vggt_mapper.geometry import depth_to_points_cam, inverse_se3, transform_points

        base = self.inner.predict(frames_rgb)
        points = np.stack([
            transform_points(window_from_cam, depth_to_points_cam(depth, intrinsics))
            for depth, window_from_cam, intrinsics in zip(
                base.depth, inverse_se3(base.cam_from_window), base.intrinsics, strict=True)])
        return replace(base, points_window=points.astype(np.float32),
                       points_conf=base.depth_conf.copy())


def test_pointmap_branch_lands_where_the_depth_branch_does() -> None:
    sequence = SyntheticSequence.orbit(7, step_m=0.05)
    config = replace(default_mapper_config(), window_size=4, overlap=2)
    predictor = _WithPointMap(SyntheticPredictor(sequence, model_width=MODEL_WIDTH, seed=2))
    scene = reconstruct(_frames(sequence), 7, predictor, config, Mapper)
    for keyframe in scene.keyframes:
        assert keyframe.points_map_world is not None
        np.testing.assert_allclose(keyframe.points_map_world, keyframe.points_depth_world,
                                   rtol=1e-4, atol=1e-4)
