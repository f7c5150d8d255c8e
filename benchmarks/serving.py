"""
Many robots, one endpoint: ``/predict_window`` from the web app vs a Ray Serve replica pool.

N robots (``RemotePredictor`` clients, one thread each) send W windows of S frames each, one
after the other, all robots at once. Servers, each started as a user would:

* ``gradio``: ``vggt-mapper serve`` (one model, one window at a time, its bounded queue),
* ``pool-1``, ``pool-2``: ``serve --replicas 1|2`` on a local Ray instance (one window at a
  time per replica, ``--queue-size`` windows waiting, then 503 "busy").

Figures per server: wall time, windows per second, latency per window (median, p95, max:
retries included), and the retries the robots made because the server was busy or lost a
window. Every answer is checked against its window (the model images it echoes), so a
figure never counts a wrong or missing answer. The model is the tiny VGGT (synthetic weights)
at ``--target-size`` pixels, one CPU thread per model.

Usage::

    python benchmarks/serving.py [--smoke] [--robots 20] [--windows 5] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
import datetime
import json
import os
from pathlib import Path
import platform
import socket
import subprocess
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

SUITE = 'serving'
HERE = Path(__file__).resolve().parent


def tiny_predictor() -> Any:
    """Build the servers' predictor: tiny VGGT on one thread at ``$VGGT_BENCH_SIZE`` px."""
    import torch

    from vggt_mapper.model import VGGTConfig
    from vggt_mapper.model.synthetic import build_vggt
    from vggt_mapper.predictor.vggt_predictor import VGGTPredictor

    torch.set_num_threads(1)
    return VGGTPredictor(build_vggt(VGGTConfig.tiny()), device='cpu',
                         target_size=int(os.environ.get('VGGT_BENCH_SIZE', '224')))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


def _window(robot: int, window: int, frames: int) -> list[NDArray[np.uint8]]:
    rng = np.random.default_rng([robot, window])
    return [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(frames)]


def drive(url: str, robots: int, windows: int, frames: int, size: int) -> dict[str, Any]:
    """Run the robots against ``url``; check every answer; return the figures."""
    from vggt_mapper.predictor.preprocess import preprocess_frames
    from vggt_mapper.predictor.remote import RemotePredictor, RetryPolicy

    policy = RetryPolicy(attempts=60, first_delay_s=0.2, max_delay_s=2.0, max_wait_s=600)
    clients = [RemotePredictor(url, timeout_s=600, retry=policy) for _ in range(robots)]

    def one_robot(robot: int) -> list[float]:
        latencies = []
        for window in range(windows):
            sent = _window(robot, window, frames)
            start = time.perf_counter()
            answer = clients[robot].predict(sent)
            latencies.append(time.perf_counter() - start)
            expected = preprocess_frames(sent, target_size=size).images_rgb
            if not np.array_equal(answer.images_rgb, expected):
                raise AssertionError(f'robot {robot} got another window for window {window}')
        return latencies

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=robots) as threads:
            latencies = np.concatenate(list(threads.map(one_robot, range(robots))))
    finally:
        for client in clients:
            client.close()
    wall_s = time.perf_counter() - start
    retries = sum((client.retries for client in clients), start=Counter[str]())
    return {'robots': robots, 'windows': robots * windows, 'wall_s': round(wall_s, 2),
            'windows_per_s': round(robots * windows / wall_s, 2),
            'latency_p50_s': round(float(np.median(latencies)), 3),
            'latency_p95_s': round(float(np.percentile(latencies, 95)), 3),
            'latency_max_s': round(float(latencies.max()), 3),
            'busy_retries': retries['busy'], 'unavailable_retries': retries['unavailable']}


def _wait_for(url: str, process: subprocess.Popen[bytes], limit_s: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f'the server exited with {process.returncode}')
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError(f'the server at {url} did not start within {limit_s:.0f} s')


