"""
Keyframe Sim(3) pose graph: odometry and loop edges, optimised by gtsam off the hot path.

Conventions (pinned by ``test/engine/test_pose_graph.py::test_convention_*``):

* A node is a keyframe; its value is ``world_from_node``, a ``Sim3`` with
  ``x_world = s R x_node + t``, where the node frame is the keyframe's camera frame (OpenCV axes)
  in the keyframe's own depth unit. The world is its segment's frame (see below).
* An edge between ``a`` and ``b`` measures ``a_from_b = world_from_a^-1 ∘ world_from_b``.
* gtsam's ``Similarity3(R, t_g, s)`` is the matrix ``[[R, t_g], [0, 1/s]]``: it maps
  ``x ↦ s (R x + t_g)``, so ``t_g = t / s`` for our ``Sim3``. ``sim3_to_gtsam`` and
  ``sim3_from_gtsam`` are the only conversions.
* gtsam's Similarity3 tangent (``Logmap``/``Expmap``, factor errors, hence noise sigmas) is
  ordered ``[ω (3, rotation, rad), u (3, translation), λ (log-scale)]``. A between factor's
  error is ``Logmap(a_from_b_measured^-1 ∘ world_from_a^-1 ∘ world_from_b)``: its translation
  is in ``b``'s units, so an ``EdgeNoise.sigma_trans`` (in ``a``'s units) is divided by the
  measurement's scale.

Segments: every node belongs to a segment, a map with its own frame and scale (like an atlas).
The first node of a segment anchors it with a prior at its value (fixing the segment's 7-dof
gauge); edges never cross segments; ``merge_segments`` carries one segment into another's frame
and drops its anchor, after which loops between them are ordinary edges.

Off the hot path: ``PoseGraph.snapshot()`` copies the problem (a few numpy columns: cheap to
copy and to pickle to a worker process),
``optimize`` (a pure function) builds the gtsam graph and runs Levenberg-Marquardt, and
``PoseGraph.apply`` writes the result back while keeping nodes added meanwhile glued to their
neighbours. gtsam holds the GIL while it optimises (measured in ``benchmarks/pose_graph.py``),
so ``BackgroundOptimizer`` runs it in a worker *process* by default: a worker thread would stall
every other Python thread, frame intake included, for the whole solve.
"""

from __future__ import annotations

from collections.abc import Sequence
import concurrent.futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
import enum
import math
import multiprocessing
import time
from typing import Any, Literal
import uuid

import gtsam
import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from vggt_mapper.engine.errors import ConfigError, EngineError
from vggt_mapper.geometry.sim3 import Sim3

__all__ = [
    'BackgroundOptimizer',
    'Edge',
    'EdgeCounts',
    'EdgeKind',
    'EdgeNoise',
    'GraphProblem',
    'LoopReport',
    'LoopVerdict',
    'OptimizationError',
    'OptimizationResult',
    'PoseGraph',
    'PoseGraphConfig',
    'PoseGraphError',
    'Sim3Array',
    'optimize',
    'sim3_from_gtsam',
    'sim3_to_gtsam',
]

LoopKernel = Literal['cauchy', 'huber', 'none']
_LOOP_KERNELS = ('cauchy', 'huber', 'none')
# gtsam keys are 64-bit Symbols: one character and a 56-bit index.
_MAX_KEY = 2**56 - 1
_MAX_SEGMENT = 2**63 - 1
_NO_LOOP = -1
_ROTATION_TOL = 1e-6


@dataclass(frozen=True)
class PoseGraphConfig:
    """
    How the pose graph is optimised.

    :param loop_kernel: robust kernel on loop edges: ``'cauchy'``, ``'huber'``, or ``'none'``
        (Gaussian, for loops you trust completely: one wrong loop then bends the whole map).
        Odometry edges are always Gaussian.
    :param loop_kernel_threshold: the kernel's parameter, in units of the loop's whitened
        residual norm (gtsam reweights the Mahalanobis norm of the whole 7-vector). The default,
        √χ²₇(0.95) ≈ 3.75, is the norm a correct 7-dof residual stays below 95 % of the time.
        A Cauchy weight falls to 1/2 at this norm, Huber's at twice it. Note that a correct
        loop whose residual at the odometry estimate is far beyond it (drift much larger than
        the odometry sigmas admit) is also down-weighted: calibrate odometry sigmas.
    :param down_weighted_below: a loop whose final robust weight is below this is reported
        ``DOWN_WEIGHTED``.
    :param ignored_below: a loop whose final robust weight is below this is reported
        ``IGNORED`` (it no longer shapes the map).
    :param max_iterations: Levenberg-Marquardt iterations at most.
    :param relative_error_tol: stop when the error decreases by less than this fraction.
    :param absolute_error_tol: stop when the error decreases by less than this.
    :param gauge_sigma_rot_rad: sigma of each segment anchor's prior on rotation (radians).
    :param gauge_sigma_trans: sigma of the anchor's prior on translation, in world units.
    :param gauge_sigma_log_scale: sigma of the anchor's prior on log-scale.
    """

    loop_kernel: LoopKernel = 'cauchy'
    loop_kernel_threshold: float = 3.75
    down_weighted_below: float = 0.5
    ignored_below: float = 0.05
    max_iterations: int = 100
    relative_error_tol: float = 1e-6
    absolute_error_tol: float = 1e-9
    gauge_sigma_rot_rad: float = 1e-6
    gauge_sigma_trans: float = 1e-6
    gauge_sigma_log_scale: float = 1e-6

    def __post_init__(self) -> None:
        if self.loop_kernel not in _LOOP_KERNELS:
            raise ConfigError(f'loop_kernel must be one of {_LOOP_KERNELS}, got '
                              f'{self.loop_kernel!r}')
        if not self.loop_kernel_threshold > 0:
            raise ConfigError(f'loop_kernel_threshold must be > 0, got '
                              f'{self.loop_kernel_threshold}')
        if not 0 <= self.ignored_below <= self.down_weighted_below <= 1:
            raise ConfigError(f'need 0 <= ignored_below ({self.ignored_below}) <= '
                              f'down_weighted_below ({self.down_weighted_below}) <= 1')
        if self.max_iterations < 1:
            raise ConfigError(f'max_iterations must be >= 1, got {self.max_iterations}')
        for name in ('relative_error_tol', 'absolute_error_tol'):
            if not getattr(self, name) >= 0:
                raise ConfigError(f'{name} must be >= 0, got {getattr(self, name)}')
        for name in ('gauge_sigma_rot_rad', 'gauge_sigma_trans', 'gauge_sigma_log_scale'):
            if not 0 < getattr(self, name) < math.inf:
                raise ConfigError(f'{name} must be finite and > 0, got {getattr(self, name)}')


