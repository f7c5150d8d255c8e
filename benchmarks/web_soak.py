"""
Soak the web server: memory after N ``/reconstruct`` calls, request latency during a run.

The server's resident memory after N ``/reconstruct`` calls, and the latency of uploads and page
loads while a model run holds it.

Memory: a real ``vggt-mapper serve`` process (the shipped sample's ground-truth stand-in
predictor, answering at VGGT's 518-pixel model width, so each call allocates what a real one
does) answers ``/reconstruct`` N times, each from a fresh ``gradio_client`` session (N users or
scripts); its RSS (``/proc/<pid>/status`` VmRSS) is printed after 0, 10, 50, 100, 200, 500 calls.
The same work without the web layer (upload import → engine → scene → GLB, one thread, no
Gradio) runs in a child process as the baseline.

Latency: a second server runs the tiny VGGT (the real model code, torch threads on every core);
small uploads (``POST /gradio_api/upload`` of one JPEG) and page loads (``GET /``) are timed on
the idle server, then while one long reconstruction runs. ``--cpu-load K`` adds K busy processes
(a loaded machine).

Usage::

    python benchmarks/web_soak.py                      # 100 calls (about 5 minutes)
    python benchmarks/web_soak.py --calls 500 --cpu-load 2
    python benchmarks/web_soak.py --smoke              # seconds: 2 small calls (CI)
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
import contextlib
import json
import multiprocessing
import os
from pathlib import Path
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
from reporting import metadata

SUITE = 'web_soak'
SAMPLE = Path(__file__).resolve().parents[1] / 'vggt_mapper' / 'data' / 'sample'
CHECKPOINTS = (0, 10, 50, 100, 200, 500)
_WIDTH_ENV = 'WEB_SOAK_MODEL_WIDTH'


def soak_predictor() -> object:
    """Build the soak server's predictor (``serve --predictor web_soak:soak_predictor``)."""
    from vggt_mapper.synthetic.sample import sample_predictor

    return sample_predictor(model_width=int(os.environ.get(_WIDTH_ENV, '518')))


def rss_mib(pid: int) -> float:
    """
    Return a process's resident set size.

    :param pid: the process.
    :return: VmRSS in MiB.
    """
    with open(f'/proc/{pid}/status', encoding='ascii') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f'no VmRSS for process {pid}')


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(folder: Path, args: Sequence[str], env: dict[str, str]
          ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """
    Run ``vggt-mapper serve`` with ``args`` until the block ends.

    :param folder: for its working folders and its log.
    :param args: extra command-line arguments.
    :param env: extra environment variables.
    :return: its URL and process.
    """
    import httpx

    port = _free_port()
    path = os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).resolve().parents[1]),
                            os.environ.get('PYTHONPATH', '')])
    log = open(folder / f'server_{port}.log', 'w', encoding='utf-8')  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, '-m', 'vggt_mapper.cli.entry_points', 'serve', '--port', str(port),
         '--workdir', str(folder), *args],
        env=dict(os.environ, **env, PYTHONPATH=path), stdout=log, stderr=subprocess.STDOUT,
        text=True)
    url = f'http://127.0.0.1:{port}/'
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                httpx.get(url, timeout=30)
                break
            except httpx.TransportError as err:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f'server did not start; see {log.name}') from err
                time.sleep(0.5)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _frames(count: int) -> list[Path]:
    return sorted(SAMPLE.glob('frame_*.jpg'))[:count]


def _client(url: str) -> Any:
    from gradio_client import Client

    return Client(url, verbose=False, httpx_kwargs={'timeout': 600})


def soak_server(url: str, pid: int, calls: int, frames: int) -> list[dict[str, float]]:
    """
    Call ``/reconstruct`` ``calls`` times, each from a new client session; RSS at checkpoints.

    :param url: the server.
    :param pid: its process id.
    :param calls: how many calls.
    :param frames: sample frames per call.
    :return: rows ``{calls, rss_mib, seconds}``.
    """
    from gradio_client import handle_file

    files = [handle_file(str(p)) for p in _frames(frames)]
    rows = [{'calls': 0, 'rss_mib': rss_mib(pid), 'seconds': 0.0}]
    start = time.monotonic()
    for call in range(1, calls + 1):
        client = _client(url)
        try:
            client.predict(files=files, conf_thres=0, api_name='/reconstruct')
        finally:
            client.close()
        if call in CHECKPOINTS or call == calls:
            rows.append({'calls': call, 'rss_mib': rss_mib(pid),
                         'seconds': time.monotonic() - start})
            print(f'  server: {call} calls, RSS {rows[-1]["rss_mib"]:.0f} MiB', flush=True)
    return rows