def bench_gradio(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """``vggt-mapper serve`` in its own process."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, '-m', 'vggt_mapper.cli', 'serve', '--predictor', 'serving:tiny_predictor',
         '--port', str(port), '--queue-size', str(args.queue_size)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f'http://127.0.0.1:{port}/'
        _wait_for(url, process)
        return {'server': 'gradio', 'replicas': 1,
                **drive(url, args.robots, args.windows, args.frames, args.target_size)}
    finally:
        process.terminate()
        process.wait(timeout=60)


def bench_pool(args: argparse.Namespace, replicas: int) -> dict[str, Any]:
    """``serve --replicas N`` on the local Ray instance (started by ``main``)."""
    from vggt_mapper.cluster.pool import PoolSettings, start_pool, stop_pool
    from vggt_mapper.predictor.factory import PredictorSpec

    port = _free_port()
    url = start_pool(PredictorSpec(predictor='serving:tiny_predictor'),
                     PoolSettings(replicas=replicas, port=port, queue_size=args.queue_size))
    try:
        return {'server': f'pool-{replicas}', 'replicas': replicas,
                **drive(url.removesuffix('/predict_window'), args.robots, args.windows,
                        args.frames, args.target_size)}
    finally:
        stop_pool()


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--smoke', action='store_true', help='4 robots, 2 windows')
    parser.add_argument('--robots', type=int, default=20)
    parser.add_argument('--windows', type=int, default=5, help='windows per robot')
    parser.add_argument('--frames', type=int, default=2, help='frames per window')
    parser.add_argument('--target-size', type=int, default=224, help='model image width')
    parser.add_argument('--queue-size', type=int, default=4,
                        help='windows that may wait in each server (default 4)')
    parser.add_argument('--out', type=Path, default=HERE / 'results')
    args = parser.parse_args(argv)
    if args.smoke:
        args.robots, args.windows = 4, 2
    import ray

    env = {**os.environ, 'VGGT_BENCH_SIZE': str(args.target_size),
           'PYTHONPATH': os.pathsep.join([str(HERE), *filter(None, [
               os.environ.get('PYTHONPATH')])])}
    print(f'# {SUITE}: {args.robots} robots x {args.windows} windows of {args.frames} frames, '
          f'tiny VGGT at {args.target_size} px, queue {args.queue_size}; load average '
          f'{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs', flush=True)
    rows = [bench_gradio(args, env)]
    print(f'  gradio: {rows[-1]["wall_s"]} s', flush=True)
    ray.init(num_cpus=max(2, os.cpu_count() or 1), include_dashboard=False,
             log_to_driver=False, runtime_env={'env_vars': {
                 'PYTHONPATH': env['PYTHONPATH'], 'VGGT_BENCH_SIZE': env['VGGT_BENCH_SIZE']}})
    try:
        for replicas in (1, 2):
            rows.append(bench_pool(args, replicas))
            print(f'  pool-{replicas}: {rows[-1]["wall_s"]} s', flush=True)
    finally:
        ray.shutdown()
    columns = ['server', 'replicas', 'robots', 'windows', 'wall_s', 'windows_per_s',
               'latency_p50_s', 'latency_p95_s', 'latency_max_s', 'busy_retries',
               'unavailable_retries']
    print('| ' + ' | '.join(columns) + ' |\n|' + '---:|' * len(columns))
    for row in rows:
        print('| ' + ' | '.join(str(row[column]) for column in columns) + ' |')
    args.out.mkdir(parents=True, exist_ok=True)
    machine = platform.node() or 'machine'
    path = args.out / f'{SUITE}--{machine}--cpu{"--smoke" if args.smoke else ""}.json'
    metadata = {'suite': SUITE, 'date_utc': datetime.datetime.now(
        datetime.timezone.utc).isoformat(), 'python': platform.python_version(),
        'ray': ray.__version__, 'cpu_count': os.cpu_count(),
        'load_average_1min': os.getloadavg()[0], 'config': vars(args) | {'out': str(args.out)}}
    path.write_text(json.dumps({'metadata': metadata, 'rows': rows}, indent=2) + '\n')
    print(f'\nwrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
