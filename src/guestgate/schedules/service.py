"""Coupon schedules: CRUD, `next_run_at`, the counters of the last run, their public links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from guestgate.audit import service as audit_service
from guestgate.coupon_links import signing
from guestgate.coupons import batches
from guestgate.coupons.batches import Counters
from guestgate.db import utcnow
from guestgate.errors import ParameterMissing, ReferenceMissing
from guestgate.instances import service as instance_service
from guestgate.instances.models import Instance
from guestgate.notifications.models import Delivery, NotificationGroup
from guestgate.orgs import service as org_service
from guestgate.pagination import Page, PageRequest, fetch_page
from guestgate.plans import service as plan_service
from guestgate.plans.schemas import PlanOut
from guestgate.schedules import recurrence
from guestgate.schedules.models import CouponSchedule, ScheduleRun
from guestgate.schedules.schemas import DEFAULT_TIME_OF_DAY, CouponScheduleCreate
from guestgate.schedules.schemas import CouponSchedule as CouponScheduleOut
from guestgate.security import UrlSigner
from guestgate.tenancy import find_owned, get_owned

# The fields `next_run_at` is computed from; a PUT that changes none of them keeps it.
RULE_FIELDS = ("recurrence_type", "day_of_week", "day_of_month", "time_of_day", "timezone")
# The columns an update's audit event names when they change.
AUDITED_FIELDS = (
    "name",
    "count",
    *RULE_FIELDS,
    "valid_for_in_minutes",
    "notification_group_id",
    "plan",
)


@dataclass(frozen=True)
class ScheduleView:
    """A schedule with the counters of its last run."""

    schedule: CouponSchedule
    counters: Counters
    # The instance's plan with the schedule's overrides (None: not loaded).
    plan: plan_service.Plan | None = None


def get(schedule_id: str, *, instance_id: str, org_id: str, session: Session) -> CouponSchedule:
    """The schedule of the org's instance, or NotFound (for the instance or the schedule)."""
    instance = instance_service.get(instance_id, org_id=org_id, session=session)
    return get_owned(
        session, CouponSchedule, schedule_id, org_id, resource="coupon schedule", instance_id=instance.id
    )


def view(
    schedule_id: str, *, instance_id: str, org_id: str, session: Session, now: datetime | None = None
) -> ScheduleView:
    """The schedule with its counters."""
    schedule = get(schedule_id, instance_id=instance_id, org_id=org_id, session=session)
    return _views([schedule], session=session, now=now or utcnow())[0]


def list_schedules(
    instance_id: str, *, org_id: str, page: PageRequest, session: Session, now: datetime | None = None
) -> Page[ScheduleView]:
    """The instance's schedules, newest first, with their counters."""
    instance = instance_service.get(instance_id, org_id=org_id, session=session)
    stmt = select(CouponSchedule).where(CouponSchedule.instance_id == instance.id)
    result = fetch_page(session, stmt, page, CouponSchedule.created_at, CouponSchedule.id)
    return Page(_views(result.items, session=session, now=now or utcnow()), result.next_cursor)


def create(
    instance_id: str,
    data: CouponScheduleCreate,
    *,
    org_id: str,
    session: Session,
    now: datetime | None = None,
) -> ScheduleView:
    """Create a schedule on the org's instance; its first run is the next slot after now."""
    moment = now or utcnow()
    org_service.ensure(org_id, session=session)
    instance = instance_service.get(instance_id, org_id=org_id, session=session)
    _check_group(data.notification_group_id, org_id=org_id, session=session)
    day_of_week, day_of_month = applicable_days(data)
    overrides = _checked_overrides(data, instance=instance)
    schedule = CouponSchedule(
        org_id=org_id,
        instance_id=instance.id,
        name=data.name,
        count=data.count,
        recurrence_type=data.recurrence_type,
        day_of_week=day_of_week,
        day_of_month=day_of_month,
        time_of_day=data.time_of_day,
        valid_for_in_minutes=data.valid_for_in_minutes,
        timezone=data.timezone,
        notification_group_id=data.notification_group_id,
        created_at=moment,
        plan=overrides or None,
    )
    schedule.next_run_at = next_slot(schedule, after=moment)
    session.add(schedule)
    session.flush()
    audit_service.record(
        session,
        org_id=org_id,
        action="coupon_schedule.create",
        target_type="coupon_schedule",
        target_id=schedule.id,
        detail={"name": schedule.name, "instance_id": instance.id, "count": schedule.count},
    )
    session.commit()
    return ScheduleView(schedule, Counters(), plan_service.effective(instance, schedule.plan))