def _baseline_child(calls: int, frames: int, model_width: int,
                    queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from dataclasses import replace

    from vggt_mapper.engine.mapper import Mapper
    from vggt_mapper.web.reconstruction import reconstruct
    from vggt_mapper.web.scene import render_glb, save_scene, ViewOptions
    from vggt_mapper.web.settings import default_mapper_config, WebSettings
    from vggt_mapper.web.uploads import import_upload, iter_frames
    from vggt_mapper.web.workdirs import make_private_root, WorkdirRegistry

    os.environ[_WIDTH_ENV] = str(model_width)
    predictor: Any = soak_predictor()
    settings = WebSettings()
    config = replace(default_mapper_config(), window_size=max(2, frames),
                     overlap=min(4, max(1, frames - 1)))
    paths = [str(p) for p in _frames(frames)]
    rows = [{'calls': 0, 'rss_mib': rss_mib(os.getpid())}]
    registry = WorkdirRegistry(make_private_root(), max_age_s=3600)
    try:
        for call in range(1, calls + 1):
            workdir = registry.create()
            import_upload(workdir, None, paths, 1.0, settings)
            scene = reconstruct(iter_frames(workdir), len(paths), predictor, config, Mapper)
            save_scene(scene, workdir.scene_path)
            render_glb(scene, ViewOptions(conf_thres=0), workdir.path / 'scene.glb',
                       settings.max_glb_points)
            registry.remove(workdir)
            if call in CHECKPOINTS or call == calls:
                rows.append({'calls': call, 'rss_mib': rss_mib(os.getpid())})
    finally:
        registry.close()
    queue.put(rows)


def soak_baseline(calls: int, frames: int, model_width: int) -> list[dict[str, float]]:
    """
    Do the same work as ``soak_server`` in a child process without Gradio.

    :param calls: how many reconstructions.
    :param frames: sample frames each.
    :param model_width: the predictor's model image width.
    :return: rows ``{calls, rss_mib}``.
    """
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    child = context.Process(target=_baseline_child, args=(calls, frames, model_width, queue))
    child.start()
    rows: list[dict[str, float]] = queue.get()
    child.join()
    return rows


def _busy() -> None:
    while True:
        pass


def _timed_requests(url: str, count: int) -> dict[str, list[float]]:
    import httpx

    path = _frames(1)[0]
    uploads, pages = [], []
    for _ in range(count):
        start = time.perf_counter()
        with open(path, 'rb') as data:
            httpx.post(url + 'gradio_api/upload', files={'files': (path.name, data)},
                       timeout=600).raise_for_status()
        uploads.append(time.perf_counter() - start)
        start = time.perf_counter()
        httpx.get(url, timeout=600).raise_for_status()
        pages.append(time.perf_counter() - start)
        time.sleep(0.1)
    return {'upload_s': uploads, 'page_s': pages}


def request_latency(url: str, count: int, run_frames: int) -> dict[str, Any]:
    """
    Time uploads and page loads on an idle server, then while one long reconstruction runs.

    :param url: the server.
    :param count: requests of each kind timed in each state.
    :param run_frames: frames of the long reconstruction.
    :return: latencies (seconds) idle and during the run, and whether the run outlasted them.
    """
    from gradio_client import handle_file

    idle = _timed_requests(url, count)
    client = _client(url)
    try:
        job = client.submit(files=[handle_file(str(p)) for p in _frames(run_frames)],
                            conf_thres=0, api_name='/reconstruct')
        while job.status().code.name not in ('PROCESSING', 'FINISHED'):
            time.sleep(0.05)
        during = _timed_requests(url, count)
        outlasted = not job.done()
        job.result(timeout=3600)
    finally:
        client.close()
    return {'idle': idle, 'during_run': during, 'run_outlasted_requests': outlasted}


def _summary(values: Sequence[float]) -> str:
    array = np.asarray(values) * 1e3
    return (f'median {np.median(array):6.0f} ms, p90 {np.percentile(array, 90):6.0f} ms, '
            f'max {array.max():6.0f} ms')


def _metadata(args: argparse.Namespace) -> dict[str, object]:
    import gradio

    return metadata(SUITE, gradio=gradio.__version__, calls=args.calls, frames=args.frames,
                    model_width=args.model_width, cpu_load=args.cpu_load, smoke=args.smoke)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or '').split('\n\n')[0])
    parser.add_argument('--calls', type=int, default=100, help='reconstructions (1-500)')
    parser.add_argument('--frames', type=int, default=4, help='sample frames per call')
    parser.add_argument('--model-width', type=int, default=518,
                        help="the stand-in's model image width (VGGT's: 518)")
    parser.add_argument('--requests', type=int, default=30,
                        help='uploads and page loads timed in each state')
    parser.add_argument('--run-frames', type=int, default=40,
                        help='frames of the long tiny-VGGT reconstruction during the requests')
    parser.add_argument('--cpu-load', type=int, default=0, help='busy processes meanwhile')
    parser.add_argument('--no-baseline', action='store_true', help='skip the no-web baseline')
    parser.add_argument('--smoke', action='store_true',
                        help='seconds: 2 calls of 2 small frames, 3 requests, one server')
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results')
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls, args.frames, args.model_width, args.requests, args.run_frames = 2, 2, 154, 3, 2
    if not 1 <= args.calls <= 500:
        parser.error(f'--calls must be in [1, 500], got {args.calls}')
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the soak and the latency measurement; print tables; write JSON."""
    args = _parse(argv)
    load = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(args.cpu_load)]
    for process in load:
        process.start()
    soak_args = ['--predictor', 'web_soak:soak_predictor']
    soak_env = {_WIDTH_ENV: str(args.model_width)}
    try:
        with tempfile.TemporaryDirectory(prefix='web_soak_') as folder:
            print(f'# {SUITE}: {args.calls} /reconstruct calls of {args.frames} frames '
                  f'({args.model_width} px model width), {args.cpu_load} busy processes',
                  flush=True)
            with serve(Path(folder), soak_args, soak_env) as (url, process):
                server_rows = soak_server(url, process.pid, args.calls, args.frames)
                if args.smoke:  # one server only: the latency of the stand-in's run
                    latency = request_latency(url, args.requests, args.run_frames)
            if not args.smoke:
                with serve(Path(folder), ['--model', 'tiny'], {}) as (url, _):
                    latency = request_latency(url, args.requests, args.run_frames)
        baseline_rows = ([] if args.no_baseline
                         else soak_baseline(args.calls, args.frames, args.model_width))
    finally:
        for process in load:
            process.terminate()
    baseline = {int(r['calls']): r['rss_mib'] for r in baseline_rows}
    print('\n| calls | server RSS (MiB) | same work without the web layer (MiB) |\n'
          '|---:|---:|---:|')
    for row in server_rows:
        other = baseline.get(int(row['calls']))
        print(f'| {int(row["calls"])} | {row["rss_mib"]:.0f} | '
              f'{"-" if other is None else f"{other:.0f}"} |')
    model = 'stand-in' if args.smoke else 'tiny VGGT'
    print(f'\n| request | idle | during a {model} run |\n|---|---|---|')
    for kind, label in (('upload_s', 'upload (1 JPEG)'), ('page_s', 'page load')):
        print(f'| {label} | {_summary(latency["idle"][kind])} | '
              f'{_summary(latency["during_run"][kind])} |')
    if not latency['run_outlasted_requests']:
        print('(the run ended before the last request: raise --run-frames)')
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / (f'{SUITE}--{platform.node() or "machine"}--cpu'
                       f'{"--smoke" if args.smoke else ""}.json')
    path.write_text(json.dumps({'metadata': _metadata(args), 'server': server_rows,
                                'baseline': baseline_rows, 'latency': latency}, indent=2) + '\n')
    print(f'\nwrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
