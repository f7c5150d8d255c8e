"""
How the synthetic predictor errs: noise settings, presets and the per-window systematic errors.

Independent per-frame and per-pixel noise averages out when many frames and pixels are fitted
together. A feed-forward model like VGGT also errs in ways that do not: each window gets its
own focal length, its own depth warp, poses that drift along the window, now and then a frame
that is simply wrong, and frames that share little with the rest are placed almost at random.
``PredictionNoise`` holds the levels of both kinds; ``draw_window_errors`` draws one window's
systematic errors (a ``WindowErrors`` record that says what was done to which frame) and
``warp_depth``, ``collapse_depth`` and ``apply_pose_errors`` apply them.

Each systematic term draws from its own random stream (a child of the predictor's seed), and only
when it is switched on: switching one term on or off changes no other term's draws, and the
presets without systematic errors draw exactly what they always drew.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
import enum

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from vggt_mapper.synthetic.covisibility import components_of_window

__all__ = ['NOISE_LEVELS', 'NOISE_SEVERITY_ORDER', 'CollapseKind', 'ErrorStreams',
           'PredictionNoise', 'WindowErrors', 'apply_pose_errors', 'collapse_depth',
           'draw_window_errors', 'warp_depth']


@dataclass(frozen=True)
class PredictionNoise:
    """
    How far the synthetic predictor's answers stray from the truth.

    The first six fields are independent noise (they average out); the rest are systematic,
    per-window errors that imitate a real feed-forward model, all off by default.

    :param depth_rel: std of per-pixel multiplicative depth noise (0.01 = 1 %).
    :param depth_bias_rel: std of a per-frame multiplicative depth bias.
    :param rot_deg: std of the per-frame rotation error, degrees (frame 0 exact).
    :param trans_m: std of the per-frame camera-centre error, metres before the window scale.
    :param outlier_fraction: fraction of pixels with a wrong depth (×0.5-1.5) and low
        confidence.
    :param scale_range: each window's unit is ``median depth of frame 0 / f`` with ``f`` log-
        uniform in ``[1/scale_range, scale_range]`` (VGGT normalises scenes to unit scale).
    :param focal_rel: std of a per-window log focal factor: fx and fy of every frame of a
        window are scaled by one ``exp(focal_rel·N(0, 1))`` while depth stays the true z-depth,
        so back-projected geometry is laterally stretched or squeezed. Imitates VGGT's camera
        head guessing the field of view per window, from image content.
    :param focal_jitter_rel: std of an extra per-frame log focal factor (small inconsistency
        of the field of view inside one window).
    :param depth_gamma: std of a per-window exponent error: depth becomes
        ``d_ref·(d/d_ref)^(1+γ)`` (``d_ref`` the median true depth of frame 0), so the ratio to
        the truth grows or shrinks with depth — not a scale. Imitates the depth compression or
        stretching of monocular depth cues, shared by a window.
    :param depth_tilt: std of a per-window smooth tilt of depth over the image:
        ``exp(a·u_n + b·v_n)`` with ``u_n, v_n`` in [-1, 1] from the image centre. Imitates a
        low-frequency depth bias tied to image position (a floor predicted too steep).
    :param walk_rot_deg: std (per axis) of a rotation increment added from each frame to the
        next: frame k's rotation error is the sum of k increments. Imitates poses that drift
        along a window, correlated from frame to frame, on top of ``rot_deg``.
    :param walk_trans_m: std (per axis) of the camera-centre increment of that random walk,
        metres before the window scale.
    :param wrong_rotation_prob: probability that a window has one frame (not frame 0) with a
        rotation wrong by ``wrong_rotation_deg`` about a random axis. Imitates an occasional
        confidently wrong camera (symmetric scenes, textureless views).
    :param wrong_rotation_deg: rotation error of such a wrong frame, degrees, in (0, 180].
    :param collapse_prob: probability that a window has one frame whose depth collapses: a flat
        wall at its median depth, or the whole map scaled by 2-4× up or down, confidence
        unchanged. Imitates a depth head that gives up on a frame yet stays confident.
    :param overlap_min: covisibility threshold (0 = off). A frame that is not linked to frame 0
        through frames that see at least this share of each other (true covisibility,
        ``SyntheticSequence.covisibility``) gets a wildly wrong pose: its group of linked frames
        is rotated by at least ``overlap_fail_min_deg`` about a random axis and moved by about
        the scene depth. Imitates VGGT relating frames that share nothing.
    :param overlap_fail_min_deg: least rotation of such a group, degrees (up to 180).
    :raises ValueError: if a level is negative or not finite, a probability or ``overlap_min``
        outside [0, 1], ``scale_range`` < 1, or an angle outside (0, 180].
    """

    depth_rel: float = 0.01
    depth_bias_rel: float = 0.003
    rot_deg: float = 0.15
    trans_m: float = 0.004
    outlier_fraction: float = 0.02
    scale_range: float = 2.0
    focal_rel: float = 0.0
    focal_jitter_rel: float = 0.0
    depth_gamma: float = 0.0
    depth_tilt: float = 0.0
    walk_rot_deg: float = 0.0
    walk_trans_m: float = 0.0
    wrong_rotation_prob: float = 0.0
    wrong_rotation_deg: float = 30.0
    collapse_prob: float = 0.0
    overlap_min: float = 0.0
    overlap_fail_min_deg: float = 45.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f'PredictionNoise.{item.name} must be a finite number >= 0, '
                                 f'got {value!r}')
        for name in ('outlier_fraction', 'wrong_rotation_prob', 'collapse_prob', 'overlap_min'):
            if getattr(self, name) > 1:
                raise ValueError(f'PredictionNoise.{name} is a share in [0, 1], got '
                                 f'{getattr(self, name)!r}')
        if self.scale_range < 1:
            raise ValueError(f'PredictionNoise.scale_range must be >= 1, got {self.scale_range}')
        for name in ('wrong_rotation_deg', 'overlap_fail_min_deg'):
            if not 0 < getattr(self, name) <= 180:
                raise ValueError(f'PredictionNoise.{name} must be in (0, 180] degrees, got '
                                 f'{getattr(self, name)!r}')


# 'none', 'default' and 'high' are independent noise only, as they always were. 'realistic'
# keeps 'high''s independent noise and adds VGGT's systematic errors at about the levels it is
# reported or seen to make — orders of magnitude, not a fit:
# * focal 3 % per window: VGGT predicts the field of view per window from image content;
#   VGGT-SLAM (Maggio et al., 2025) aligns submaps with a projective SL(4) transform instead
#   of Sim(3) because windows disagree about calibration by a few per cent;
# * rotation: 0.2°/frame random walk + 0.5° independent gives about 1.5-2° on the last frame of
#   a 16-frame window, in line with VGGT's feed-forward pose accuracy (AUC@30 about 85 on
#   RealEstate10K and 88 on CO3Dv2, CVPR 2025, Table 1) for the small baselines of keyframes;
# * depth: a 5 % exponent warp (a 2× deeper point is off by about 3.5 % relative to the
#   median depth) and a 2 % tilt, next to 3 % per-pixel noise: the few-per-cent relative
#   depth error of feed-forward models, not all of it a scale;
# * a wrong frame in 3 % and a collapsed depth in 2 % of windows (rare but real: symmetric or
#   textureless views); frames sharing under 10 % of their view with the rest fail.
# 'hostile' is 2-5× worse on every systematic term, with frequent wrong and collapsed frames
# (a quarter and a seventh of windows) and a stricter overlap threshold: a stress test that a
# back end must survive without corrupting its map, not a level it must map accurately.
NOISE_LEVELS: dict[str, PredictionNoise] = {
    'none': PredictionNoise(0.0, 0.0, 0.0, 0.0, 0.0, 2.0),
    'default': PredictionNoise(),
    'high': PredictionNoise(0.03, 0.01, 0.5, 0.015, 0.05, 2.0),
    'realistic': PredictionNoise(
        0.03, 0.01, 0.5, 0.015, 0.05, 2.0,
        focal_rel=0.03, focal_jitter_rel=0.005, depth_gamma=0.05, depth_tilt=0.02,
        walk_rot_deg=0.2, walk_trans_m=0.004, wrong_rotation_prob=0.03,
        wrong_rotation_deg=30.0, collapse_prob=0.02, overlap_min=0.1),
    'hostile': PredictionNoise(
        0.06, 0.03, 1.0, 0.03, 0.1, 3.0,
        focal_rel=0.1, focal_jitter_rel=0.02, depth_gamma=0.15, depth_tilt=0.06,
        walk_rot_deg=0.6, walk_trans_m=0.012, wrong_rotation_prob=0.25,
        wrong_rotation_deg=45.0, collapse_prob=0.15, overlap_min=0.25),
}

NOISE_SEVERITY_ORDER: tuple[str, ...] = ('none', 'default', 'high', 'realistic', 'hostile')
"""Preset names from the mildest to the worst: every level is >= the previous preset's."""


