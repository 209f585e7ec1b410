"""A generated batch as its recipients see it: the payload (webhook JSON) and the printable PDF.

`batch_payload` reads a run with its coupons and the instance's branding once; e-mail
(`guestgate.notifications.email`) and webhooks (`guestgate.notifications.webhooks`) both send it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from guestgate import local_time
from guestgate.coupon_links import service as link_service
from guestgate.coupons import batches, export
from guestgate.coupons.models import Coupon
from guestgate.coupons.words import Words
from guestgate.db import utcnow
from guestgate.errors import NotFound
from guestgate.instances.models import Instance
from guestgate.instances.schemas import DEFAULT_THEME
from guestgate.notifications import webhooks
from guestgate.plans.service import DEFAULT as DEFAULT_PLAN
from guestgate.plans.service import Plan
from guestgate.runtime import Runtime
from guestgate.schedules.models import CouponSchedule, ScheduleRun


@dataclass(frozen=True)
class BatchCoupon:
    """One coupon of a batch, as delivered."""

    id: str
    code: str
    expires_at: datetime
    created_at: datetime
    # What the code buys (its card's plan line, its CSV row's plan columns).
    plan: Plan = DEFAULT_PLAN


@dataclass(frozen=True)
class BatchPayload:
    """A generated batch as its recipients see it; `link` is None once the schedule is deleted."""

    run_id: str
    schedule_id: str | None
    schedule_name: str | None
    instance_id: str
    instance_name: str
    accent_color: str
    count: int
    valid_for_in_minutes: int
    generated_at: datetime
    expires_at: datetime
    coupons: tuple[BatchCoupon, ...]
    link: str | None
    link_expires_at: datetime | None
    # How the front desk reads it: the zone of its times, the portal's language, the network's name
    # and the logo on the cards (guestgate.local_time, guestgate.coupons.words).
    timezone: str = "UTC"
    locale: str = "en"
    network_name: str | None = None
    logo: bytes | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The webhook body."""
        body: dict[str, Any] = {
            "event": webhooks.EVENT,
            "run_id": self.run_id,
            "schedule_id": self.schedule_id,
            "schedule_name": self.schedule_name,
            "instance_id": self.instance_id,
            "instance_name": self.instance_name,
            "count": self.count,
            "valid_for_in_minutes": self.valid_for_in_minutes,
            "generated_at": export.timestamp(self.generated_at),
            "expires_at": export.timestamp(self.expires_at),
            "coupons": [
                {"id": c.id, "code": c.code, "expires_at": export.timestamp(c.expires_at)}
                for c in self.coupons
            ],
        }
        if self.link is not None and self.link_expires_at is not None:
            body["coupons_url"] = self.link
            body["coupons_url_expires_at"] = export.timestamp(self.link_expires_at)
        return body

    @property
    def zone(self) -> tzinfo:
        """The time zone its times are shown in (the schedule's, else the instance's, else UTC)."""
        return local_time.zone(self.timezone)

    @property
    def file_stem(self) -> str:
        """The attachment name without extension: the schedule and the local date and time,
        `daily-guest-passes-2026-11-25-2100`."""
        return link_service.file_stem(self.schedule_name, self.generated_at, self.zone, with_time=True)


def batch_payload(
    run_id: str, *, runtime: Runtime, session: Session, now: datetime | None = None
) -> BatchPayload:
    """The batch of run `run_id` with its coupons, the instance's branding and the batch's signed 24 h
    link (`guestgate.coupon_links`)."""
    run = session.get(ScheduleRun, run_id)
    if run is None:
        raise NotFound("schedule run", run_id)
    instance = session.get(Instance, run.instance_id)
    schedule = session.get(CouponSchedule, run.schedule_id) if run.schedule_id else None
    coupons = session.scalars(select(Coupon).where(Coupon.run_id == run_id).order_by(Coupon.code)).all()
    link = batches.link(
        run,
        signer=runtime.signer,
        public_url=runtime.settings.public_url,
        now=now or utcnow(),
        session=session,
    )
    brand = link_service.branding(instance, session=session, with_logo=True) if instance else None
    zone_name = (schedule.timezone if schedule else None) or (brand.timezone if brand else None) or "UTC"
    return BatchPayload(
        run_id=run.id,
        schedule_id=schedule.id if schedule else None,
        schedule_name=schedule.name if schedule else None,
        instance_id=run.instance_id,
        instance_name=instance.name if instance else "",
        accent_color=brand.accent_color if brand else DEFAULT_THEME["accent_color"],
        count=run.count,
        valid_for_in_minutes=run.valid_for_in_minutes,
        generated_at=run.ran_at,
        expires_at=run.ran_at + timedelta(minutes=run.valid_for_in_minutes),
        coupons=tuple(BatchCoupon(c.id, c.code, c.expires_at, c.created_at, c.plan) for c in coupons),
        link=link.url,
        link_expires_at=link.expires_at,
        timezone=zone_name,
        locale=brand.locale if brand else "en",
        network_name=brand.network_name if brand else None,
        logo=brand.logo if brand else None,
    )


def render_pdf(batch: BatchPayload, *, public_url: str) -> bytes:
    """The batch's printable cards; each QR code opens the portal with its code filled in."""
    return export.to_pdf(
        batch.coupons,
        instance_name=batch.instance_name,
        accent_color=batch.accent_color,
        portal_url=export.portal_url(public_url, batch.instance_id),
        words=Words(batch.locale),
        zone=batch.zone,
        network_name=batch.network_name,
        logo=batch.logo,
    )


def attachments(batch: BatchPayload, *, public_url: str) -> tuple[str, bytes]:
    """The files an e-mail of the batch carries: the CSV (times in the batch's zone) and the PDF."""
    return export.to_csv(batch.coupons, zone=batch.zone), render_pdf(batch, public_url=public_url)
