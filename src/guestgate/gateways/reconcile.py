"""The reconciler: every gateway holds exactly the active sessions and walled garden of the database.

`reconcile_site` is the pure-ish core (one gateway, state given); `reconcile_all` is the job that
`serve` and `worker` run every few seconds: it loads the state of every site whose gateway
guestgate pushes to (nftables, routeros), syncs the gateways in parallel, and records each site's
`gateway_status` (ok / unreachable / misconfigured), `gateway_last_error` and, on success,
`gateway_last_sync_at`. It re-adds what a gateway lost (reboot, flush) with the time each session
has left, removes what expired or was disconnected even if the gateway's own timeout was lost,
and never touches entries it did not create. Running it twice changes nothing the second time.

Each site is read and pushed under that site's lock in the pool (see registry), and a successful
push stamps `gateway_applied_at` on the sessions it was the first to apply: that is what ends a
guest's "activating" page after the gateway was unreachable at sign-in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from guestgate.auth_integrations.models import AuthIntegration
from guestgate.gateways import registry
from guestgate.gateways.base import (
    GARDEN_AUTH,
    GardenEntry,
    GardenName,
    Gateway,
    GatewayError,
    GatewayMisconfigured,
    GatewayUnreachable,
    GuestAccess,
)
from guestgate.gateways.locks import gateway_lock
from guestgate.instances.models import Instance, InstanceSubnet
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site
from guestgate.walled_garden import presets
from guestgate.walled_garden.models import WalledGardenEntry

log = structlog.get_logger(__name__)
MAX_PARALLEL = 8
ERROR_CHARS = 500
APPLIED_BATCH = 500


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
    names: list[GardenName]
    # Sessions not yet known to be enforced: once the push succeeds, they are.
    pending: list[str]


def names_of(site_id: str, *, session: Session) -> list[GardenName]:
    """The walled-garden host names of a site (without addresses), with its providers' presets."""
    stmt = select(WalledGardenEntry.hostname, WalledGardenEntry.type).where(
        WalledGardenEntry.site_id == site_id, WalledGardenEntry.hostname.is_not(None)
    )
    found = {(row[0], row[1] or GARDEN_AUTH) for row in session.execute(stmt) if row[0] is not None}
    # The sign-in hosts of the site's oauth2 instances' providers, in the auth window.
    providers = select(AuthIntegration.type).where(
        AuthIntegration.id.in_(
            select(Instance.auth_integration_id)
            .join(InstanceSubnet, InstanceSubnet.instance_id == Instance.id)
            .where(InstanceSubnet.site_id == site_id, Instance.strategy == "oauth2")
        )
    )
    for integration_type in set(session.scalars(providers)):
        found.update((host.hostname, GARDEN_AUTH) for host in presets.hosts_for(integration_type))
    return [GardenName(hostname, kind) for hostname, kind in sorted(found)]


def resolved(runtime: Runtime, driver: str, names: Sequence[GardenName], *, now: datetime) -> list[GardenName]:
    """`names` with the addresses of exact names, for drivers that hold addresses (nftables, agent).

    Blocking (DNS, bounded by the resolver's timeouts): call from a worker thread.
    """
    if driver not in ("nftables", "agent"):
        return list(names)
    resolver = runtime.garden_resolver
    return [
        n if n.wildcard else dataclasses.replace(n, addresses=resolver.addresses(n.hostname, now=now)) for n in names
    ]


def reconcile_site(
    site: Site,
    gateway: Gateway,
    *,
    desired_guests: Sequence[GuestAccess],
    walled_garden: Sequence[GardenEntry | tuple[str, str | None]],
    now: datetime,
    names: Sequence[GardenName] = (),
) -> ReconcileResult:
    """Make `gateway` hold exactly the guests active at `now` and the walled garden; raises GatewayError."""
    synced = gateway.sync(desired_guests, walled_garden, now=now, names=names)
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
    sites = _sites(runtime=runtime)
    if not sites:
        return []
    own_pool = pool is None
    gateways = pool or registry.GatewayPool(
        box=runtime.box, outbound=runtime.outbound, default_portal_port=runtime.settings.port
    )
    try:
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(sites))) as executor:
            done = list(
                executor.map(lambda site: _reconcile_one(site, gateways, runtime=runtime, now=now), sites)
            )
    finally:
        if own_pool:
            gateways.close()
    outcomes = [outcome for outcome, _ in done]
    _record(outcomes, [state for _, state in done], runtime=runtime, now=now)
    return outcomes


