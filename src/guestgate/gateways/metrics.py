"""`GET /metrics`: Prometheus gauges of the sites' gateways, and the process's own counters.

Two kinds of caller (`Authorization: Bearer`, as Prometheus' `authorization` scrape setting
sends it):
- an operator token with the read scope sees the gauges of its own org's sites only;
- the deployment's scraper, with `GUESTGATE_METRICS_TOKEN`, sees every org's sites (with an
  `org_id` label) and this process's counters (`guestgate.ops.metrics`: requests, sign-ins,
  schedule runs, deliveries), which mix every org and so are never shown to an org's token.
Without either, 401: a guest on the portal's network learns nothing. Per site:

    guestgate_gateway_status{site_id,driver,state}            1 for the site's state, 0 for the others
    guestgate_gateway_last_sync_timestamp_seconds{site_id,driver}   the last successful sync (absent: never)
    guestgate_gateway_active_sessions{site_id,driver}         sessions active now
    guestgate_gateway_pending_sessions{site_id,driver}        of those, not yet let through by the gateway
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from starlette.requests import Request
from starlette.responses import Response

from guestgate.db import utcnow
from guestgate.error_handlers import error_response
from guestgate.errors import GuestgateError
from guestgate.ops import metrics as ops_metrics
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_READ
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site
from guestgate.sites.service import reported_state

STATES = ("ok", "unreachable", "misconfigured", "unknown", "not_enforcing")


class _SiteRow:
    def __init__(
        self, org_id: str, site_id: str, driver: str, state: str, last_sync: datetime | None
    ) -> None:
        self.org_id = org_id
        self.site_id = site_id
        self.driver = driver
        self.state = state
        self.last_sync = last_sync
        self.active = 0
        self.pending = 0


class _Snapshot(Collector):
    def __init__(self, rows: list[_SiteRow], *, with_org: bool = False) -> None:
        self.rows = rows
        self.with_org = with_org

    def collect(self) -> Iterator[GaugeMetricFamily]:
        site = ["org_id", "site_id", "driver"] if self.with_org else ["site_id", "driver"]
        status = GaugeMetricFamily(
            "guestgate_gateway_status", "1 for the gateway state of the site", labels=[*site, "state"]
        )
        synced = GaugeMetricFamily(
            "guestgate_gateway_last_sync_timestamp_seconds",
            "When the site's gateway last held exactly the database's state",
            labels=site,
        )
        active = GaugeMetricFamily(
            "guestgate_gateway_active_sessions", "Guest sessions active now", labels=site
        )
        pending = GaugeMetricFamily(
            "guestgate_gateway_pending_sessions",
            "Active sessions the gateway has not let through yet",
            labels=site,
        )
        for row in self.rows:
            values = [row.org_id, row.site_id, row.driver] if self.with_org else [row.site_id, row.driver]
            for state in STATES:
                status.add_metric([*values, state], 1.0 if row.state == state else 0.0)
            if row.last_sync is not None:
                synced.add_metric(values, row.last_sync.timestamp())
            active.add_metric(values, float(row.active))
            pending.add_metric(values, float(row.pending))
        yield from (status, synced, active, pending)


class MetricsApp:
    """The endpoint answering /metrics."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def endpoint(self, request: Request) -> Response:
        """Every org's gauges and the process's counters for the scraper; the org's gauges for its token."""
        authorization = request.headers.get("authorization")
        if ops_metrics.is_scraper(self.runtime.settings, authorization):
            rows = await asyncio.to_thread(self._rows, None, utcnow())
            registry = CollectorRegistry(auto_describe=False)
            registry.register(_Snapshot(rows, with_org=True))
            body = ops_metrics.process_metrics() + generate_latest(registry)
            return Response(body, media_type=CONTENT_TYPE_LATEST)
        try:
            principal = await self.runtime.verifier.authenticate(authorization)
            principal.require(SCOPE_READ)
        except GuestgateError as error:
            return error_response(error, self.runtime.settings.public_url)
        rows = await asyncio.to_thread(self._rows, principal.org_id, utcnow())
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(rows))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def _rows(self, org_id: str | None, now: datetime) -> list[_SiteRow]:
        """The sites of `org_id` (every org's for None) with their session counts."""
        sites = select(
            Site.org_id, Site.id, Site.gateway_driver, Site.gateway_status, Site.gateway_last_sync_at
        )
        active = select(
            SiteUser.site_id,
            func.count(),
            func.sum(case((SiteUser.gateway_applied_at.is_(None), 1), else_=0)),
        ).where(SiteUser.live_at(now))
        if org_id is not None:
            sites = sites.where(Site.org_id == org_id)
            active = active.where(SiteUser.org_id == org_id)
        with self.runtime.sessions() as session:
            rows = {
                site_id: _SiteRow(org, site_id, driver, reported_state(driver, state), last_sync)
                for org, site_id, driver, state, last_sync in session.execute(sites.order_by(Site.id))
            }
            counts = session.execute(active.group_by(SiteUser.site_id))
            for site_id, active, pending in counts:
                row = rows.get(site_id)
                if row is not None:
                    row.active = int(active)
                    row.pending = 0 if row.driver == "none" else int(pending or 0)
        return list(rows.values())