class PoseGraphError(EngineError, ValueError):
    """A pose-graph call was refused: unknown or duplicate key, edge across segments, ..."""


class OptimizationError(EngineError, RuntimeError):
    """gtsam could not optimise the graph, or the worker running it died."""


@dataclass(frozen=True)
class EdgeNoise:
    """
    Standard deviations of an edge's measurement ``a_from_b``.

    :param sigma_rot_rad: rotation, radians (per axis).
    :param sigma_trans: translation, in the units of the edge's first node ``a`` (per axis).
    :param sigma_log_scale: log of the scale (0.01 ≈ 1 % scale error).
    """

    sigma_rot_rad: float
    sigma_trans: float
    sigma_log_scale: float

    def __post_init__(self) -> None:
        for name in ('sigma_rot_rad', 'sigma_trans', 'sigma_log_scale'):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                raise PoseGraphError(f'EdgeNoise.{name} must be finite and > 0, got {value}')


class EdgeKind(enum.Enum):
    """What an edge comes from."""

    ODOMETRY = 'odometry'
    LOOP = 'loop'


@dataclass(frozen=True)
class Edge:
    """
    One measurement between two nodes of the same segment.

    :param kind: odometry (Gaussian) or loop (robust kernel).
    :param a: key of the first node.
    :param b: key of the second node.
    :param a_from_b: the measured ``world_from_a^-1 ∘ world_from_b``.
    :param noise: its standard deviations.
    :param loop_id: the id ``add_loop`` returned (``None`` for odometry).
    """

    kind: EdgeKind
    a: int
    b: int
    a_from_b: Sim3
    noise: EdgeNoise
    loop_id: int | None = None


@dataclass(frozen=True)
class EdgeCounts:
    """
    Number of edges of each kind.

    :param odometry: odometry edges.
    :param loop: loop edges.
    """

    odometry: int
    loop: int


@dataclass(frozen=True)
class Sim3Array:
    """
    N similarity transforms as columns, each ``x_target = s R x_source + t`` like ``Sim3``.

    Columns make snapshots and results cheap to copy and to pickle (a process worker gets
    them in a few array buffers instead of thousands of small objects).

    :param scales: (N,) float64, > 0.
    :param rotations: (N, 3, 3) float64 rotation matrices.
    :param translations: (N, 3) float64, in target units.
    """

    scales: NDArray[np.float64]
    rotations: NDArray[np.float64]
    translations: NDArray[np.float64]

    @classmethod
    def from_sim3s(cls, transforms: Sequence[Sim3]) -> Sim3Array:
        """
        Stack transforms into columns.

        :param transforms: the transforms, in order.
        :return: their columns.
        """
        return cls(np.array([t.scale for t in transforms], dtype=np.float64).reshape(-1),
                   np.array([t.rotation for t in transforms], dtype=np.float64).reshape(-1, 3, 3),
                   np.array([t.translation for t in transforms],
                            dtype=np.float64).reshape(-1, 3))

    def __len__(self) -> int:
        """Return N."""
        return len(self.scales)

    def __getitem__(self, index: int) -> Sim3:
        """
        Return one transform.

        :param index: its row.
        :return: it as a ``Sim3`` (copies).
        """
        return Sim3(float(self.scales[index]), self.rotations[index].copy(),
                    self.translations[index].copy())

    def left_compose(self, transform: Sim3) -> Sim3Array:
        """
        Return ``transform ∘ self[i]`` for every row (a new frame for all of them).

        :param transform: maps this array's target frame to the new one.
        :return: the composed transforms.
        """
        return Sim3Array(transform.scale * self.scales,
                         np.matmul(transform.rotation, self.rotations),
                         transform.apply(self.translations))


@dataclass(frozen=True)
class GraphProblem:
    """
    A copy of a pose graph: what ``optimize`` solves. Owns its arrays; do not modify them.

    :param keys: (N,) int64 node keys, in insertion order.
    :param segments: (N,) int64 segment of each node at the snapshot.
    :param world_from_node: (N) node values, in their segment's frame.
    :param edge_keys: (E, 2) int64 keys ``a, b`` of each edge, in insertion order.
    :param edge_loop_ids: (E,) int64 loop id of each loop edge, -1 for odometry.
    :param a_from_b: (E) edge measurements.
    :param edge_sigmas: (E, 3) float64 sigmas: rotation (rad), translation (``a``'s units),
        log-scale.
    :param anchors: (S,) int64 keys of the segment anchors whose prior fixes the gauge.
    :param graph_id: identity of the ``PoseGraph`` it was taken from.
    :param revision: that graph's revision at the snapshot (it grows with every change).
    :param merge_count: segment merges done before the snapshot.
    """

    keys: NDArray[np.int64]
    segments: NDArray[np.int64]
    world_from_node: Sim3Array
    edge_keys: NDArray[np.int64]
    edge_loop_ids: NDArray[np.int64]
    a_from_b: Sim3Array
    edge_sigmas: NDArray[np.float64]
    anchors: NDArray[np.int64]
    graph_id: str
    revision: int
    merge_count: int

    def edge(self, index: int) -> Edge:
        """
        Return one edge as an ``Edge``.

        :param index: its row (insertion order).
        :return: the edge.
        """
        loop_id = int(self.edge_loop_ids[index])
        rot, trans, log_scale = (float(v) for v in self.edge_sigmas[index])
        return Edge(EdgeKind.LOOP if loop_id != _NO_LOOP else EdgeKind.ODOMETRY,
                    int(self.edge_keys[index, 0]), int(self.edge_keys[index, 1]),
                    self.a_from_b[index], EdgeNoise(rot, trans, log_scale),
                    loop_id if loop_id != _NO_LOOP else None)


