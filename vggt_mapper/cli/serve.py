"""
``vggt-mapper serve``: the web app and API (official VGGT demo compatible).

The parser imports nothing heavy (``--help`` stays fast); ``run`` imports gradio, torch and the
model only when the server starts.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
import shutil
import signal
import sys
from types import FrameType
from typing import Any

from vggt_mapper.cli.arg_types import positive_float, positive_int
from vggt_mapper.engine.config import MapperConfig

__all__ = ['add_parser', 'run']

_DESCRIPTION = """\
Serve the web app: upload a video or images, reconstruct, explore the coloured point map and
cameras in a 3D viewer, download the GLB. The API is the official VGGT demo's (a gradio_client
script written for it works by changing the URL), plus /reconstruct (files in, GLB + cameras
out, one call) and /predict_window (what `--remote URL` of other vggt-mapper commands uses).
Binds 127.0.0.1 unless --host says otherwise.
"""

_EPILOG = """\
examples:
  vggt-mapper serve                                   # VGGT-1B, http://127.0.0.1:7860
  vggt-mapper serve --model tiny                      # tiny random model (smoke test)
  vggt-mapper serve --host 0.0.0.0 --device cuda --sky-model skyseg.onnx
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """
    Register ``serve`` on the ``vggt-mapper`` parser.

    :param subparsers: the parent parser's subcommands.
    """
    parser = subparsers.add_parser(
        'serve', help='serve the web app and API (official VGGT demo compatible)',
        description=_DESCRIPTION, epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--host', default='127.0.0.1',
                        help='interface to bind (default 127.0.0.1; 0.0.0.0 exposes it)')
    parser.add_argument('--port', type=int, default=7860, help='TCP port (default 7860)')
    model = parser.add_argument_group('model')
    model.add_argument('--model', choices=('vggt-1b', 'tiny'), default='vggt-1b',
                       help="VGGT variant (default vggt-1b; 'tiny' has random weights)")
    model.add_argument('--checkpoint', default=None,
                       help='Hugging Face repo id or local .safetensors/.pt (default '
                            'facebook/VGGT-1B for vggt-1b)')
    model.add_argument('--device', default='auto', help='auto, cpu, cuda, cuda:N or mps')
    model.add_argument('--predictor', default=None, metavar='MODULE:ATTR',
                       help='a custom predictor instead of VGGT')
    model.add_argument('--remote', default=None, metavar='URL',
                       help='forward windows to another vggt-mapper server')
    model.add_argument('--points', action='store_true',
                       help='also run the point-map head (enables "Pointmap Branch")')
    limits = parser.add_argument_group('limits')
    limits.add_argument('--max-upload-mb', type=positive_float, default=500.0,
                        help='largest upload, all files together, in MiB (default 500)')
    limits.add_argument('--max-files', type=positive_int, default=500,
                        help='most images in one upload (default 500)')
    limits.add_argument('--max-frames', type=positive_int, default=1000,
                        help='most frames sampled from one video (default 1000)')
    limits.add_argument('--queue-size', type=positive_int, default=20,
                        help='most requests waiting for the model (default 20)')
    limits.add_argument('--workdir', type=Path, default=None,
                        help='folder of your own in which the server makes its private working '
                             'folder (mode 0700, deleted on exit; default: the temp dir)')
    limits.add_argument('--workdir-max-age-s', type=positive_float, default=3600.0,
                        help='delete upload working folders older than this (default 3600)')
    limits.add_argument('--frames-per-pass', type=positive_int, default=None,
                        help='most frames in one model pass (default: derived from the free '
                             'memory of the device; a photo set up to this size is one pass)')
    limits.add_argument('--shutdown-grace-s', type=positive_float, default=30.0,
                        help='on SIGTERM/Ctrl-C, how long a running model pass may take to '
                             'finish (default 30)')
    pool = parser.add_argument_group('replica pool (Ray Serve; serves /predict_window only)')
    pool.add_argument('--replicas', type=positive_int, default=None, metavar='N',
                      help='serve /predict_window from N model replicas on Ray Serve, one GPU '
                           'each when there are GPUs, behind one endpoint (needs the cluster '
                           "extra); --queue-size windows may wait, then 'busy, retry after'")
    pool.add_argument('--ray-address', default=None, metavar='ADDRESS',
                      help="with --replicas: Ray cluster ('auto', 'host:6379', "
                           "'ray://host:10001', 'local'; default: a new local instance)")
    mapping = parser.add_argument_group('mapping')
    mapping.add_argument('--video-fps', type=positive_float, default=1.0,
                         help='default frames per second sampled from videos (default 1)')
    engine = MapperConfig()
    mapping.add_argument('--window-size', type=positive_int, default=engine.window_size,
                         help=f'keyframes per model call (default {engine.window_size}; larger '
                              'on a big GPU, smaller on a small one)')
    mapping.add_argument('--overlap', type=positive_int, default=engine.overlap,
                         help=f'keyframes shared by consecutive windows (default '
                              f'{engine.overlap})')
    mapping.add_argument('--sky-model', type=Path, default=None, metavar='PATH',
                         help='sky-segmentation ONNX model for "Filter Sky" (never downloaded)')