class CollapseKind(enum.Enum):
    """How a collapsed frame's depth is wrong."""

    FLAT = 'flat'
    """A fronto-parallel wall at the frame's median depth."""
    SCALED = 'scaled'
    """The whole depth map scaled by ``WindowErrors.collapse_factor``."""


@dataclass(frozen=True)
class WindowErrors:
    """
    The systematic errors drawn for one window of S frames (slots in window order).

    :param focal_factors: (S,) predicted / true focal length of each frame.
    :param depth_gamma: exponent error γ of the depth warp (0 = none).
    :param depth_tilt_uv: tilt coefficients (a, b) of the depth warp.
    :param walk_rotvec_rad: (S, 3) accumulated rotation error (rotation vector) of the random
        walk, radians, window frame; row 0 is zero.
    :param walk_center_m: (S, 3) accumulated camera-centre error of the walk, metres before the
        window scale; row 0 is zero.
    :param wrong_rotation_slot: the slot with a wrong rotation, or None.
    :param wrong_rotvec_rad: (3,) that wrong rotation (zeros when none).
    :param collapsed_slot: the slot whose depth collapsed, or None.
    :param collapse_kind: how it collapsed (None when none did).
    :param collapse_factor: depth scale of a ``SCALED`` collapse (1 otherwise).
    :param overlap_groups: (S,) group of each slot: 0 for the frames linked to frame 0 by
        covisibility, g >= 1 for the g-th group of frames linked among themselves only.
    :param overlap_rotvec_rad: (G, 3) rotation of group g at row g - 1, radians.
    :param overlap_shift_rel: (G, 3) shift of group g at row g - 1, in units of the scene depth.
    """

    focal_factors: NDArray[np.float64]
    depth_gamma: float
    depth_tilt_uv: tuple[float, float]
    walk_rotvec_rad: NDArray[np.float64]
    walk_center_m: NDArray[np.float64]
    wrong_rotation_slot: int | None
    wrong_rotvec_rad: NDArray[np.float64]
    collapsed_slot: int | None
    collapse_kind: CollapseKind | None
    collapse_factor: float
    overlap_groups: NDArray[np.int64]
    overlap_rotvec_rad: NDArray[np.float64]
    overlap_shift_rel: NDArray[np.float64]

    @property
    def overlap_failed_slots(self) -> tuple[int, ...]:
        """Slots not linked to frame 0 by covisibility, given wildly wrong poses."""
        return tuple(int(slot) for slot in np.flatnonzero(self.overlap_groups))

    @property
    def num_frames(self) -> int:
        """Return the number of frames S of the window."""
        return int(self.focal_factors.shape[0])

    @property
    def wrong_slots(self) -> tuple[int, ...]:
        """Slots whose pose was made wrong on purpose (wrong rotation or overlap failure)."""
        wrong = set(self.overlap_failed_slots)
        if self.wrong_rotation_slot is not None:
            wrong.add(self.wrong_rotation_slot)
        return tuple(sorted(wrong))


