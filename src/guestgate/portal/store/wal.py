"""The SQLite store's WAL checkpoints, off the event loop: a background thread, and the writer's
own pass when the log must start over.

WAL checkpoints (copying the log back into the database file, with an fsync) would otherwise
run inside every thousandth-page commit, on the event loop. Here they run in a background
thread instead, woken every `CHECKPOINT_EVERY_COMMITS` commits and at least every
`CHECKPOINT_INTERVAL_SECONDS`; the driver releases the GIL while it works.

The log only starts over when a write transaction begins with every frame of it copied back,
which a background checkpoint racing a busy writer never achieves: under sustained sign-ins
the WAL would grow without end (gigabytes an hour), and every read with it. So once the
background pass finds more than `WAL_RESTART_FRAMES` frames, the writer runs one checkpoint
itself between two transactions: it copies only what the background pass has not, and the
next transaction starts the log over.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

import structlog

CHECKPOINT_EVERY_COMMITS = 200
CHECKPOINT_INTERVAL_SECONDS = 1.0
# WAL frames (pages) past which the writer finishes a checkpoint itself so the log starts over.
WAL_RESTART_FRAMES = 10_000
# The WAL file is cut back to this size when it starts over after a burst.
WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024

log = structlog.get_logger(__name__)


class Checkpointer:
    """The checkpoints of one writer connection: `committed` after each of its commits."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        # Opens the background thread's own connection to the same file.
        self._connect = connect
        self._commits = 0
        self._wake = threading.Event()
        self._restart = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the background thread (again, after `stop`)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, args=(self._stop,), name="guestgate-portal-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> threading.Thread | None:
        """Tell the background thread to end; the thread, to join outside the store's lock."""
        thread, self._thread = self._thread, None
        self._stop.set()
        self._wake.set()
        return thread

    def committed(self, conn: sqlite3.Connection) -> None:
        """After a commit on the writer `conn`: wake the thread now and then, restart the log if due."""
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY_COMMITS == 0:
            self._wake.set()
        if self._restart.is_set():
            self._finish(conn)

    def _loop(self, stop: threading.Event) -> None:
        conn = self._connect()
        try:
            while not stop.is_set():
                self._wake.wait(CHECKPOINT_INTERVAL_SECONDS)
                self._wake.clear()
                try:
                    _busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames >= WAL_RESTART_FRAMES:
                        self._restart.set()
                except sqlite3.Error as exc:
                    log.warning("portal.checkpoint_failed", error=str(exc))
        finally:
            conn.close()

    def _finish(self, conn: sqlite3.Connection) -> None:
        """Copy back what the background pass left, so that the next transaction restarts the log."""
        try:
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("portal.checkpoint_failed", error=str(exc))
            return
        # Busy: the background pass holds the checkpoint right now; the next commit tries again.
        if not busy and copied >= frames:
            self._restart.clear()
