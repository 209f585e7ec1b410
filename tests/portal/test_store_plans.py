"""The plans of the sign-in's look-up of the guest's active session: through the partial index
ix_site_users_active_guest, never walking every live session of the site.

On PostgreSQL the redemption runs in `guestgate_redeem_coupon`, whose statements PL/pgSQL plans
once per connection, soon as a generic plan; a plan made while `site_users` was empty must still
be right once the site holds tens of thousands of live sessions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import bindparam, text

from guestgate.db import UTCDateTime, libpq_conninfo
from guestgate.portal.store import Outcome, Redemption, open_store
from guestgate.portal.store import sql as store_sql
from tests.utils.portal import World

SESSIONS = 50_000
INDEX = "ix_site_users_active_guest"
# Indexes of site_users that would answer the look-up by walking the site's live sessions.
WALKING = ("ix_site_users_site_id_started_at", "ix_site_users_status_expires_at", "Seq Scan on site_users")
CALL = "SELECT * FROM guestgate_redeem_coupon(%s, %s, %s, %s, %s, %s, %s)"


def _fill(world: World, count: int) -> None:
    """`count` live sessions of the world's site, each from its own address outside 10.0.1.0/24."""
    generator = (
        "(SELECT generate_series(1, :count) AS n)"
        if world.runtime.engine.dialect.name == "postgresql"
        else "(WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :count) SELECT n FROM g)"
    )
    statement = text(
        "INSERT INTO site_users (id, org_id, site_id, instance_id, ip_address, strategy, status, "
        "started_at, expires_at) SELECT 'filler-' || n, :org, :site, :instance, "
        "'10.' || (100 + n / 65536) || '.' || (n / 256 % 256) || '.' || (n % 256), 'coupon', 'active', "
        f":now, :expires FROM {generator} AS g"
    ).bindparams(bindparam("now", type_=UTCDateTime), bindparam("expires", type_=UTCDateTime))
    now = world.clock()
    with world.runtime.engine.begin() as conn:
        conn.execute(
            statement,
            {
                "count": count,
                "org": world.org_id,
                "site": world.site_id,
                "instance": world.instance_id,
                "now": now,
                "expires": now + timedelta(hours=1),
            },
        )


def _attempt(world: World, code: str, ip: str) -> Redemption:
    return Redemption(site_id=world.site_id, instance_id=world.instance_id, code=code, ip=ip, mac=None)


def _scans(plan: str) -> list[str]:
    return [line.strip() for line in plan.splitlines() if "Scan" in line and "site_users" in line]