def replace(
    schedule_id: str,
    data: CouponScheduleCreate,
    *,
    instance_id: str,
    org_id: str,
    session: Session,
    now: datetime | None = None,
) -> ScheduleView:
    """Replace a schedule; `next_run_at` moves only if the recurrence, day, time or zone changed.

    `time_of_day` is our extension: a client that does not know it (and so omits it) keeps the
    stored time rather than resetting it to midnight.
    """
    moment = now or utcnow()
    schedule = get(schedule_id, instance_id=instance_id, org_id=org_id, session=session)
    _check_group(data.notification_group_id, org_id=org_id, session=session)
    day_of_week, day_of_month = applicable_days(data)
    if "plan" in data.model_fields_set:
        instance = instance_service.get(instance_id, org_id=org_id, session=session)
        overrides = _checked_overrides(data, instance=instance)
    before = tuple(getattr(schedule, name) for name in RULE_FIELDS)
    audited = audit_service.snapshot(schedule, AUDITED_FIELDS)
    schedule.name = data.name
    schedule.count = data.count
    schedule.recurrence_type = data.recurrence_type
    schedule.day_of_week = day_of_week
    schedule.day_of_month = day_of_month
    if "time_of_day" in data.model_fields_set:
        schedule.time_of_day = data.time_of_day
    schedule.valid_for_in_minutes = data.valid_for_in_minutes
    schedule.timezone = data.timezone
    schedule.notification_group_id = data.notification_group_id
    if "plan" in data.model_fields_set:
        schedule.plan = overrides or None
    if schedule.next_run_at is None or tuple(getattr(schedule, name) for name in RULE_FIELDS) != before:
        schedule.next_run_at = next_slot(schedule, after=moment)
    audit_service.record(
        session,
        org_id=org_id,
        action="coupon_schedule.update",
        target_type="coupon_schedule",
        target_id=schedule.id,
        detail={"name": schedule.name, "changed": audit_service.changed(audited, schedule, AUDITED_FIELDS)},
    )
    session.commit()
    return _views([schedule], session=session, now=moment)[0]


def delete(schedule_id: str, *, instance_id: str, org_id: str, session: Session) -> None:
    """Delete a schedule; its coupons and runs stay (their `schedule_id` becomes null)."""
    schedule = get(schedule_id, instance_id=instance_id, org_id=org_id, session=session)
    audit_service.record(
        session,
        org_id=org_id,
        action="coupon_schedule.delete",
        target_type="coupon_schedule",
        target_id=schedule.id,
        detail={"name": schedule.name, "instance_id": schedule.instance_id},
    )
    session.delete(schedule)
    session.commit()


def link(
    schedule: CouponSchedule, *, signer: UrlSigner, public_url: str, now: datetime
) -> signing.SignedLink:
    """A fresh signed link of the schedule's valid coupons (never one a revocation already refuses)."""
    return signing.schedule_link(
        schedule.id, signer=signer, public_url=public_url, now=now, revoked_at=schedule.urls_revoked_at
    )


def revoke_urls(
    schedule_id: str, *, instance_id: str, org_id: str, now: datetime, session: Session
) -> datetime:
    """Refuse every public link of the schedule, and of its batches, signed up to now; audited."""
    schedule = get(schedule_id, instance_id=instance_id, org_id=org_id, session=session)
    schedule.urls_revoked_at = now
    audit_service.record(
        session,
        org_id=org_id,
        action="coupon_schedule.revoke_urls",
        target_type="coupon_schedule",
        target_id=schedule.id,
        detail={"name": schedule.name, "instance_id": schedule.instance_id},
    )
    session.commit()
    return now


def applicable_days(data: CouponScheduleCreate) -> tuple[int | None, int | None]:
    """`(day_of_week, day_of_month)` as stored: the one the recurrence needs, the other null."""
    if data.recurrence_type == "weekly":
        if data.day_of_week is None:
            raise ParameterMissing("day_of_week")
        return data.day_of_week, None
    if data.recurrence_type == "monthly":
        if data.day_of_month is None:
            raise ParameterMissing("day_of_month")
        return None, data.day_of_month
    return None, None


