"""Usage arithmetic (raw gateway counters added up across restarts) and the quota end, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from guestgate.audit.models import AuditEvent
from guestgate.db import new_id
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.site_users import usage
from guestgate.site_users.models import SiteUser
from guestgate.sites import service as site_service
from guestgate.sites.schemas import GatewayIn, SiteIn

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ORG = "org-a"


def test_a_larger_reading_adds_the_difference() -> None:
    assert usage.advance(1000, 300, 500) == 1200


def test_a_smaller_reading_means_the_gateway_restarted_and_adds_the_whole_reading() -> None:
    assert usage.advance(1000, 300, 120) == 1120


def test_the_first_reading_is_added_whole() -> None:
    assert usage.advance(0, None, 4096) == 4096


def test_a_negative_reading_is_refused() -> None:
    with pytest.raises(ValueError):
        usage.advance(0, None, -1)


def test_quota_is_reached_at_the_limit_in_megabytes_of_a_million_bytes() -> None:
    under = usage.Usage(bytes_in=400_000, bytes_out=599_999, raw_in=None, raw_out=None, data_limit_mb=1)
    at = usage.Usage(bytes_in=400_000, bytes_out=600_000, raw_in=None, raw_out=None, data_limit_mb=1)
    assert not usage.over_quota(under)
    assert usage.data_left(under) == 1
    assert usage.over_quota(at)
    assert usage.data_left(at) == 0


def test_without_a_limit_there_is_no_quota_and_no_data_left_figure() -> None:
    big = usage.Usage(bytes_in=10**15, bytes_out=10**15, raw_in=None, raw_out=None)
    assert not usage.over_quota(big)
    assert usage.data_left(big) is None


def test_a_first_reading_of_zero_is_not_a_change() -> None:
    before = usage.Usage(0, 0, None, None)
    assert not usage.moved(before, usage.read(before, 0, 0))
    assert usage.moved(before, usage.read(before, 1, 0))


# A gateway's counter over time: periods of growth (readings), each after the first starting again
# at 0 (a reboot). Truth is the sum of what each period counted.
periods = st.lists(
    st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=8), min_size=1, max_size=6
)


@given(periods)
def test_usage_never_counts_a_byte_twice_and_misses_none_when_restarts_show(history: list[list[int]]) -> None:
    current = usage.Usage(0, 0, None, None)
    truth = 0
    observable = True
    last = None
    for steps in history:
        counter = 0
        for n, step in enumerate(steps):
            counter += step
            if n == 0 and last is not None and counter >= last:
                # The first reading after a restart is not below the last one before: it cannot be
                # told from growth, and what the old counter held past its last reading is lost.
                observable = False
            current = usage.read(current, 0, counter)
            last = counter
        truth += counter
    assert current.bytes_out <= truth
    if observable:
        assert current.bytes_out == truth


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=20))
def test_readings_of_one_growing_counter_add_up_to_its_last_value(steps: list[int]) -> None:
    current = usage.Usage(0, 0, None, None)
    counter = 0
    for step in steps:
        counter += step
        current = usage.read(current, 0, counter)
    assert current.bytes_out == counter
    assert current.raw_out == counter


def make_sessions(runtime: Runtime, count: int, **values: object) -> tuple[str, list[str]]:
    with runtime.sessions() as session:
        org_service.ensure(ORG, session=session)
        site = site_service.create(
            SiteIn(name="Lobby", subnets=["10.0.0.0/24"], gateway=GatewayIn()),
            org_id=ORG,
            box=runtime.box,
            rules=runtime.gateway_rules,
            session=session,
        )
        ids = []
        for n in range(count):
            user = SiteUser(
                org_id=ORG,
                site_id=site.id,
                instance_id=new_id(),
                ip_address=f"10.0.0.{n + 2}",
                strategy="coupon",
                started_at=NOW - timedelta(minutes=5),
                expires_at=NOW + timedelta(hours=1),
                **values,
            )
            session.add(user)
            session.flush()
            ids.append(user.id)
        session.commit()
        return site.id, ids


def test_record_writes_totals_and_raw_readings_and_last_seen_only_with_traffic(runtime: Runtime) -> None:
    _, (busy, idle) = make_sessions(runtime, 2)
    readings = [
        usage.Reading(busy, usage.Usage(1500, 90_000, 1500, 90_000), active=True),
        usage.Reading(idle, usage.Usage(0, 0, 7, 7), active=False),
    ]
    with runtime.sessions() as session:
        assert usage.record(readings, now=NOW, session=session) == 2
        session.commit()
    with runtime.sessions() as session:
        rows = {u.id: u for u in session.scalars(select(SiteUser))}
    assert (rows[busy].bytes_in, rows[busy].bytes_out, rows[busy].gateway_bytes_in) == (1500, 90_000, 1500)
    assert rows[busy].last_seen_at == NOW
    assert (rows[idle].gateway_bytes_in, rows[idle].last_seen_at) == (7, None)


def test_end_over_quota_ends_active_sessions_once_with_an_audit_event(runtime: Runtime) -> None:
    site_id, (over, gone) = make_sessions(runtime, 2, data_limit_mb=1)
    with runtime.sessions() as session:
        session.get(SiteUser, gone).status = "disconnected"  # type: ignore[union-attr]
        session.commit()
    with runtime.sessions() as session:
        ended = usage.end_over_quota(
            [over, gone, over], org_id=ORG, site_id=site_id, now=NOW, session=session
        )
        session.commit()
    assert ended == [over]
    with runtime.sessions() as session:
        user = session.get(SiteUser, over)
        assert user is not None
        assert (user.status, user.end_reason, user.ended_at) == ("quota_exceeded", "quota_exceeded", NOW)
        events = list(
            session.scalars(select(AuditEvent).where(AuditEvent.action == "site_user.quota_exceeded"))
        )
        assert [(e.target_id, e.detail) for e in events] == [(over, {"site_id": site_id})]
    with runtime.sessions() as session:
        again = usage.end_over_quota([over], org_id=ORG, site_id=site_id, now=NOW, session=session)
        session.commit()
    assert again == []