TINY_WARNING = ('Random model — meaningless geometry: this server runs the tiny VGGT with '
                'random weights (a smoke test); its reconstructions do not show your scene.')


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into KeyboardInterrupt (Gradio's serving loop stops on it)."""
    raise KeyboardInterrupt(f'signal {signum}')


def model_warning(args: argparse.Namespace) -> str:
    """
    Return the warning the page shows for this model choice (empty if none).

    :param args: the parsed arguments.
    :return: the warning.
    """
    random_tiny = (args.model == 'tiny' and args.checkpoint is None and args.predictor is None
                   and args.remote is None)
    return TINY_WARNING if random_tiny else ''


def _settings(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from vggt_mapper.web.settings import default_mapper_config, WebSettings

    mapper = replace(default_mapper_config(), window_size=args.window_size,
                     overlap=args.overlap)
    return WebSettings(
        host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
        max_files=args.max_files, max_frames=args.max_frames, video_fps=args.video_fps,
        queue_size=args.queue_size, workdir_root=args.workdir,
        workdir_max_age_s=args.workdir_max_age_s, sky_model_path=args.sky_model,
        mapper=mapper, frames_per_pass=args.frames_per_pass,
        model_warning=model_warning(args), shutdown_grace_s=args.shutdown_grace_s)


def _private_gradio_cache(parent: Path | None) -> Path | None:
    """
    Give Gradio's upload cache a private folder (unless GRADIO_TEMP_DIR is set).

    Its default, $TMPDIR/gradio, is shared by every Gradio server of every user on the machine.
    """
    if os.environ.get('GRADIO_TEMP_DIR'):
        return None
    from vggt_mapper.web.workdirs import make_private_root

    folder = make_private_root(parent, prefix='vggt_mapper_gradio_')
    os.environ['GRADIO_TEMP_DIR'] = str(folder)
    return folder


def run(args: argparse.Namespace) -> int:
    """
    Build the predictor, then serve until interrupted (Ctrl-C or SIGTERM).

    On SIGTERM or Ctrl-C the server stops accepting requests, a running reconstruction stops
    before its next window (the model pass in flight finishes, up to --shutdown-grace-s), and
    the private working folders are deleted.

    :param args: the parsed arguments.
    :return: exit status 0 after a clean stop.
    :raises vggt_mapper.predictor.errors.PredictorError: when the predictor cannot be built.
    :raises vggt_mapper.web.errors.SkyModelError: when --sky-model does not exist.
    :raises vggt_mapper.web.errors.UnsafeFolderError: when --workdir is a symlink or not ours.
    """
    if args.replicas is not None:
        from vggt_mapper.cli.serve_pool import run_pool

        return run_pool(args)
    from vggt_mapper.web.errors import SkyModelError

    if args.sky_model is not None and not args.sky_model.is_file():
        raise SkyModelError(f'--sky-model {str(args.sky_model)!r} does not exist; give an '
                            'existing skyseg.onnx or leave the option out (Filter Sky is then '
                            'unavailable)')
    settings = _settings(args)

    from vggt_mapper.predictor.factory import create_predictor, PredictorSpec
    from vggt_mapper.web.app import build_app, close_app, launch_app

    spec = PredictorSpec(model=args.model, checkpoint=args.checkpoint, device=args.device,
                         predictor=args.predictor, remote_url=args.remote,
                         compute_points=args.points)
    # Built before serving, so a bad checkpoint or device fails here and not on first upload.
    predictor = create_predictor(spec)
    gradio_cache = _private_gradio_cache(args.workdir)
    try:
        app = build_app(predictor, settings)
        print(f'vggt-mapper serve: http://{args.host}:{args.port}/ (Ctrl-C to stop)', flush=True)
        # `docker stop` and service managers send SIGTERM: stop like Ctrl-C.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            launch_app(app, block=True)
        finally:
            # A second signal must not interrupt the orderly stop (bounded by the grace time).
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            finished = close_app(app)
    finally:
        if gradio_cache is not None:
            shutil.rmtree(gradio_cache, ignore_errors=True)
    if not finished:
        # The model thread is still inside a forward pass: leaving through the interpreter's
        # exit would wait for it (or abort in C++), so leave at once.
        print(f'vggt-mapper serve: a model pass was still running after '
              f'{args.shutdown_grace_s:g} s; exiting without waiting for it', file=sys.stderr,
              flush=True)
        os._exit(1)
    print('vggt-mapper serve: stopped', flush=True)
    return 0
