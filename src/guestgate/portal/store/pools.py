"""The PostgreSQL store's connections: a pool of sync connections for worker threads, and a pool
of async connections for the sign-in path on the event loop. Both hand out autocommit
connections whose rows are dicts by column name, check an idle connection with `probe.usable`
before lending it, and forget every idle connection once one turns out broken (the server went
away: the others went with it).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import psycopg
from psycopg.rows import DictRow, dict_row

from guestgate.portal.store.probe import usable

SyncConnection = psycopg.Connection[DictRow]
AsyncConnection = psycopg.AsyncConnection[DictRow]


class SyncPool:
    """At most `size` connections lent at once, to any thread; idle ones kept newest first."""

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._idle: queue.LifoQueue[SyncConnection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self) -> Iterator[SyncConnection]:
        """A connection for the block; kept for reuse if the block ended normally."""
        with self._slots:
            conn = self._checkout()
            healthy = False
            try:
                yield conn
                healthy = True
            finally:
                if healthy and not conn.closed and not conn.broken:
                    self._idle.put(conn)
                else:
                    if conn.broken:
                        self.drop_idle()
                    conn.close()

    def _checkout(self) -> SyncConnection:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                # The store's statements are not prepared: small, and off the sign-in's path.
                return psycopg.connect(
                    self._conninfo, autocommit=True, prepare_threshold=None, row_factory=dict_row
                )
            if usable(conn):
                return conn
            conn.close()

    def drop_idle(self) -> None:
        """Close every idle connection (new ones are opened on next use)."""
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            conn.close()


class AsyncPool:
    """At most `size` async connections lent at once, on the event loop that opened them.

    Async connections belong to their loop; a test client runs several loops one after
    another, so a new loop starts the pool afresh.
    """

    def __init__(self, conninfo: str, size: int) -> None:
        self._conninfo = conninfo
        self._size = size
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: list[AsyncConnection] = []
        self._slots: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection for the block; kept for reuse if the block ended normally, else closed
        (perhaps mid-transaction: the server rolls back when the socket closes)."""
        slots, idle = self._this_loop()
        async with slots:
            conn = idle.pop() if idle else None
            while conn is not None and not usable(conn):
                conn.pgconn.finish()
                conn = idle.pop() if idle else None
            if conn is None:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, prepare_threshold=None, row_factory=dict_row
                )
            healthy = False
            try:
                yield conn
                healthy = True
            finally:
                if healthy:
                    idle.append(conn)
                else:
                    if conn.broken:
                        self.drop_idle()
                    conn.pgconn.finish()

    def _this_loop(self) -> tuple[asyncio.Semaphore, list[AsyncConnection]]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self.drop_idle()
            self._loop = loop
            self._slots = asyncio.Semaphore(self._size)
            self._idle = []
        assert self._slots is not None
        return self._slots, self._idle

    def drop_idle(self) -> None:
        """Close every idle connection without a goodbye (they may belong to a finished loop)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.pgconn.finish()
