"""The reconciler: every gateway holds exactly the active sessions and walled garden of the database.

`reconcile_site` is the pure-ish core (one gateway, state given); `reconcile_all` is the job that
`serve` and `worker` run every few seconds: it loads the state of every site whose gateway
guestgate pushes to (nftables, routeros), syncs the gateways in parallel, and records each site's
`gateway_status` (ok / unreachable / misconfigured), `gateway_last_error` and, on success,
`gateway_last_sync_at`. It re-adds what a gateway lost (reboot, flush) with the time each session
has left, removes what expired or was disconnected even if the gateway's own timeout was lost,
and never touches entries it did not create. Running it twice changes nothing the second time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select

from guestgate.gateways import registry
from guestgate.gateways.base import (
    GardenEntry,
    Gateway,
    GatewayError,
    GatewayMisconfigured,
    GatewayUnreachable,
    GuestAccess,
)
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site
from guestgate.walled_garden.models import WalledGardenEntry

log = structlog.get_logger(__name__)
MAX_PARALLEL = 8
ERROR_CHARS = 500


@dataclass(frozen=True)
class ReconcileResult:
    """How many guest entries one reconciliation added, removed and rewrote on a gateway."""

    added: int
    removed: int
    updated: int


@dataclass(frozen=True)
class SiteOutcome:
    """What reconciling one site did: its new gateway status, the changes, or the error."""

    site_id: str
    status: str
    result: ReconcileResult | None
    error: str | None


@dataclass(frozen=True)
class _SiteState:
    site: Site
    driver: str
    config: dict[str, Any]
    guests: list[GuestAccess]
    garden: list[GardenEntry]


def reconcile_site(
    site: Site,
    gateway: Gateway,
    *,
    desired_guests: Sequence[GuestAccess],
    walled_garden: Sequence[GardenEntry | tuple[str, str | None]],
    now: datetime,
) -> ReconcileResult:
    """Make `gateway` hold exactly the guests active at `now` and the walled garden; raises GatewayError."""
    synced = gateway.sync(desired_guests, walled_garden, now=now)
    result = ReconcileResult(added=synced.added, removed=synced.removed, updated=synced.updated)
    if result.added or result.removed or result.updated:
        log.info(
            "gateway.reconciled",
            site_id=site.id,
            driver=gateway.driver,
            added=result.added,
            removed=result.removed,
            updated=result.updated,
        )
    return result


def reconcile_all(
    *, runtime: Runtime, now: datetime, pool: registry.GatewayPool | None = None
) -> list[SiteOutcome]:
    """Reconcile every pushed-to gateway and record each site's gateway status; returns what happened."""
    states = _load(runtime=runtime, now=now)
    if not states:
        return []
    own_pool = pool is None
    gateways = pool or registry.GatewayPool(box=runtime.box, default_portal_port=runtime.settings.port)
    try:
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(states))) as executor:
            outcomes = list(executor.map(lambda state: _reconcile_one(state, gateways, now=now), states))
    finally:
        if own_pool:
            gateways.close()
    _record(outcomes, states, runtime=runtime, now=now)
    return outcomes


def status_of(error: GatewayError) -> str:
    """The site's gateway_status for a driver error."""
    return "unreachable" if isinstance(error, GatewayUnreachable) else "misconfigured"


def _reconcile_one(state: _SiteState, pool: registry.GatewayPool, *, now: datetime) -> SiteOutcome:
    try:
        gateway = pool.get(state.site)
        result = reconcile_site(
            state.site, gateway, desired_guests=state.guests, walled_garden=state.garden, now=now
        )
    except GatewayError as exc:
        log.warning("gateway.reconcile_failed", site_id=state.site.id, driver=state.driver, error=str(exc))
        return SiteOutcome(state.site.id, status_of(exc), None, str(exc)[:ERROR_CHARS])
    except Exception as exc:
        # One site's unexpected failure must not stop the others; it is logged with its traceback.
        log.exception("gateway.reconcile_crashed", site_id=state.site.id, driver=state.driver)
        error = GatewayMisconfigured(f"unexpected error: {exc!r}")
        return SiteOutcome(state.site.id, status_of(error), None, str(error)[:ERROR_CHARS])
    return SiteOutcome(state.site.id, "ok", result, None)


def _load(*, runtime: Runtime, now: datetime) -> list[_SiteState]:
    with runtime.sessions() as session:
        sites = list(
            session.scalars(
                select(Site).where(Site.gateway_driver.in_(sorted(registry.PUSHED_DRIVERS))).order_by(Site.id)
            )
        )
        if not sites:
            return []
        ids = [site.id for site in sites]
        guests: dict[str, list[GuestAccess]] = defaultdict(list)
        rows = session.scalars(
            select(SiteUser).where(
                SiteUser.site_id.in_(ids), SiteUser.status == "active", SiteUser.expires_at > now
            )
        )
        for row in rows:
            guests[row.site_id].append(
                GuestAccess(session_id=row.id, ip=row.ip_address, mac=row.mac_address, until=row.expires_at)
            )
        garden: dict[str, list[GardenEntry]] = defaultdict(list)
        for entry in session.scalars(select(WalledGardenEntry).where(WalledGardenEntry.site_id.in_(ids))):
            garden[entry.site_id].append(GardenEntry(entry.ip_address, entry.type))
        return [
            _SiteState(
                site=site,
                driver=site.gateway_driver,
                config=dict(site.gateway_config or {}),
                guests=guests[site.id],
                garden=garden[site.id],
            )
            for site in sites
        ]


def _record(
    outcomes: list[SiteOutcome], states: list[_SiteState], *, runtime: Runtime, now: datetime
) -> None:
    loaded = {state.site.id: state for state in states}
    with runtime.sessions() as session:
        for outcome in outcomes:
            site = session.get(Site, outcome.site_id)
            state = loaded[outcome.site_id]
            # A site deleted or re-pointed at another gateway meanwhile keeps its new status.
            if (
                site is None
                or site.gateway_driver != state.driver
                or dict(site.gateway_config or {}) != state.config
            ):
                continue
            site.gateway_status = outcome.status
            site.gateway_last_error = outcome.error
            if outcome.status == "ok":
                site.gateway_last_sync_at = now
        session.commit()
