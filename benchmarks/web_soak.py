"""
Soak the web server: its resident memory after N ``/reconstruct`` calls, and upload latency
while a model run holds it.

A real ``vggt-mapper serve`` process (the shipped sample's ground-truth stand-in predictor at a
small model width, so a call takes about a second) answers ``/reconstruct`` N times, each from a
fresh ``gradio_client`` session (as N users or N scripts would); its RSS (``/proc/<pid>/status``
VmRSS) is printed after 0, 10, 50, 100, 200, 500 calls. The same work without the web layer
(upload import → engine → scene → GLB, in one process, no Gradio) runs as the baseline in a
child process. Then, while one long reconstruction runs, small uploads (``POST
/gradio_api/upload`` of one JPEG) are timed and compared with the same uploads on an idle
server; ``--cpu-load K`` adds K busy processes (a loaded machine).

Usage::

    python benchmarks/web_soak.py                 # 100 calls, upload latency (a few minutes)
    python benchmarks/web_soak.py --calls 500 --cpu-load 2
    python benchmarks/web_soak.py --smoke         # seconds: 3 calls, 5 uploads (CI)
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
import contextlib
import datetime
import json
import multiprocessing
import os
from pathlib import Path
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SUITE = 'web_soak'
SAMPLE = Path(__file__).resolve().parents[1] / 'vggt_mapper' / 'data' / 'sample'
MODEL_WIDTH = 154  # a multiple of 14; small, so a call is dominated by the web layer's work
_WIDTH_ENV = 'WEB_SOAK_MODEL_WIDTH'
CHECKPOINTS = (0, 10, 50, 100, 200, 500)


def soak_predictor() -> object:
    """Build the server's predictor (``--predictor web_soak:soak_predictor``)."""
    from vggt_mapper.synthetic.sample import sample_predictor

    return sample_predictor(model_width=int(os.environ.get(_WIDTH_ENV, MODEL_WIDTH)))


def _rss_mib(pid: int) -> float:
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
def _server(workdir: Path, model_width: int, extra_env: dict[str, str]
            ) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    import httpx

    port = _free_port()
    path = os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).resolve().parents[1]),
                            os.environ.get('PYTHONPATH', '')])
    env = dict(os.environ, **extra_env, **{_WIDTH_ENV: str(model_width)}, PYTHONPATH=path)
    log = open(workdir / 'server.log', 'w', encoding='utf-8')  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, '-m', 'vggt_mapper.cli.entry_points', 'serve', '--port', str(port),
         '--predictor', 'web_soak:soak_predictor', '--workdir', str(workdir / 'work'),
         '--window-size', '8', '--overlap', '3'],
        env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f'http://127.0.0.1:{port}/'
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                httpx.get(url, timeout=5)
                break
            except httpx.TransportError as err:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f'server did not start; see {workdir / "server.log"}'
                                       ) from err
                time.sleep(0.5)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _frames(count: int) -> list[Path]:
    return sorted(SAMPLE.glob('frame_*.jpg'))[:count]


def soak_server(url: str, pid: int, calls: int, frames: int) -> list[dict[str, float]]:
    """
    Call ``/reconstruct`` ``calls`` times, each from a new client session; RSS at checkpoints.

    :param url: the server.
    :param pid: its process id.
    :param calls: how many calls.
    :param frames: sample frames per call.
    :return: rows ``{calls, rss_mib, seconds}``.
    """
    from gradio_client import Client, handle_file

    files = [handle_file(str(p)) for p in _frames(frames)]
    rows = [{'calls': 0, 'rss_mib': _rss_mib(pid), 'seconds': 0.0}]
    start = time.monotonic()
    for call in range(1, calls + 1):
        client = Client(url, verbose=False, httpx_kwargs={'timeout': 300})
        try:
            client.predict(files=files, conf_thres=0, api_name='/reconstruct')
        finally:
            client.close()
        if call in CHECKPOINTS or call == calls:
            rows.append({'calls': call, 'rss_mib': _rss_mib(pid),
                         'seconds': time.monotonic() - start})
            print(f'  server: {call} calls, RSS {rows[-1]["rss_mib"]:.0f} MiB', flush=True)
    return rows


