"""Console pages of coupon schedules: list, create/edit with the next five runs, run now, deliveries.

Changes go through `schedules.service` with the API's `CouponScheduleCreate`; the next runs are
the service's slots (`schedules.recurrence`), shown in the schedule's own time zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from guestgate import local_time
from guestgate.console.web import (
    PREFIX,
    ConsoleRoute,
    FormDep,
    Reader,
    Writer,
    field_errors,
    optional,
    page_request,
    parse_model,
    redirect,
    render,
)
from guestgate.db import utcnow
from guestgate.deps import SessionDep
from guestgate.errors import GuestgateError, ParameterMissing, kind_of
from guestgate.instances import service as instance_service
from guestgate.instances.service import InstanceView
from guestgate.notifications import service as group_service
from guestgate.notifications.models import NotificationGroup
from guestgate.pagination import PageRequest
from guestgate.schedules import jobs
from guestgate.schedules import service as schedule_service
from guestgate.schedules.models import CouponSchedule
from guestgate.schedules.schemas import CouponScheduleCreate

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)
FIELDS = frozenset(
    {
        "name",
        "count",
        "recurrence_type",
        "day_of_week",
        "day_of_month",
        "time_of_day",
        "valid_for_in_minutes",
        "timezone",
        "notification_group_id",
    }
)
WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
# Groups offered in the form's list: an org has few (each is a list of addresses and hooks).
GROUP_CHOICES = 200
NEXT_RUNS = 5


def schedule_in(form: dict[str, str]) -> CouponScheduleCreate:
    """The posted form as the API's `CouponScheduleCreate` (blank fields omitted)."""
    data: dict[str, Any] = {name: optional(form, name) for name in FIELDS}
    return parse_model(CouponScheduleCreate, {k: v for k, v in data.items() if v is not None})


def values_of(schedule: CouponSchedule) -> dict[str, str]:
    """A stored schedule as the form's values."""
    return {name: "" if getattr(schedule, name) is None else str(getattr(schedule, name)) for name in FIELDS}


def _coupon_instances(org_id: str, session: Session) -> list[InstanceView]:
    views = instance_service.list_instances(org_id=org_id, page=page_request(None), session=session).items
    return [view for view in views if view.instance.strategy == "coupon"]


def _groups(org_id: str, session: Session) -> list[NotificationGroup]:
    page = PageRequest.parse(GROUP_CHOICES, None, maximum=GROUP_CHOICES)
    return group_service.list_groups(org_id=org_id, page=page, session=session).items


def next_runs(schedule: CouponSchedule, *, now: datetime) -> list[str]:
    """The next runs as the schedule's zone reads them (`Mon 2026-12-07 08:00 AEDT`)."""
    zone = local_time.zone(schedule.timezone)
    return [
        f"{slot.astimezone(zone):%a} {local_time.date_time(slot, zone)}"
        for slot in schedule_service.next_slots(schedule, after=now, count=NEXT_RUNS)
    ]


