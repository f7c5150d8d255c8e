"""
The cached result of one reconstruction, and the visual filters applied to it.

A ``Scene`` holds, for every keyframe, its pose and its dense points in the world frame from
both VGGT branches (depth + camera, and point map) with their confidences and colours. The
controls of the official demo (confidence percentile, frame filter, black/white background,
sky, cameras, branch) only select among these points, so changing one re-renders the GLB
without running the model again. Filtering follows the official demo's ``predictions_to_glb``:
one confidence percentile over all selected pixels, ``conf > 1e-5``, black background =
``r + g + b < 16``, white background = every channel above 240.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import json
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from vggt_mapper.engine.types import KeyframePose
from vggt_mapper.io.glb import write_glb

__all__ = [
    'BRANCH_DEPTH',
    'BRANCH_POINTMAP',
    'FRAME_FILTER_ALL',
    'KeyframeCloud',
    'RenderResult',
    'Scene',
    'ViewOptions',
    'frame_filter_choices',
    'load_scene',
    'render_glb',
    'save_scene',
    'select_points',
]

BRANCH_DEPTH = 'Depthmap and Camera Branch'
BRANCH_POINTMAP = 'Pointmap Branch'
FRAME_FILTER_ALL = 'All'
_SCENE_FORMAT = 'vggt_mapper.web_scene/1'

SkyMaskFn = Callable[[NDArray[np.uint8]], NDArray[np.bool_]]
"""Model-image RGB (H, W, 3) → (H, W) True where the pixel is NOT sky."""


@dataclass(frozen=True)
class KeyframeCloud:
    """
    One keyframe's dense prediction, carried into the world frame.

    :param pose: the keyframe's pose and camera model.
    :param points_depth_world: (H, W, 3) float32 points from depth + camera branch, world frame.
    :param conf_depth: (H, W) float32 depth confidence.
    :param colors_rgb: (H, W, 3) uint8 colour of each pixel (the model image).
    :param points_map_world: optional (H, W, 3) float32 points from the point-map branch.
    :param conf_map: optional (H, W) float32 point-map confidence.
    """

    pose: KeyframePose
    points_depth_world: NDArray[np.float32]
    conf_depth: NDArray[np.float32]
    colors_rgb: NDArray[np.uint8]
    points_map_world: NDArray[np.float32] | None = None
    conf_map: NDArray[np.float32] | None = None


@dataclass(frozen=True)
class Scene:
    """
    Everything the viewer controls need, for one reconstruction.

    :param keyframes: the keyframes in mapping order.
    :param log: the reconstruction's log line (frames, windows, timings).
    """

    keyframes: tuple[KeyframeCloud, ...]
    log: str = ''

    @property
    def poses(self) -> list[KeyframePose]:
        """Return the trajectory, in keyframe order."""
        return [keyframe.pose for keyframe in self.keyframes]


@dataclass(frozen=True)
class ViewOptions:
    """
    The official demo's visual controls.

    :param conf_thres: drop this percentage of the least confident points (0-100).
    :param frame_filter: ``'All'`` or ``'<index>: <name>'`` to show one keyframe's points.
    :param mask_black_bg: drop near-black pixels (``r + g + b < 16``).
    :param mask_white_bg: drop near-white pixels (all channels > 240).
    :param show_cam: draw the camera frustums.
    :param mask_sky: drop sky pixels (needs the sky-segmentation model).
    :param prediction_mode: ``BRANCH_DEPTH`` or ``BRANCH_POINTMAP``.
    """

    conf_thres: float = 50.0
    frame_filter: str = FRAME_FILTER_ALL
    mask_black_bg: bool = False
    mask_white_bg: bool = False
    show_cam: bool = True
    mask_sky: bool = False
    prediction_mode: str = BRANCH_DEPTH


@dataclass(frozen=True)
class RenderResult:
    """
    A rendered GLB and what went into it.

    :param path: the GLB file.
    :param num_points: points in the file.
    :param notes: remarks for the log (fallbacks taken), empty if none.
    """

    path: Path
    num_points: int
    notes: tuple[str, ...] = ()


def frame_filter_choices(scene: Scene) -> list[str]:
    """
    List the choices of the "Show Points from Frame" dropdown: ``All`` then ``'<i>: <name>'``.

    :param scene: the reconstruction.
    :return: the choices.
    """
    return [FRAME_FILTER_ALL] + [f'{i}: {kf.pose.name}' for i, kf in enumerate(scene.keyframes)]


def _selected_index(frame_filter: str | None, count: int) -> int | None:
    if not frame_filter or frame_filter.strip().lower() == 'all':
        return None
    try:
        index = int(frame_filter.split(':')[0])
    except ValueError:
        return None
    return index if 0 <= index < count else None


def select_points(scene: Scene, options: ViewOptions, sky_mask: SkyMaskFn | None = None
                  ) -> tuple[NDArray[np.float32], NDArray[np.uint8], list[KeyframePose],
                             list[str]]:
    """
    Apply the view options to a scene.

    :param scene: the reconstruction.
    :param options: the controls.
    :param sky_mask: the sky segmenter, required when ``options.mask_sky`` (None: the sky
        filter is skipped with a note).
    :return: ``(points_world (N, 3), colors_rgb (N, 3), poses to draw, notes)``.
    """
    notes: list[str] = []
    index = _selected_index(options.frame_filter, len(scene.keyframes))
    chosen = scene.keyframes if index is None else (scene.keyframes[index],)
    use_map = options.prediction_mode == BRANCH_POINTMAP
    if use_map and any(kf.points_map_world is None for kf in chosen):
        notes.append('this predictor has no point-map branch; showing the depth branch')
        use_map = False
    if options.mask_sky and sky_mask is None:
        notes.append('Filter Sky is unavailable: start the server with --sky-model PATH '
                     '(a sky-segmentation ONNX model, e.g. skyseg.onnx); sky was not removed')
    points_list, conf_list, color_list = [], [], []
    for keyframe in chosen:
        if use_map:
            assert keyframe.points_map_world is not None and keyframe.conf_map is not None
            points, conf = keyframe.points_map_world, keyframe.conf_map
        else:
            points, conf = keyframe.points_depth_world, keyframe.conf_depth
        if options.mask_sky and sky_mask is not None:
            conf = conf * sky_mask(keyframe.colors_rgb).astype(np.float32)
        points_list.append(points.reshape(-1, 3))
        conf_list.append(conf.reshape(-1))
        color_list.append(keyframe.colors_rgb.reshape(-1, 3))
    if not points_list:
        return (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), [], notes)
    points_all = np.concatenate(points_list)
    conf_all = np.concatenate(conf_list)
    colors_all = np.concatenate(color_list)
    threshold = 0.0 if options.conf_thres <= 0 else float(
        np.percentile(conf_all, min(float(options.conf_thres), 100.0)))
    keep = (conf_all >= threshold) & (conf_all > 1e-5) & np.isfinite(points_all).all(axis=1)
    if options.mask_black_bg:
        keep &= colors_all.astype(np.int32).sum(axis=1) >= 16
    if options.mask_white_bg:
        keep &= ~(colors_all > 240).all(axis=1)
    poses = [kf.pose for kf in chosen] if options.show_cam else []
    return points_all[keep].astype(np.float32), colors_all[keep], poses, notes


def render_glb(scene: Scene, options: ViewOptions, path: Path, max_points: int,
               sky_mask: SkyMaskFn | None = None) -> RenderResult:
    """
    Filter a scene and write it as a GLB (points subsampled evenly to ``max_points``).

    :param scene: the reconstruction.
    :param options: the controls.
    :param path: the GLB to write (replaced if it exists).
    :param max_points: the viewer's point budget.
    :param sky_mask: the sky segmenter, or None.
    :return: the file and what went into it.
    """
    points, colors, poses, notes = select_points(scene, options, sky_mask)
    if len(points) > max_points:
        keep = np.linspace(0, len(points) - 1, max_points).astype(np.int64)
        points, colors = points[keep], colors[keep]
        notes.append(f'showing {max_points} of the filtered points (viewer budget)')
    # Like the official demo, the scene is oriented by the first drawn camera (the selected
    # frame's when one frame is shown) and by the world frame (first keyframe) without cameras.
    write_glb(path, points, colors, poses, show_cameras=options.show_cam, overwrite=True)
    return RenderResult(path=path, num_points=int(len(points)), notes=tuple(notes))


def save_scene(scene: Scene, path: Path) -> None:
    """
    Store a scene as an uncompressed ``.npz`` (no pickled objects).

    :param scene: the reconstruction.
    :param path: the file to write.
    """
    arrays: dict[str, NDArray[np.generic]] = {}
    meta = {'format': _SCENE_FORMAT, 'log': scene.log, 'keyframes': []}
    for i, keyframe in enumerate(scene.keyframes):
        pose = keyframe.pose
        meta['keyframes'].append({  # type: ignore[attr-defined]
            'index': pose.index, 'name': pose.name, 'stamp_ns': pose.stamp_ns,
            'model_hw': list(pose.model_hw), 'original_hw': list(pose.original_hw)})
        arrays[f'{i}_world_from_cam'] = pose.world_from_cam
        arrays[f'{i}_intrinsics'] = pose.intrinsics
        arrays[f'{i}_intrinsics_original'] = pose.intrinsics_original
        arrays[f'{i}_points_depth_world'] = keyframe.points_depth_world
        arrays[f'{i}_conf_depth'] = keyframe.conf_depth
        arrays[f'{i}_colors_rgb'] = keyframe.colors_rgb
        if keyframe.points_map_world is not None and keyframe.conf_map is not None:
            arrays[f'{i}_points_map_world'] = keyframe.points_map_world
            arrays[f'{i}_conf_map'] = keyframe.conf_map
    arrays['meta'] = np.array(json.dumps(meta))
    temporary = path.with_name(path.name + '.partial.npz')
    np.savez(temporary, **arrays)  # type: ignore[arg-type]
    temporary.replace(path)


def load_scene(path: Path) -> Scene:
    """
    Read a scene written by ``save_scene``.

    :param path: the ``.npz`` file.
    :return: the scene.
    :raises ValueError: when the file is not a scene of this format.
    """
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data['meta']))
        if meta.get('format') != _SCENE_FORMAT:
            raise ValueError(f'{path} is not a {_SCENE_FORMAT} file')
        keyframes = []
        for i, item in enumerate(meta['keyframes']):
            pose = KeyframePose(
                index=int(item['index']), name=str(item['name']),
                stamp_ns=int(item['stamp_ns']), world_from_cam=data[f'{i}_world_from_cam'],
                intrinsics=data[f'{i}_intrinsics'], model_hw=tuple(item['model_hw']),
                intrinsics_original=data[f'{i}_intrinsics_original'],
                original_hw=tuple(item['original_hw']))
            has_map = f'{i}_points_map_world' in data.files
            keyframes.append(KeyframeCloud(
                pose=pose, points_depth_world=data[f'{i}_points_depth_world'],
                conf_depth=data[f'{i}_conf_depth'], colors_rgb=data[f'{i}_colors_rgb'],
                points_map_world=data[f'{i}_points_map_world'] if has_map else None,
                conf_map=data[f'{i}_conf_map'] if has_map else None))
    return Scene(keyframes=tuple(keyframes), log=str(meta.get('log', '')))
