"""The schedule runner driven with an explicit `now`: DST, month ends, weekly runs, catch-up, run-now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from guestgate.coupons import jobs as coupon_jobs
from guestgate.coupons.models import Coupon
from guestgate.notifications.models import Delivery
from guestgate.runtime import Runtime
from guestgate.schedules import jobs
from guestgate.schedules.models import CouponSchedule, ScheduleRun
from guestgate.security import SCOPE_ISSUE, SCOPE_READ
from tests.schedules import factory
from tests.utils.settings import TokenFactory


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def make(runtime: Runtime, *, after: str, **kwargs: object) -> str:
    with runtime.sessions() as session:
        instance_id, group_id = factory.base_rows(session, emails=["desk@example.com"])
        row = factory.schedule(session, instance_id=instance_id, group_id=group_id, after=at(after), **kwargs)  # type: ignore[arg-type]
        session.commit()
        return row.id


def state(runtime: Runtime, schedule_id: str) -> CouponSchedule:
    with runtime.sessions() as session:
        row = session.get(CouponSchedule, schedule_id)
        assert row is not None
        return row


def drive(runtime: Runtime, schedule_id: str, steps: int) -> list[datetime]:
    """Run the schedule `steps` times, each time one second after its slot; return the slots run."""
    slots = []
    for _ in range(steps):
        slot = state(runtime, schedule_id).next_run_at
        assert slot is not None
        outcomes = jobs.run_due(runtime=runtime, now=slot + timedelta(seconds=1))
        assert [o.slot_at for o in outcomes] == [slot]
        slots.append(slot)
    return slots


@pytest.mark.parametrize(
    ("zone", "time_of_day", "after", "expected"),
    [
        # Sydney: DST starts 2026-10-04 02:00 AEST -> 03:00 AEDT; 08:00 local moves from 22:00Z to 21:00Z.
        (
            "Australia/Sydney",
            "08:00",
            "2026-10-02T12:00:00Z",
            ["2026-10-02T22:00:00Z", "2026-10-03T21:00:00Z", "2026-10-04T21:00:00Z"],
        ),
        # Sydney: DST ends 2027-04-04 03:00 AEDT -> 02:00 AEST; 02:30 exists twice: the first one runs.
        (
            "Australia/Sydney",
            "02:30",
            "2027-04-02T12:00:00Z",
            ["2027-04-02T15:30:00Z", "2027-04-03T15:30:00Z", "2027-04-04T16:30:00Z"],
        ),
        # New York: 2026-03-08 02:30 does not exist; it runs at 03:00 EDT, the first valid instant.
        (
            "America/New_York",
            "02:30",
            "2026-03-06T12:00:00Z",
            ["2026-03-07T07:30:00Z", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        ),
        # London: 2026-10-25 01:30 happens twice (BST then GMT): once, at the first.
        (
            "Europe/London",
            "01:30",
            "2026-10-23T12:00:00Z",
            ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        ),
    ],
)
def test_daily_runs_across_dst_changes(
    runtime: Runtime, zone: str, time_of_day: str, after: str, expected: list[str]
) -> None:
    schedule_id = make(runtime, after=after, timezone=zone, time_of_day=time_of_day)
    assert drive(runtime, schedule_id, 3) == [at(e) for e in expected]


def test_monthly_31st_runs_on_the_last_day_of_short_months_and_leap_february(runtime: Runtime) -> None:
    schedule_id = make(
        runtime, after="2028-01-15T00:00:00Z", recurrence_type="monthly", day_of_month=31, time_of_day="09:00"
    )
    slots = drive(runtime, schedule_id, 4)
    assert slots == [
        at("2028-01-31T09:00:00Z"),
        at("2028-02-29T09:00:00Z"),
        at("2028-03-31T09:00:00Z"),
        at("2028-04-30T09:00:00Z"),
    ]


def test_weekly_sunday_is_day_zero(runtime: Runtime) -> None:
    schedule_id = make(
        runtime,
        after="2026-11-25T00:00:00Z",
        recurrence_type="weekly",
        day_of_week=0,
        time_of_day="07:15",
        timezone="America/New_York",
    )
    slots = drive(runtime, schedule_id, 2)
    assert slots == [at("2026-11-29T12:15:00Z"), at("2026-12-06T12:15:00Z")]


def test_a_run_generates_the_batch_stamps_and_enqueues_delivery(runtime: Runtime) -> None:
    schedule_id = make(runtime, after="2026-11-25T00:00:00Z", count=7, valid_for_in_minutes=90)
    now = at("2026-11-25T08:00:05Z")
    [outcome] = jobs.run_due(runtime=runtime, now=now)
    with runtime.sessions() as session:
        run = session.get(ScheduleRun, outcome.run_id)
        assert run is not None and run.slot_at == at("2026-11-25T08:00:00Z") and run.count == 7
        coupons = list(session.scalars(select(Coupon).where(Coupon.run_id == run.id)))
        assert len(coupons) == 7
        assert {c.expires_at for c in coupons} == {now + timedelta(minutes=90)}
        assert all(c.schedule_id == schedule_id for c in coupons)
        deliveries = list(session.scalars(select(Delivery).where(Delivery.run_id == run.id)))
        assert [(d.channel, d.target, d.status) for d in deliveries] == [
            ("email", "desk@example.com", "pending")
        ]
    row = state(runtime, schedule_id)
    assert row.last_run_at == now and row.last_run_id == outcome.run_id
    assert row.next_run_at == at("2026-11-26T08:00:00Z")


def test_running_twice_at_the_same_now_changes_nothing(runtime: Runtime) -> None:
    make(runtime, after="2026-11-25T00:00:00Z")
    now = at("2026-11-25T09:00:00Z")
    assert len(jobs.run_due(runtime=runtime, now=now)) == 1
    assert jobs.run_due(runtime=runtime, now=now) == []
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ScheduleRun)) == 1


def test_not_due_yet_does_nothing(runtime: Runtime) -> None:
    make(runtime, after="2026-11-25T00:00:00Z")
    assert jobs.run_due(runtime=runtime, now=at("2026-11-25T07:59:59Z")) == []


def test_missed_slots_are_coalesced_into_one_catch_up_run(runtime: Runtime) -> None:
    schedule_id = make(runtime, after="2026-11-19T12:00:00Z")  # first slot 2026-11-20 08:00Z
    now = at("2026-11-25T12:00:00Z")  # five daily slots missed while nothing ran
    [outcome] = jobs.run_due(runtime=runtime, now=now)
    assert outcome.caught_up and outcome.slot_at == at("2026-11-20T08:00:00Z")
    assert state(runtime, schedule_id).next_run_at == at("2026-11-26T08:00:00Z")
    assert jobs.run_due(runtime=runtime, now=now) == []


def test_many_due_schedules_all_run_across_claim_batches(runtime: Runtime) -> None:
    for _ in range(7):
        make(runtime, after="2026-11-25T00:00:00Z", count=2)
    outcomes = jobs.run_due(runtime=runtime, now=at("2026-11-25T08:30:00Z"), claim_batch=3)
    assert len(outcomes) == 7 and len({o.schedule_id for o in outcomes}) == 7


def test_run_now_generates_without_moving_next_run_at(runtime: Runtime) -> None:
    schedule_id = make(runtime, after="2026-11-25T00:00:00Z", count=4)
    before = state(runtime, schedule_id)
    now = at("2026-11-25T03:00:00Z")
    with runtime.sessions() as session:
        view = jobs.run_now(
            schedule_id, instance_id=before.instance_id, org_id=factory.ORG, now=now, session=session
        )
    assert view.schedule.next_run_at == before.next_run_at
    assert view.schedule.last_run_at == now
    assert (view.counters.generated, view.counters.used, view.counters.available) == (4, 0, 4)
    with runtime.sessions() as session:
        runs = list(session.scalars(select(ScheduleRun)))
        assert [(r.kind, r.slot_at) for r in runs] == [("manual", None)]


def test_purge_removes_only_long_expired_unredeemed_coupons(runtime: Runtime) -> None:
    now = at("2026-11-25T00:00:00Z")
    with runtime.sessions() as session:
        instance_id, _ = factory.base_rows(session)
        old = now - timedelta(days=31)
        rows = [
            Coupon(org_id=factory.ORG, instance_id=instance_id, code="AAAAAA", expires_at=old),
            Coupon(
                org_id=factory.ORG, instance_id=instance_id, code="BBBBBB", expires_at=old, redeemed_at=old
            ),
            Coupon(
                org_id=factory.ORG,
                instance_id=instance_id,
                code="CCCCCC",
                expires_at=now - timedelta(days=29),
            ),
            Coupon(
                org_id=factory.ORG, instance_id=instance_id, code="DDDDDD", expires_at=now + timedelta(days=1)
            ),
        ]
        session.add_all(rows)
        session.commit()
        assert coupon_jobs.purge_expired(now=now, retention_days=30, session=session, batch=1) == 1
        assert sorted(session.scalars(select(Coupon.code))) == ["BBBBBB", "CCCCCC", "DDDDDD"]
        assert coupon_jobs.purge_expired(now=now, retention_days=30, session=session) == 0


def test_run_now_endpoint_returns_the_schedule_with_counters(
    client: TestClient, runtime: Runtime, auth: TokenFactory
) -> None:
    schedule_id = make(runtime, after="2026-11-25T00:00:00Z", count=3)
    row = state(runtime, schedule_id)
    url = f"/captive/instances/{row.instance_id}/coupon-schedules/{schedule_id}/run"
    response = client.post(url, headers=auth(org=factory.ORG, scopes=(SCOPE_ISSUE,)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == schedule_id and body["last_run_at"] is not None
    assert (
        body["tokens_generated_since_last_run"],
        body["tokens_used_since_last_run"],
        body["tokens_available_since_last_run"],
    ) == (3, 0, 3)
    assert body["next_run_at"] == "2026-11-25T08:00:00Z"
    listed = client.get(f"/captive/instances/{row.instance_id}/coupons", headers=auth(org=factory.ORG))
    assert len(listed.json()) == 3


def test_run_now_needs_write_or_issue_scope_and_own_org(
    client: TestClient, runtime: Runtime, auth: TokenFactory
) -> None:
    schedule_id = make(runtime, after="2026-11-25T00:00:00Z")
    row = state(runtime, schedule_id)
    url = f"/captive/instances/{row.instance_id}/coupon-schedules/{schedule_id}/run"
    assert client.post(url, headers=auth(org=factory.ORG, scopes=(SCOPE_READ,))).status_code == 403
    assert client.post(url, headers=auth(org="org-b")).status_code == 404
    assert client.post(url).status_code == 401
