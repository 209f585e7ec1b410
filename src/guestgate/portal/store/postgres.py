"""The store on PostgreSQL: autocommit psycopg connections (`store.pools`), used from worker
threads, and the sign-in's redemption on the event loop. PostgreSQL keeps `timestamptz`.

The redemption runs in the database function `guestgate_redeem_coupon` (migration 0011,
migrations/versions/0011_guestgate_redeem_coupon.sql), whose statements PL/pgSQL plans once
per connection: soon with a generic plan, made perhaps while `site_users` is small and without
statistics. The guest's-session look-up is written to match the partial index
ix_site_users_active_guest (site_id, ip_address, expires_at WHERE status = 'active'), which
every such plan takes; the (status, expires_at) and (site_id, started_at) indexes would walk
every live session of the site, more with each sign-in (tests/portal/test_store_plans.py
checks the plans).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
import psycopg
from psycopg.types.json import Jsonb

from guestgate.portal.store import sql
from guestgate.portal.store.base import SqlGuestStore
from guestgate.portal.store.pools import AsyncPool, SyncConnection, SyncPool
from guestgate.portal.store.records import Limits, Outcome, RedeemResult, Redemption, new_session

T = TypeVar("T")


class PostgresGuestStore(SqlGuestStore):
    """The store on PostgreSQL: `pool_size` sync connections for threads and as many async ones."""

    _placeholder = "%s"

    def __init__(self, conninfo: str, *, pool_size: int = 8) -> None:
        size = max(1, pool_size)
        self._pool = SyncPool(conninfo, size)
        # The sign-in path's async connections (`redeem_async`), on one event loop.
        self._apool = AsyncPool(conninfo, size)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread: network round trips must not stall the event loop."""
        return await anyio.to_thread.run_sync(lambda: fn(*args))

    @contextmanager
    def _reading(self) -> Iterator[SyncConnection]:
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[SyncConnection]:
        with self._pool.connection() as conn, conn.transaction():
            yield conn

    def _lock_guest(self, conn: Any, key: str) -> None:
        # READ COMMITTED lets two sign-ins of one guest both see "no session" and both spend
        # a coupon (a double-tapped button); a per-guest advisory lock orders them.
        conn.execute(sql.PG_LOCK_GUEST, (key,))

    def redeem(self, attempt: Redemption, now: datetime) -> RedeemResult:
        """Redeem a code atomically: a new session, the guest's existing one, or why not.

        One network round trip and one transaction: the call of `guestgate_redeem_coupon`,
        which takes the guest's advisory lock and then redeems on a snapshot taken after the
        lock was granted, so it sees the session a concurrent sign-in of the same guest has
        just committed. Only a refused code costs a second trip, to tell unknown from used
        and expired and to write the audit event.
        """
        session_id, params = _redeem_params(attempt, now)
        with self._pool.connection() as conn:
            rows = conn.execute(sql.PG_REDEEM, params).fetchall()
            done, org_id = self._redeemed(attempt, now, session_id, rows)
            if done is not None:
                return done
            with conn.transaction():
                return self._refused(conn, attempt, org_id, now)

    async def redeem_async(self, attempt: Redemption, now: datetime) -> RedeemResult:
        """`redeem` on the event loop with an async connection: the sign-in path's way in.

        A worker thread per redemption costs more than the redemption: the thread hop and the
        event loop and the pool's threads taking the GIL from each other. Only a refused code
        goes to a thread (the second trip, as in `redeem`).
        """
        session_id, params = _redeem_params(attempt, now)
        async with self._apool.connection() as conn:
            # A simple-protocol message, values bound (quoted) on the client: one send
            # and one reply, the cheapest exchange for the server process (py-spy of
            # bench/signin.py); the function's own statements run from cached plans.
            cursor = psycopg.AsyncClientCursor(conn)
            await cursor.execute(sql.PG_REDEEM, params)
            rows = await cursor.fetchall()
        done, org_id = self._redeemed(attempt, now, session_id, rows)
        if done is not None:
            return done
        return await anyio.to_thread.run_sync(self._refuse, attempt, org_id, now)

    def _refuse(self, attempt: Redemption, org_id: str | None, now: datetime) -> RedeemResult:
        with self._writing() as conn:
            return self._refused(conn, attempt, org_id, now)

    def _redeemed(
        self, attempt: Redemption, now: datetime, session_id: str, rows: list[Any]
    ) -> tuple[RedeemResult | None, str | None]:
        """The result of `sql.PG_REDEEM`'s rows (None if the code was refused) and the instance's org."""
        found = {row["kind"]: row for row in rows}
        instance = found.get("instance")
        if instance is None:
            return None, None
        org_id: str = instance["org_id"]
        existing = found.get("existing")
        if existing is not None:
            return RedeemResult(Outcome.ALREADY_ACTIVE, self._session_of(existing), org_id), org_id
        made = found.get("made")
        if made is None:
            return None, org_id
        limits = Limits(made["download_kbps"], made["upload_kbps"], made["data_limit_mb"])
        session = new_session(
            session_id, attempt, now, int(instance["session_ttl"]), coupon_id=made["coupon_id"], limits=limits
        )
        return RedeemResult(Outcome.SUCCESS, session, org_id), org_id

    def _ts(self, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def _from_ts(self, value: Any) -> datetime:
        stamp: datetime = value
        return stamp.astimezone(UTC)

    def _json_in(self, value: Any) -> Jsonb:
        return Jsonb(value)

    def _json_out(self, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    def close(self) -> None:
        """Close the idle connections (new ones are opened on next use)."""
        self._apool.drop_idle()
        self._pool.drop_idle()


def _redeem_params(attempt: Redemption, now: datetime) -> tuple[str, dict[str, Any]]:
    """The new session's id and the parameters of `sql.PG_REDEEM`."""
    session_id = str(uuid.uuid4())
    params = {
        "instance": attempt.instance_id,
        "site": attempt.site_id,
        "ip": attempt.ip,
        "mac": attempt.mac,
        "code": attempt.code,
        "now": now.astimezone(UTC),
        "session": session_id,
    }
    return session_id, params