class ErrorStreams:
    """
    One random stream per systematic error term, children of one seed.

    :param seed: the predictor's seed (its independent noise uses ``default_rng(seed)``, a
        stream none of these children share).
    """

    _TERMS = ('focal', 'warp', 'walk', 'wrong', 'collapse', 'overlap')

    def __init__(self, seed: int) -> None:
        self._rngs = {term: np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(k,)))
                      for k, term in enumerate(self._TERMS, start=1)}

    def __getitem__(self, term: str) -> np.random.Generator:
        """Return the stream of one term (``focal``, ``warp``, ``walk``, ...)."""
        return self._rngs[term]


def _random_axes(rng: np.random.Generator, count: int) -> NDArray[np.float64]:
    axes = rng.standard_normal((count, 3))
    return np.asarray(axes / np.linalg.norm(axes, axis=1, keepdims=True), dtype=np.float64)


def _focal_factors(noise: PredictionNoise, rng: np.random.Generator, num: int
                   ) -> NDArray[np.float64]:
    log_factor = np.zeros(num)
    if noise.focal_rel > 0:
        log_factor += noise.focal_rel * rng.standard_normal()
    if noise.focal_jitter_rel > 0:
        log_factor += noise.focal_jitter_rel * rng.standard_normal(num)
    return np.exp(log_factor)


