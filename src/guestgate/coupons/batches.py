"""Coupon batches: every generated batch (API, scheduled, run-now) by id, its counters, its public links.

A batch is a `ScheduleRun` row (the table kept its first name); its id is the `run_id` of its
coupons and of its webhook. Its public link (`guestgate.coupon_links`) shows its valid coupons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from guestgate.audit import service as audit_service
from guestgate.coupon_links import signing
from guestgate.coupons.models import Coupon
from guestgate.coupons.schemas import BatchKind, CouponBatch
from guestgate.instances import service as instance_service
from guestgate.pagination import Page, PageRequest, fetch_page
from guestgate.plans import service as plan_service
from guestgate.plans.schemas import PlanOut
from guestgate.schedules.models import CouponSchedule, ScheduleRun
from guestgate.security import UrlSigner
from guestgate.tenancy import get_owned

API = "api"


@dataclass(frozen=True)
class Counters:
    """What became of a batch's coupons."""

    generated: int = 0
    used: int = 0
    available: int = 0


@dataclass(frozen=True)
class BatchView:
    """A batch with its counters."""

    batch: ScheduleRun
    counters: Counters


def record(
    *,
    org_id: str,
    instance_id: str,
    kind: str,
    count: int,
    minutes_valid: int,
    now: datetime,
    session: Session,
    schedule_id: str | None = None,
    slot_at: datetime | None = None,
    batch_id: str | None = None,
    plan: plan_service.Plan | None = None,
) -> ScheduleRun:
    """Add the record of a batch about to be generated; flushed, the caller commits."""
    row = ScheduleRun(
        org_id=org_id,
        instance_id=instance_id,
        schedule_id=schedule_id,
        slot_at=slot_at,
        kind=kind,
        count=count,
        valid_for_in_minutes=minutes_valid,
        ran_at=now,
        plan=None if plan is None else plan.to_dict(),
    )
    if batch_id is not None:
        row.id = batch_id
    session.add(row)
    session.flush()
    return row


def get(batch_id: str, *, instance_id: str, org_id: str, session: Session) -> ScheduleRun:
    """The batch of the org's instance, or NotFound (for the instance or the batch)."""
    instance = instance_service.get(instance_id, org_id=org_id, session=session)
    return get_owned(session, ScheduleRun, batch_id, org_id, resource="coupon batch", instance_id=instance.id)


def view(batch_id: str, *, instance_id: str, org_id: str, session: Session, now: datetime) -> BatchView:
    """The batch with its counters."""
    batch = get(batch_id, instance_id=instance_id, org_id=org_id, session=session)
    return BatchView(batch, counters([batch.id], session=session, now=now).get(batch.id, Counters()))


def list_batches(
    instance_id: str, *, org_id: str, page: PageRequest, session: Session, now: datetime
) -> Page[BatchView]:
    """The instance's batches, newest first, with their counters."""
    instance = instance_service.get(instance_id, org_id=org_id, session=session)
    stmt = select(ScheduleRun).where(ScheduleRun.instance_id == instance.id)
    result = fetch_page(session, stmt, page, ScheduleRun.ran_at, ScheduleRun.id)
    by_id = counters([b.id for b in result.items], session=session, now=now)
    return Page([BatchView(b, by_id.get(b.id, Counters())) for b in result.items], result.next_cursor)


def counters(batch_ids: Sequence[str], *, session: Session, now: datetime) -> dict[str, Counters]:
    """The counters of each batch, by batch id, from one grouped query."""
    if not batch_ids:
        return {}
    used = func.count(case((Coupon.redeemed_at.is_not(None), Coupon.id)))
    available = func.count(case((and_(Coupon.redeemed_at.is_(None), Coupon.expires_at > now), Coupon.id)))
    stmt = (
        select(ScheduleRun.id, ScheduleRun.count, used, available)
        .outerjoin(Coupon, Coupon.run_id == ScheduleRun.id)
        .where(ScheduleRun.id.in_(set(batch_ids)))
        .group_by(ScheduleRun.id, ScheduleRun.count)
    )
    return {
        batch_id: Counters(generated=generated, used=used_count, available=available_count)
        for batch_id, generated, used_count, available_count in session.execute(stmt)
    }


def revoked_at(batch: ScheduleRun, *, session: Session) -> datetime | None:
    """The latest revocation that covers the batch's links: its own or its schedule's."""
    schedule = session.get(CouponSchedule, batch.schedule_id) if batch.schedule_id else None
    moments = [m for m in (batch.urls_revoked_at, schedule.urls_revoked_at if schedule else None) if m]
    return max(moments) if moments else None


def link(
    batch: ScheduleRun, *, signer: UrlSigner, public_url: str, now: datetime, session: Session
) -> signing.SignedLink:
    """A fresh signed link of the batch (never one a revocation already refuses)."""
    return signing.batch_link(
        batch.id,
        signer=signer,
        public_url=public_url,
        now=now,
        revoked_at=revoked_at(batch, session=session),
    )


def revoke_urls(batch_id: str, *, instance_id: str, org_id: str, now: datetime, session: Session) -> datetime:
    """Refuse every public link of the batch signed up to now; audited. Returns the revocation time."""
    batch = get(batch_id, instance_id=instance_id, org_id=org_id, session=session)
    batch.urls_revoked_at = now
    audit_service.record(
        session,
        org_id=org_id,
        action="coupon_batch.revoke_urls",
        target_type="coupon_batch",
        target_id=batch.id,
        detail={"instance_id": batch.instance_id, "schedule_id": batch.schedule_id},
    )
    session.commit()
    return now


def to_out(item: BatchView) -> CouponBatch:
    """The API representation of a batch."""
    batch, counts = item.batch, item.counters
    return CouponBatch(
        id=batch.id,
        instance_id=batch.instance_id,
        schedule_id=batch.schedule_id,
        kind=cast(BatchKind, batch.kind),
        count=batch.count,
        minutes_valid=batch.valid_for_in_minutes,
        created_at=batch.ran_at,
        expires_at=batch.ran_at + timedelta(minutes=batch.valid_for_in_minutes),
        tokens_used=counts.used,
        tokens_available=counts.available,
        urls_revoked_at=batch.urls_revoked_at,
        plan=None if batch.plan is None else PlanOut.of(stored_plan(batch)),
    )


def stored_plan(batch: ScheduleRun) -> plan_service.Plan:
    """The effective plan a batch was made with (the default for a batch made before plans)."""
    return plan_service.overridden(plan_service.DEFAULT, batch.plan)
