"""Exceptions of the cluster door (batch mapping on Ray, the serving pool)."""

from __future__ import annotations

__all__ = ['BatchError', 'BatchInputError', 'ClusterError', 'PoolError', 'RecordingFailed']


class ClusterError(Exception):
    """Base class of vggt_mapper.cluster errors."""


class BatchInputError(ClusterError):
    """The batch's inputs cannot be turned into recordings (missing path, bad manifest line)."""


class BatchError(ClusterError):
    """The batch cannot run at all (no Ray, no GPU where one is needed, OUTROOT in use)."""


class PoolError(ClusterError):
    """The serving pool cannot start (no Ray Serve, a bad replica count or address)."""


class RecordingFailed(ClusterError):  # noqa: N818 (a verdict on one recording, not a bug)
    """
    One recording could not be mapped; the others go on.

    :param message: why, in one line.
    :param retryable: False when retrying cannot help (the input or its options are at fault).
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable
