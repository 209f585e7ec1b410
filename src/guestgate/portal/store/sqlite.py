"""The store on a SQLite file: one connection, used from the event loop (queries take microseconds).

SQLite keeps UTC datetimes as naive `YYYY-MM-DD HH:MM:SS.ffffff` text (SQLAlchemy's SQLite
format, compared as strings). The connection is in WAL mode, writes take the lock with
`BEGIN IMMEDIATE`, and checkpoints run off the loop (`store.wal`).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from guestgate.portal.store import sql
from guestgate.portal.store.base import SqlGuestStore
from guestgate.portal.store.records import RedeemResult, Redemption
from guestgate.portal.store.retry import Backoff
from guestgate.portal.store.wal import WAL_SIZE_LIMIT_BYTES, Checkpointer

SQLITE_BUSY_TIMEOUT_MS = 10_000
# How a sign-in waits for another process's SQLite write lock without holding up the event loop.
SQLITE_BUSY_FIRST_DELAY_SECONDS = 0.001
SQLITE_BUSY_MAX_DELAY_SECONDS = 0.05

T = TypeVar("T")


class StoreBusy(sqlite3.OperationalError):
    """Another connection holds the SQLite write lock; nothing was done, the call can be retried."""


def _busy_backoff() -> Backoff:
    return Backoff(
        SQLITE_BUSY_TIMEOUT_MS / 1000,
        first=SQLITE_BUSY_FIRST_DELAY_SECONDS,
        most=SQLITE_BUSY_MAX_DELAY_SECONDS,
    )


class SQLiteGuestStore(SqlGuestStore):
    """The store on a SQLite file: one connection, used from the event loop (queries take microseconds)."""

    _active_sql = sql.ACTIVE_SQLITE

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._checkpoints = Checkpointer(self._open)
        # Set while `call` runs a method on the event loop: a busy write lock raises at once.
        self._nowait = threading.local()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` on the event loop, never blocking it on another process's write lock.

        The store's own connection does not wait in SQLite's busy handler (that would stop the
        whole event loop, every guest of this process, for as long as an operator's batch or a
        worker holds the lock). A write that finds the lock taken gives up before doing anything
        (StoreBusy at BEGIN) and is tried again after an `await`, with a growing pause, until
        `SQLITE_BUSY_TIMEOUT_MS`; then the caller gets the "database is locked" error (a 503).
        """
        backoff = _busy_backoff()
        while True:
            self._nowait.on = True
            try:
                return fn(*args)
            except StoreBusy:
                pause = backoff.pause()
                if pause is None:
                    raise sqlite3.OperationalError("database is locked") from None
            finally:
                self._nowait.on = False
            await asyncio.sleep(pause)

    async def redeem_async(self, attempt: Redemption, now: datetime) -> RedeemResult:
        """`redeem` through `call`: the sign-in path's way in."""
        return await self.call(self.redeem, attempt, now)

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock: at once or StoreBusy under `call`, else waiting like SQLite's busy handler."""
        backoff = _busy_backoff()
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if getattr(self._nowait, "on", False):
                    raise StoreBusy(str(exc)) from exc
                pause = backoff.pause()
                if pause is None:
                    raise
            time.sleep(pause)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = self._open()
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
            # Never wait inside SQLite: `_begin_immediate` waits, and on the event loop it awaits.
            conn.execute("PRAGMA busy_timeout=0")
            conn.row_factory = sqlite3.Row
            self._conn = conn
            self._checkpoints.start()
        return self._conn

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._connection()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            # IMMEDIATE takes the write lock up front: a deferred transaction that reads first
            # could fail with SQLITE_BUSY on upgrade instead of waiting its turn.
            self._begin_immediate(conn)
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._checkpoints.committed(conn)

    def _lock_guest(self, conn: Any, key: str) -> None:
        """Nothing to add: BEGIN IMMEDIATE already serialises every writer."""

    def _ts(self, value: datetime) -> str:
        # Same text as SQLAlchemy's SQLite DateTime ('%Y-%m-%d %H:%M:%S.%f'); isoformat is faster.
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def _from_ts(self, value: Any) -> datetime:
        return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)

    def _json_in(self, value: Any) -> str:
        return json.dumps(value)

    def _json_out(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def close(self) -> None:
        """Close the connection and stop the checkpointer (both restart on next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            checkpointer = self._checkpoints.stop()
        if checkpointer is not None:
            checkpointer.join(timeout=10)
