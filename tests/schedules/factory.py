"""Rows for scheduler tests, written straight through the models."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy.orm import Session

from guestgate.instances.models import Instance
from guestgate.notifications.models import NotificationGroup
from guestgate.orgs.models import Org
from guestgate.schedules import service as schedule_service
from guestgate.schedules.models import CouponSchedule

ORG = "org-a"


def base_rows(session: Session, *, emails: list[str] | None = None) -> tuple[str, str]:
    """An org, a coupon instance and a notification group; returns (instance id, group id)."""
    if session.get(Org, ORG) is None:
        session.add(Org(id=ORG))
        session.flush()
    instance = Instance(org_id=ORG, name="Lobby Wi-Fi", strategy="coupon", session_ttl=3600, theme={})
    group = NotificationGroup(
        id="ng_" + secrets.token_hex(6), org_id=ORG, name="Front desk", emails=emails or [], webhooks=[]
    )
    session.add_all([instance, group])
    session.flush()
    return instance.id, group.id


def schedule(
    session: Session,
    *,
    instance_id: str,
    group_id: str,
    after: datetime,
    recurrence_type: str = "daily",
    time_of_day: str = "08:00",
    timezone: str = "UTC",
    day_of_week: int | None = None,
    day_of_month: int | None = None,
    count: int = 5,
    valid_for_in_minutes: int = 480,
    next_run_at: datetime | None = None,
) -> CouponSchedule:
    """A schedule whose next_run_at is its first slot after `after` (or the value given)."""
    row = CouponSchedule(
        org_id=ORG,
        instance_id=instance_id,
        name="Daily Guest Passes",
        count=count,
        recurrence_type=recurrence_type,
        day_of_week=day_of_week,
        day_of_month=day_of_month,
        time_of_day=time_of_day,
        valid_for_in_minutes=valid_for_in_minutes,
        timezone=timezone,
        notification_group_id=group_id,
        created_at=after,
    )
    row.next_run_at = next_run_at or schedule_service.next_slot(row, after=after)
    session.add(row)
    session.flush()
    return row
