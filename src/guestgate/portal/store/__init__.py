"""The portal's data path: plain SQL on the driver, no ORM, behind one small interface.

A guest sign-in is the hot path of the product, so it skips SQLAlchemy: SQLite is reached
with the standard `sqlite3` module (one connection per process, WAL, `BEGIN IMMEDIATE`),
PostgreSQL with psycopg (small pools of sync and async connections). Both read and write the
same rows the ORM does.

The modules, one job each:

- `records`: the frozen records the store takes and gives (sessions, redemptions, results).
- `protocol`: `GuestStore` (the blocking calls) and `AsyncGuestStore` (what `Portal` takes).
- `sql`: every statement's text.
- `base`: the queries run and read by column name, on either database; the guest lock key.
- `sqlite`, `wal`, `retry`: the SQLite store, its checkpoint thread, the busy-retry schedule.
- `postgres`, `pools`, `probe`: the PostgreSQL store, its connection pools, the idle-socket check.

`open_store` picks the store for a database URL.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from guestgate.db import libpq_conninfo
from guestgate.portal.store.base import guest_lock_key
from guestgate.portal.store.postgres import PostgresGuestStore
from guestgate.portal.store.protocol import AsyncGuestStore, GuestStore
from guestgate.portal.store.records import (
    AuditRecord,
    Grant,
    GuestSession,
    ImageRef,
    InstanceInfo,
    Outcome,
    RedeemResult,
    Redemption,
    SiteNetworks,
    failure_record,
    new_session,
)
from guestgate.portal.store.sqlite import SQLiteGuestStore, StoreBusy

__all__ = [
    "AsyncGuestStore",
    "AuditRecord",
    "Grant",
    "GuestSession",
    "GuestStore",
    "ImageRef",
    "InstanceInfo",
    "Outcome",
    "PostgresGuestStore",
    "RedeemResult",
    "Redemption",
    "SQLiteGuestStore",
    "SiteNetworks",
    "StoreBusy",
    "failure_record",
    "guest_lock_key",
    "new_session",
    "open_store",
]


def open_store(database_url: str, *, pg_pool_size: int = 8) -> AsyncGuestStore:
    """The store for a SQLAlchemy database URL (SQLite file or PostgreSQL)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ValueError("the guest portal needs a SQLite file, not an in-memory database")
        return SQLiteGuestStore(url.database)
    if url.get_backend_name() == "postgresql":
        conninfo = libpq_conninfo(url)
        return PostgresGuestStore(conninfo, pool_size=pg_pool_size)
    raise ValueError(f"the guest portal does not support '{url.get_backend_name()}' databases")