def _random_walk(sigma: float, rng: np.random.Generator, num: int) -> NDArray[np.float64]:
    walk = np.zeros((num, 3))
    if sigma > 0 and num > 1:
        walk[1:] = np.cumsum(sigma * rng.standard_normal((num - 1, 3)), axis=0)
    return walk


def _draw_overlap_failures(noise: PredictionNoise, rng: np.random.Generator,
                           covisibility: Callable[[], NDArray[np.float64]], num: int
                           ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    if noise.overlap_min <= 0 or num < 2:
        return np.zeros(num, np.int64), np.zeros((0, 3)), np.zeros((0, 3))
    groups = components_of_window(covisibility(), noise.overlap_min)
    count = int(groups.max())
    angles = np.radians(rng.uniform(noise.overlap_fail_min_deg, 180.0, count))
    rotvecs = angles[:, None] * _random_axes(rng, count)
    shifts = rng.uniform(0.5, 1.5, count)[:, None] * _random_axes(rng, count)
    return groups, rotvecs, shifts


def draw_window_errors(noise: PredictionNoise, streams: ErrorStreams, num_frames: int,
                       covisibility: Callable[[], NDArray[np.float64]]) -> WindowErrors:
    """
    Draw one window's systematic errors (only the terms that are switched on draw).

    :param noise: the levels.
    :param streams: the predictor's error streams.
    :param num_frames: S, frames in the window.
    :param covisibility: returns the window's (S, S) true covisibility matrix; called only when
        ``noise.overlap_min`` > 0.
    :return: the errors of this window.
    """
    gamma, tilt = 0.0, (0.0, 0.0)
    if noise.depth_gamma > 0:
        gamma = float(noise.depth_gamma * streams['warp'].standard_normal())
    if noise.depth_tilt > 0:
        a, b = noise.depth_tilt * streams['warp'].standard_normal(2)
        tilt = (float(a), float(b))
    wrong_slot, wrong_rotvec = None, np.zeros(3)
    if noise.wrong_rotation_prob > 0 and num_frames > 1:
        rng = streams['wrong']
        if rng.random() < noise.wrong_rotation_prob:
            wrong_slot = int(rng.integers(1, num_frames))
            wrong_rotvec = np.radians(noise.wrong_rotation_deg) * _random_axes(rng, 1)[0]
    collapsed, kind, factor = None, None, 1.0
    if noise.collapse_prob > 0:
        rng = streams['collapse']
        if rng.random() < noise.collapse_prob:
            collapsed = int(rng.integers(0, num_frames))
            kind = CollapseKind.FLAT if rng.random() < 0.5 else CollapseKind.SCALED
            factor = float(np.exp(rng.choice([-1.0, 1.0]) * rng.uniform(np.log(2), np.log(4))))
            factor = factor if kind is CollapseKind.SCALED else 1.0
    groups, overlap_rotvecs, overlap_shifts = _draw_overlap_failures(
        noise, streams['overlap'], covisibility, num_frames)
    return WindowErrors(
        focal_factors=_focal_factors(noise, streams['focal'], num_frames),
        depth_gamma=gamma, depth_tilt_uv=tilt,
        walk_rotvec_rad=_random_walk(np.radians(noise.walk_rot_deg), streams['walk'],
                                     num_frames),
        walk_center_m=_random_walk(noise.walk_trans_m, streams['walk'], num_frames),
        wrong_rotation_slot=wrong_slot, wrong_rotvec_rad=wrong_rotvec,
        collapsed_slot=collapsed, collapse_kind=kind, collapse_factor=factor,
        overlap_groups=groups, overlap_rotvec_rad=overlap_rotvecs,
        overlap_shift_rel=overlap_shifts)


def warp_depth(depth_m: NDArray[np.float32], errors: WindowErrors, reference_m: float
               ) -> NDArray[np.float32]:
    """
    Apply a window's depth warp (exponent and tilt) to one frame's true depth.

    :param depth_m: (H, W) true z-depth, metres.
    :param errors: the window's errors.
    :param reference_m: ``d_ref``, the depth the exponent warp leaves unchanged (median true
        depth of frame 0), metres.
    :return: (H, W) float32 warped depth (the input itself when there is no warp).
    """
    if errors.depth_gamma == 0 and errors.depth_tilt_uv == (0.0, 0.0):
        return depth_m
    warped = reference_m * (depth_m / reference_m) ** (1.0 + errors.depth_gamma)
    height, width = depth_m.shape
    v_n, u_n = np.meshgrid(np.linspace(-1.0, 1.0, height), np.linspace(-1.0, 1.0, width),
                           indexing='ij')
    tilt_u, tilt_v = errors.depth_tilt_uv
    return np.asarray(warped * np.exp(tilt_u * u_n + tilt_v * v_n), dtype=np.float32)


def collapse_depth(depth_m: NDArray[np.float32], errors: WindowErrors
                   ) -> NDArray[np.float32]:
    """
    Collapse one frame's depth the way ``errors`` says (call it for the collapsed slot only).

    :param depth_m: (H, W) depth, metres.
    :param errors: the window's errors (``collapse_kind`` not None).
    :return: (H, W) float32: a constant at the median depth, or the depth scaled.
    """
    if errors.collapse_kind is CollapseKind.FLAT:
        return np.full_like(depth_m, np.median(depth_m))
    return np.asarray(depth_m * errors.collapse_factor, dtype=np.float32)


def apply_pose_errors(window_from_cam: NDArray[np.float64], errors: WindowErrors,
                      scene_depth_m: float) -> NDArray[np.float64]:
    """
    Apply a window's random walk, wrong rotation and overlap failures to its camera poses.

    Rotations act on the orientation in the window frame (``R ← ΔR·R``), shifts on the camera
    centre. An overlap-failed group turns rigidly about its first camera's centre and moves by
    ``overlap_shift_rel · scene_depth_m``, so it stays consistent in itself but not with the
    rest.

    :param window_from_cam: (S, 4, 4) poses in the window frame, metres (not modified).
    :param errors: the window's errors.
    :param scene_depth_m: scene depth (median true depth of frame 0), metres.
    :return: (S, 4, 4) the erroneous poses.
    """
    out = np.array(window_from_cam, dtype=np.float64)
    walk = Rotation.from_rotvec(errors.walk_rotvec_rad).as_matrix()
    out[:, :3, :3] = walk @ out[:, :3, :3]
    out[:, :3, 3] += errors.walk_center_m
    if errors.wrong_rotation_slot is not None:
        slot = errors.wrong_rotation_slot
        out[slot, :3, :3] = Rotation.from_rotvec(errors.wrong_rotvec_rad).as_matrix() @ out[
            slot, :3, :3]
    for group, (rotvec, shift_rel) in enumerate(
            zip(errors.overlap_rotvec_rad, errors.overlap_shift_rel, strict=True), start=1):
        members = np.flatnonzero(errors.overlap_groups == group)
        turn = np.eye(4)
        turn[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
        pivot = out[members[0], :3, 3].copy()
        turn[:3, 3] = pivot + shift_rel * scene_depth_m - turn[:3, :3] @ pivot
        out[members] = turn @ out[members]
    return out
