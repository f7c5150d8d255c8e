"""
mapper_node's lifecycle: what each transition builds, pauses and frees (rclpy test double).

unconfigured (parameters only) → configure (model, engine, publishers, services) → inactive →
activate (image subscription, worker, timers) → active → deactivate (paused, map kept) →
cleanup (saved, model freed) → unconfigured; shutdown from anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
import gc
from pathlib import Path
from types import SimpleNamespace
from typing import Any
import weakref

from node_helpers import FAILURE, feed, image_messages, STAMP0_NS, SUCCESS, TIMEOUT_S
import numpy as np
import pytest
import ros_fakes

from vggt_mapper.predictor.errors import PredictorError
from vggt_mapper.synthetic import SyntheticPredictor

PUBLISHED = {'~/map', '~/map_segments', '~/window_cloud', '~/path', '~/pose', '/diagnostics',
             '~/grid'}


def test_an_unconfigured_node_has_parameters_only(make_node: Callable[..., Any]) -> None:
    built: list[Any] = []
    node = make_node(configure=False)
    node._predictor_factory = built.append  # nothing may load the model before configure
    assert node.state == 'unconfigured' and 'window_size' in node.parameters
    assert node.publishers == {} and node.services == {} and node.subscriptions == {}
    assert node.timers == [] and built == []
    assert 'configure' in node.logger.messages('info')[0]
    # Unconfigured, every parameter can be set, even those fixed while configured.
    [result] = node.set_parameters([SimpleNamespace(name='window_size', value=6)])
    assert result.successful
    [bad] = node.set_parameters([SimpleNamespace(name='window_size', value=True)])
    assert not bad.successful


def test_configure_builds_the_engine_and_interfaces_activate_subscribes(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(activate=False)
    assert node.state == 'inactive'
    assert set(node.publishers) == PUBLISHED | {'/tf'}
    assert set(node.services) == {'~/save_map', '~/reset', '~/load_map', '~/set_mode_localization',
                                  '~/set_mode_mapping'}
    assert node.subscriptions == {} and node.timers == []
    assert not node.worker.stats.running
    assert node.trigger_activate() is SUCCESS
    assert set(node.subscriptions) == {'image', 'camera_info'}
    assert sorted(t.period_s for t in node.timers) == [1.0, 5.0]
    assert node.worker.stats.running
    feed(node, image_messages(frames[1]))
    assert node.publishers['~/map'].messages


def test_deactivate_pauses_without_losing_the_map(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node()
    feed(node, image_messages(frames[1][:8]))
    mapped = node.worker.trajectory()
    assert mapped
    map_pub = node.publishers['~/map']
    published = len(map_pub.messages)

    assert node.trigger_deactivate() is SUCCESS
    assert node.state == 'inactive' and node.subscriptions == {} and node.timers == []
    assert node.worker.trajectory() == mapped and node.worker.stats.running
    response = node.call_service('~/save_map')  # a paused map can be saved
    assert response.success, response.message

    assert node.trigger_activate() is SUCCESS
    # The latest map is published at once: a late subscriber (RViz) sees it without new frames.
    assert len(map_pub.messages) == published + 1 and map_pub.messages[-1].width > 0
    feed(node, image_messages(frames[1][8:], stamp0_ns=STAMP0_NS + 10**12))
    assert len(node.worker.trajectory()) > len(mapped)  # mapping went on in the same map


def test_windows_ending_while_inactive_are_kept_not_published(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node()
    messages = image_messages(frames[1])
    image_callback = node.subscriptions['image'].callback
    assert node.trigger_deactivate() is SUCCESS
    for msg in messages:  # frames that were in flight when the node was deactivated
        image_callback(msg)
    feed(node, [])
    map_pub = node.publishers['~/map']
    assert node.worker.trajectory() and map_pub.messages == [] and map_pub.ignored == 0
    assert ros_fakes.TransformBroadcaster.instances[0].sent == []
    assert node.trigger_activate() is SUCCESS
    assert map_pub.messages and ros_fakes.TransformBroadcaster.instances[0].sent


def test_cleanup_saves_frees_the_model_and_allows_new_parameters(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]],
        tmp_path: Path) -> None:
    predictors: list[weakref.ref[Any]] = []

    def factory(params: Any) -> Any:
        predictor = SyntheticPredictor(frames[0], model_width=84)
        predictors.append(weakref.ref(predictor))
        return predictor

    node = make_node(save_on_shutdown=True)
    node._predictor_factory = factory
    assert node.trigger_deactivate() is SUCCESS and node.trigger_cleanup() is SUCCESS
    assert node.trigger_configure() is SUCCESS and node.trigger_activate() is SUCCESS
    feed(node, image_messages(frames[1]))
    assert node.trigger_deactivate() is SUCCESS
    assert node.trigger_cleanup() is SUCCESS
    assert node.state == 'unconfigured' and node.params is None
    assert node.publishers == {} and node.services == {} and node.subscriptions == {}
    gc.collect()
    assert predictors[0]() is None, 'the model is still referenced after cleanup'
    assert (tmp_path / 'out' / 'latest' / 'map.ply').is_file()  # saved before it was freed
    assert any('map saved at shutdown' in m for m in node.logger.messages('info'))

    [changed] = node.set_parameters([SimpleNamespace(name='window_size', value=5)])
    assert changed.successful
    assert node.trigger_configure() is SUCCESS
    assert node._mapper.config.window_size == 5 and node.worker.trajectory() == []


def test_cleanup_with_a_window_in_flight_frees_the_engine_when_it_ends(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    from node_helpers import GatedPredictor

    predictor = GatedPredictor(SyntheticPredictor(frames[0], model_width=84), free=1)
    node = make_node(predictor=predictor, shutdown_timeout_s=0.0)
    worker = node.worker
    for msg in image_messages(frames[1]):
        node.subscriptions['image'].callback(msg)
    assert predictor.in_flight.wait(TIMEOUT_S)
    assert node.trigger_deactivate() is SUCCESS
    assert node.trigger_cleanup() is SUCCESS  # not blocked by the window in flight
    assert any('freed when it ends' in m for m in node.logger.messages('warning'))
    predictor.gate.set()
    assert worker.stop(timeout=TIMEOUT_S)
    assert node.state == 'unconfigured'


def test_a_model_that_cannot_load_fails_configure_and_the_node_stays_usable(
        make_node: Callable[..., Any], frames: tuple[Any, list[np.ndarray]]) -> None:
    node = make_node(configure=False)
    good_factory = node._predictor_factory

    def no_weights(params: Any) -> Any:
        raise PredictorError('cannot download facebook/VGGT-1B: no network')

    node._predictor_factory = no_weights
    assert node.trigger_configure() is FAILURE
    assert node.state == 'unconfigured' and node.publishers == {}
    assert node.logger.messages('error') == [
        'configure failed: cannot download facebook/VGGT-1B: no network']
    node._predictor_factory = good_factory
    assert node.trigger_configure() is SUCCESS


def test_a_bug_in_a_transition_is_logged_and_everything_is_freed(
        make_node: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    node = make_node(activate=False)

    def broken(params: Any) -> None:
        raise KeyError('bug')

    monkeypatch.setattr(node, '_create_subscriptions', broken)
    result = node.trigger_activate()
    assert result is ros_fakes.TransitionCallbackReturn.ERROR
    assert node.state == 'unconfigured' and node.publishers == {} and node.params is None
    [error] = node.logger.messages('error')
    assert 'on_activate failed' in error and "KeyError: 'bug'" in error  # with the traceback


def test_shutdown_saves_and_finalizes(make_node: Callable[..., Any],
                                      frames: tuple[Any, list[np.ndarray]],
                                      tmp_path: Path) -> None:
    node = make_node(save_on_shutdown=True)
    feed(node, image_messages(frames[1]))
    assert node.trigger_shutdown() is SUCCESS
    assert node.state == 'finalized' and node.finalized.done()
    assert (tmp_path / 'out' / 'latest' / 'trajectory.tum').is_file()
    assert node.publishers == {} and node.subscriptions == {}
