"""The sign-in path's own ways into the store: PostgreSQL's async redemption, SQLite's bounded WAL."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from guestgate.db import libpq_conninfo
from guestgate.portal.routes import build
from guestgate.portal.store import (
    AsyncGuestStore,
    Outcome,
    PostgresGuestStore,
    RedeemResult,
    Redemption,
    SQLiteGuestStore,
    open_store,
)
from guestgate.portal.store import sqlite as sqlite_store
from guestgate.portal.store import wal as store_wal
from guestgate.portal.throttle import MemoryCounters
from tests.utils.portal import ClientFactory, World, fresh_token, sign_in


async def _redeem(store: AsyncGuestStore, attempt: Redemption, now: datetime) -> RedeemResult:
    """The redemption the portal runs (`Portal.sign_in`): the store's `redeem_async`."""
    return await store.redeem_async(attempt, now)


def _attempt(world: World, ip: str, code: str) -> Redemption:
    return Redemption(site_id=world.site_id, instance_id=world.instance_id, code=code, ip=ip, mac=None)


def test_fifty_concurrent_sign_ins_on_one_event_loop_spend_one_code_once(world: World, db_url: str) -> None:
    world.coupon("ABC234")
    store = open_store(db_url, pg_pool_size=8)
    now = world.clock()

    async def race() -> list[RedeemResult]:
        return await asyncio.gather(
            *(_redeem(store, _attempt(world, f"10.0.1.{i + 10}", "ABC234"), now) for i in range(50))
        )

    try:
        results = asyncio.run(race())
    finally:
        store.close()
    outcomes = [r.outcome for r in results]
    assert outcomes.count(Outcome.SUCCESS) == 1
    assert outcomes.count(Outcome.USED) == 49
    assert len(world.sessions()) == 1
    assert len(world.audit("guest.signin_failed")) == 49


def test_one_guest_racing_two_codes_on_one_event_loop_gets_one_session(world: World, db_url: str) -> None:
    codes = [f"AB{c}234" for c in "CDEFGHJKMN"]
    for code in codes:
        world.coupon(code)
    store = open_store(db_url, pg_pool_size=4)
    now = world.clock()

    async def race(first: str, second: str, ip: str) -> list[RedeemResult]:
        return await asyncio.gather(
            _redeem(store, _attempt(world, ip, first), now), _redeem(store, _attempt(world, ip, second), now)
        )

    try:
        for round_ in range(5):
            first, second = codes[2 * round_], codes[2 * round_ + 1]
            results = asyncio.run(race(first, second, f"10.0.1.{round_ + 10}"))
            assert sorted(r.outcome.value for r in results) == ["already_active", "success"]
            active = next(r for r in results if r.outcome is Outcome.ALREADY_ACTIVE)
            made = next(r for r in results if r.outcome is Outcome.SUCCESS)
            assert active.session is not None and made.session is not None
            assert active.session.id == made.session.id
    finally:
        store.close()
    assert len(world.sessions()) == 5


def test_the_async_redemption_returns_what_the_database_holds(world: World, db_url: str) -> None:
    world.coupon("ABC234")
    store = open_store(db_url)
    now = world.clock()
    try:
        result = asyncio.run(_redeem(store, _attempt(world, "10.0.1.10", "ABC234"), now))
        again = asyncio.run(_redeem(store, _attempt(world, "10.0.1.10", "ABC234"), now))
        unknown = asyncio.run(_redeem(store, _attempt(world, "10.0.1.11", "ZZZ234"), now))
    finally:
        store.close()
    assert result.outcome is Outcome.SUCCESS and result.org_id == world.org_id
    assert result.session is not None
    assert result.session.expires_at == now + timedelta(seconds=3600)
    (row,) = world.sessions()
    assert row.id == result.session.id
    assert row.expires_at == result.session.expires_at
    assert row.coupon_id == result.session.coupon_id
    assert again.outcome is Outcome.ALREADY_ACTIVE
    assert again.session is not None and again.session.id == row.id
    assert unknown.outcome is Outcome.UNKNOWN
    assert [e.detail["reason"] for e in world.audit("guest.signin_failed")] == ["unknown"]


