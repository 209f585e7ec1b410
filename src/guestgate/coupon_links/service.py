"""What a verified public coupon link shows: its scope's valid coupons, a page at a time, with the
instance's branding, language and local time zone.

- A schedule's link: the valid coupons of the schedule's batches made up to the second it was
  signed; a batch made after that is not in it (ask for a new link, or use the batch's own link).
- A batch's link: the valid coupons of that batch.
- A link signed at or before a revocation of its schedule (or, for a batch link, of its batch or
  its batch's schedule) is refused with 403 `url_revoked`; a deleted schedule or batch is 404.

Reached without a token: the signature stands in for the tenant check.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from guestgate import local_time
from guestgate.coupon_links.signing import LinkScope, is_revoked
from guestgate.coupons import batches
from guestgate.coupons.models import Coupon
from guestgate.errors import NotFound, UrlRevoked
from guestgate.instances.models import Image, Instance
from guestgate.pagination import Page, PageRequest, fetch_page
from guestgate.portal import theme
from guestgate.schedules.models import CouponSchedule, ScheduleRun

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
SLUG_MAX_CHARS = 60


@dataclass(frozen=True)
class Branding:
    """How an instance's coupons look: name, network, language, colours and logo."""

    instance_id: str
    name: str
    network_name: str | None
    locale: str
    colours: dict[str, str]
    timezone: str | None
    logo_id: str | None = None
    logo: bytes | None = None

    @property
    def accent_color(self) -> str:
        """The instance's accent colour (`#RRGGBB` or `#RGB`, validated)."""
        return self.colours["accent_color"]


@dataclass(frozen=True)
class LinkContents:
    """One page of a link's valid coupons and everything needed to show them."""

    scope: LinkScope
    branding: Branding
    schedule: CouponSchedule | None
    batch: ScheduleRun | None
    zone: tzinfo
    page: Page[Coupon]


def branding(instance: Instance, *, session: Session, with_logo: bool = False) -> Branding:
    """The instance's branding; `with_logo` also reads the logo's bytes (for a PDF)."""
    logo_id = logo = None
    if with_logo:
        found = session.execute(
            select(Image.id, Image.data).where(Image.instance_id == instance.id, Image.kind == "logo")
        ).first()
        if found is not None:
            logo_id, logo = found
    else:
        logo_id = session.scalar(
            select(Image.id).where(Image.instance_id == instance.id, Image.kind == "logo")
        )
    return Branding(
        instance_id=instance.id,
        name=instance.name,
        network_name=instance.network_name,
        locale=instance.locale,
        colours=theme.colours(instance.theme),
        timezone=instance.timezone,
        logo_id=logo_id,
        logo=logo,
    )


def open_link(
    scope: LinkScope, *, page: PageRequest, now: datetime, session: Session, with_logo: bool = False
) -> LinkContents:
    """The page `page` of the link's valid coupons, newest first; NotFound, UrlRevoked."""
    valid = (Coupon.redeemed_at.is_(None), Coupon.expires_at > now)
    batch: ScheduleRun | None = None
    if scope.kind == "schedule":
        schedule = session.get(CouponSchedule, scope.target_id)
        if schedule is None:
            raise NotFound("coupon schedule", scope.target_id)
        if is_revoked(scope, schedule.urls_revoked_at):
            raise UrlRevoked()
        # The batches that existed in the second the link was signed in.
        cutoff = datetime.fromtimestamp(scope.signed_at + 1, tz=UTC)
        made_before = select(ScheduleRun.id).where(
            ScheduleRun.schedule_id == schedule.id, ScheduleRun.ran_at < cutoff
        )
        stmt = select(Coupon).where(Coupon.schedule_id == schedule.id, *valid, Coupon.run_id.in_(made_before))
        instance_id = schedule.instance_id
    else:
        batch = session.get(ScheduleRun, scope.target_id)
        if batch is None:
            raise NotFound("coupon batch", scope.target_id)
        if is_revoked(scope, batches.revoked_at(batch, session=session)):
            raise UrlRevoked()
        schedule = session.get(CouponSchedule, batch.schedule_id) if batch.schedule_id else None
        stmt = select(Coupon).where(Coupon.run_id == batch.id, *valid)
        instance_id = batch.instance_id
    instance = session.get(Instance, instance_id)
    if instance is None:  # deleted with its schedules and coupons; its batch rows go with it
        raise NotFound("instance", instance_id)
    brand = branding(instance, session=session, with_logo=with_logo)
    zone = local_time.zone(schedule.timezone if schedule else None, brand.timezone)
    found = fetch_page(session, stmt, page, Coupon.created_at, Coupon.id)
    return LinkContents(scope, brand, schedule, batch, zone, found)


def file_stem(name: str | None, moment: datetime, zone: tzinfo, *, with_time: bool) -> str:
    """A download name: the schedule's name as a slug and the local date (and time):
    `daily-guest-passes-2026-12-02` or `daily-guest-passes-2026-12-02-0800`."""
    folded = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode().lower()
    slug = _NOT_SLUG.sub("-", folded).strip("-")[:SLUG_MAX_CHARS].rstrip("-") or "coupons"
    local = moment.astimezone(zone)
    return f"{slug}-{local:%Y-%m-%d-%H%M}" if with_time else f"{slug}-{local:%Y-%m-%d}"


def contents_stem(contents: LinkContents, *, now: datetime) -> str:
    """The download name of a link's export: the batch's date and time, or for a schedule's link the
    day it is downloaded."""
    name = contents.schedule.name if contents.schedule else None
    if contents.batch is not None:
        return file_stem(name, contents.batch.ran_at, contents.zone, with_time=True)
    return file_stem(name, now, contents.zone, with_time=False)
