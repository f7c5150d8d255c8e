"""
SIGINT and SIGTERM for batch commands: stop reading, keep what was done, exit 128 + signal.

``docker stop``, systemd, Slurm and ``timeout`` send SIGTERM, whose default action kills the
process on the spot. ``StopSignals`` makes SIGTERM behave like Ctrl-C: it raises
``KeyboardInterrupt`` where the program is, so the reading loop stops and what was mapped is
still written; the exit status then tells which signal it was (130 for SIGINT, 143 for
SIGTERM), as a shell reports a command killed by it.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ['StopSignals']

_HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """
    Context manager: SIGINT and SIGTERM raise ``KeyboardInterrupt`` while it is active.

    ``protect()`` turns the raising off for a section that must not be cut (a save): signals
    that arrive then are remembered, not raised. Outside the main thread (where Python cannot
    install handlers) it does nothing but remember nothing either.

    :ivar received: the first signal received, or None.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._raising = True
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        if self._raising:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    def __enter__(self) -> StopSignals:
        """Install the handlers; :return: self."""
        if threading.current_thread() is threading.main_thread():
            for signum in _HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Restore the previous handlers."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def protect(self) -> None:
        """From now on, remember signals instead of raising (for the final save)."""
        self._raising = False

    @property
    def name(self) -> str:
        """Name of the signal received (``SIGINT`` for a ``KeyboardInterrupt`` without one)."""
        return signal.Signals(self.received or signal.SIGINT).name

    @property
    def exit_status(self) -> int:
        """Return the shell convention for a stop by this signal: 128 + its number."""
        return 128 + int(self.received or signal.SIGINT)
