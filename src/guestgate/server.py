"""The uvicorn server of `guestgate serve`, with a shutdown that exits 0.

On SIGTERM or SIGINT uvicorn closes its listening sockets (new connections are refused), lets
the requests in flight finish (up to `timeout_graceful_shutdown`), then runs the lifespan
shutdown, which lets the background job in progress commit. Two changes to stock uvicorn:

- `on_signal` runs as soon as the signal arrives, so the app can end what would otherwise hold
  the shutdown up (an agent long-poll answers at once; the schedule runner stops claiming).
- uvicorn re-raises the signal after a graceful shutdown, so the process would die of SIGTERM
  (status 143) even though nothing went wrong; a supervisor reads that as a crash. Here the
  process returns normally and exits 0 once everything in flight has finished.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Generator
from types import FrameType

import uvicorn

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, telling the app when a stop signal arrives and not re-raising it."""

    def __init__(self, config: uvicorn.Config, *, on_signal: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_signal = on_signal

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Start the graceful shutdown (a second Ctrl-C forces it)."""
        self._on_signal()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Route SIGINT/SIGTERM to `handle_exit` while serving; restore the old handlers after."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
