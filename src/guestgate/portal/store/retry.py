"""The one busy-retry schedule: a growing pause between attempts, until a deadline.

Both ways the SQLite store waits for another process's write lock use it: `BEGIN IMMEDIATE`
retried in the calling thread (`time.sleep`), and a whole store call retried on the event loop
(`asyncio.sleep`), so neither blocks the loop nor waits forever.
"""

from __future__ import annotations

import time


class Backoff:
    """The pauses of one retried operation: `first`, doubling up to `most`, for `timeout` seconds
    in all from the moment it is made."""

    __slots__ = ("_deadline", "_delay", "_most")

    def __init__(self, timeout: float, *, first: float, most: float) -> None:
        self._deadline = time.monotonic() + timeout
        self._delay = first
        self._most = most

    def pause(self) -> float | None:
        """How long to wait before the next attempt, or None once the deadline has passed."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            return None
        pause = min(self._delay, left)
        self._delay = min(self._delay * 2, self._most)
        return pause
