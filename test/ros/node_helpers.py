"""Helpers of the mapper_node tests: frames as messages, feeding, waiting, diagnostics."""

from __future__ import annotations

from collections.abc import Callable
import threading
import time
from typing import Any

import numpy as np
import ros_fakes

from vggt_mapper.io import ros_messages as conv

NUM_FRAMES = 16
STAMP0_NS = 1_700_000_000_000_000_000
STEP_NS = 100_000_000
#: Generous: the tests must pass on a loaded machine; nothing is timed.
TIMEOUT_S = 60.0
SUCCESS = ros_fakes.TransitionCallbackReturn.SUCCESS
FAILURE = ros_fakes.TransitionCallbackReturn.FAILURE
OK, WARN, ERROR = b'\x00', b'\x01', b'\x02'


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, 'timed out waiting for the mapping worker'
        time.sleep(0.01)


def image_messages(images: list[np.ndarray], encoding: str = 'rgb8',
                   frame_id: str = 'camera_optical', stamp0_ns: int = STAMP0_NS) -> list[Any]:
    types = conv.rclpy_message_types()  # the fake message modules
    return [conv.rgb_to_image(image, stamp0_ns + index * STEP_NS, frame_id, types, encoding)
            for index, image in enumerate(images)]


def settled(node: Any) -> bool:
    """Every enqueued frame is mapped or dropped."""
    stats = node.worker.stats
    return bool(stats.frames_processed + stats.frames_dropped == stats.frames_received)


def feed(node: Any, messages: list[Any]) -> None:
    for msg in messages:
        node.subscriptions['image'].callback(msg)
    wait_until(lambda: settled(node))


def timer(node: Any, period_s: float) -> Callable[[], None]:
    [found] = [t for t in node.timers if t.period_s == period_s]
    return found.callback


def diagnostic(node: Any) -> Any:
    timer(node, 1.0)()
    return node.publishers['/diagnostics'].messages[-1].status[0]


def diagnostic_values(node: Any) -> dict[str, str]:
    return {kv.key: kv.value for kv in diagnostic(node).values}


class GatedPredictor:
    """Map the first ``free`` windows at once, then wait for ``gate`` (a long VGGT window)."""

    def __init__(self, inner: Any, free: int) -> None:
        self.inner, self.free, self.calls = inner, free, 0
        self.gate, self.in_flight = threading.Event(), threading.Event()

    def predict(self, frames_rgb: Any) -> Any:
        self.calls += 1
        if self.calls > self.free:
            self.in_flight.set()
            self.gate.wait(TIMEOUT_S)
        return self.inner.predict(frames_rgb)
