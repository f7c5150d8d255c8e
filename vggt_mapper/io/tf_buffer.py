"""
A tf2-like transform buffer without ROS, for bags: ``/tf`` and ``/tf_static`` read back.

TF is a tree: every frame has one parent. ``TransformBuffer`` keeps each edge's history
(``parent_from_child`` at stamps; a static edge holds for all time) and answers
``lookup(target, source, stamp_ns)`` = ``target_from_source`` by walking both frames up to their
common ancestor. A dynamic edge is interpolated between the two samples around the stamp
(linear translation, spherical-linear rotation, as tf2 does); there is **no extrapolation**:
outside an edge's time range, or across a gap longer than ``max_gap_ns`` between its samples,
the lookup fails with a ``LookupError`` that says why, and the caller (the bag reader) maps the
frame without an odometry pose and counts it.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation, Slerp

__all__ = ['TransformBuffer', 'TransformLookupError']

_MAX_DEPTH = 64


class TransformLookupError(LookupError):
    """A transform cannot be had at a stamp (unknown frame, outside the data, a gap)."""


@dataclass
class _Edge:
    """One parent → child edge: its samples in stamp order (static: one, for all time)."""

    parent: str
    static: bool
    stamps_ns: list[int] = field(default_factory=list)
    matrices: list[NDArray[np.float64]] = field(default_factory=list)


class TransformBuffer:
    """
    Transforms between frames over time, from TF messages (see the module docstring).

    :param max_gap_ns: longest time between two samples of a dynamic edge that is still
        interpolated (an odometry that stalled longer gives no pose in between).
    """

    def __init__(self, max_gap_ns: int = 500_000_000) -> None:
        self.max_gap_ns = max_gap_ns
        self._edges: dict[str, _Edge] = {}

    @property
    def frames(self) -> set[str]:
        """Every frame named so far (parents and children)."""
        return set(self._edges) | {edge.parent for edge in self._edges.values()}

    def add(self, parent: str, child: str, stamp_ns: int, parent_from_child: NDArray[np.float64],
            static: bool) -> None:
        """
        Add one transform sample.

        :param parent: the parent frame id (a leading ``/`` is dropped, as tf2 does).
        :param child: the child frame id.
        :param stamp_ns: its stamp (ignored for a static transform).
        :param parent_from_child: 4×4 rigid transform.
        :param static: from ``/tf_static`` (holds for all time; a newer one replaces it).
        :raises TransformLookupError: if ``child`` already has another parent (not a tree).
        """
        parent, child = parent.lstrip('/'), child.lstrip('/')
        edge = self._edges.get(child)
        if edge is not None and edge.parent != parent:
            raise TransformLookupError(f'frame {child!r} has two parents, {edge.parent!r} and '
                                       f'{parent!r}: TF must be a tree')
        if edge is None or static != edge.static:
            edge = self._edges[child] = _Edge(parent, static)
        matrix = np.asarray(parent_from_child, dtype=np.float64)
        if static:
            edge.stamps_ns, edge.matrices = [0], [matrix]
            return
        at = bisect_left(edge.stamps_ns, stamp_ns)
        if at < len(edge.stamps_ns) and edge.stamps_ns[at] == stamp_ns:
            edge.matrices[at] = matrix
            return
        edge.stamps_ns.insert(at, int(stamp_ns))
        edge.matrices.insert(at, matrix)

    def time_range(self, child: str) -> tuple[int, int] | None:
        """Return the first and last stamp of a dynamic edge ending at ``child`` (else None)."""
        edge = self._edges.get(child.lstrip('/'))
        if edge is None or edge.static:
            return None
        return edge.stamps_ns[0], edge.stamps_ns[-1]

    def _edge_at(self, child: str, edge: _Edge, stamp_ns: int) -> NDArray[np.float64]:
        if edge.static:
            return edge.matrices[0]
        stamps = edge.stamps_ns
        at = bisect_left(stamps, stamp_ns)
        if at < len(stamps) and stamps[at] == stamp_ns:
            return edge.matrices[at]
        if at == 0 or at == len(stamps):
            raise TransformLookupError(
                f'{edge.parent} -> {child} is known from {stamps[0] / 1e9:.3f} s to '
                f'{stamps[-1] / 1e9:.3f} s, not at {stamp_ns / 1e9:.3f} s (no extrapolation)')
        before, after = stamps[at - 1], stamps[at]
        if after - before > self.max_gap_ns:
            raise TransformLookupError(
                f'{edge.parent} -> {child} has a {(after - before) / 1e9:.3f} s gap around '
                f'{stamp_ns / 1e9:.3f} s (more than {self.max_gap_ns / 1e9:.3f} s)')
        weight = (stamp_ns - before) / (after - before)
        first, second = edge.matrices[at - 1], edge.matrices[at]
        slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([first[:3, :3],
                                                                 second[:3, :3]])))
        out = np.eye(4)
        out[:3, :3] = slerp(weight).as_matrix()
        out[:3, 3] = (1.0 - weight) * first[:3, 3] + weight * second[:3, 3]
        return out

    def _chain(self, frame: str, stamp_ns: int) -> dict[str, NDArray[np.float64]]:
        """``{ancestor: ancestor_from_frame}`` for ``frame`` itself and each frame above it."""
        chain = {frame: np.eye(4)}
        current, transform = frame, np.eye(4)
        for _ in range(_MAX_DEPTH):
            edge = self._edges.get(current)
            if edge is None:
                break
            transform = self._edge_at(current, edge, stamp_ns) @ transform
            current = edge.parent
            chain[current] = transform
        return chain

    def lookup(self, target: str, source: str, stamp_ns: int) -> NDArray[np.float64]:
        """
        Return ``target_from_source`` at ``stamp_ns`` (4×4).

        :param target: the frame to express in.
        :param source: the frame to express.
        :param stamp_ns: the time.
        :return: the transform.
        :raises TransformLookupError: if a frame is unknown, the two are not connected, or an
            edge on the way has no data at ``stamp_ns`` (the message says which).
        """
        target, source = target.lstrip('/'), source.lstrip('/')
        known = self.frames
        for name in (target, source):
            if name not in known:
                raise TransformLookupError(f'frame {name!r} is not in TF (frames: '
                                           f'{", ".join(sorted(known)) or "none"})')
        source_chain = self._chain(source, stamp_ns)
        for name, common_from_target in self._chain(target, stamp_ns).items():
            if name in source_chain:  # the nearest common ancestor (dicts keep walk order)
                return np.asarray(np.linalg.solve(common_from_target, source_chain[name]),
                                  dtype=np.float64)
        raise TransformLookupError(f'frames {target!r} and {source!r} are not connected in TF')
