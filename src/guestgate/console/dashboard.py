"""The dashboard's figures: sites with their gateway state and guests online, sign-ins and coupons over time.

Every query is bounded: at most MAX_SITES sites, counts grouped in the database by site or by
time bucket (at most 30 buckets per chart), each answered from an index on (site_id,
started_at), the active-guest index, or (instance_id, ran_at).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Integer, cast, func, select
from sqlalchemy.orm import Session

from guestgate.instances.models import Instance
from guestgate.schedules.models import ScheduleRun
from guestgate.site_users.models import SiteUser
from guestgate.sites import service as site_service
from guestgate.sites.models import Site

MAX_SITES = 1000
SITES_SHOWN = 50
HOUR = 3600
DAY = 86400


@dataclass(frozen=True)
class SiteRow:
    """A site as the dashboard lists it."""

    id: str
    name: str
    state: str
    last_sync_at: datetime | None
    online: int


@dataclass(frozen=True)
class Bar:
    """One bar of a chart: its label, value and height (0..100)."""

    label: str
    value: int
    height: float


@dataclass(frozen=True)
class Chart:
    """A small bar chart."""

    title: str
    bars: list[Bar]

    @property
    def total(self) -> int:
        """The sum of the bars."""
        return sum(bar.value for bar in self.bars)


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard shows."""

    sites: list[SiteRow]
    site_count: int
    online: int
    charts: list[Chart]


def build(*, org_id: str, now: datetime, session: Session) -> Dashboard:
    """The org's dashboard as of `now`."""
    site_ids = list(
        session.scalars(
            select(Site.id).where(Site.org_id == org_id).order_by(Site.created_at.desc()).limit(MAX_SITES)
        )
    )
    instance_ids = list(
        session.scalars(select(Instance.id).where(Instance.org_id == org_id).limit(MAX_SITES))
    )
    online_by_site: dict[str, int] = {}
    if site_ids:
        rows = session.execute(
            select(SiteUser.site_id, func.count())
            .where(SiteUser.site_id.in_(site_ids), SiteUser.live_at(now))
            .group_by(SiteUser.site_id)
        )
        online_by_site = {site_id: int(n) for site_id, n in rows}
    shown = site_ids[:SITES_SHOWN]
    by_id = {site.id: site for site in session.scalars(select(Site).where(Site.id.in_(shown)))} if shown else {}
    sites = [by_id.get(site_id) for site_id in shown]
    rows_out = [
        SiteRow(
            id=site.id,
            name=site.name,
            state=site_service.reported_state(site.gateway_driver, site.gateway_status),
            last_sync_at=site.gateway_last_sync_at,
            online=online_by_site.get(site.id, 0),
        )
        for site in sites
        if site is not None
    ]
    dialect = session.get_bind().dialect.name
    charts = [
        _chart(
            "Sign-ins, last 24 hours",
            _signins(site_ids, since=now - timedelta(hours=24), step=HOUR, dialect=dialect, session=session),
            now=now,
            step=HOUR,
            buckets=24,
        ),
        _chart(
            "Sign-ins, last 30 days",
            _signins(site_ids, since=now - timedelta(days=30), step=DAY, dialect=dialect, session=session),
            now=now,
            step=DAY,
            buckets=30,
        ),
        _chart(
            "Coupons made, last 24 hours",
            _coupons(
                instance_ids, since=now - timedelta(hours=24), step=HOUR, dialect=dialect, session=session
            ),
            now=now,
            step=HOUR,
            buckets=24,
        ),
        _chart(
            "Coupons made, last 30 days",
            _coupons(
                instance_ids, since=now - timedelta(days=30), step=DAY, dialect=dialect, session=session
            ),
            now=now,
            step=DAY,
            buckets=30,
        ),
    ]
    return Dashboard(
        sites=rows_out, site_count=len(site_ids), online=sum(online_by_site.values()), charts=charts
    )


def _bucket(column: Any, step: int, dialect: str) -> ColumnElement[int]:
    """The column's Unix time divided by `step`, in the database."""
    if dialect == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / step), Integer)
    return cast(cast(func.strftime("%s", column), Integer) / step, Integer)


def _signins(
    site_ids: list[str], *, since: datetime, step: int, dialect: str, session: Session
) -> dict[int, int]:
    if not site_ids:
        return {}
    bucket = _bucket(SiteUser.started_at, step, dialect)
    rows = session.execute(
        select(bucket, func.count())
        .where(SiteUser.site_id.in_(site_ids), SiteUser.started_at >= since)
        .group_by(bucket)
    )
    return {int(b): int(n) for b, n in rows}


def _coupons(
    instance_ids: list[str], *, since: datetime, step: int, dialect: str, session: Session
) -> dict[int, int]:
    if not instance_ids:
        return {}
    bucket = _bucket(ScheduleRun.ran_at, step, dialect)
    rows = session.execute(
        select(bucket, func.coalesce(func.sum(ScheduleRun.count), 0))
        .where(ScheduleRun.instance_id.in_(instance_ids), ScheduleRun.ran_at >= since)
        .group_by(bucket)
    )
    return {int(b): int(n) for b, n in rows}


def _chart(title: str, counts: dict[int, int], *, now: datetime, step: int, buckets: int) -> Chart:
    last = int(now.timestamp()) // step
    keys = list(range(last - buckets + 1, last + 1))
    values = [counts.get(key, 0) for key in keys]
    top = max(values) or 1
    fmt = "%H:00" if step == HOUR else "%d %b"
    bars = [
        Bar(
            label=datetime.fromtimestamp(key * step, tz=now.tzinfo).strftime(fmt),
            value=value,
            height=round(100 * value / top, 1),
        )
        for key, value in zip(keys, values, strict=True)
    ]
    return Chart(title, bars)
