"""Argument parser of ``vggt-mapper map`` (no heavy imports: ``--help`` must stay fast)."""

from __future__ import annotations

import argparse

from vggt_mapper.cli.arg_types import positive_float, positive_int
from vggt_mapper.engine.config import KeyframeConfig, MapConfig, MapperConfig

__all__ = ['MODEL_CHOICES', 'add_options', 'add_parser']

MODEL_CHOICES = ('vggt-1b', 'tiny')

_DESCRIPTION = """\
Map a sequence offline: frames -> keyframes -> overlapping VGGT windows -> Sim(3) alignment ->
one coloured point map. Writes OUTDIR/map.glb (points + camera frustums, opens upright in glTF
viewers), map.ply, trajectory.tum (world_from_cam, TUM format), cameras.json, map_stats.json
and map_state/ (keyframes, clouds, images, pose graph, place descriptors: OUTDIR is a map
folder that --map loads again; --colmap adds a COLMAP model), as one set: a save that is killed
leaves the previous set, and the next run finishes or cleans it up.

INPUT is a folder of images (natural name order; images of another size than most are
skipped), a video file (decoded at up to 10 frames/s, keyframe selection picks among them), or
a rosbag2 directory (a recording cut short is read up to the cut); it defaults to the small
sample shipped with the package. Options and OUTDIR are checked (OUTDIR created and probed for
writability) before the model loads. Ctrl-C or SIGTERM stops reading and still writes what was
mapped (exit status 130 or 143). A single frame maps as one keyframe. If nothing could be
mapped (no usable frame: all unreadable, blank or too small), nothing is written and the exit
status is 1.
"""

_EPILOG = """\
examples:
  vggt-mapper map -o out --model tiny                  # shipped sample, tiny random model
  vggt-mapper map frames/ -o out --device cuda         # VGGT-1B from the Hugging Face hub
  vggt-mapper map clip.mp4 -o out --fps 2 --max-frames 200
  vggt-mapper map my_bag/ -o out --topic /camera/image_raw --bag-out
  vggt-mapper map frames/ -o out --remote http://gpu-box:7860
  vggt-mapper map more_frames/ --map out -o out2 --colmap   # continue a saved map
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """
    Register the ``map`` subcommand.

    Engine options default to None, meaning "the engine's default" (shown in the help), so
    the defaults live in one place: ``vggt_mapper.engine.config``.

    :param subparsers: the object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        'map', help='map an image folder, a video or a rosbag2 offline',
        description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', nargs='?', metavar='INPUT',
                        help='folder of images, video file or rosbag2 directory '
                             '(default: the shipped sample vggt_mapper/data/sample)')
    parser.add_argument('-o', '--outdir', required=True, metavar='OUTDIR',
                        help='output folder (created if missing)')
    add_options(parser)