@router.get("/schedules")
def schedules_page(
    request: Request,
    who: Reader,
    session: SessionDep,
    instance: Annotated[str | None, Query()] = None,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    """A coupon instance's schedules, newest first, with their next run."""
    choices = _coupon_instances(who.org_id, session)
    chosen = instance or (choices[0].instance.id if choices else None)
    page = None
    if chosen is not None:
        page = schedule_service.list_schedules(
            chosen, org_id=who.org_id, page=page_request(cursor), session=session
        )
    return render(request, "schedules.html", {"instances": choices, "chosen": chosen, "page": page})


def _schedule_form(
    request: Request,
    who: Reader,
    session: Session,
    *,
    instance_id: str,
    schedule: CouponSchedule | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
    cursor: str | None = None,
    notice: str | None = None,
) -> Response:
    instance = instance_service.get(instance_id, org_id=who.org_id, session=session)
    context: dict[str, Any] = {
        "instance": instance,
        "schedule": schedule,
        "values": values,
        "errors": errors,
        "groups": _groups(who.org_id, session),
        "weekdays": WEEKDAYS,
        "notice": notice,
        "runs": None,
        "deliveries": None,
        "now": utcnow(),
    }
    if schedule is not None:
        context["runs"] = next_runs(schedule, now=context["now"])
        zone = local_time.zone(schedule.timezone)
        context["at"] = lambda moment: local_time.date_time(moment, zone)
        context["deliveries"] = schedule_service.list_deliveries(
            schedule.id,
            instance_id=instance.id,
            org_id=who.org_id,
            page=page_request(cursor),
            session=session,
        )
    return render(request, "schedule_form.html", context, status=status)


@router.get("/schedules/new")
def new_schedule(
    request: Request, who: Writer, session: SessionDep, instance: Annotated[str | None, Query()] = None
) -> Response:
    """The form to add a schedule to a coupon instance."""
    if not instance:
        raise ParameterMissing("instance")
    values = {"count": "20", "recurrence_type": "daily", "time_of_day": "08:00", "timezone": "UTC"}
    values["valid_for_in_minutes"] = "1440"
    return _schedule_form(
        request, who, session, instance_id=instance, schedule=None, values=values, errors={}
    )


@router.post("/schedules/{instance_id}")
def create_schedule(
    request: Request, instance_id: str, who: Writer, session: SessionDep, form: FormDep
) -> Response:
    """Add a schedule (as `POST .../coupon-schedules`); errors are shown next to their field."""
    try:
        made = schedule_service.create(instance_id, schedule_in(form), org_id=who.org_id, session=session)
    except GuestgateError as error:
        session.rollback()
        return _schedule_form(
            request,
            who,
            session,
            instance_id=instance_id,
            schedule=None,
            values=form,
            errors=field_errors(error, fields=FIELDS),
            status=kind_of(error).status,
        )
    return redirect(f"{PREFIX}/schedules/{instance_id}/{made.schedule.id}")


@router.get("/schedules/{instance_id}/{schedule_id}")
def schedule_page(
    request: Request,
    instance_id: str,
    schedule_id: str,
    who: Reader,
    session: SessionDep,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    """A schedule: its settings, its next five runs in its zone, its deliveries."""
    schedule = schedule_service.get(schedule_id, instance_id=instance_id, org_id=who.org_id, session=session)
    return _schedule_form(
        request,
        who,
        session,
        instance_id=instance_id,
        schedule=schedule,
        values=values_of(schedule),
        errors={},
        cursor=cursor,
    )


@router.post("/schedules/{instance_id}/{schedule_id}")
def update_schedule(
    request: Request, instance_id: str, schedule_id: str, who: Writer, session: SessionDep, form: FormDep
) -> Response:
    """Replace a schedule (as `PUT .../coupon-schedules/{id}`)."""
    try:
        schedule_service.replace(
            schedule_id, schedule_in(form), instance_id=instance_id, org_id=who.org_id, session=session
        )
    except GuestgateError as error:
        session.rollback()
        schedule = schedule_service.get(
            schedule_id, instance_id=instance_id, org_id=who.org_id, session=session
        )
        return _schedule_form(
            request,
            who,
            session,
            instance_id=instance_id,
            schedule=schedule,
            values=form,
            errors=field_errors(error, fields=FIELDS),
            status=kind_of(error).status,
        )
    return redirect(f"{PREFIX}/schedules/{instance_id}/{schedule_id}")


@router.post("/schedules/{instance_id}/{schedule_id}/run")
def run_schedule(
    request: Request, instance_id: str, schedule_id: str, who: Writer, session: SessionDep, _form: FormDep
) -> Response:
    """Make a batch now and queue its deliveries (as `POST .../run`); `next_run_at` stays."""
    item = jobs.run_now(
        schedule_id, instance_id=instance_id, org_id=who.org_id, now=utcnow(), session=session
    )
    notice = f"Made {item.counters.generated} coupons; their deliveries are queued."
    return _schedule_form(
        request,
        who,
        session,
        instance_id=instance_id,
        schedule=item.schedule,
        values=values_of(item.schedule),
        errors={},
        notice=notice,
    )