def next_slot(schedule: CouponSchedule, *, after: datetime) -> datetime:
    """The schedule's first slot strictly after `after`."""
    return recurrence.next_run_at(
        recurrence_type=schedule.recurrence_type,
        day_of_week=schedule.day_of_week,
        day_of_month=schedule.day_of_month,
        time_of_day=schedule.time_of_day or DEFAULT_TIME_OF_DAY,
        timezone=schedule.timezone,
        after=after,
    )


def next_slots(schedule: CouponSchedule, *, after: datetime, count: int = 5) -> list[datetime]:
    """The schedule's first `count` slots strictly after `after` (UTC), oldest first."""
    rule = recurrence.Rule.of(
        recurrence_type=schedule.recurrence_type,
        day_of_week=schedule.day_of_week,
        day_of_month=schedule.day_of_month,
        time_of_day=schedule.time_of_day or DEFAULT_TIME_OF_DAY,
        timezone=schedule.timezone,
    )
    slots = rule.slots_after(after)
    return [next(slots) for _ in range(count)]


def list_deliveries(
    schedule_id: str, *, instance_id: str, org_id: str, page: PageRequest, session: Session
) -> Page[Delivery]:
    """The deliveries of the schedule's batches (every attempt state), newest first."""
    schedule = get(schedule_id, instance_id=instance_id, org_id=org_id, session=session)
    stmt = (
        select(Delivery)
        .join(ScheduleRun, ScheduleRun.id == Delivery.run_id)
        .where(ScheduleRun.schedule_id == schedule.id)
    )
    return fetch_page(session, stmt, page, Delivery.created_at, Delivery.id)


def to_out(item: ScheduleView) -> CouponScheduleOut:
    """The API representation of a schedule."""
    schedule, counts = item.schedule, item.counters
    return CouponScheduleOut(
        id=schedule.id,
        name=schedule.name,
        instance_id=schedule.instance_id,
        count=schedule.count,
        recurrence_type=schedule.recurrence_type,
        day_of_week=schedule.day_of_week,
        day_of_month=schedule.day_of_month,
        valid_for_in_minutes=schedule.valid_for_in_minutes,
        timezone=schedule.timezone,
        notification_group_id=schedule.notification_group_id,
        time_of_day=schedule.time_of_day,
        last_run_at=schedule.last_run_at,
        next_run_at=schedule.next_run_at,
        tokens_used_since_last_run=counts.used,
        tokens_generated_since_last_run=counts.generated,
        tokens_available_since_last_run=counts.available,
        created_at=schedule.created_at,
        plan=dict(schedule.plan or {}),
        effective_plan=None if item.plan is None else PlanOut.of(item.plan),
    )


def _views(schedules: list[CouponSchedule], *, session: Session, now: datetime) -> list[ScheduleView]:
    run_ids = [s.last_run_id for s in schedules if s.last_run_id is not None]
    by_run = batches.counters(run_ids, session=session, now=now)
    # One instance for a page of schedules (they are listed per instance): the identity map's.
    instances = {s.instance_id: session.get(Instance, s.instance_id) for s in schedules}
    return [
        ScheduleView(
            s,
            by_run.get(s.last_run_id, Counters()) if s.last_run_id else Counters(),
            _effective(instances.get(s.instance_id), s),
        )
        for s in schedules
    ]


def _effective(instance: Instance | None, schedule: CouponSchedule) -> plan_service.Plan | None:
    return None if instance is None else plan_service.effective(instance, schedule.plan)


def _checked_overrides(data: CouponScheduleCreate, *, instance: Instance) -> dict[str, Any]:
    """The request's plan overrides, once the plan they make with the instance's holds together."""
    overrides = data.plan.given() if data.plan is not None else {}
    plan_service.check(plan_service.effective(instance, overrides), prefix="plan.")
    return overrides


def _check_group(group_id: str, *, org_id: str, session: Session) -> None:
    if find_owned(session, NotificationGroup, group_id, org_id) is None:
        raise ReferenceMissing("notification_group_id", group_id)