def status_of(error: GatewayError) -> str:
    """The site's gateway_status for a driver error."""
    return "unreachable" if isinstance(error, GatewayUnreachable) else "misconfigured"


def _reconcile_one(
    site: Site, pool: registry.GatewayPool, *, runtime: Runtime, now: datetime
) -> tuple[SiteOutcome, _SiteState]:
    # Under the site's lock the state is read, then pushed: a sign-in in any process either
    # committed before the read (its guest is in the state) or waits to allow after the push.
    with gateway_lock(runtime, site, pool=pool) as held:
        if not held:
            state = _load(site, runtime=runtime, now=now)
            busy = GatewayUnreachable("the database lock of the site's gateway could not be taken")
            return SiteOutcome(site.id, status_of(busy), None, str(busy)), state
        state = _load(site, runtime=runtime, now=now)
        try:
            gateway = pool.get(state.site)
            result = reconcile_site(
                state.site,
                gateway,
                desired_guests=state.guests,
                walled_garden=state.garden,
                now=now,
                names=resolved(runtime, state.driver, state.names, now=now),
            )
        except GatewayError as exc:
            log.warning("gateway.reconcile_failed", site_id=site.id, driver=state.driver, error=str(exc))
            return SiteOutcome(site.id, status_of(exc), None, str(exc)[:ERROR_CHARS]), state
        except Exception as exc:
            # One site's unexpected failure must not stop the others; it is logged with its traceback.
            log.exception("gateway.reconcile_crashed", site_id=site.id, driver=state.driver)
            error = GatewayMisconfigured(f"unexpected error: {exc!r}")
            return SiteOutcome(site.id, status_of(error), None, str(error)[:ERROR_CHARS]), state
    return SiteOutcome(site.id, "ok", result, None), state


def _sites(*, runtime: Runtime) -> list[Site]:
    with runtime.sessions() as session:
        sites = list(
            session.scalars(
                select(Site).where(Site.gateway_driver.in_(sorted(registry.PUSHED_DRIVERS))).order_by(Site.id)
            )
        )
        session.expunge_all()
        return sites


def _load(site: Site, *, runtime: Runtime, now: datetime) -> _SiteState:
    with runtime.sessions() as session:
        fresh = session.get(Site, site.id) or site
        rows = session.execute(
            select(
                SiteUser.id,
                SiteUser.ip_address,
                SiteUser.mac_address,
                SiteUser.expires_at,
                SiteUser.gateway_applied_at,
            ).where(SiteUser.site_id == site.id, SiteUser.status == "active", SiteUser.expires_at > now)
        ).all()
        garden = [
            GardenEntry(entry.ip_address, entry.type)
            for entry in session.scalars(
                select(WalledGardenEntry).where(WalledGardenEntry.site_id == site.id)
            )
            if entry.ip_address is not None
        ]
        names = names_of(site.id, session=session)
    return _SiteState(
        site=fresh,
        driver=fresh.gateway_driver,
        config=dict(fresh.gateway_config or {}),
        guests=[GuestAccess(session_id=r[0], ip=r[1], mac=r[2], until=r[3]) for r in rows],
        garden=garden,
        names=names,
        pending=[r[0] for r in rows if r[4] is None],
    )


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
                mark_applied(state.pending, now=now, session=session)
        session.commit()


def mark_applied(session_ids: Sequence[str], *, now: datetime, session: Session) -> int:
    """Stamp `gateway_applied_at` on those of the sessions not stamped yet (no commit); returns how many."""
    total = 0
    for start in range(0, len(session_ids), APPLIED_BATCH):
        chunk = list(session_ids[start : start + APPLIED_BATCH])
        result = session.execute(
            update(SiteUser)
            .where(SiteUser.id.in_(chunk), SiteUser.gateway_applied_at.is_(None))
            .values(gateway_applied_at=now)
            .execution_options(synchronize_session=False)
        )
        total += cast(CursorResult[Any], result).rowcount
    return total