def _baseline_child(calls: int, frames: int, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from vggt_mapper.engine.mapper import Mapper
    from vggt_mapper.web.reconstruction import reconstruct
    from vggt_mapper.web.scene import render_glb, save_scene, ViewOptions
    from vggt_mapper.web.settings import default_mapper_config, WebSettings
    from vggt_mapper.web.uploads import import_upload, iter_frames
    from vggt_mapper.web.workdirs import WorkdirRegistry

    predictor = soak_predictor()
    settings = WebSettings()
    config = default_mapper_config()
    from dataclasses import replace

    config = replace(config, window_size=8, overlap=3)
    paths = [str(p) for p in _frames(frames)]
    rows = [{'calls': 0, 'rss_mib': _rss_mib(os.getpid())}]
    with tempfile.TemporaryDirectory() as root:
        registry = WorkdirRegistry(Path(root), max_age_s=3600)
        for call in range(1, calls + 1):
            workdir = registry.create()
            import_upload(workdir, None, paths, 1.0, settings)
            scene = reconstruct(iter_frames(workdir), len(paths), predictor,  # type: ignore[arg-type]
                                config, Mapper)
            save_scene(scene, workdir.scene_path)
            render_glb(scene, ViewOptions(conf_thres=0), workdir.path / 'scene.glb',
                       settings.max_glb_points)
            registry.remove(workdir)
            if call in CHECKPOINTS or call == calls:
                rows.append({'calls': call, 'rss_mib': _rss_mib(os.getpid())})
    queue.put(rows)


def soak_baseline(calls: int, frames: int) -> list[dict[str, float]]:
    """
    Do the same work as ``soak_server`` in a child process without Gradio.

    :param calls: how many reconstructions.
    :param frames: sample frames each.
    :return: rows ``{calls, rss_mib}``.
    """
    context = multiprocessing.get_context('spawn')
    queue = context.Queue()
    child = context.Process(target=_baseline_child, args=(calls, frames, queue))
    child.start()
    rows: list[dict[str, float]] = queue.get()
    child.join()
    return rows


def _busy() -> None:
    while True:
        pass


def _upload_once(url: str, path: Path) -> float:
    import httpx

    start = time.perf_counter()
    with open(path, 'rb') as data:
        response = httpx.post(url + 'gradio_api/upload', files={'files': (path.name, data)},
                              timeout=300)
    response.raise_for_status()
    return time.perf_counter() - start


def _latencies(url: str, count: int, period_s: float) -> list[float]:
    path = _frames(1)[0]
    latencies = []
    for _ in range(count):
        latencies.append(_upload_once(url, path))
        time.sleep(period_s)
    return latencies


def upload_latency(url: str, uploads: int, run_frames: int) -> dict[str, object]:
    """
    Time small uploads on an idle server, then while one long reconstruction runs.

    :param url: the server.
    :param uploads: uploads timed in each state.
    :param run_frames: frames of the long reconstruction.
    :return: latencies (seconds) idle and during the run, and whether the run outlasted them.
    """
    from gradio_client import Client, handle_file

    idle = _latencies(url, uploads, 0.1)
    client = Client(url, verbose=False, httpx_kwargs={'timeout': 600})
    try:
        files = [handle_file(str(p)) for p in _frames(run_frames)]
        job = client.submit(files=files, conf_thres=0, api_name='/reconstruct')
        while job.status().code.name not in ('PROCESSING', 'FINISHED'):
            time.sleep(0.05)
        during = _latencies(url, uploads, 0.1)
        covered = not job.done()
        job.result(timeout=600)
    finally:
        client.close()
    return {'idle_s': idle, 'during_run_s': during, 'run_outlasted_uploads': covered}


def _summary(values: Sequence[float]) -> str:
    array = np.asarray(values)
    return (f'median {np.median(array) * 1e3:7.1f} ms, p90 {np.percentile(array, 90) * 1e3:7.1f}'
            f' ms, max {array.max() * 1e3:7.1f} ms')


def _metadata() -> dict[str, object]:
    commit = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                            check=False, cwd=Path(__file__).parent).stdout.strip()
    import gradio

    return {
        'suite': SUITE,
        'date_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(),
        'commit': commit,
        'python': platform.python_version(),
        'gradio': gradio.__version__,
        'cpu_count': os.cpu_count(),
        'load_average': os.getloadavg(),
        'model_width': MODEL_WIDTH,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the soak and the latency measurement; print tables; write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--calls', type=int, default=100, help='reconstructions (max 500)')
    parser.add_argument('--frames', type=int, default=8, help='sample frames per call')
    parser.add_argument('--uploads', type=int, default=30, help='uploads timed per state')
    parser.add_argument('--run-frames', type=int, default=40,
                        help='frames of the long reconstruction during the uploads')
    parser.add_argument('--cpu-load', type=int, default=0, help='busy processes meanwhile')
    parser.add_argument('--no-baseline', action='store_true', help='skip the no-web baseline')
    parser.add_argument('--smoke', action='store_true', help='seconds: 3 calls, 5 uploads')
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results')
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls, args.uploads, args.run_frames, args.frames = 3, 5, 8, 4
    if not 1 <= args.calls <= 500:
        parser.error(f'--calls must be in [1, 500], got {args.calls}')
    load = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(args.cpu_load)]
    for process in load:
        process.start()
    try:
        with tempfile.TemporaryDirectory(prefix='web_soak_') as folder:
            with _server(Path(folder)) as (url, process):
                print(f'# {SUITE}: {args.calls} /reconstruct calls of {args.frames} frames, '
                      f'{args.cpu_load} busy processes', flush=True)
                server_rows = soak_server(url, process.pid, args.calls, args.frames)
                latency = upload_latency(url, args.uploads, args.run_frames)
        baseline_rows = ([] if args.no_baseline
                         else soak_baseline(args.calls, args.frames))
    finally:
        for process in load:
            process.terminate()
    baseline = {int(r['calls']): r['rss_mib'] for r in baseline_rows}
    print('\n| calls | server RSS (MiB) | same work without web (MiB) |\n|---:|---:|---:|')
    for row in server_rows:
        other = baseline.get(int(row['calls']))
        print(f'| {int(row["calls"])} | {row["rss_mib"]:.0f} | '
              f'{"-" if other is None else f"{other:.0f}"} |')
    print(f'\nupload latency, idle:        {_summary(latency["idle_s"])}')  # type: ignore[arg-type]
    print(f'upload latency, during a run: {_summary(latency["during_run_s"])}'  # type: ignore[arg-type]
          f'{"" if latency["run_outlasted_uploads"] else "  (the run ended first)"}')
    args.out.mkdir(parents=True, exist_ok=True)
    machine = platform.node() or 'machine'
    path = args.out / f'{SUITE}--{machine}--cpu{"--smoke" if args.smoke else ""}.json'
    path.write_text(json.dumps({
        'metadata': {**_metadata(), 'calls': args.calls, 'frames': args.frames,
                     'cpu_load': args.cpu_load},
        'server': server_rows, 'baseline': baseline_rows, 'upload_latency': latency,
        'median_upload_s': {'idle': statistics.median(latency['idle_s']),  # type: ignore[arg-type]
                            'during_run': statistics.median(latency['during_run_s'])},  # type: ignore[arg-type]
    }, indent=2) + '\n')
    print(f'\nwrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
