"""The schedules service: create/replace rules, `next_run_at`, counters, deletion, the public list."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from guestgate.coupon_links import service as link_service
from guestgate.coupon_links.signing import URL_TTL_SECONDS, LinkScope
from guestgate.coupons.models import Coupon
from guestgate.errors import NotFound, ParameterMissing, ReferenceMissing
from guestgate.pagination import PageRequest
from guestgate.runtime import Runtime
from guestgate.schedules import service
from guestgate.schedules.models import CouponSchedule, ScheduleRun
from guestgate.schedules.schemas import CouponScheduleCreate
from tests.schedules import UNKNOWN_ID, add_run, make_group, make_instance, seed_body, utc

NOW = utc(2025, 6, 1)  # a Sunday; 10:00 in Sydney (AEST), 20:00 on Saturday in New York


def data(group_id: str, **overrides: object) -> CouponScheduleCreate:
    return CouponScheduleCreate.model_validate(seed_body(group_id, **overrides))


@pytest.fixture
def session(runtime: Runtime) -> Iterator[Session]:
    with runtime.sessions() as db:
        yield db


@pytest.fixture
def instance_id(runtime: Runtime) -> str:
    return make_instance(runtime)


@pytest.fixture
def group_id(runtime: Runtime) -> str:
    return make_group(runtime)


def create(
    session: Session, instance_id: str, group_id: str, now: datetime = NOW, **overrides: object
) -> str:
    item = service.create(instance_id, data(group_id, **overrides), org_id="org-a", session=session, now=now)
    return item.schedule.id


def reload(session: Session, schedule_id: str) -> CouponSchedule:
    session.expire_all()
    schedule = session.get(CouponSchedule, schedule_id)
    assert schedule is not None
    return schedule


# --- create -----------------------------------------------------------------------------------


def test_create_computes_next_run_at_from_now(session: Session, instance_id: str, group_id: str) -> None:
    item = service.create(
        instance_id, data(group_id, time_of_day="08:00"), org_id="org-a", session=session, now=NOW
    )
    assert item.schedule.next_run_at == utc(2025, 6, 1, 22)  # 08:00 AEST on Monday 2 June
    assert item.schedule.created_at == NOW
    assert item.schedule.last_run_at is None
    assert item.counters == service.Counters(0, 0, 0)
    stored = reload(session, item.schedule.id)
    assert (stored.org_id, stored.instance_id, stored.time_of_day) == ("org-a", instance_id, "08:00")
    assert stored.next_run_at == utc(2025, 6, 1, 22)


def test_create_without_time_of_day_runs_at_local_midnight(
    session: Session, instance_id: str, group_id: str
) -> None:
    schedule = reload(session, create(session, instance_id, group_id))
    assert schedule.time_of_day == "00:00"
    assert schedule.next_run_at == utc(2025, 6, 1, 14)  # 00:00 AEST on Monday 2 June


@pytest.mark.parametrize(
    ("overrides", "days", "next_run"),
    [
        ({"recurrence_type": "daily"}, (None, None), utc(2025, 6, 1, 14)),
        ({"recurrence_type": "weekly", "day_of_week": 3}, (3, None), utc(2025, 6, 3, 14)),
        ({"recurrence_type": "monthly", "day_of_month": 15}, (None, 15), utc(2025, 6, 14, 14)),
    ],
)
def test_create_stores_only_the_day_field_the_recurrence_uses(
    session: Session,
    instance_id: str,
    group_id: str,
    overrides: dict[str, Any],
    days: tuple[int | None, int | None],
    next_run: datetime,
) -> None:
    schedule_id = create(
        session, instance_id, group_id, **{"day_of_week": 1, "day_of_month": 15, **overrides}
    )
    schedule = reload(session, schedule_id)
    assert (schedule.day_of_week, schedule.day_of_month) == days
    assert schedule.next_run_at == next_run


@pytest.mark.parametrize(("kind", "field"), [("weekly", "day_of_week"), ("monthly", "day_of_month")])
def test_create_without_the_needed_day_is_parameter_missing(
    session: Session, instance_id: str, group_id: str, kind: str, field: str
) -> None:
    overrides: dict[str, Any] = {"recurrence_type": kind, "day_of_week": None, "day_of_month": None}
    with pytest.raises(ParameterMissing) as caught:
        create(session, instance_id, group_id, **overrides)
    assert caught.value.message == f"The '{field}' parameter is required for this request."
    session.rollback()
    assert session.scalar(select(CouponSchedule.id)) is None


def test_create_with_unknown_group_is_reference_missing(session: Session, instance_id: str) -> None:
    with pytest.raises(ReferenceMissing) as caught:
        create(session, instance_id, "ng_000000000000")
    assert caught.value.message == (
        "The 'notification_group_id' parameter refers to 'ng_000000000000', which does not exist."
    )


def test_create_with_another_orgs_group_is_reference_missing(
    runtime: Runtime, session: Session, instance_id: str
) -> None:
    foreign = make_group(runtime, org="org-b")
    with pytest.raises(ReferenceMissing):
        create(session, instance_id, foreign)


def test_create_on_another_orgs_instance_is_not_found(runtime: Runtime, session: Session) -> None:
    foreign_instance = make_instance(runtime, org="org-b")
    group = make_group(runtime, org="org-a")
    with pytest.raises(NotFound):
        create(session, foreign_instance, group)
    with pytest.raises(NotFound):
        create(session, UNKNOWN_ID, group)


# --- replace ----------------------------------------------------------------------------------


def replace(
    session: Session, schedule_id: str, instance_id: str, body: dict[str, Any], now: datetime
) -> CouponSchedule:
    item = service.replace(
        schedule_id,
        CouponScheduleCreate.model_validate(body),
        instance_id=instance_id,
        org_id="org-a",
        session=session,
        now=now,
    )
    return item.schedule


def test_replace_changing_only_name_count_validity_or_group_keeps_next_run_at(
    runtime: Runtime, session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id, time_of_day="08:00")
    other_group = make_group(runtime)
    later = NOW + timedelta(days=3)  # recomputing now would give a later slot
    body = seed_body(
        other_group, name="Renamed", count=500, valid_for_in_minutes=60, time_of_day="08:00", day_of_week=4
    )
    replace(session, schedule_id, instance_id, body, later)
    stored = reload(session, schedule_id)
    assert stored.next_run_at == utc(2025, 6, 1, 22)
    assert (stored.name, stored.count, stored.valid_for_in_minutes) == ("Renamed", 500, 60)
    assert stored.notification_group_id == other_group
    assert stored.day_of_week is None  # not used by a daily schedule


@pytest.mark.parametrize(
    ("overrides", "next_run"),
    [
        # Each starts from: daily 08:00 Australia/Sydney, now 2025-06-01T00:00Z (10:00 AEST).
        ({"time_of_day": "18:00"}, utc(2025, 6, 1, 8)),
        ({"timezone": "America/New_York"}, utc(2025, 6, 1, 12)),
        ({"timezone": "Europe/London"}, utc(2025, 6, 1, 7)),
        ({"recurrence_type": "weekly", "day_of_week": 0}, utc(2025, 6, 7, 22)),
        ({"recurrence_type": "weekly", "day_of_week": 6}, utc(2025, 6, 6, 22)),
        ({"recurrence_type": "monthly", "day_of_month": 31}, utc(2025, 6, 29, 22)),
        ({"recurrence_type": "monthly", "day_of_month": 1}, utc(2025, 6, 30, 22)),
    ],
)
def test_replace_changing_the_rule_moves_next_run_at(
    session: Session,
    instance_id: str,
    group_id: str,
    overrides: dict[str, Any],
    next_run: datetime,
) -> None:
    schedule_id = create(session, instance_id, group_id, time_of_day="08:00")
    body = seed_body(group_id, **{"time_of_day": "08:00", **overrides})
    assert replace(session, schedule_id, instance_id, body, NOW).next_run_at == next_run
    assert reload(session, schedule_id).next_run_at == next_run


def test_replace_changing_the_day_of_a_weekly_schedule_moves_next_run_at(
    session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id, recurrence_type="weekly", day_of_week=1)
    assert reload(session, schedule_id).next_run_at == utc(2025, 6, 1, 14)  # Monday 00:00 AEST
    body = seed_body(group_id, recurrence_type="weekly", day_of_week=5)
    assert replace(session, schedule_id, instance_id, body, NOW).next_run_at == utc(2025, 6, 5, 14)


def test_replace_computes_from_the_time_of_the_change(
    session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id)
    later = utc(2025, 7, 10, 3)  # 13:00 AEST on 10 July
    body = seed_body(group_id, time_of_day="12:00")
    assert replace(session, schedule_id, instance_id, body, later).next_run_at == utc(2025, 7, 11, 2)


def test_replace_without_time_of_day_keeps_the_stored_time(
    session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id, time_of_day="08:00")
    body = seed_body(group_id, name="Only the name")
    replace(session, schedule_id, instance_id, body, NOW + timedelta(days=2))
    stored = reload(session, schedule_id)
    assert stored.time_of_day == "08:00"
    assert stored.next_run_at == utc(2025, 6, 1, 22)


def test_replace_recomputes_a_missing_next_run_at(session: Session, instance_id: str, group_id: str) -> None:
    schedule_id = create(session, instance_id, group_id)
    reload(session, schedule_id).next_run_at = None
    session.commit()
    assert replace(session, schedule_id, instance_id, seed_body(group_id), NOW).next_run_at == utc(
        2025, 6, 1, 14
    )


def test_replace_weekly_without_day_is_parameter_missing_and_changes_nothing(
    session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id)
    with pytest.raises(ParameterMissing):
        replace(
            session,
            schedule_id,
            instance_id,
            seed_body(group_id, recurrence_type="weekly", day_of_week=None),
            NOW,
        )
    session.rollback()
    assert reload(session, schedule_id).recurrence_type == "daily"


def test_replace_with_unknown_group_is_reference_missing(
    session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id)
    with pytest.raises(ReferenceMissing):
        replace(session, schedule_id, instance_id, seed_body("ng_ffffffffffff"), NOW)


# --- get / list / tenancy ---------------------------------------------------------------------


def test_get_a_schedule_through_another_instance_is_not_found(
    runtime: Runtime, session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id)
    sibling = make_instance(runtime)
    with pytest.raises(NotFound):
        service.get(schedule_id, instance_id=sibling, org_id="org-a", session=session)
    with pytest.raises(NotFound):
        service.get(schedule_id, instance_id=instance_id, org_id="org-b", session=session)
    with pytest.raises(NotFound):
        service.get(UNKNOWN_ID, instance_id=instance_id, org_id="org-a", session=session)
    assert (
        service.get(schedule_id, instance_id=instance_id, org_id="org-a", session=session).id == schedule_id
    )


def test_list_is_newest_first_paged_and_limited_to_the_instance(
    runtime: Runtime, session: Session, instance_id: str, group_id: str
) -> None:
    ids = [create(session, instance_id, group_id, now=NOW + timedelta(minutes=i)) for i in range(3)]
    create(session, make_instance(runtime), group_id)
    first = service.list_schedules(instance_id, org_id="org-a", page=PageRequest(limit=2), session=session)
    assert [item.schedule.id for item in first.items] == [ids[2], ids[1]]
    assert first.next_cursor is not None
    second = service.list_schedules(
        instance_id, org_id="org-a", page=PageRequest.parse(2, first.next_cursor), session=session
    )
    assert [item.schedule.id for item in second.items] == [ids[0]]
    assert second.next_cursor is None


def test_list_of_another_orgs_instance_is_not_found(runtime: Runtime, session: Session) -> None:
    foreign = make_instance(runtime, org="org-b")
    with pytest.raises(NotFound):
        service.list_schedules(foreign, org_id="org-a", page=PageRequest(), session=session)


# --- counters ---------------------------------------------------------------------------------


def test_counters_are_zero_before_the_first_run(session: Session, instance_id: str, group_id: str) -> None:
    schedule_id = create(session, instance_id, group_id)
    item = service.view(schedule_id, instance_id=instance_id, org_id="org-a", session=session, now=NOW)
    assert item.counters == service.Counters(generated=0, used=0, available=0)


def test_counters_describe_only_the_last_run(
    runtime: Runtime, session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id)
    add_run(runtime, schedule_id, ran_at=NOW - timedelta(days=1), valid=7, redeemed=1)
    add_run(runtime, schedule_id, ran_at=NOW - timedelta(hours=1), valid=3, redeemed=2, expired=4)
    item = service.view(schedule_id, instance_id=instance_id, org_id="org-a", session=session, now=NOW)
    assert item.counters == service.Counters(generated=9, used=2, available=3)
    assert item.schedule.last_run_at == NOW - timedelta(hours=1)


def test_counters_count_coupons_that_expire_later_as_unavailable(
    runtime: Runtime, session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id)
    add_run(runtime, schedule_id, ran_at=NOW, valid=5, redeemed=1)
    after_expiry = NOW + timedelta(days=1)  # the valid ones expire one day after the run
    item = service.view(
        schedule_id, instance_id=instance_id, org_id="org-a", session=session, now=after_expiry
    )
    assert item.counters == service.Counters(generated=6, used=1, available=0)


def test_counters_of_a_run_with_no_coupons_left_use_the_recorded_count(
    runtime: Runtime, session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id)
    run_id = add_run(runtime, schedule_id, ran_at=NOW, valid=4)
    for coupon in session.scalars(select(Coupon).where(Coupon.run_id == run_id)):
        session.delete(coupon)
    session.commit()
    item = service.view(schedule_id, instance_id=instance_id, org_id="org-a", session=session, now=NOW)
    assert item.counters == service.Counters(generated=4, used=0, available=0)


@contextmanager
def counted_selects(runtime: Runtime) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)


def test_list_computes_the_counters_of_a_page_in_one_query(
    runtime: Runtime, session: Session, instance_id: str, group_id: str
) -> None:
    def list_selects() -> int:
        session.expire_all()
        with counted_selects(runtime) as statements:
            service.list_schedules(instance_id, org_id="org-a", page=PageRequest(), session=session, now=NOW)
        return len(statements)

    one = create(session, instance_id, group_id)
    add_run(runtime, one, ran_at=NOW, valid=1)
    with_one = list_selects()
    for i in range(5):
        schedule_id = create(session, instance_id, group_id, now=NOW + timedelta(minutes=i + 1))
        add_run(runtime, schedule_id, ran_at=NOW, valid=i + 1, redeemed=1)
    assert list_selects() == with_one == 3  # the instance, the page, the counters

    items = service.list_schedules(
        instance_id, org_id="org-a", page=PageRequest(), session=session, now=NOW
    ).items
    assert [item.counters.generated for item in items] == [6, 5, 4, 3, 2, 1]
    assert [item.counters.available for item in items] == [5, 4, 3, 2, 1, 1]
    assert {item.counters.used for item in items[:-1]} == {1}


# --- delete and the public list ---------------------------------------------------------------


def test_delete_keeps_generated_coupons_and_runs(
    runtime: Runtime, session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id)
    run_id = add_run(runtime, schedule_id, ran_at=NOW, valid=3)
    service.delete(schedule_id, instance_id=instance_id, org_id="org-a", session=session)
    session.expire_all()
    assert session.get(CouponSchedule, schedule_id) is None
    coupons = list(session.scalars(select(Coupon).where(Coupon.run_id == run_id)))
    assert len(coupons) == 3
    assert all(c.schedule_id is None and c.redeemed_at is None and c.expires_at > NOW for c in coupons)
    run = session.get(ScheduleRun, run_id)
    assert run is not None
    assert run.schedule_id is None


def test_delete_of_another_orgs_schedule_is_not_found_and_keeps_it(
    session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id)
    with pytest.raises(NotFound):
        service.delete(schedule_id, instance_id=instance_id, org_id="org-b", session=session)
    assert reload(session, schedule_id).id == schedule_id


def _signed_now(schedule_id: str) -> LinkScope:
    return LinkScope("schedule", schedule_id, int(NOW.timestamp()) + URL_TTL_SECONDS)


def test_schedule_link_lists_unredeemed_unexpired_coupons_of_its_runs_newest_first(
    runtime: Runtime, session: Session, instance_id: str, group_id: str
) -> None:
    schedule_id = create(session, instance_id, group_id)
    other_id = create(session, instance_id, group_id)
    add_run(runtime, schedule_id, ran_at=NOW - timedelta(hours=2), valid=2, redeemed=1, expired=1)
    add_run(runtime, schedule_id, ran_at=NOW - timedelta(hours=1), valid=2, redeemed=1)
    add_run(runtime, other_id, ran_at=NOW, valid=5)
    contents = link_service.open_link(_signed_now(schedule_id), page=PageRequest(), now=NOW, session=session)
    coupons = contents.page.items
    assert len(coupons) == 4
    assert all(c.schedule_id == schedule_id and c.redeemed_at is None and c.expires_at > NOW for c in coupons)
    stamps = [c.created_at for c in coupons]
    assert stamps == sorted(stamps, reverse=True)


def test_schedule_link_of_a_deleted_schedule_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound):
        link_service.open_link(_signed_now(UNKNOWN_ID), page=PageRequest(), now=NOW, session=session)
