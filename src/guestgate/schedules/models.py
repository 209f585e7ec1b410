"""Recurring coupon schedules and the record of their runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guestgate.db import Base, JSONDoc, UTCDateTime, UUIDStr, new_id, utcnow


class CouponSchedule(Base):
    """Generates `count` coupons on every daily/weekly/monthly slot in its time zone."""

    __tablename__ = "coupon_schedules"
    __table_args__ = (Index(None, "instance_id", "created_at"), Index(None, "next_run_at"))

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(128), ForeignKey("orgs.id", ondelete="CASCADE"))
    instance_id: Mapped[str] = mapped_column(UUIDStr, ForeignKey("instances.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    count: Mapped[int] = mapped_column(Integer)
    recurrence_type: Mapped[str] = mapped_column(String(8))
    day_of_week: Mapped[int | None] = mapped_column(Integer, default=None)
    day_of_month: Mapped[int | None] = mapped_column(Integer, default=None)
    time_of_day: Mapped[str] = mapped_column(String(5), default="00:00")
    valid_for_in_minutes: Mapped[int] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64))
    # RESTRICT: a group a schedule sends to cannot be deleted (409 resource_in_use).
    notification_group_id: Mapped[str] = mapped_column(
        String(15), ForeignKey("notification_groups.id", ondelete="RESTRICT"), index=True
    )
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The batch the counters describe (plain column: runs reference schedules already).
    last_run_id: Mapped[str | None] = mapped_column(UUIDStr, default=None)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Public links of the schedule (and of its batches) signed at or before this second are revoked.
    urls_revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Plan overrides of the instance's (a key present overrides; None in it: no limit).
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, default=None)


class ScheduleRun(Base):
    """One generated batch of coupons, whatever made it (`kind`).

    `scheduled`: a slot of a schedule (unique per schedule); `manual`: a schedule's run-now (slot
    null); `api`: a `POST .../coupons` batch (no schedule). The table keeps its first name,
    `schedule_runs`; the API calls its rows coupon batches and their id the batch id.
    """

    __tablename__ = "schedule_runs"
    # The final guard of exactly-once: a (schedule, slot) pair can be recorded only once.
    __table_args__ = (UniqueConstraint("schedule_id", "slot_at"), Index(None, "instance_id", "ran_at"))

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(128), ForeignKey("orgs.id", ondelete="CASCADE"))
    instance_id: Mapped[str] = mapped_column(UUIDStr, ForeignKey("instances.id", ondelete="CASCADE"))
    # SET NULL: a deleted schedule's batches, coupons and pending deliveries live on.
    schedule_id: Mapped[str | None] = mapped_column(
        UUIDStr, ForeignKey("coupon_schedules.id", ondelete="SET NULL"), default=None
    )
    slot_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    kind: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer)
    valid_for_in_minutes: Mapped[int] = mapped_column(Integer)
    ran_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Public links of this batch signed at or before this second are revoked.
    urls_revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The effective plan the batch was made with.
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, default=None)
