"""TEMPORARY STUB (the real gtsam module comes from the posegraph branch)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
import time

from vggt_mapper.geometry.sim3 import Sim3


@dataclass(frozen=True)
class PoseGraphConfig:
    kernel: str = 'cauchy'


@dataclass(frozen=True)
class EdgeNoise:
    sigma_rot_rad: float
    sigma_trans: float
    sigma_log_scale: float


@dataclass(frozen=True)
class GraphProblem:
    values: dict[int, Sim3]


@dataclass(frozen=True)
class OptimizationResult:
    values: dict[int, Sim3]
    seconds: float = 0.0


class PoseGraph:
    def __init__(self, config: PoseGraphConfig) -> None:
        self.config = config
        self._values: dict[int, Sim3] = {}
        self._segment: dict[int, int] = {}
        self.num_loops = 0

    def add_node(self, key: int, value: Sim3, segment: int) -> None:
        self._values[key] = value
        self._segment[key] = segment

    def add_odometry(self, a: int, b: int, a_from_b: Sim3, noise: EdgeNoise) -> None:
        pass

    def add_loop(self, a: int, b: int, a_from_b: Sim3, noise: EdgeNoise) -> int:
        self.num_loops += 1
        return self.num_loops - 1

    def merge_segments(self, keep: int, absorb: int, transform: Sim3) -> None:
        for key, seg in list(self._segment.items()):
            if seg == absorb:
                self._segment[key] = keep
                self._values[key] = transform.compose(self._values[key])

    def value(self, key: int) -> Sim3:
        return self._values[key]

    def segment_of(self, key: int) -> int:
        return self._segment[key]

    def snapshot(self) -> GraphProblem:
        return GraphProblem(dict(self._values))

    def apply(self, result: OptimizationResult) -> None:
        self._values.update(result.values)


def optimize(problem: GraphProblem, config: PoseGraphConfig) -> OptimizationResult:
    start = time.perf_counter()
    return OptimizationResult(dict(problem.values), time.perf_counter() - start)


class BackgroundOptimizer:
    def __init__(self, config: PoseGraphConfig) -> None:
        self.config = config
        self._pool = ThreadPoolExecutor(1)
        self._future: Future[OptimizationResult] | None = None

    @property
    def busy(self) -> bool:
        return self._future is not None and not self._future.done()

    def submit(self, problem: GraphProblem) -> None:
        self._future = self._pool.submit(optimize, problem, self.config)

    def wait(self) -> None:
        if self._future is not None:
            self._future.result()

    def poll(self) -> OptimizationResult | None:
        if self._future is None or not self._future.done():
            return None
        result = self._future.result()
        self._future = None
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=True)
