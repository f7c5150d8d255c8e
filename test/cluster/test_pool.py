"""
``serve --replicas``: robots (``RemotePredictor`` clients) served by a pool of tiny models.

One Ray instance (2 CPUs) and one pool of two replicas for the module; ``queue_size`` is
small, so twenty robots at once meet the "busy" answer and retry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
import os
from pathlib import Path
import socket
import threading

import numpy as np
from numpy.typing import NDArray
import pytest

from vggt_mapper.predictor.factory import PredictorSpec
from vggt_mapper.predictor.preprocess import preprocess_frames
from vggt_mapper.predictor.remote import POOL_API, RemotePredictor, RetryPolicy

ray = pytest.importorskip('ray', reason="serve --replicas needs Ray Serve (the 'cluster' extra)")
pytest.importorskip('ray.serve')

HERE = Path(__file__).resolve().parent
ROBOTS = 20
WINDOWS = 4
FRAMES = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope='module')
def pool_url() -> Iterator[str]:
    from vggt_mapper.cluster.pool import PoolSettings, start_pool, stop_pool

    paths = [str(HERE), str(HERE.parent / 'cli'), str(HERE.parents[1]),
             *filter(None, [os.environ.get('PYTHONPATH')])]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={'env_vars': {'PYTHONPATH': os.pathsep.join(paths)}})
    try:
        url = start_pool(PredictorSpec(predictor='cluster_fakes:tiny_predictor'),
                         PoolSettings(replicas=2, port=_free_port(), queue_size=4))
        yield url.removesuffix('/predict_window')
        stop_pool()
    finally:
        ray.shutdown()


def _window(robot: int, window: int) -> list[NDArray[np.uint8]]:
    """Frames nobody else sends: the answer shows which window it belongs to."""
    rng = np.random.default_rng([robot, window])
    return [rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for _ in range(FRAMES)]


def _replica_names() -> list[str]:
    return [actor['name'] for actor in ray.util.list_named_actors(all_namespaces=True)
            if actor['name'].startswith('SERVE_REPLICA')]


def test_the_pool_says_what_it_is_and_refuses_what_is_not_a_window(pool_url: str) -> None:
    import httpx

    info = httpx.get(pool_url + '/predict_window', timeout=60).json()
    not_an_image = httpx.post(pool_url + '/predict_window', timeout=60,
                              files=[('images', ('a.png', b'not a png', 'image/png'))])
    empty = httpx.post(pool_url + '/predict_window', timeout=60, data={'other': 'x'})

    assert info['api'] == POOL_API and info['format'] == 'vggt_mapper.window_prediction/1'
    assert not_an_image.status_code == 400 and 'image 0' in not_an_image.json()['error']
    assert empty.status_code == 400 and 'no frames' in empty.json()['error']
    assert len(_replica_names()) == 2


def test_twenty_robots_get_every_window_once_in_order_though_a_replica_is_killed(
        pool_url: str) -> None:
    answered = threading.Condition()
    count = [0]
    robots = [RemotePredictor(pool_url, timeout_s=120,
                              retry=RetryPolicy(attempts=40, first_delay_s=0.2,
                                                max_delay_s=2.0, max_wait_s=240))
              for _ in range(ROBOTS)]

    def drive(robot: int) -> list[NDArray[np.uint8]]:
        images = []
        for window in range(WINDOWS):
            images.append(robots[robot].predict(_window(robot, window)).images_rgb)
            with answered:
                count[0] += 1
                answered.notify_all()
        return images

    def kill_a_replica_mid_run() -> tuple[str, int]:
        with answered:  # a quarter of the windows are answered
            answered.wait_for(lambda: count[0] >= ROBOTS)
            name = _replica_names()[0]
            ray.kill(ray.get_actor(name, namespace='serve'), no_restart=False)
            return name, count[0]

    try:
        with ThreadPoolExecutor(max_workers=ROBOTS + 1) as threads:
            killer = threads.submit(kill_a_replica_mid_run)
            answers = list(threads.map(drive, range(ROBOTS)))
            killed, answered_before_kill = killer.result()
    finally:
        for robot in robots:
            robot.close()

    assert answered_before_kill < ROBOTS * WINDOWS and killed not in _replica_names()
    for robot, images in enumerate(answers):
        expected = [preprocess_frames(_window(robot, window), target_size=112).images_rgb
                    for window in range(WINDOWS)]
        assert len(images) == WINDOWS
        for window, (got, want) in enumerate(zip(images, expected, strict=True)):
            np.testing.assert_array_equal(got, want, err_msg=f'robot {robot} window {window}')
    retries = sum((robot.retries for robot in robots), start=Counter[str]())
    assert retries['busy'] > 0  # twenty robots, two replicas, four places in the queue


def test_serve_replicas_that_do_not_fit_the_cluster_are_refused_in_one_line(
        pool_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from vggt_mapper.cli import main

    status = main(['serve', '--replicas', '3', '--predictor', 'cluster_fakes:tiny_predictor',
                   '--port', str(_free_port())])

    assert status == 1
    assert ('vggt-mapper serve: error: 3 replicas need 3 CPUs and 0 GPUs; the Ray cluster has '
            '2 and 0') in capsys.readouterr().err
    from ray import serve

    assert 'vggt_mapper_pool' in serve.status().applications  # the running pool is left alone