class LoopVerdict(enum.Enum):
    """What the robust kernel made of a loop edge."""

    INLIER = 'inlier'
    DOWN_WEIGHTED = 'down_weighted'
    IGNORED = 'ignored'


@dataclass(frozen=True)
class LoopReport:
    """
    The fate of one loop edge in an optimisation.

    :param loop_id: the id ``add_loop`` returned.
    :param a: key of its first node.
    :param b: key of its second node.
    :param initial_error: whitened residual norm (in sigmas, over the 7 dof) at the snapshot.
    :param final_error: whitened residual norm after optimisation.
    :param weight: the robust kernel's weight at the final residual (1 = full influence).
    :param verdict: ``weight`` classified by the config's thresholds.
    """

    loop_id: int
    a: int
    b: int
    initial_error: float
    final_error: float
    weight: float
    verdict: LoopVerdict


@dataclass(frozen=True)
class OptimizationResult:
    """
    What ``optimize`` found for a snapshot.

    :param keys: (M,) int64 keys of the optimised nodes, in insertion order; nodes not linked
        to their segment's anchor by edges are left out and listed in ``unconstrained``.
    :param segments: (M,) int64 their segments as at the snapshot.
    :param world_from_node: (M) their optimised values, in those segments' frames.
    :param loops: a report per optimised loop edge, in insertion order.
    :param unconstrained: keys left out: no chain of edges links them to their anchor.
    :param initial_error: gtsam graph error (½ Σ robust squared whitened residuals) before.
    :param final_error: the same after optimisation.
    :param iterations: Levenberg-Marquardt iterations run.
    :param build_seconds: Python time building the gtsam graph and initial values.
    :param solve_seconds: time in gtsam's Levenberg-Marquardt.
    :param readout_seconds: Python time reading the values and loop reports back.
    :param graph_id: the ``GraphProblem``'s.
    :param revision: the ``GraphProblem``'s.
    :param merge_count: the ``GraphProblem``'s.
    """

    keys: NDArray[np.int64]
    segments: NDArray[np.int64]
    world_from_node: Sim3Array
    loops: tuple[LoopReport, ...]
    unconstrained: tuple[int, ...]
    initial_error: float
    final_error: float
    iterations: int
    build_seconds: float
    solve_seconds: float
    readout_seconds: float
    graph_id: str
    revision: int
    merge_count: int

    @property
    def seconds(self) -> float:
        """Return the total time of ``optimize`` (build, solve and readout)."""
        return self.build_seconds + self.solve_seconds + self.readout_seconds

    def values(self) -> dict[int, Sim3]:
        """Return the optimised ``world_from_node`` per key."""
        return {int(key): self.world_from_node[i] for i, key in enumerate(self.keys)}

    def loop(self, loop_id: int) -> LoopReport:
        """
        Return the report of one loop.

        :param loop_id: the id ``add_loop`` returned.
        :return: its report.
        :raises KeyError: if that loop was not in the optimised problem.
        """
        for report in self.loops:
            if report.loop_id == loop_id:
                return report
        raise KeyError(f'loop {loop_id} is not in this result')


# ---- conversions and gtsam building blocks ---------------------------------------------------


def sim3_to_gtsam(transform: Sim3) -> gtsam.Similarity3:
    """
    Convert a ``Sim3`` (``x ↦ s R x + t``) to gtsam's ``Similarity3`` (``x ↦ s (R x + t_g)``).

    :param transform: the transform.
    :return: the same transform as ``Similarity3(R, t / s, s)``.
    """
    return gtsam.Similarity3(gtsam.Rot3(transform.rotation),
                             transform.translation / transform.scale, transform.scale)


def sim3_from_gtsam(transform: gtsam.Similarity3) -> Sim3:
    """
    Convert gtsam's ``Similarity3`` back to a ``Sim3``; inverse of ``sim3_to_gtsam``.

    :param transform: the gtsam transform.
    :return: the same transform as a ``Sim3``.
    """
    scale = float(transform.scale())
    return Sim3(scale, np.asarray(transform.rotation().matrix()),
                scale * np.asarray(transform.translation()))


def node_symbol(key: int) -> int:
    """
    Return the gtsam key of a keyframe node: the one place keys are made.

    :param key: the caller's keyframe key, 0 <= key < 2**56.
    :return: ``gtsam.symbol('x', key)``.
    """
    return int(gtsam.symbol('x', key))


def edge_noise(sigmas: NDArray[np.float64], scale_a_from_b: float
               ) -> gtsam.noiseModel.Diagonal:
    """
    Return the Gaussian noise model of an edge, sigmas in gtsam's tangent order.

    :param sigmas: (3,) rotation (rad), translation (``a``'s units), log-scale.
    :param scale_a_from_b: the measurement's scale; it turns ``a``'s units into ``b``'s, the
        units of the factor's translation error.
    :return: a diagonal model over ``[ω, u, λ]``.
    """
    sigma_rot, sigma_trans_a, sigma_log_scale = (float(v) for v in sigmas)
    sigma_trans_b = sigma_trans_a / scale_a_from_b
    return gtsam.noiseModel.Diagonal.Sigmas(np.array(
        [sigma_rot] * 3 + [sigma_trans_b] * 3 + [sigma_log_scale]))