def add_options(parser: argparse.ArgumentParser) -> None:
    """
    Add every option of ``map`` except INPUT and OUTDIR (``vggt-mapper batch`` shares them).

    :param parser: the parser to extend.
    """
    mapper, keyframes, map_config = MapperConfig(), KeyframeConfig(), MapConfig()
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing outputs in OUTDIR')
    parser.add_argument('-v', '--verbose', action='count', default=0,
                        help='more logging (-v info, -vv debug)')

    engine = parser.add_argument_group('mapping')
    engine.add_argument('--window-size', type=int, metavar='N',
                        help=f'keyframes per VGGT window (default {mapper.window_size})')
    engine.add_argument('--overlap', type=int, metavar='N',
                        help=f'keyframes shared by consecutive windows (default {mapper.overlap})')
    engine.add_argument('--keyframe-px', type=float, metavar='PX',
                        help='median optical-flow parallax in pixels that makes a keyframe '
                             f'(default {keyframes.min_parallax_px})')
    engine.add_argument('--min-gap', type=int, metavar='N',
                        help=f'at least N frames between keyframes (default {keyframes.min_gap})')
    engine.add_argument('--max-gap', type=int, metavar='N',
                        help=f'force a keyframe after N frames (default {keyframes.max_gap})')
    engine.add_argument('--conf-percentile', type=float, metavar='P',
                        help='drop pixels below this depth-confidence percentile, 0-100 '
                             f'(default {map_config.conf_percentile})')
    engine.add_argument('--voxel-size', type=float, metavar='S',
                        help='merging voxel edge in map units, 0 disables '
                             f'(default {map_config.voxel_size})')
    engine.add_argument('--max-points', type=int, metavar='N',
                        help=f'cap on map points (default {map_config.max_points})')
    engine.add_argument('--loops', action=argparse.BooleanOptionalAction, default=True,
                        help='close loops: find revisited places, verify them with the model '
                             'and correct the drift with the pose graph (default on)')
    engine.add_argument('--place-describer', metavar='MODULE:ATTR',
                        help='place descriptor for loop detection (an object or factory with '
                             "name, dim and describe(images)); default: VGGT's own tokens "
                             'when the model sends them, else a weight-free describer')
    engine.add_argument('--min-frame-consistency', type=float, metavar='F',
                        help='refuse a window when a new keyframe agrees with the frames before '
                             'it on less than this share of its points, 0 disables (default '
                             f'{mapper.recovery.min_frame_consistency}; 0 with --model tiny '
                             'and no checkpoint, whose random geometry would all be refused)')

    camera = parser.add_argument_group(
        'calibration and metric scale',
        'A known camera replaces the intrinsics VGGT guesses (images are undistorted first); a '
        "rosbag2's CameraInfo next to the image topic is used automatically. A metric scale "
        "comes from the bag's TF odometry (odom -> base_link -> camera) automatically, or from "
        '--scale or --camera-height.')
    camera.add_argument('--calibration', metavar='FILE',
                        help='camera calibration: ROS camera_info YAML (camera_calibration), '
                             'OpenCV YAML/JSON (FileStorage) or JSON; plumb_bob, '
                             'rational_polynomial or equidistant (fisheye) distortion')
    for name, what in (('fx', 'focal length along x'), ('fy', 'focal length along y'),
                       ('cx', 'principal point x'), ('cy', 'principal point y')):
        camera.add_argument(f'--{name}', type=float, metavar='PX',
                            help=f'{what} in pixels of the input images (give all four; no '
                                 'distortion)')
    camera.add_argument('--camera-info', metavar='TOPIC',
                        help='rosbag2 only: CameraInfo topic (default: <image topic '
                             'namespace>/camera_info when the bag has it)')
    camera.add_argument('--no-camera-info', action='store_true',
                        help="rosbag2 only: ignore the bag's CameraInfo (the model guesses)")
    camera.add_argument('--no-odometry', action='store_true',
                        help="rosbag2 only: ignore the bag's TF odometry (the map keeps an "
                             'arbitrary unit)')
    camera.add_argument('--odom-frame', default='odom', metavar='FRAME',
                        help='rosbag2 only: odometry frame of TF (default odom)')
    camera.add_argument('--scale', type=float, metavar='S',
                        help="fixed scale: factor on the first window's arbitrary unit, taken "
                             f'as metric (default {mapper.scale}; turns the odometry scale off)')
    camera.add_argument('--camera-height', type=float, metavar='M',
                        help='metric scale from the camera height above the floor, metres (a '
                             'floor plane is fitted below each keyframe)')

    model = parser.add_argument_group('model')
    model.add_argument('--model', choices=MODEL_CHOICES, default='vggt-1b',
                       help='model variant (default vggt-1b; tiny: small random model for '
                            'smoke tests)')
    model.add_argument('--checkpoint', metavar='PATH_OR_REPO',
                       help='weights: local .safetensors/.pt or Hugging Face repo id '
                            '(default facebook/VGGT-1B for vggt-1b)')
    model.add_argument('--token', metavar='TOKEN',
                       help='Hugging Face token for gated weights (default: $HF_TOKEN)')
    model.add_argument('--device', metavar='DEVICE',
                       help='torch device: auto, cpu, cuda, cuda:N or mps (default auto: cuda if '
                            'available)')
    model.add_argument('--int8', action='store_true',
                       help='CPU only: run the aggregator in dynamic int8 (faster, 2.3 instead of '
                            '5.0 GB of weights, but a larger pose error: see the README)')
    model.add_argument('--predictor', metavar='MODULE:ATTR',
                       help='use a custom predictor factory instead of the model')
    model.add_argument('--remote', metavar='URL',
                       help='predict on a vggt-mapper server (vggt-mapper serve) at URL')

    reading = parser.add_argument_group('input')
    reading.add_argument('--max-frames', type=positive_int, metavar='N',
                         help='stop after N input frames')
    reading.add_argument('--fps', type=positive_float, metavar='F',
                         help='video only: frames per second of video to decode (default 10, '
                              "or the video's own rate if lower; keyframe selection then picks "
                              'the frames to map)')
    reading.add_argument('--every', type=positive_int, metavar='N',
                         help='use every N-th frame (any input; for a video it replaces --fps)')
    reading.add_argument('--topic', metavar='TOPIC',
                         help='rosbag2 only: image topic (default: the only image topic)')

    saved = parser.add_argument_group('saved maps')
    saved.add_argument('--map', metavar='MAP_FOLDER',
                       help='load a map folder (an earlier OUTDIR) and map INPUT into it: the '
                            'new keyframes start a segment of their own that loop closure '
                            'merges into the loaded map where INPUT revisits it; OUTDIR gets '
                            'the whole map (it may be MAP_FOLDER itself, with --overwrite)')

    output = parser.add_argument_group('output')
    output.add_argument('--colmap', action='store_true',
                        help='also write OUTDIR/colmap: a COLMAP sparse model (cameras, images, '
                             'points3D; binary) with the keyframe images, for COLMAP, gsplat, '
                             'nerfstudio')
    output.add_argument('--bag-out', action='store_true',
                        help='also record the map, poses and windows to OUTDIR/map_bag '
                             '(rosbag2)')
    output.add_argument('--no-cameras', action='store_true',
                        help='leave the camera frustums out of map.glb')
    output.add_argument('--no-grid', action='store_true',
                        help='leave out map.pgm/map.yaml, the 2D occupancy grid of the main '
                             'segment on its floor (nav2 map_server format)')
