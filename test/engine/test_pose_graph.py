"""
Tests of the keyframe Sim(3) pose graph, written as examples of its use.

The scenes are synthetic: cameras on a 5 m circle, each keyframe with its own depth unit (a
random scale per node, as VGGT gives each window its own), odometry measured with noise and a
bias in rotation, translation and scale, so chaining it drifts like windows chained by Sim(3).
"""

from __future__ import annotations

import math
import pickle
from typing import Literal

import gtsam
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vggt_mapper.engine.errors import ConfigError
from vggt_mapper.engine.pose_graph import (
    BackgroundOptimizer,
    EdgeNoise,
    LoopVerdict,
    OptimizationResult,
    optimize,
    PoseGraph,
    PoseGraphConfig,
    PoseGraphError,
    sim3_from_gtsam,
    sim3_to_gtsam,
)
from vggt_mapper.geometry.sim3 import Sim3

RADIUS_M = 5.0
# Odometry bias per edge: 0.1 deg of yaw, 1 % of the step too long, 0.3 % of scale.
BIAS_YAW_RAD = math.radians(0.1)
BIAS_STEP = 0.01
BIAS_LOG_SCALE = 0.003


def _rotation(rotvec: list[float] | np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(rotvec).as_matrix()


def _angle_deg(rotation: np.ndarray) -> float:
    return float(np.degrees(Rotation.from_matrix(rotation).magnitude()))


def circle_truth(num_nodes: int, seed: int = 0) -> list[Sim3]:
    """Return the true ``world_from_node`` (metres) of cameras looking at a circle's centre."""
    rng = np.random.default_rng(seed)
    truth = []
    for i in range(num_nodes):
        theta = 2 * math.pi * i / num_nodes
        centre = [RADIUS_M * math.cos(theta), 0.3 * math.sin(3 * theta),
                  RADIUS_M * math.sin(theta)]
        depth_unit_m = float(np.exp(rng.normal(0.0, 0.3)))  # each keyframe's own unit
        truth.append(Sim3(depth_unit_m, _rotation([0, -theta - math.pi / 2, 0]), centre))
    return truth


def metric_noise(world_from_a: Sim3, trans_m: float = 0.01, rot_deg: float = 0.3,
                 log_scale: float = 0.01) -> EdgeNoise:
    """Edge sigmas with the translation sigma given in metres, turned into ``a``'s units."""
    return EdgeNoise(math.radians(rot_deg), trans_m / world_from_a.scale, log_scale)


def relative(truth: list[Sim3], a: int, b: int) -> Sim3:
    return truth[a].inverse().compose(truth[b])


def perturbed(a_from_b: Sim3, rotvec: np.ndarray, trans_a: np.ndarray,
              log_scale: float) -> Sim3:
    """``a_from_b`` followed by an error in ``a``'s frame (translation in ``a``'s units)."""
    return Sim3(math.exp(log_scale), _rotation(rotvec), trans_a).compose(a_from_b)


def measure(truth: list[Sim3], a: int, b: int, noise: EdgeNoise, rng: np.random.Generator,
            biased: bool = False) -> Sim3:
    """Return a noisy ``a_from_b`` whose errors follow ``noise`` (plus the odometry bias)."""
    exact = relative(truth, a, b)
    rotvec = rng.normal(0.0, noise.sigma_rot_rad, 3)
    trans_a = rng.normal(0.0, noise.sigma_trans, 3)
    log_scale = rng.normal(0.0, noise.sigma_log_scale)
    if biased:
        rotvec[1] += BIAS_YAW_RAD
        trans_a += BIAS_STEP * exact.translation
        log_scale += BIAS_LOG_SCALE
    return perturbed(exact, rotvec, trans_a, log_scale)


def drifting_chain(truth: list[Sim3], config: PoseGraphConfig | None = None,
                   seed: int = 1, keys: range | None = None, segment: int = 0,
                   world_from_first: Sim3 | None = None) -> PoseGraph:
    """Nodes chained by biased odometry, as windows chained by Sim(3) would put them."""
    graph = PoseGraph(config)
    extend_chain(graph, truth, keys or range(len(truth)), segment, seed, world_from_first)
    return graph


def extend_chain(graph: PoseGraph, truth: list[Sim3], keys: range, segment: int, seed: int,
                 world_from_first: Sim3 | None = None) -> None:
    rng = np.random.default_rng(seed)
    first = keys[0]
    graph.add_node(first, world_from_first or truth[first], segment)
    for a, b in zip(keys[:-1], keys[1:], strict=True):
        noise = metric_noise(truth[a])
        a_from_b = measure(truth, a, b, noise, rng, biased=True)
        graph.add_node(b, graph.value(a).compose(a_from_b), segment)
        graph.add_odometry(a, b, a_from_b, noise)


def add_true_loop(graph: PoseGraph, truth: list[Sim3], a: int, b: int, seed: int = 2) -> int:
    noise = metric_noise(truth[a])
    return graph.add_loop(a, b, measure(truth, a, b, noise, np.random.default_rng(seed)), noise)


def position_error_m(graph: PoseGraph, truth: list[Sim3], key: int) -> float:
    return float(np.linalg.norm(graph.value(key).translation - truth[key].translation))


def scale_error(graph: PoseGraph, truth: list[Sim3], key: int) -> float:
    """|log| of the estimated over the true depth unit: 0 when scale is consistent."""
    return abs(math.log(graph.value(key).scale / truth[key].scale))


def optimise_in_place(graph: PoseGraph) -> OptimizationResult:
    result = optimize(graph.snapshot(), graph.config)
    graph.apply(result)
    return result


# ---- what the graph is for -----------------------------------------------------------------


def test_one_loop_removes_rotation_translation_and_scale_drift() -> None:
    truth = circle_truth(100)
    graph = drifting_chain(truth)
    end_error_before = position_error_m(graph, truth, 99)
    end_scale_before = scale_error(graph, truth, 99)
    chain_scale_before = max(scale_error(graph, truth, k) for k in range(100))
    assert end_error_before > 1.0  # the drift this test removes: over a metre

    loop_id = add_true_loop(graph, truth, 99, 0)
    result = optimise_in_place(graph)

    assert position_error_m(graph, truth, 99) < end_error_before / 10
    assert scale_error(graph, truth, 99) < end_scale_before / 10
    # Scale stays consistent along the whole loop, not only where it closes.
    assert max(scale_error(graph, truth, k) for k in range(100)) < chain_scale_before / 2
    assert result.loop(loop_id).verdict is LoopVerdict.INLIER
    assert result.final_error < result.initial_error


def test_odometry_only_graph_keeps_its_initial_values() -> None:
    truth = circle_truth(30)
    graph = drifting_chain(truth)
    initial = graph.values()

    result = optimise_in_place(graph)

    assert result.final_error == pytest.approx(0.0, abs=1e-9)
    assert result.loops == ()
    for key, value in graph.values().items():
        np.testing.assert_allclose(value.matrix(), initial[key].matrix(), atol=1e-9)


def _graph_with_loops(config: PoseGraphConfig, false_loop: bool) -> tuple[PoseGraph, int | None]:
    truth = circle_truth(100)
    graph = drifting_chain(truth, config)
    for seed, (a, b) in enumerate([(99, 0), (97, 2), (95, 4)]):
        add_true_loop(graph, truth, a, b, seed=seed)
    if not false_loop:
        return graph, None
    # A wrong place recognition: 2 m and 30 degrees away from the true relative pose.
    direction = np.array([1.0, 0.2, -0.5]) / np.linalg.norm([1.0, 0.2, -0.5])
    wrong = perturbed(relative(truth, 70, 20), np.array([0.0, math.radians(30), 0.0]),
                      2.0 / truth[70].scale * direction, 0.0)
    return graph, graph.add_loop(70, 20, wrong, metric_noise(truth[70]))


def _largest_shift_m(graph: PoseGraph, reference: PoseGraph) -> float:
    return max(float(np.linalg.norm(graph.value(k).translation - reference.value(k).translation))
               for k in range(len(reference)))


def test_robust_kernel_ignores_a_false_loop() -> None:
    correct_only, _ = _graph_with_loops(PoseGraphConfig(), false_loop=False)
    optimise_in_place(correct_only)
    graph, false_id = _graph_with_loops(PoseGraphConfig(loop_kernel='cauchy'), false_loop=True)

    result = optimise_in_place(graph)

    assert _largest_shift_m(graph, correct_only) < 0.1
    assert false_id is not None
    assert result.loop(false_id).verdict is LoopVerdict.IGNORED
    assert result.loop(false_id).weight < 0.05
    assert all(report.verdict is not LoopVerdict.IGNORED
               for report in result.loops if report.loop_id != false_id)


def test_without_a_robust_kernel_a_false_loop_bends_the_map() -> None:
    correct_only, _ = _graph_with_loops(PoseGraphConfig(), false_loop=False)
    optimise_in_place(correct_only)
    graph, false_id = _graph_with_loops(PoseGraphConfig(loop_kernel='none'), false_loop=True)

    result = optimise_in_place(graph)

    assert _largest_shift_m(graph, correct_only) > 1.0
    assert false_id is not None and result.loop(false_id).weight == 1.0


# ---- segments ------------------------------------------------------------------------------


def test_two_segments_merge_through_a_loop_into_one_frame() -> None:
    truth = circle_truth(60)
    # Tracking was lost between keyframes 29 and 30: the second segment starts in its own
    # frame (the identity) and its own scale.
    graph = drifting_chain(truth, keys=range(0, 30), segment=0)
    extend_chain(graph, truth, range(30, 60), segment=1, seed=3, world_from_first=Sim3.identity())
    assert graph.segments() == {0: list(range(30)), 1: list(range(30, 60))}
    loop_noise = metric_noise(truth[0])
    zero_from_59 = measure(truth, 0, 59, loop_noise, np.random.default_rng(4))
    with pytest.raises(PoseGraphError, match='merge_segments'):
        graph.add_loop(0, 59, zero_from_59, loop_noise)

    # The verified loop tells where segment 1's frame sits in segment 0's.
    world0_from_world1 = graph.value(0).compose(zero_from_59).compose(graph.value(59).inverse())
    graph.merge_segments(0, 1, world0_from_world1)
    # Segment 1 now sits where the loop says, in segment 0's frame.
    np.testing.assert_allclose(graph.value(59).matrix(),
                               graph.value(0).compose(zero_from_59).matrix(), atol=1e-9)
    graph.add_loop(0, 59, zero_from_59, loop_noise)
    seam_id = add_true_loop(graph, truth, 29, 30)
    # The same nodes and edges in a graph that was one segment all along.
    one_segment = PoseGraph()
    for key, value in graph.values().items():
        one_segment.add_node(key, value, segment=0)
    for edge in graph.edges():
        add_edge = one_segment.add_loop if edge.loop_id is not None else one_segment.add_odometry
        add_edge(edge.a, edge.b, edge.a_from_b, edge.noise)
    seam_error_before = position_error_m(graph, truth, 30)

    result = optimise_in_place(graph)
    optimise_in_place(one_segment)

    assert graph.segments() == {0: list(range(60))}
    assert graph.segment_of(45) == 0
    assert graph.snapshot().anchors.tolist() == [0]  # segment 1's gauge prior is gone
    # So segment 1 moves as freely as if it had never been apart; the seam loop closes.
    assert _largest_shift_m(graph, one_segment) < 1e-3
    assert result.loop(seam_id).final_error < 3.0 < result.loop(seam_id).initial_error
    assert position_error_m(graph, truth, 30) < seam_error_before / 2
    with pytest.raises(PoseGraphError, match='merged into segment 0'):
        graph.add_node(60, Sim3.identity(), segment=1)


def test_edges_never_cross_segments() -> None:
    graph = PoseGraph()
    graph.add_node(0, Sim3.identity(), segment=0)
    graph.add_node(1, Sim3.identity(), segment=1)
    noise = EdgeNoise(0.01, 0.01, 0.01)
    with pytest.raises(PoseGraphError, match='crosses segments 0 and 1'):
        graph.add_odometry(0, 1, Sim3.identity(), noise)
    with pytest.raises(PoseGraphError, match='crosses segments 0 and 1'):
        graph.add_loop(0, 1, Sim3.identity(), noise)
    assert graph.edge_counts().odometry == 0 and graph.edge_counts().loop == 0


# ---- optimisation off the hot path ---------------------------------------------------------


def test_a_late_result_carries_later_nodes_along() -> None:
    truth = circle_truth(100)
    graph = drifting_chain(truth, keys=range(0, 100))
    add_true_loop(graph, truth, 99, 0)
    snapshot = graph.snapshot()
    # Keyframes keep arriving while the snapshot is optimised: 100-104 start a second lap.
    two_laps = truth + truth[:5]
    rng = np.random.default_rng(5)
    for key in range(100, 105):
        noise = metric_noise(two_laps[key - 1])
        a_from_b = measure(two_laps, key - 1, key, noise, rng)
        graph.add_node(key, graph.value(key - 1).compose(a_from_b), segment=0)
        graph.add_odometry(key - 1, key, a_from_b, noise)
    before = graph.values()

    result = optimize(snapshot, graph.config)
    graph.apply(result)

    assert set(result.values()) == set(range(100))
    for key, value in result.values().items():
        np.testing.assert_allclose(graph.value(key).matrix(), value.matrix())
    # Later nodes keep their pose relative to node 99, the nearest earlier optimised node.
    for key in range(100, 105):
        expected = before[99].inverse().compose(before[key])
        actual = graph.value(99).inverse().compose(graph.value(key))
        np.testing.assert_allclose(actual.matrix(), expected.matrix(), atol=1e-9)
    assert np.linalg.norm(graph.value(104).translation - before[104].translation) > 0.5


def test_a_result_from_before_a_merge_lands_in_the_merged_frame() -> None:
    truth = circle_truth(40)
    graph = drifting_chain(truth, keys=range(0, 20), segment=0)
    extend_chain(graph, truth, range(20, 40), segment=1, seed=3, world_from_first=Sim3.identity())
    result = optimize(graph.snapshot(), graph.config)
    world0_from_world1 = truth[20].compose(graph.value(20).inverse())

    graph.merge_segments(0, 1, world0_from_world1)
    graph.apply(result)

    for key in range(20, 40):
        expected = world0_from_world1.compose(result.values()[key])
        np.testing.assert_allclose(graph.value(key).matrix(), expected.matrix(), atol=1e-9)


def test_results_apply_in_order_and_only_to_their_graph() -> None:
    truth = circle_truth(10)
    graph = drifting_chain(truth)
    older = optimize(graph.snapshot(), graph.config)
    add_true_loop(graph, truth, 9, 0)
    newer = optimize(graph.snapshot(), graph.config)
    graph.apply(newer)
    with pytest.raises(PoseGraphError, match='stale result'):
        graph.apply(older)
    with pytest.raises(PoseGraphError, match='another PoseGraph'):
        drifting_chain(truth).apply(newer)


def test_nodes_without_edges_are_left_out_and_carried_along() -> None:
    truth = circle_truth(10)
    graph = drifting_chain(truth, keys=range(0, 9))
    graph.add_node(9, graph.value(8).compose(relative(truth, 8, 9)), segment=0)  # no edge yet
    add_true_loop(graph, truth, 8, 0)
    before = graph.values()

    result = optimise_in_place(graph)

    assert result.unconstrained == (9,)
    expected = before[8].inverse().compose(before[9])
    actual = graph.value(8).inverse().compose(graph.value(9))
    np.testing.assert_allclose(actual.matrix(), expected.matrix(), atol=1e-9)


@pytest.mark.parametrize('isolation', ['thread', 'process'])
def test_background_optimizer_runs_while_the_owner_keeps_mapping(
        isolation: Literal['process', 'thread']) -> None:
    truth = circle_truth(60)
    graph = drifting_chain(truth, keys=range(0, 50))
    add_true_loop(graph, truth, 49, 0)
    with BackgroundOptimizer(graph.config, isolation=isolation) as optimizer:
        assert optimizer.poll() is None
        assert optimizer.submit(graph.snapshot())
        assert not optimizer.submit(graph.snapshot())  # one at a time
        extend_chain(graph, truth, range(50, 60), segment=0, seed=6,
                     world_from_first=graph.value(49).compose(relative(truth, 49, 50)))
        result = optimizer.wait()
        assert result is not None and not optimizer.busy
        graph.apply(result)
    assert len(result.keys) == 50
    assert len(graph) == 60
    assert result.loop(0).verdict is LoopVerdict.INLIER


def test_snapshots_are_picklable_for_a_worker_process() -> None:
    truth = circle_truth(10)
    graph = drifting_chain(truth)
    add_true_loop(graph, truth, 9, 0)
    problem = pickle.loads(pickle.dumps(graph.snapshot()))

    result = optimize(problem, graph.config)

    graph.apply(pickle.loads(pickle.dumps(result)))
    assert result.loop(0).final_error < result.loop(0).initial_error


# ---- conventions ---------------------------------------------------------------------------


def _some_sim3(seed: int) -> Sim3:
    rng = np.random.default_rng(seed)
    return Sim3(float(np.exp(rng.normal())), _rotation(rng.normal(size=3)), rng.normal(size=3))


def test_convention_sim3_gtsam_round_trip() -> None:
    first, second = _some_sim3(0), _some_sim3(1)
    points = np.random.default_rng(2).normal(size=(5, 3))
    converted = sim3_to_gtsam(first)

    for point in points:
        np.testing.assert_allclose(converted.transformFrom(point), first.apply(point))
    np.testing.assert_allclose(sim3_from_gtsam(converted).matrix(), first.matrix(), atol=1e-12)
    composed = sim3_from_gtsam(converted.compose(sim3_to_gtsam(second)))
    np.testing.assert_allclose(composed.matrix(), first.compose(second).matrix(), atol=1e-12)


def test_convention_edges_measure_a_from_b() -> None:
    world_from_a, world_from_b = _some_sim3(0), _some_sim3(1)
    graph = PoseGraph()
    graph.add_node(0, world_from_a, segment=0)
    graph.add_node(1, Sim3.identity(), segment=0)  # a poor initial guess
    graph.add_odometry(0, 1, world_from_a.inverse().compose(world_from_b),
                       EdgeNoise(0.01, 0.01, 0.01))

    optimise_in_place(graph)

    np.testing.assert_allclose(graph.value(1).matrix(), world_from_b.matrix(), atol=1e-6)


def test_convention_tangent_order_is_rotation_translation_log_scale() -> None:
    twice = sim3_to_gtsam(Sim3(2.0, np.eye(3), np.zeros(3)))
    np.testing.assert_allclose(gtsam.Similarity3.Logmap(twice), [0] * 6 + [math.log(2.0)])
    # Three edges on one node pair, each tight in one block of the tangent and loose in the
    # others, each measuring something else: the result takes each block from its own edge.
    base = _some_sim3(3)
    by_rotation = perturbed(base, np.array([0.3, -0.2, 0.1]), np.zeros(3), 0.0)
    by_translation = perturbed(base, np.array([-0.2, 0.1, 0.2]), np.array([0.5, -1.0, 0.3]), 0.2)
    by_scale = perturbed(base, np.array([0.1, 0.3, -0.2]), np.array([-0.4, 0.2, 0.6]), -0.4)
    graph = PoseGraph()
    graph.add_node(0, Sim3.identity(), segment=0)
    graph.add_node(1, Sim3.identity(), segment=0)
    graph.add_odometry(0, 1, by_rotation, EdgeNoise(1e-4, 1e3, 1e3))
    graph.add_odometry(0, 1, by_translation, EdgeNoise(1e3, 1e-4, 1e3))
    graph.add_odometry(0, 1, by_scale, EdgeNoise(1e3, 1e3, 1e-4))

    optimise_in_place(graph)

    value = graph.value(1)
    np.testing.assert_allclose(value.rotation, by_rotation.rotation, atol=1e-4)
    np.testing.assert_allclose(value.translation, by_translation.translation, atol=1e-4)
    assert value.scale == pytest.approx(by_scale.scale, rel=1e-4)


def test_convention_sigma_trans_is_in_the_first_nodes_units() -> None:
    # b's unit is ten of a's: a 0.5 offset in a's units with sigma_trans 0.25 is 2 sigmas.
    a_from_b = Sim3(10.0, np.eye(3), np.array([1.0, 2.0, 3.0]))
    graph = PoseGraph()
    graph.add_node(0, Sim3.identity(), segment=0)
    graph.add_node(1, Sim3(10.0, np.eye(3), [1.5, 2.0, 3.0]), segment=0)
    loop_id = graph.add_loop(0, 1, a_from_b, EdgeNoise(1e-3, 0.25, 1e-3))

    result = optimize(graph.snapshot(), graph.config)

    assert result.loop(loop_id).initial_error == pytest.approx(2.0)


# ---- bad input -----------------------------------------------------------------------------


def test_bad_input_is_refused_with_a_clear_error() -> None:
    graph = PoseGraph()
    graph.add_node(0, Sim3.identity(), segment=0)
    noise = EdgeNoise(0.01, 0.01, 0.01)
    with pytest.raises(PoseGraphError, match='already exists'):
        graph.add_node(0, Sim3.identity(), segment=0)
    with pytest.raises(PoseGraphError, match='non-finite'):
        graph.add_node(1, Sim3(1.0, np.eye(3), [np.nan, 0, 0]), segment=0)
    with pytest.raises(ValueError, match='not a rotation'):  # Sim3 itself refuses it
        graph.add_node(1, Sim3(1.0, 2 * np.eye(3), np.zeros(3)), segment=0)
    with pytest.raises(PoseGraphError, match='node 7 does not exist'):
        graph.add_odometry(0, 7, Sim3.identity(), noise)
    with pytest.raises(PoseGraphError, match='sigma_trans'):
        EdgeNoise(0.01, 0.0, 0.01)
    with pytest.raises(PoseGraphError, match='segment 3 does not exist'):
        graph.merge_segments(0, 3, Sim3.identity())
    with pytest.raises(ConfigError, match='loop_kernel'):
        PoseGraphConfig(loop_kernel='tukey')  # type: ignore[arg-type]
    assert len(graph) == 1