def loop_kernel(config: PoseGraphConfig
                ) -> gtsam.noiseModel.mEstimator.Cauchy | gtsam.noiseModel.mEstimator.Huber | None:
    """
    Return the robust kernel of loop edges, or ``None`` for Gaussian loops.

    :param config: kernel name and threshold.
    :return: the M-estimator.
    """
    if config.loop_kernel == 'cauchy':
        return gtsam.noiseModel.mEstimator.Cauchy.Create(config.loop_kernel_threshold)
    if config.loop_kernel == 'huber':
        return gtsam.noiseModel.mEstimator.Huber.Create(config.loop_kernel_threshold)
    return None


def gauge_noise(config: PoseGraphConfig, world_from_anchor: Sim3) -> gtsam.noiseModel.Diagonal:
    """
    Return the noise of a segment anchor's prior (translation sigma turned into node units).

    :param config: the gauge sigmas (translation in world units).
    :param world_from_anchor: the anchor's value.
    :return: a diagonal model over ``[ω, u, λ]``.
    """
    sigma_trans_node = config.gauge_sigma_trans / world_from_anchor.scale
    return gtsam.noiseModel.Diagonal.Sigmas(np.array(
        [config.gauge_sigma_rot_rad] * 3 + [sigma_trans_node] * 3
        + [config.gauge_sigma_log_scale]))


@dataclass(frozen=True)
class _LoopFactor:
    loop_id: int
    a: int
    b: int
    factor: gtsam.BetweenFactorSimilarity3
    gaussian: gtsam.noiseModel.Diagonal


def _rows_of(keys: NDArray[np.int64], wanted: NDArray[np.int64]) -> NDArray[np.intp]:
    """Return the rows of ``wanted`` keys in ``keys`` (all present)."""
    order = np.argsort(keys, kind='stable')
    return order[np.searchsorted(keys, wanted, sorter=order)]


def _constrained_rows(problem: GraphProblem) -> NDArray[np.bool_]:
    """Return which nodes a chain of edges links to their segment's anchor."""
    size = len(problem.keys)
    ends = _rows_of(problem.keys, problem.edge_keys)
    adjacency = coo_matrix((np.ones(len(ends)), (ends[:, 0], ends[:, 1])), shape=(size, size))
    _, labels = connected_components(adjacency, directed=False)
    anchored = labels[_rows_of(problem.keys, problem.anchors)]
    return np.isin(labels, anchored)


def _build_graph(problem: GraphProblem, config: PoseGraphConfig,
                 constrained: NDArray[np.bool_]
                 ) -> tuple[gtsam.NonlinearFactorGraph, gtsam.Values, list[_LoopFactor]]:
    graph = gtsam.NonlinearFactorGraph()
    initial = gtsam.Values()
    for row in np.flatnonzero(constrained).tolist():
        initial.insert(node_symbol(int(problem.keys[row])),
                       sim3_to_gtsam(problem.world_from_node[row]))
    for row in _rows_of(problem.keys, problem.anchors).tolist():
        world_from_anchor = problem.world_from_node[row]
        graph.add(gtsam.PriorFactorSimilarity3(node_symbol(int(problem.keys[row])),
                                               sim3_to_gtsam(world_from_anchor),
                                               gauge_noise(config, world_from_anchor)))
    kernel = loop_kernel(config)
    # Edges never leave a connected component: both ends of an edge are in or out together.
    edge_in = constrained[_rows_of(problem.keys, problem.edge_keys[:, 0])]
    loops = []
    for index in np.flatnonzero(edge_in).tolist():
        a, b = (int(key) for key in problem.edge_keys[index])
        a_from_b = problem.a_from_b[index]
        gaussian = edge_noise(problem.edge_sigmas[index], a_from_b.scale)
        loop_id = int(problem.edge_loop_ids[index])
        noise: gtsam.noiseModel.Base = gaussian
        if loop_id != _NO_LOOP and kernel is not None:
            noise = gtsam.noiseModel.Robust.Create(kernel, gaussian)
        factor = gtsam.BetweenFactorSimilarity3(node_symbol(a), node_symbol(b),
                                                sim3_to_gtsam(a_from_b), noise)
        graph.add(factor)
        if loop_id != _NO_LOOP:
            loops.append(_LoopFactor(loop_id, a, b, factor, gaussian))
    return graph, initial, loops


def _levenberg_marquardt(graph: gtsam.NonlinearFactorGraph, initial: gtsam.Values,
                         config: PoseGraphConfig) -> tuple[gtsam.Values, int]:
    """Run Levenberg-Marquardt: the one place the optimiser and its parameters are set."""
    params = gtsam.LevenbergMarquardtParams()
    params.setMaxIterations(config.max_iterations)
    params.setRelativeErrorTol(config.relative_error_tol)
    params.setAbsoluteErrorTol(config.absolute_error_tol)
    optimizer = gtsam.LevenbergMarquardtOptimizer(graph, initial, params)
    try:
        result = optimizer.optimize()
    except RuntimeError as err:  # gtsam's IndeterminantLinearSystemException and kin
        raise OptimizationError(f'Levenberg-Marquardt failed on a graph of {graph.size()} '
                                f'factors: {err}') from err
    return result, int(optimizer.iterations())


def _whitened_norm(loop: _LoopFactor, values: gtsam.Values) -> float:
    return float(np.linalg.norm(loop.gaussian.whiten(loop.factor.unwhitenedError(values))))