ON_POSTGRESQL = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def pg(world: World, db_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection to the test's PostgreSQL database."""
    conninfo = libpq_conninfo(db_url)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        yield conn


@ON_POSTGRESQL
def test_the_functions_cached_plan_made_on_an_empty_table_uses_the_partial_index(
    world: World, pg: psycopg.Connection[tuple[object, ...]]
) -> None:
    """auto_explain shows the plans the function really runs: custom for its first five calls,
    then the generic plan, made here while site_users is empty and kept after 50,000 sessions."""
    plans: list[str] = []
    pg.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
    pg.execute("LOAD 'auto_explain'")
    pg.execute("SET auto_explain.log_min_duration = 0")
    pg.execute("SET auto_explain.log_nested_statements = on")
    pg.execute("SET client_min_messages = log")
    now = world.clock().astimezone(UTC)
    codes = [f"PLN{index:03d}" for index in range(12)]
    for code in codes:
        world.coupon(code)

    def redeem(index: int, ip: str) -> list[tuple[object, ...]]:
        plans.clear()
        args = (world.instance_id, world.site_id, ip, None, codes[index], now, str(uuid.uuid4()))
        rows = pg.execute(CALL, args).fetchall()
        redemption = [plan for plan in plans if "FROM site_users" in plan and "UPDATE coupons" in plan]
        assert len(redemption) == 1, plans
        plan = redemption[0]
        assert _scans(plan), plan
        assert all(INDEX in scan for scan in _scans(plan)), plan
        assert not any(walk in plan for walk in WALKING), plan
        plans.append(plan)
        return rows

    for index in range(8):
        assert "made" in {row[0] for row in redeem(index, f"10.0.1.{index + 10}")}
    # From the sixth call on, the plan is the generic one: parameters, not values.
    assert "(site_id)::text = $" in plans[-1], plans[-1]

    _fill(world, SESSIONS)
    # The generic plan made on the empty table, now facing the site's 50,000 live sessions:
    # a guest with one of them is found through the index, and no code is spent.
    rows = redeem(8, "10.100.0.7")
    assert {row[0] for row in rows} == {"instance", "existing"}
    assert "(site_id)::text = $" in plans[-1], plans[-1]
    assert "made" in {row[0] for row in redeem(9, "10.0.1.99")}

    pg.execute("ANALYZE site_users")  # invalidates the cached plans: made again with statistics
    for index, ip in ((10, "10.0.1.100"), (11, "10.0.1.101")):
        assert "made" in {row[0] for row in redeem(index, ip)}


@ON_POSTGRESQL
@pytest.mark.parametrize("analyzed", [False, True])
def test_the_generic_plan_of_the_guest_lookup_uses_the_partial_index(
    world: World, pg: psycopg.Connection[tuple[object, ...]], analyzed: bool
) -> None:
    """The look-up as the store writes it, prepared and forced generic, empty and with 50,000
    live sessions of the site (without statistics, then with them)."""
    # The store's statement (run unprepared today; a generic plan must be safe all the same).
    lookup = store_sql.ACTIVE.replace("?", "$1", 1).replace("?", "$2", 1).replace("?", "$3", 1)
    pg.execute(f"PREPARE lookup(text, text, timestamptz) AS {lookup}")
    pg.execute("SET plan_cache_mode = force_generic_plan")
    args = (world.site_id, "10.100.0.7", world.clock().astimezone(UTC))

    def plan() -> str:
        # EXPLAIN EXECUTE takes no bound parameters: the values are quoted into it.
        explain = psycopg.ClientCursor(pg).execute("EXPLAIN EXECUTE lookup(%s, %s, %s)", args)
        return "\n".join(str(row[0]) for row in explain)

    empty = plan()
    assert _scans(empty) and all(INDEX in scan for scan in _scans(empty)), empty
    _fill(world, SESSIONS)
    if analyzed:
        pg.execute("ANALYZE site_users")
    full = plan()
    assert _scans(full) and all(INDEX in scan for scan in _scans(full)), full
    assert "(site_id)::text = $1" in full, full


def test_a_guest_among_fifty_thousand_live_sessions_of_the_site_is_found(world: World, db_url: str) -> None:
    store = open_store(db_url, pg_pool_size=1)
    try:
        guest = "10.0.1.7"
        world.coupon("FND234")
        unspent = world.coupon("FND235")
        now = world.clock()
        first = store.redeem(_attempt(world, "FND234", guest), now)
        assert first.outcome is Outcome.SUCCESS
        _fill(world, SESSIONS)
        for index in range(8):  # past the point where PostgreSQL switches to the generic plan
            again = store.redeem(_attempt(world, "FND235", guest), now)
            assert again.outcome is Outcome.ALREADY_ACTIVE, index
            assert again.session is not None and first.session is not None
            assert again.session.id == first.session.id
        assert store.active_session(world.site_id, guest, None, now) is not None
    finally:
        store.close()
    assert world.coupon_row(unspent).redeemed_at is None


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_looks_the_guest_up_by_a_guest_index(world: World, db_url: str) -> None:
    """SQLite's spelling of the look-up (see guestgate.portal.store) on 50,000 live sessions."""
    _fill(world, SESSIONS)
    lookup = store_sql.ACTIVE_SQLITE
    with world.runtime.engine.connect() as conn:
        plan = " ".join(
            str(row)
            for row in conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + lookup, (world.site_id, "10.100.0.7", datetime.now(UTC).isoformat())
            )
        )
    assert INDEX in plan or "ix_site_users_site_id_ip_address_status" in plan, plan
    assert "(site_id=? AND ip_address=?" in plan, plan
