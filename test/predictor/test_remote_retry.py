"""
``RemotePredictor`` against a busy or restarting replica pool: bounded retries, then a clear error.

The pool is a scripted stand-in (the standard library's HTTP server speaking the pool's
protocol) and the waits are recorded instead of slept, so the tests take no time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import threading

import numpy as np
import pytest

from vggt_mapper.predictor.base import ImageMapping, WindowPrediction
from vggt_mapper.predictor.remote import (
    encode_window_prediction,
    POOL_API,
    RemotePredictor,
    RemotePredictorError,
    RetryPolicy,
)

pytest.importorskip('httpx')


def _answer(num_frames: int) -> bytes:
    mapping = ImageMapping((8, 8), (14, 14), np.eye(3))
    return encode_window_prediction(WindowPrediction(
        np.tile(np.eye(4)[:3], (num_frames, 1, 1)), np.tile(np.eye(3), (num_frames, 1, 1)),
        np.ones((num_frames, 14, 14), np.float32), np.ones((num_frames, 14, 14), np.float32),
        np.zeros((num_frames, 14, 14, 3), np.uint8), (mapping,) * num_frames))


class ScriptedPool(ThreadingHTTPServer):
    """Answers ``GET /predict_window`` like a pool, and each POST with the next scripted reply."""

    def __init__(self) -> None:
        self.replies: deque[tuple[int, bytes, dict[str, str]]] = deque()
        self.posts = 0
        super().__init__(('127.0.0.1', 0), _Handler)

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.server_address[1]}'

    def script(self, *statuses: int, retry_after: str | None = None) -> None:
        for status in statuses:
            body = _answer(1) if status == 200 else f'scripted {status}'.encode()
            headers = {'Retry-After': retry_after} if retry_after and status == 503 else {}
            self.replies.append((status, body, headers))


class _Handler(BaseHTTPRequestHandler):
    server: ScriptedPool

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        info = json.dumps({'api': POOL_API}).encode()
        self._send(200, info, {'Content-Type': 'application/json'})

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers['Content-Length']))
        self.server.posts += 1
        self._send(*self.server.replies.popleft())


@pytest.fixture
def pool() -> Iterator[ScriptedPool]:
    server = ScriptedPool()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


FRAME = [np.zeros((8, 8, 3), np.uint8)]


def _robot(url: str, waits: list[float], attempts: int = 5) -> RemotePredictor:
    policy = RetryPolicy(attempts=attempts, first_delay_s=0.5, max_delay_s=4.0, max_wait_s=30)
    return RemotePredictor(url, timeout_s=30, retry=policy, sleep=waits.append)


def test_a_busy_pool_is_asked_again_after_a_growing_wait(pool: ScriptedPool) -> None:
    waits: list[float] = []
    robot = _robot(pool.url, waits)
    pool.script(503, 503, 503, 200)

    prediction = robot.predict(FRAME)

    assert prediction.num_frames == 1 and pool.posts == 4  # one answer, after three refusals
    assert robot.retries == {'busy': 3}
    # 0.5, 1, 2 s, each scaled by a jitter in [0.5, 1]
    assert [0.25 <= waits[0] <= 0.5, 0.5 <= waits[1] <= 1.0, 1.0 <= waits[2] <= 2.0] == [True] * 3
    robot.close()


def test_the_pools_retry_after_is_followed(pool: ScriptedPool) -> None:
    waits: list[float] = []
    robot = _robot(pool.url, waits)
    pool.script(503, retry_after='1.5')
    pool.script(200)

    robot.predict(FRAME)

    assert waits == [1.5]
    robot.close()


def test_a_window_lost_with_its_replica_is_asked_again(pool: ScriptedPool) -> None:
    waits: list[float] = []
    robot = _robot(pool.url, waits)
    pool.script(500, 502, 200)

    assert robot.predict(FRAME).num_frames == 1
    assert robot.retries == {'unavailable': 2}
    robot.close()


def test_retries_are_bounded_and_the_error_says_how_long_it_tried(pool: ScriptedPool) -> None:
    waits: list[float] = []
    robot = _robot(pool.url, waits, attempts=3)
    pool.script(503, 503, 503, 200)

    with pytest.raises(RemotePredictorError, match=r'still busy after 3 tries over [\d.]+ s'):
        robot.predict(FRAME)

    assert pool.posts == 3 and len(waits) == 2
    robot.close()


def test_a_refused_window_is_not_asked_again(pool: ScriptedPool) -> None:
    waits: list[float] = []
    robot = _robot(pool.url, waits)
    pool.script(422)

    with pytest.raises(RemotePredictorError, match=r'refused a 1-frame window \(HTTP 422\): '
                                                   'scripted 422'):
        robot.predict(FRAME)

    assert pool.posts == 1 and waits == [] and not robot.retries
    robot.close()


def test_a_pool_that_goes_away_is_waited_for_then_reported(pool: ScriptedPool) -> None:
    waits: list[float] = []
    robot = _robot(pool.url, waits, attempts=4)
    pool.script(200)
    robot.predict(FRAME)
    pool.shutdown()
    pool.server_close()  # nothing listens any more: connections are refused

    with pytest.raises(RemotePredictorError, match='still unavailable after 4 tries'):
        robot.predict(FRAME)

    assert robot.retries == {'unavailable': 3} and len(waits) == 3
    robot.close()


def test_the_policy_grows_caps_and_checks_its_values() -> None:
    policy = RetryPolicy(first_delay_s=0.5, max_delay_s=3.0)

    assert [policy.delay_s(n, jitter=1.0) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.delay_s(0, jitter=0.0) == 0.25
    assert policy.delay_s(4, jitter=0.5, hint_s=60.0) == 3.0  # a hint is capped too
    for bad in ({'attempts': 0}, {'first_delay_s': 5.0, 'max_delay_s': 1.0},
                {'max_wait_s': -1.0}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)  # type: ignore[arg-type]