def _loop_report(loop: _LoopFactor, initial: gtsam.Values, final: gtsam.Values,
                 config: PoseGraphConfig) -> LoopReport:
    final_error = _whitened_norm(loop, final)
    kernel = loop_kernel(config)
    weight = 1.0 if kernel is None else float(kernel.weight(final_error))
    if weight < config.ignored_below:
        verdict = LoopVerdict.IGNORED
    elif weight < config.down_weighted_below:
        verdict = LoopVerdict.DOWN_WEIGHTED
    else:
        verdict = LoopVerdict.INLIER
    return LoopReport(loop.loop_id, loop.a, loop.b, _whitened_norm(loop, initial), final_error,
                      weight, verdict)


def optimize(problem: GraphProblem, config: PoseGraphConfig) -> OptimizationResult:
    """
    Optimise a snapshot with Levenberg-Marquardt (pure: safe in another thread or process).

    :param problem: the snapshot (``PoseGraph.snapshot()``).
    :param config: kernel, optimiser and gauge parameters.
    :return: optimised values and the fate of every loop edge.
    :raises OptimizationError: if gtsam fails (e.g. an indeterminant linear system).
    """
    start = time.perf_counter()
    constrained = _constrained_rows(problem)
    graph, initial, loops = _build_graph(problem, config, constrained)
    built = time.perf_counter()
    final, iterations = _levenberg_marquardt(graph, initial, config)
    solved = time.perf_counter()
    keys = problem.keys[constrained]
    optimised = Sim3Array.from_sim3s(
        [sim3_from_gtsam(final.atSimilarity3(node_symbol(int(key)))) for key in keys])
    reports = tuple(_loop_report(loop, initial, final, config) for loop in loops)
    return OptimizationResult(
        keys=keys, segments=problem.segments[constrained], world_from_node=optimised,
        loops=reports, unconstrained=tuple(int(key) for key in problem.keys[~constrained]),
        initial_error=float(graph.error(initial)), final_error=float(graph.error(final)),
        iterations=iterations, build_seconds=built - start, solve_seconds=solved - built,
        readout_seconds=time.perf_counter() - solved, graph_id=problem.graph_id,
        revision=problem.revision, merge_count=problem.merge_count)


# ---- the graph the engine owns ------------------------------------------------------------


def _check_transform(transform: Sim3, what: str) -> None:
    if not isinstance(transform, Sim3):
        raise PoseGraphError(f'{what} must be a Sim3, got {type(transform).__name__}')
    rotation = transform.rotation
    finite = (math.isfinite(transform.scale) and bool(np.all(np.isfinite(rotation)))
              and bool(np.all(np.isfinite(transform.translation))))
    if not finite:
        raise PoseGraphError(f'{what} has non-finite values: scale {transform.scale}, '
                             f'translation {transform.translation}')
    error = float(np.max(np.abs(rotation.T @ rotation - np.eye(3))))
    if error > _ROTATION_TOL or np.linalg.det(rotation) < 0:
        raise PoseGraphError(f'{what}.rotation is not a rotation (|RᵀR - I| = {error:.3g}, '
                             f'det = {np.linalg.det(rotation):.3g})')


