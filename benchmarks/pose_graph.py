"""
Cost of the keyframe Sim(3) pose graph, and whether gtsam lets other threads run meanwhile.

Figures (printed as tables and written as JSON with metadata):

* For odometry chains of 1k, 5k and 20k keyframes (``--smoke``: 200 and 1k) going ten times
  round a circle, with 10 loop edges: ``snapshot()`` time (the owner thread's cost) and its
  pickle round trip (a process worker's transport), ``optimize`` time split into the Python
  graph build, gtsam's Levenberg-Marquardt and the Python readout, and the Python share.
* Frame intake during an optimisation: a thread ticking every millisecond (the stand-in for a
  ROS callback or a frame reader) records its longest stall while ``BackgroundOptimizer`` runs
  with a thread worker and with a process worker. A stall as long as the solve means gtsam held
  the GIL throughout.

Usage::

    python benchmarks/pose_graph.py [--smoke] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
import json
import math
from pathlib import Path
import pickle
import platform
import sys
import threading
import time
from typing import Literal

import numpy as np
from reporting import metadata
from scipy.spatial.transform import Rotation

from vggt_mapper.engine.pose_graph import (
    BackgroundOptimizer,
    EdgeNoise,
    optimize,
    PoseGraph,
    PoseGraphConfig,
)
from vggt_mapper.geometry.sim3 import Sim3

SUITE = 'pose_graph'
SEED = 0
LOOPS = 10
LAPS = 10
RADIUS_M = 5.0


def _metadata() -> dict[str, object]:
    return metadata(SUITE, seed=SEED)


def _truth(num_nodes: int) -> list[Sim3]:
    """Return cameras on ``LAPS`` laps of a circle, each keyframe with its own depth unit."""
    rng = np.random.default_rng(SEED)
    per_lap = num_nodes // LAPS
    out = []
    for i in range(num_nodes):
        theta = 2 * math.pi * i / per_lap
        centre = [RADIUS_M * math.cos(theta), 0.3 * math.sin(3 * theta),
                  RADIUS_M * math.sin(theta)]
        rotation = Rotation.from_rotvec([0, -theta - math.pi / 2, 0]).as_matrix()
        out.append(Sim3(float(np.exp(rng.normal(0, 0.3))), rotation, centre))
    return out


def _noisy(exact: Sim3, noise: EdgeNoise, rng: np.random.Generator) -> Sim3:
    error = Sim3(math.exp(rng.normal(0, noise.sigma_log_scale)),
                 Rotation.from_rotvec(rng.normal(0, noise.sigma_rot_rad, 3)).as_matrix(),
                 rng.normal(0, noise.sigma_trans, 3))
    return error.compose(exact)


def build_graph(num_nodes: int) -> PoseGraph:
    """
    Return an odometry chain of ``num_nodes`` keyframes with ``LOOPS`` loop edges.

    Odometry errors are a random walk matching the edge sigmas (no bias: a bias over 20k edges
    would drift the scale by orders of magnitude, a graph no mapper would keep).
    """
    truth = _truth(num_nodes)
    rng = np.random.default_rng(SEED + 1)
    graph = PoseGraph(PoseGraphConfig())
    graph.add_node(0, truth[0], 0)
    for b in range(1, num_nodes):
        a = b - 1
        noise = EdgeNoise(math.radians(0.3), 0.01 / truth[a].scale, 0.01)
        a_from_b = _noisy(truth[a].inverse().compose(truth[b]), noise, rng)
        graph.add_node(b, graph.value(a).compose(a_from_b), 0)
        graph.add_odometry(a, b, a_from_b, noise)
    per_lap = num_nodes // LAPS
    for lap in range(1, LOOPS + 1):
        a = min(lap * per_lap + lap, num_nodes - 1)  # lap k passes where lap 0 was at node b
        b = a % per_lap
        noise = EdgeNoise(math.radians(0.3), 0.01 / truth[a].scale, 0.01)
        graph.add_loop(a, b, _noisy(truth[a].inverse().compose(truth[b]), noise, rng), noise)
    return graph


def _quartiles(values: list[float]) -> tuple[float, float]:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float(median), float(q3 - q1)


def run_size(num_nodes: int, repeats: int) -> dict[str, object]:
    """Time snapshot and optimize (build + solve) on one graph size; median and IQR."""
    graph = build_graph(num_nodes)
    optimize(graph.snapshot(), graph.config)  # warm-up
    snapshot_s, build_s, solve_s, readout_s, pickle_s = [], [], [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        problem = graph.snapshot()
        snapshot_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        pickle.loads(pickle.dumps(problem, protocol=pickle.HIGHEST_PROTOCOL))
        pickle_s.append(time.perf_counter() - start)
        result = optimize(problem, graph.config)
        build_s.append(result.build_seconds)
        solve_s.append(result.solve_seconds)
        readout_s.append(result.readout_seconds)
    build_median, build_iqr = _quartiles(build_s)
    solve_median, solve_iqr = _quartiles(solve_s)
    readout_median = _quartiles(readout_s)[0]
    python_s = build_median + readout_median
    inliers = sum(report.verdict.value == 'inlier' for report in result.loops)
    return {
        'nodes': num_nodes, 'edges': len(problem.edge_keys), 'loops': len(result.loops),
        'loops_inlier': inliers, 'repeats': repeats,
        'snapshot_ms': 1e3 * _quartiles(snapshot_s)[0],
        'pickle_round_trip_ms': 1e3 * _quartiles(pickle_s)[0],
        'build_s': build_median, 'build_s_iqr': build_iqr,
        'solve_s': solve_median, 'solve_s_iqr': solve_iqr, 'readout_s': readout_median,
        'iterations': result.iterations,
        'initial_error': result.initial_error, 'final_error': result.final_error,
        'python_percent': 100 * python_s / (python_s + solve_median),
    }


def _intake_stall(graph: PoseGraph, isolation: Literal['process', 'thread']
                  ) -> dict[str, object]:
    """Run one background optimisation while a 1 ms ticker thread records its longest gap."""
    stop = threading.Event()
    gaps: list[float] = []

    def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    with BackgroundOptimizer(graph.config, isolation=isolation) as optimizer:
        optimizer.submit(graph.snapshot())  # warm-up: starts the worker process
        optimizer.wait()
        ticker = threading.Thread(target=tick)
        ticker.start()
        time.sleep(0.05)
        gaps.clear()
        start = time.perf_counter()
        optimizer.submit(graph.snapshot())
        while optimizer.poll() is None:  # the owner's loop: polls, never blocks
            time.sleep(0.001)
        wall = time.perf_counter() - start
        stop.set()
        ticker.join()
    return {'isolation': isolation, 'nodes': len(graph), 'optimize_wall_s': wall,
            'ticks': len(gaps), 'longest_intake_stall_ms': 1e3 * max(gaps),
            'median_tick_ms': 1e3 * float(np.median(gaps))}


def _table(title: str, rows: list[dict[str, object]], columns: list[str]) -> str:
    def cell(value: object) -> str:
        return f'{value:.4g}' if isinstance(value, float) else str(value)

    lines = [f'\n## {title}', '| ' + ' | '.join(columns) + ' |', '|' + '---:|' * len(columns)]
    lines += ['| ' + ' | '.join(cell(row.get(c)) for c in columns) + ' |' for row in rows]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the tables and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--smoke', action='store_true', help='small graphs (seconds)')
    parser.add_argument('--out', type=Path, default=Path(__file__).parent / 'results',
                        help='folder of the JSON result')
    args = parser.parse_args(argv)
    sizes = (200, 1000) if args.smoke else (1000, 5000, 20000)
    print(f'# {SUITE}: odometry chains ({LAPS} laps) with {LOOPS} loops, sizes {sizes}')

    timing = [run_size(size, repeats=3 if size >= 5000 else 5) for size in sizes]
    print(_table('optimize (median of repeats; seconds unless stated)', timing,
                 ['nodes', 'edges', 'loops', 'loops_inlier', 'snapshot_ms',
                  'pickle_round_trip_ms', 'build_s', 'solve_s', 'solve_s_iqr', 'readout_s',
                  'iterations', 'initial_error', 'final_error', 'python_percent']))

    stall_graph = build_graph(sizes[-1])
    stalls = [_intake_stall(stall_graph, 'thread'), _intake_stall(stall_graph, 'process')]
    print(_table('Frame intake (a 1 ms ticker thread) during one background optimisation',
                 stalls, ['isolation', 'nodes', 'optimize_wall_s', 'ticks',
                          'longest_intake_stall_ms', 'median_tick_ms']))
    thread_stall_ms = stalls[0]['longest_intake_stall_ms']
    thread_wall_s = stalls[0]['optimize_wall_s']
    assert isinstance(thread_stall_ms, float) and isinstance(thread_wall_s, float)
    gil_held = thread_stall_ms > 0.5 * 1e3 * thread_wall_s
    print(f'\ngtsam holds the GIL during optimize: {gil_held} (longest stall of the ticker '
          f'with a thread worker vs the optimisation wall time)')

    args.out.mkdir(parents=True, exist_ok=True)
    machine = platform.node() or 'machine'
    path = args.out / f'{SUITE}--{machine}--cpu{"--smoke" if args.smoke else ""}.json'
    payload = {'metadata': _metadata(), 'config': asdict(PoseGraphConfig()),
               'optimize': timing, 'intake_stall': stalls, 'gil_held_by_optimize': gil_held}
    path.write_text(json.dumps(payload, indent=2) + '\n')
    print(f'\nwrote {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
