"""`GET /metrics`: Prometheus gauges of the caller's sites' gateways.

The endpoint takes an operator token with the read scope (`Authorization: Bearer`, as
Prometheus' `authorization` scrape setting sends it) and shows only that token's org, so a
guest on the portal's network learns nothing. Per site:

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
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_READ
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site

STATES = ("ok", "unreachable", "misconfigured", "unknown", "not_enforcing")


class _SiteRow:
    def __init__(self, site_id: str, driver: str, state: str, last_sync: datetime | None) -> None:
        self.site_id = site_id
        self.driver = driver
        self.state = state
        self.last_sync = last_sync
        self.active = 0
        self.pending = 0


class _Snapshot(Collector):
    def __init__(self, rows: list[_SiteRow]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = GaugeMetricFamily(
            "guestgate_gateway_status",
            "1 for the gateway state of the site",
            labels=["site_id", "driver", "state"],
        )
        synced = GaugeMetricFamily(
            "guestgate_gateway_last_sync_timestamp_seconds",
            "When the site's gateway last held exactly the database's state",
            labels=["site_id", "driver"],
        )
        active = GaugeMetricFamily(
            "guestgate_gateway_active_sessions", "Guest sessions active now", labels=["site_id", "driver"]
        )
        pending = GaugeMetricFamily(
            "guestgate_gateway_pending_sessions",
            "Active sessions the gateway has not let through yet",
            labels=["site_id", "driver"],
        )
        for row in self.rows:
            for state in STATES:
                status.add_metric([row.site_id, row.driver, state], 1.0 if row.state == state else 0.0)
            if row.last_sync is not None:
                synced.add_metric([row.site_id, row.driver], row.last_sync.timestamp())
            active.add_metric([row.site_id, row.driver], float(row.active))
            pending.add_metric([row.site_id, row.driver], float(row.pending))
        yield from (status, synced, active, pending)


class MetricsApp:
    """The endpoint answering /metrics."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def endpoint(self, request: Request) -> Response:
        """The gauges of the token's org."""
        try:
            principal = self.runtime.verifier.verify(request.headers.get("authorization"))
            principal.require(SCOPE_READ)
        except GuestgateError as error:
            return error_response(error, self.runtime.settings.public_url)
        rows = await asyncio.to_thread(self._rows, principal.org_id, utcnow())
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Snapshot(rows))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def _rows(self, org_id: str, now: datetime) -> list[_SiteRow]:
        with self.runtime.sessions() as session:
            rows = {
                site_id: _SiteRow(site_id, driver, "not_enforcing" if driver == "none" else state, last_sync)
                for site_id, driver, state, last_sync in session.execute(
                    select(Site.id, Site.gateway_driver, Site.gateway_status, Site.gateway_last_sync_at)
                    .where(Site.org_id == org_id)
                    .order_by(Site.id)
                )
            }
            counts = session.execute(
                select(
                    SiteUser.site_id,
                    func.count(),
                    func.sum(case((SiteUser.gateway_applied_at.is_(None), 1), else_=0)),
                )
                .where(SiteUser.org_id == org_id, SiteUser.status == "active", SiteUser.expires_at > now)
                .group_by(SiteUser.site_id)
            )
            for site_id, active, pending in counts:
                row = rows.get(site_id)
                if row is not None:
                    row.active = int(active)
                    row.pending = 0 if row.driver == "none" else int(pending or 0)
        return list(rows.values())