def _check_int(value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise PoseGraphError(f'{what} must be an int, got {type(value).__name__}')
    if not low <= value <= high:
        raise PoseGraphError(f'{what} must be in [{low}, {high}], got {value}')
    return int(value)


class _Columns:
    """Append-only numpy columns with amortised O(1) appends (capacity doubles when full)."""

    def __init__(self, row_shapes: dict[str, tuple[tuple[int, ...], type]]) -> None:
        self._data: dict[str, NDArray[Any]] = {
            name: np.empty((16, *shape), dtype) for name, (shape, dtype) in row_shapes.items()}
        self.size = 0

    def append(self, **row: object) -> None:
        if self.size == len(next(iter(self._data.values()))):
            self._data = {name: np.concatenate([column, np.empty_like(column)])
                          for name, column in self._data.items()}
        for name, column in self._data.items():
            column[self.size] = row[name]
        self.size += 1

    def __getitem__(self, name: str) -> NDArray[Any]:
        """Return a view of a column's filled rows (writable: updates go to the table)."""
        return self._data[name][:self.size]


@dataclass(frozen=True)
class _Merge:
    keep: int
    absorb: int
    keep_world_from_absorb_world: Sim3


class PoseGraph:
    """
    The keyframe pose graph the engine owns: nodes, odometry and loop edges, segments.

    Not thread-safe: one owner calls every method; optimisation works on ``snapshot()`` copies
    (see ``optimize`` and ``BackgroundOptimizer``) and comes back through ``apply``. Nodes and
    edges are stored as numpy columns, so a snapshot of a 20k-keyframe graph is a few copies.

    :param config: how snapshots are optimised (kept for callers; ``optimize`` takes it too).
    """

    def __init__(self, config: PoseGraphConfig | None = None) -> None:
        self.config = config if config is not None else PoseGraphConfig()
        self._graph_id = uuid.uuid4().hex
        self._keys: list[int] = []  # row -> key; rows are in insertion order
        self._row_of: dict[int, int] = {}
        self._nodes = _Columns({'scale': ((), np.float64), 'rotation': ((3, 3), np.float64),
                                'translation': ((3,), np.float64), 'segment': ((), np.int64)})
        self._edges = _Columns({'keys': ((2,), np.int64), 'loop_id': ((), np.int64),
                                'scale': ((), np.float64), 'rotation': ((3, 3), np.float64),
                                'translation': ((3,), np.float64),
                                'sigmas': ((3,), np.float64)})
        self._anchors: dict[int, int] = {}  # segment -> anchor key
        self._absorbed_into: dict[int, int] = {}  # merged-away segment -> keeping segment
        self._loop_count = 0
        self._merges: list[_Merge] = []
        self._revision = 0
        self._applied_revision = -1

    @classmethod
    def restore(cls, problem: GraphProblem, config: PoseGraphConfig | None = None) -> PoseGraph:
        """
        Rebuild a graph from a snapshot (a saved map): same nodes, segments, edges and anchors.

        Every value goes through the same checks as when it was first added (finite, proper
        rotations, edges within one segment), so a damaged snapshot is refused here.

        :param problem: ``snapshot()`` of the graph to rebuild.
        :param config: how the new graph is optimised.
        :return: the graph; loop ids are renumbered in insertion order from 0.
        :raises PoseGraphError: if the snapshot is inconsistent (unknown keys, an anchor that
            is not the first node of its segment, an edge across segments, bad values).
        """
        graph = cls(config)
        for row, key in enumerate(problem.keys.tolist()):
            graph.add_node(key, problem.world_from_node[row], int(problem.segments[row]))
        anchors = {graph.segment_of(int(key)): int(key) for key in problem.anchors.tolist()}
        if anchors != graph._anchors:
            raise PoseGraphError(f'the snapshot anchors its segments at {anchors}, but the first '
                                 f'node of each segment is {graph._anchors}')
        for index in range(len(problem.edge_keys)):
            edge = problem.edge(index)
            if edge.kind is EdgeKind.LOOP:
                graph.add_loop(edge.a, edge.b, edge.a_from_b, edge.noise)
            else:
                graph.add_odometry(edge.a, edge.b, edge.a_from_b, edge.noise)
        return graph

    # -- building --------------------------------------------------------------------------

    def add_node(self, key: int, world_from_node: Sim3, segment: int) -> None:
        """
        Add a keyframe node; the first node of a segment anchors it.

        :param key: the keyframe's key, a new integer in [0, 2**56).
        :param world_from_node: initial value, in the segment's frame.
        :param segment: the segment, an integer in [0, 2**63) not merged away yet.
        :raises PoseGraphError: duplicate or out-of-range key, bad transform, merged segment.
        """
        key = _check_int(key, 0, _MAX_KEY, 'node key')
        segment = _check_int(segment, 0, _MAX_SEGMENT, 'segment')
        if key in self._row_of:
            raise PoseGraphError(f'node {key} already exists (segment {self.segment_of(key)})')
        if segment in self._absorbed_into:
            raise PoseGraphError(f'segment {segment} was merged into segment '
                                 f'{self._absorbed_into[segment]}; add the node there')
        _check_transform(world_from_node, f'world_from_node of node {key}')
        self._row_of[key] = len(self._keys)
        self._keys.append(key)
        self._nodes.append(scale=world_from_node.scale, rotation=world_from_node.rotation,
                           translation=world_from_node.translation, segment=segment)
        self._anchors.setdefault(segment, key)
        self._revision += 1

    def add_odometry(self, a: int, b: int, a_from_b: Sim3, noise: EdgeNoise) -> None:
        """
        Add a Gaussian edge from a window's relative poses or its alignment.

        :param a: first node's key.
        :param b: second node's key (same segment).
        :param a_from_b: measured ``world_from_a^-1 ∘ world_from_b``.
        :param noise: its sigmas (translation in ``a``'s units).
        :raises PoseGraphError: unknown node, nodes in different segments, bad measurement.
        """
        self._add_edge(a, b, a_from_b, noise, _NO_LOOP)

    def add_loop(self, a: int, b: int, a_from_b: Sim3, noise: EdgeNoise) -> int:
        """
        Add a verified loop edge; it gets the config's robust kernel.

        :param a: first node's key.
        :param b: second node's key (same segment: ``merge_segments`` first otherwise).
        :param a_from_b: measured ``world_from_a^-1 ∘ world_from_b``.
        :param noise: its sigmas (translation in ``a``'s units).
        :return: the loop id, which names this loop in ``OptimizationResult.loops``.
        :raises PoseGraphError: unknown node, nodes in different segments, bad measurement.
        """
        loop_id = self._loop_count
        self._add_edge(a, b, a_from_b, noise, loop_id)
        self._loop_count += 1
        return loop_id

    def _add_edge(self, a: int, b: int, a_from_b: Sim3, noise: EdgeNoise, loop_id: int) -> None:
        kind = 'odometry' if loop_id == _NO_LOOP else 'loop'
        for key in (a, b):
            if key not in self._row_of:
                raise PoseGraphError(f'{kind} edge {a} -> {b}: node {key} does not exist')
        if a == b:
            raise PoseGraphError(f'{kind} edge {a} -> {b}: an edge needs two different nodes')
        if self.segment_of(a) != self.segment_of(b):
            raise PoseGraphError(
                f'{kind} edge {a} -> {b} crosses segments {self.segment_of(a)} and '
                f'{self.segment_of(b)}; call merge_segments first to put them in one frame')
        if not isinstance(noise, EdgeNoise):
            raise PoseGraphError(f'{kind} edge {a} -> {b}: noise must be an EdgeNoise, got '
                                 f'{type(noise).__name__}')
        _check_transform(a_from_b, f'{kind} edge {a} -> {b}: a_from_b')
        self._edges.append(keys=(a, b), loop_id=loop_id, scale=a_from_b.scale,
                           rotation=a_from_b.rotation, translation=a_from_b.translation,
                           sigmas=(noise.sigma_rot_rad, noise.sigma_trans, noise.sigma_log_scale))
        self._revision += 1

    def merge_segments(self, keep: int, absorb: int, keep_world_from_absorb_world: Sim3) -> None:
        """
        Carry segment ``absorb`` into segment ``keep``'s frame; they become one segment.

        Every node of ``absorb`` gets ``keep_world_from_absorb_world ∘ world_from_node`` and the
        label ``keep``; ``absorb``'s anchor prior is dropped (``keep``'s fixes the gauge).

        :param keep: the segment that stays.
        :param absorb: the segment that disappears.
        :param keep_world_from_absorb_world: maps ``absorb``'s frame into ``keep``'s.
        :raises PoseGraphError: unknown segments, the same segment twice, bad transform.
        """
        for segment in (keep, absorb):
            if segment not in self._anchors:
                raise PoseGraphError(f'cannot merge: segment {segment} does not exist '
                                     f'(segments: {sorted(self._anchors)})')
        if keep == absorb:
            raise PoseGraphError(f'cannot merge segment {keep} with itself')
        _check_transform(keep_world_from_absorb_world, 'keep_world_from_absorb_world')
        rows = np.flatnonzero(self._nodes['segment'] == absorb)
        self._set_rows(rows, self._node_values(rows).left_compose(keep_world_from_absorb_world))
        self._nodes['segment'][rows] = keep
        del self._anchors[absorb]
        for old, into in self._absorbed_into.items():
            if into == absorb:
                self._absorbed_into[old] = keep
        self._absorbed_into[absorb] = keep
        self._merges.append(_Merge(keep, absorb, keep_world_from_absorb_world))
        self._revision += 1

    def _node_values(self, rows: NDArray[np.intp]) -> Sim3Array:
        return Sim3Array(self._nodes['scale'][rows], self._nodes['rotation'][rows],
                         self._nodes['translation'][rows])

    def _set_value(self, row: int, value: Sim3) -> None:
        self._nodes['scale'][row] = value.scale
        self._nodes['rotation'][row] = value.rotation
        self._nodes['translation'][row] = value.translation

    def _set_rows(self, rows: NDArray[np.intp], values: Sim3Array) -> None:
        self._nodes['scale'][rows] = values.scales
        self._nodes['rotation'][rows] = values.rotations
        self._nodes['translation'][rows] = values.translations

    # -- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        """Return the number of nodes."""
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        """Return whether a node with this key exists."""
        return key in self._row_of

    def _row(self, key: int) -> int:
        try:
            return self._row_of[key]
        except KeyError:
            raise PoseGraphError(f'node {key} does not exist') from None

    def value(self, key: int) -> Sim3:
        """
        Return a node's ``world_from_node`` (in its segment's frame).

        :param key: the node's key.
        :return: its current value (a copy).
        :raises PoseGraphError: if the node does not exist.
        """
        row = self._row(key)
        return Sim3(float(self._nodes['scale'][row]), self._nodes['rotation'][row].copy(),
                    self._nodes['translation'][row].copy())

    def values(self) -> dict[int, Sim3]:
        """Return every node's ``world_from_node``, in insertion order (copies)."""
        values = self._node_values(np.arange(len(self._keys)))
        return {key: values[row] for row, key in enumerate(self._keys)}

    def segment_of(self, key: int) -> int:
        """
        Return the segment a node belongs to now.

        :param key: the node's key.
        :return: its segment.
        :raises PoseGraphError: if the node does not exist.
        """
        return int(self._nodes['segment'][self._row(key)])

    def segments(self) -> dict[int, list[int]]:
        """Return the keys of each segment, in insertion order."""
        out: dict[int, list[int]] = {segment: [] for segment in self._anchors}
        for key, segment in zip(self._keys, self._nodes['segment'].tolist(), strict=True):
            out[segment].append(key)
        return out

    def anchor_of(self, segment: int) -> int:
        """
        Return the key of the node whose prior fixes a segment's gauge.

        :param segment: an existing segment.
        :return: its anchor's key.
        :raises PoseGraphError: if the segment does not exist (or was merged away).
        """
        try:
            return self._anchors[segment]
        except KeyError:
            raise PoseGraphError(f'segment {segment} does not exist') from None

    def edges(self) -> tuple[Edge, ...]:
        """Return every edge, in insertion order (built on demand: O(edges) objects)."""
        problem = self.snapshot()
        return tuple(problem.edge(index) for index in range(len(problem.edge_keys)))

    def edge_counts(self) -> EdgeCounts:
        """Return how many odometry and loop edges the graph holds."""
        return EdgeCounts(self._edges.size - self._loop_count, self._loop_count)

    @property
    def revision(self) -> int:
        """Return a counter that grows with every change of the graph."""
        return self._revision

    # -- optimisation round trip -----------------------------------------------------------

    def snapshot(self) -> GraphProblem:
        """
        Return a copy of the problem for ``optimize``: a few array copies, no gtsam.

        :return: nodes, edges and anchors as they are now.
        """
        nodes, edges = self._nodes, self._edges
        return GraphProblem(
            keys=np.array(self._keys, dtype=np.int64), segments=nodes['segment'].copy(),
            world_from_node=Sim3Array(nodes['scale'].copy(), nodes['rotation'].copy(),
                                      nodes['translation'].copy()),
            edge_keys=edges['keys'].copy(), edge_loop_ids=edges['loop_id'].copy(),
            a_from_b=Sim3Array(edges['scale'].copy(), edges['rotation'].copy(),
                               edges['translation'].copy()),
            edge_sigmas=edges['sigmas'].copy(),
            anchors=np.array(list(self._anchors.values()), dtype=np.int64),
            graph_id=self._graph_id, revision=self._revision, merge_count=len(self._merges))

    def apply(self, result: OptimizationResult) -> None:
        """
        Set the optimised values of a snapshot's nodes; carry the others along.

        A node the result does not hold (added after the snapshot, or unconstrained) moves
        with the correction of the nearest earlier optimised node of its segment:
        ``new = opt_ref ∘ old_ref^-1 ∘ old``, so a late result never tears recent keyframes
        from their neighbours. A result computed before ``merge_segments`` is applied
        consistently: the absorbed segment's optimised values are carried through the same
        ``keep_world_from_absorb_world``.

        :param result: ``optimize``'s answer for a snapshot of this graph.
        :raises PoseGraphError: if the result comes from another graph, or is older than one
            already applied (results must be applied in order).
        """
        if result.graph_id != self._graph_id:
            raise PoseGraphError('this result was optimised from another PoseGraph')
        if result.revision < self._applied_revision:
            raise PoseGraphError(f'stale result: its snapshot (revision {result.revision}) is '
                                 f'older than the result already applied (revision '
                                 f'{self._applied_revision})')
        optimised_rows = np.array([self._row_of[int(key)] for key in result.keys], dtype=np.intp)
        carried_rows, refs = self._nearest_earlier(optimised_rows)
        old_refs, old_carried = self._node_values(refs), self._node_values(carried_rows)
        self._set_rows(optimised_rows, self._in_current_frames(result))
        new_refs = self._node_values(refs)
        for index, row in enumerate(carried_rows.tolist()):
            correction = new_refs[index].compose(old_refs[index].inverse())
            self._set_value(row, correction.compose(old_carried[index]))
        self._applied_revision = result.revision
        self._revision += 1

    def _nearest_earlier(self, optimised_rows: NDArray[np.intp]
                         ) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Pair each non-optimised node with the latest earlier optimised node of its segment."""
        is_optimised = np.zeros(len(self._keys), dtype=bool)
        is_optimised[optimised_rows] = True
        segments = self._nodes['segment']
        carried, refs = [], []
        for segment in np.unique(segments[~is_optimised]):
            in_segment = segments == segment
            candidates = np.flatnonzero(in_segment & is_optimised)  # sorted rows
            others = np.flatnonzero(in_segment & ~is_optimised)
            position = np.searchsorted(candidates, others) - 1
            has_ref = position >= 0  # a node before any optimised one stays where it is
            carried.append(others[has_ref])
            refs.append(candidates[position[has_ref]])
        if not carried:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
        return np.concatenate(carried), np.concatenate(refs)

    def _in_current_frames(self, result: OptimizationResult) -> Sim3Array:
        """Carry a result's values through the merges done since its snapshot."""
        values = result.world_from_node
        scales, rotations = values.scales.copy(), values.rotations.copy()
        translations = values.translations.copy()
        for segment in np.unique(result.segments).tolist():
            rows = np.flatnonzero(result.segments == segment)
            moved = Sim3Array(scales[rows], rotations[rows], translations[rows])
            frame = segment  # follows the segment through later merges
            for merge in self._merges[result.merge_count:]:
                if merge.absorb == frame:
                    moved = moved.left_compose(merge.keep_world_from_absorb_world)
                    frame = merge.keep
            scales[rows], rotations[rows] = moved.scales, moved.rotations
            translations[rows] = moved.translations
        return Sim3Array(scales, rotations, translations)


# ---- off the hot path -----------------------------------------------------------------------


class BackgroundOptimizer:
    """
    Run ``optimize`` on snapshots in a worker, one at a time, while the owner keeps mapping.

    gtsam does not release the GIL while it optimises, so the default worker is a process
    (``spawn``ed once, reused): the owner's threads keep running at full speed. A thread worker
    (``isolation='thread'``) avoids the process but stalls every other Python thread for each
    solve; use it only where that does not matter (tests, small graphs, offline runs).

    Typical use, once per frame on the owner's thread::

        result = optimizer.poll()
        if result is not None:
            graph.apply(result)
        if graph_changed and not optimizer.busy:
            optimizer.submit(graph.snapshot())

    :param config: passed to ``optimize``.
    :param isolation: ``'process'`` (default) or ``'thread'``.
    """

    def __init__(self, config: PoseGraphConfig | None = None,
                 isolation: Literal['process', 'thread'] = 'process') -> None:
        if isolation not in ('process', 'thread'):
            raise ConfigError(f"isolation must be 'process' or 'thread', got {isolation!r}")
        self.config = config if config is not None else PoseGraphConfig()
        self.isolation = isolation
        self._executor: concurrent.futures.Executor | None = None
        self._future: concurrent.futures.Future[OptimizationResult] | None = None
        self._closed = False

    def _ensure_executor(self) -> concurrent.futures.Executor:
        if self._executor is None:
            if self.isolation == 'process':
                # spawn: forking a process that holds threads (torch, rclpy) is unsafe.
                self._executor = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context('spawn'))
            else:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix='pose-graph')
        return self._executor

    @property
    def busy(self) -> bool:
        """Return whether an optimisation was submitted and its result not yet collected."""
        return self._future is not None

    def submit(self, problem: GraphProblem) -> bool:
        """
        Start optimising a snapshot, unless one is already in flight.

        :param problem: ``PoseGraph.snapshot()``.
        :return: True if started; False if busy (collect with ``poll`` and submit again).
        :raises OptimizationError: if the optimizer was closed.
        """
        if self._future is not None:
            return False
        if self._closed:
            raise OptimizationError('this BackgroundOptimizer is closed')
        self._future = self._ensure_executor().submit(optimize, problem, self.config)
        return True

    def poll(self) -> OptimizationResult | None:
        """
        Return the finished result once, or None if none is ready; never blocks.

        :return: the result of the last ``submit``, if it is done.
        :raises OptimizationError: if that optimisation failed or its worker died.
        """
        if self._future is None or not self._future.done():
            return None
        return self._collect()

    def wait(self) -> OptimizationResult | None:
        """
        Block until the optimisation in flight finishes and return it (None if none).

        :return: the result of the last ``submit``.
        :raises OptimizationError: if that optimisation failed or its worker died.
        """
        if self._future is None:
            return None
        concurrent.futures.wait([self._future])
        return self._collect()

    def _collect(self) -> OptimizationResult:
        assert self._future is not None
        future, self._future = self._future, None
        try:
            return future.result()
        except BrokenProcessPool as err:
            # The worker died (e.g. out of memory): start a fresh one on the next submit.
            self._executor = None
            raise OptimizationError(f'the pose-graph worker process died: {err}') from err

    def close(self) -> None:
        """Stop the worker (waits for an optimisation in flight); the optimizer is unusable."""
        self._closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._future = None

    def __enter__(self) -> BackgroundOptimizer:
        """Return self; ``close`` on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the worker."""
        self.close()
