"""What used to live in one process: agent wake-ups, agent auth windows, the gateway lock.

Two runtimes on one PostgreSQL database stand for two processes (each has its own feed, pool,
bus connection and engine); the end-to-end check with real processes is in test_replicas.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from guestgate.db import utcnow
from guestgate.gateways import service as gateway_service
from guestgate.gateways.agent import FeedChange
from guestgate.gateways.bus import AgentBus, decode, encode, encode_sync_request
from guestgate.gateways.locks import gateway_lock
from guestgate.runtime import Runtime
from guestgate.sites.models import Site
from tests.utils.settings import PG_ADMIN_URL, make_settings, truncate_pg

ORG = "org-bus"


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The run's PostgreSQL database, emptied."""
    truncate_pg(pg_database)
    return pg_database


@pytest.fixture
def two(pg_url: str, tmp_path: Path) -> Iterator[tuple[Runtime, Runtime]]:
    """Two runtimes on one database, both listening, like two `serve` replicas."""
    runtimes = [Runtime.build(make_settings(pg_url, tmp_path / f"p{i}")) for i in range(2)]
    for runtime in runtimes:
        runtime.listen_for_agent_changes()
        assert _bus(runtime).wait_listening(10)
    yield runtimes[0], runtimes[1]
    for runtime in runtimes:
        runtime.close()


def _bus(runtime: Runtime) -> AgentBus:
    bus = runtime._bus
    assert bus is not None
    return bus


def _site(runtime: Runtime, driver: str) -> Site:
    from guestgate.orgs import service as org_service

    with runtime.sessions() as session:
        org_service.ensure(ORG, session=session)
        site = Site(org_id=ORG, name="Kiosk", subnets=["10.40.0.0/16"], gateway_driver=driver)
        session.add(site)
        session.commit()
        session.refresh(site)
        session.expunge(site)
        return site


def _eventually(check: Callable[[], bool], seconds: float = 2.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, "not within the time allowed"
        time.sleep(0.01)
    return time.monotonic() - started


def test_messages_round_trip_and_malformed_ones_are_refused() -> None:
    until = utcnow() + timedelta(seconds=300)
    for change in (FeedChange("s1"), FeedChange("s1", ("10.0.0.5", until))):
        origin, back = decode(encode(change, origin="me"))
        assert origin == "me" and back == change
    assert decode(encode_sync_request(origin="new")) == ("new", None)
    for bad in (
        '{"o": 1, "s": "x"}',
        '{"s": "x"}',
        '{"o": "a", "s": "x", "w": ["ip", "2026-01-01T00:00:00"]}',
        "[]",
    ):
        with pytest.raises((ValueError, KeyError, TypeError)):
            decode(bad)


def test_a_change_in_one_process_wakes_the_other_process_at_once(two: tuple[Runtime, Runtime]) -> None:
    a, b = two
    site = _site(a, "agent")
    before = b.gateways.agents.generation(site.id)
    a.gateways.get(site).revoke("session-1", "10.40.0.5")
    took = _eventually(lambda: b.gateways.agents.generation(site.id) != before)
    assert took < 1.0
    assert a.agent_changes_shared and b.agent_changes_shared


def test_an_auth_window_opened_in_one_process_is_in_the_state_every_process_serves(
    two: tuple[Runtime, Runtime],
) -> None:
    a, b = two
    site = _site(a, "agent")
    a.gateways.get(site).open_auth_window("10.40.0.7", 300)
    now = utcnow()
    _eventually(lambda: bool(b.gateways.agents.windows(site.id, now=now)))
    state_a = gateway_service.agent_state(a, site, now=now)
    state_b = gateway_service.agent_state(b, site, now=now)
    assert list(state_b.auth_windows) == ["10.40.0.7"]
    assert state_a.auth_windows == state_b.auth_windows
    # Same state, same version: an agent moving between replicas is not told to re-apply.
    assert state_a.version == state_b.version


def test_a_process_started_later_is_sent_the_auth_windows_still_open(
    two: tuple[Runtime, Runtime], pg_url: str, tmp_path: Path
) -> None:
    a, _b = two
    site = _site(a, "agent")
    a.gateways.get(site).open_auth_window("10.40.0.8", 300)
    late = Runtime.build(make_settings(pg_url, tmp_path / "late"))
    try:
        late.listen_for_agent_changes()
        now = utcnow()
        _eventually(lambda: bool(late.gateways.agents.windows(site.id, now=now)), seconds=5)
        assert (
            gateway_service.agent_state(late, site, now=now).version
            == gateway_service.agent_state(a, site, now=now).version
        )
    finally:
        late.close()


def test_a_listener_that_lost_its_connection_reconnects_and_wakes_every_poll(
    two: tuple[Runtime, Runtime], pg_url: str
) -> None:
    a, b = two
    site = _site(a, "agent")
    before = b.gateways.agents.generation(site.id)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND query LIKE 'LISTEN guestgate_agents%%'",
            (pg_url.rsplit("/", 1)[1],),
        ).fetchall()
    assert len(killed) == 2
    # Whatever was published while nobody listened is re-read: every poll of B wakes once.
    _eventually(lambda: b.gateways.agents.generation(site.id) != before, seconds=10)
    _eventually(lambda: b.agent_changes_shared, seconds=10)
    after = b.gateways.agents.generation(site.id)
    a.gateways.get(site).revoke("session-2", "10.40.0.6")
    _eventually(lambda: b.gateways.agents.generation(site.id) != after)


def test_the_gateway_lock_of_a_pushed_site_excludes_another_process(two: tuple[Runtime, Runtime]) -> None:
    a, b = two
    site = _site(a, "routeros")
    with gateway_lock(a, site) as held:
        assert held
        started = time.monotonic()
        with gateway_lock(b, site, timeout=0.3) as other:
            assert not other
        assert 0.25 <= time.monotonic() - started < 2
    with gateway_lock(b, site, timeout=0.3) as other:
        assert other
    with b.engine.connect() as conn:
        # Released with its transaction: no advisory lock is left behind.
        assert (
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ).scalar()
            == 0
        )


def test_sites_nothing_is_pushed_to_take_no_database_lock(two: tuple[Runtime, Runtime]) -> None:
    a, b = two
    for driver in ("none", "agent"):
        site = _site(a, driver)
        with gateway_lock(a, site) as held, gateway_lock(b, site, timeout=0.3) as other:
            assert held and other