def test_sign_ins_through_two_test_clients_each_with_its_event_loop(
    world: World, guest: ClientFactory, db_url: str
) -> None:
    # Async connections belong to the loop that opened them; a second client runs another loop.
    portal = build(world.runtime, counters=MemoryCounters(), clock=world.clock)
    for index, code in enumerate(("ABC234", "XYZ234")):
        world.coupon(code)
        client = guest(f"10.0.1.{20 + index}", portal=portal)
        response = sign_in(client, fresh_token(client, world), code)
        assert response.status_code == 200, response.text
    assert len(world.sessions()) == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_sqlite_log_starts_over_under_sustained_sign_ins(
    world: World, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The background pass runs on its own time; here it only asks, and the writer does the rest.
    monkeypatch.setattr(store_wal, "CHECKPOINT_EVERY_COMMITS", 10**9)
    codes = [f"{a}{b}{c}{d}" for a in "ABCDEFGH" for b in "JKMNPQRS" for c in "TUVWXY" for d in "234"][:600]
    for code in codes:
        world.coupon(code)
    wal = Path(f"{make_url(db_url).database}-wal")
    store = open_store(db_url)
    assert isinstance(store, SQLiteGuestStore)
    now = world.clock()
    try:
        # The coupons written above left the log at some size; sign-ins must not grow it.
        before = os.path.getsize(wal) if wal.exists() else 0
        for index, code in enumerate(codes):
            if index % 20 == 0:
                store._checkpoints._restart.set()  # what the background pass does when it finds a long log
            result = store.redeem(_attempt(world, f"10.0.{1 + index // 200}.{index % 200 + 1}", code), now)
            assert result.outcome is Outcome.SUCCESS
        grown = os.path.getsize(wal) - before
    finally:
        store.close()
    # Each sign-in appends several pages: without restarts 600 of them grow the log by megabytes.
    assert grown < 1024 * 1024
    assert len(world.sessions()) == 600


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_background_checkpoint_asks_for_a_restart_when_the_log_is_long(
    world: World, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_wal, "CHECKPOINT_EVERY_COMMITS", 10**9)
    monkeypatch.setattr(store_wal, "WAL_RESTART_FRAMES", 50)
    codes = [f"{a}{b}234" for a in "ABCDEFGH" for b in "JKMNPQRS"][:40]
    for code in codes:
        world.coupon(code)
    store = open_store(db_url)
    assert isinstance(store, SQLiteGuestStore)
    now = world.clock()
    try:
        for index, code in enumerate(codes):
            store.redeem(_attempt(world, f"10.0.1.{index + 10}", code), now)
        store._checkpoints._restart.clear()
        store._checkpoints._wake.set()
        deadline = time.monotonic() + 10
        while not store._checkpoints._restart.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store._checkpoints._restart.is_set()
        store.redeem(_attempt(world, "10.0.2.10", "ZZZ234"), now)
        assert not store._checkpoints._restart.is_set()
    finally:
        store.close()


def _terminate_backends(db_url: str, pids: list[int]) -> None:
    """What a PostgreSQL restart does to the store's idle connections: FATAL, then end of file."""
    import psycopg

    conninfo = libpq_conninfo(db_url)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        for pid in pids:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            alive = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)
            ).fetchone()
        if alive == (0,):
            return
        time.sleep(0.05)
    raise AssertionError(f"backends {pids} still alive")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_pooled_connections_the_server_ended_are_dropped_not_handed_to_a_guest(
    world: World, db_url: str
) -> None:
    for code in ("ABC234", "DEF345", "GHJ456"):
        world.coupon(code)
    store = open_store(db_url, pg_pool_size=4)
    assert isinstance(store, PostgresGuestStore)
    now = world.clock()

    async def sign_in_twice() -> None:
        # The first sign-in leaves an async connection idle; the server then ends it.
        first = await _redeem(store, _attempt(world, "10.0.1.10", "ABC234"), now)
        assert first.outcome is Outcome.SUCCESS
        _terminate_backends(db_url, [conn.info.backend_pid for conn in store._apool._idle])
        second = await _redeem(store, _attempt(world, "10.0.1.11", "DEF345"), now)
        assert second.outcome is Outcome.SUCCESS

    try:
        asyncio.run(sign_in_twice())
        # The same for the thread-side pool the entry page and the status page read through.
        assert store.site_networks(world.site_id) is not None
        idle = list(store._pool._idle.queue)
        assert idle
        _terminate_backends(db_url, [conn.info.backend_pid for conn in idle])
        assert store.site_networks(world.site_id) is not None
        assert store.redeem(_attempt(world, "10.0.1.12", "GHJ456"), now).outcome is Outcome.SUCCESS
    finally:
        store.close()
    assert len(world.sessions()) == 3


def _hold_write_lock(db_url: str, seconds: float) -> threading.Thread:
    """Another process's writer: holds SQLite's write lock for `seconds` on its own connection."""
    import sqlite3

    held = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(make_url(db_url).database or "", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
        conn.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(5)
    return thread


async def _largest_stall(work: asyncio.Task[Any]) -> float:
    """The longest the event loop went without running a 5 ms ticker while `work` ran."""
    largest = 0.0
    last = time.monotonic()
    while not work.done():
        await asyncio.sleep(0.005)
        now = time.monotonic()
        largest = max(largest, now - last)
        last = now
    return largest


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_sign_in_waiting_for_a_sqlite_lock_leaves_the_event_loop_free(world: World, db_url: str) -> None:
    world.coupon("ABC234")
    store = open_store(db_url)
    now = world.clock()
    holder = _hold_write_lock(db_url, 0.6)

    async def sign_in() -> tuple[RedeemResult, float, float]:
        started = time.monotonic()
        work = asyncio.create_task(_redeem(store, _attempt(world, "10.0.1.10", "ABC234"), now))
        stall = await _largest_stall(work)
        return await work, stall, time.monotonic() - started

    try:
        result, stall, waited = asyncio.run(sign_in())
    finally:
        holder.join()
        store.close()
    assert result.outcome is Outcome.SUCCESS
    assert waited >= 0.3  # it did wait for the lock ...
    assert stall < 0.2  # ... without stopping the loop (SQLite's busy handler would stop it ~0.6 s)
    assert len(world.sessions()) == 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_sqlite_lock_held_past_the_timeout_is_database_locked_with_nothing_written(
    world: World, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    monkeypatch.setattr(sqlite_store, "SQLITE_BUSY_TIMEOUT_MS", 300)
    world.coupon("ABC234")
    store = open_store(db_url)
    now = world.clock()
    holder = _hold_write_lock(db_url, 1.0)

    async def sign_in() -> float:
        work = asyncio.create_task(_redeem(store, _attempt(world, "10.0.1.10", "ABC234"), now))
        stall = await _largest_stall(work)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await work
        return stall

    try:
        stall = asyncio.run(sign_in())
        assert stall < 0.2
        holder.join()
        # The lock is gone: the same store signs the guest in.
        retried = asyncio.run(_redeem(store, _attempt(world, "10.0.1.10", "ABC234"), now))
        assert retried.outcome is Outcome.SUCCESS
    finally:
        holder.join()
        store.close()
    assert len(world.sessions()) == 1
