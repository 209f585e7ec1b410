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

Limits and usage: each guest goes to the gateway with its session's speed limits, and each sync
first reads the gateway's byte counters (nftables counter objects, RouterOS queue `bytes`). The
readings are added to the sessions' usage (`guestgate.site_users.usage`: a smaller reading
than the last means the gateway restarted, and is added whole); a session that reaches its data
limit is left out of that same sync, so the gateway drops it at once, and is ended
`quota_exceeded` (audit event `site_user.quota_exceeded`, metric
`guestgate_sessions_quota_exceeded_total`). Usage is written under the site's lock, only for the
sessions whose counters moved, in batched UPDATEs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

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
    GuestCounters,
    UsageCheck,
)
from guestgate.gateways.locks import gateway_lock
from guestgate.ops import metrics as ops_metrics
from guestgate.runtime import Runtime
from guestgate.site_users import usage
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site
from guestgate.walled_garden import service as garden_service
from guestgate.walled_garden.models import WalledGardenEntry

log = structlog.get_logger(__name__)
MAX_PARALLEL = 8
ERROR_CHARS = 500
APPLIED_BATCH = 500


@dataclass(frozen=True)
class ReconcileResult:
    """How many guest entries one reconciliation added, removed and rewrote; usage written; quota ends."""

    added: int
    removed: int
    updated: int
    usage_written: int = 0
    quota_ended: int = 0
    # The sessions the sync left out for their data limit (what the pass then ends).
    dropped: frozenset[str] = dataclasses.field(default=frozenset(), compare=False)


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
    # The active sessions' usage so far, to add the counters read to.
    usage: dict[str, usage.Usage] = dataclasses.field(default_factory=dict)


def names_of(site_id: str, *, session: Session) -> list[GardenName]:
    """The walled-garden host names of a site (without addresses), with its providers' presets."""
    stmt = select(WalledGardenEntry.hostname, WalledGardenEntry.type).where(
        WalledGardenEntry.site_id == site_id, WalledGardenEntry.hostname.is_not(None)
    )
    found = {(row[0], row[1] or GARDEN_AUTH) for row in session.execute(stmt) if row[0] is not None}
    # The sign-in hosts of the site's oauth2 instances' providers, in the auth window.
    found.update((host, GARDEN_AUTH) for host in garden_service.provider_hosts(site_id, session=session)[0])
    return [GardenName(hostname, kind) for hostname, kind in sorted(found)]


def provider_addresses(site_id: str, *, session: Session) -> list[GardenEntry]:
    """The sign-in hosts of the site's providers that are addresses (an `oidc` issuer's), in the auth window."""
    return [GardenEntry(a, GARDEN_AUTH) for a in garden_service.provider_hosts(site_id, session=session)[1]]


def resolved(
    runtime: Runtime, driver: str, names: Sequence[GardenName], *, now: datetime
) -> list[GardenName]:
    """`names` with the addresses of exact names, for drivers that hold addresses (nftables, agent).

    Blocking (DNS, bounded by the resolver's timeouts): call from a worker thread.
    """
    if driver not in ("nftables", "agent"):
        return list(names)
    resolver = runtime.garden_resolver
    return [
        n if n.wildcard else dataclasses.replace(n, addresses=resolver.addresses(n.hostname, now=now))
        for n in names
    ]


def reconcile_site(
    site: Site,
    gateway: Gateway,
    *,
    desired_guests: Sequence[GuestAccess],
    walled_garden: Sequence[GardenEntry | tuple[str, str | None]],
    now: datetime,
    names: Sequence[GardenName] = (),
    check: UsageCheck | None = None,
) -> ReconcileResult:
    """Make `gateway` hold exactly the guests active at `now` (less those `check` drops) and the walled garden; raises GatewayError."""
    synced = gateway.sync(desired_guests, walled_garden, now=now, names=names, check=check)
    result = ReconcileResult(
        added=synced.added, removed=synced.removed, updated=synced.updated, dropped=synced.dropped
    )
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


class QuotaCheck:
    """The `check` of one site's sync: adds the counters read to the sessions' usage, picks those over quota."""

    def __init__(self, before: Mapping[str, usage.Usage]) -> None:
        self.before = before
        self.readings: list[usage.Reading] = []
        self.over: set[str] = set()

    def __call__(self, counters: Mapping[str, GuestCounters]) -> Collection[str]:
        """Sessions to drop now: over their data limit after this reading (or already before it)."""
        self.readings.clear()
        self.over = {sid for sid, u in self.before.items() if usage.over_quota(u)}
        for session_id, reading in counters.items():
            before = self.before.get(session_id)
            if before is None:
                continue  # not an active session of the database: nothing to add it to
            after = usage.read(before, reading.bytes_in, reading.bytes_out)
            if usage.moved(before, after):
                traffic = (after.bytes_in, after.bytes_out) != (before.bytes_in, before.bytes_out)
                self.readings.append(usage.Reading(session_id, after, active=traffic))
            if usage.over_quota(after):
                self.over.add(session_id)
        return self.over


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
            check = QuotaCheck(state.usage)
            result = reconcile_site(
                state.site,
                gateway,
                desired_guests=state.guests,
                walled_garden=state.garden,
                now=now,
                names=resolved(runtime, state.driver, state.names, now=now),
                check=check,
            )
            # Still under the lock: the next pass reads what this one wrote.
            result = _write_usage(state, check, result, runtime=runtime, now=now)
        except GatewayError as exc:
            log.warning("gateway.reconcile_failed", site_id=site.id, driver=state.driver, error=str(exc))
            return SiteOutcome(site.id, status_of(exc), None, str(exc)[:ERROR_CHARS]), state
        except Exception as exc:
            # One site's unexpected failure must not stop the others; it is logged with its traceback.
            # Only its type reaches last_error: its text may quote what a remote host answered.
            log.exception("gateway.reconcile_crashed", site_id=site.id, driver=state.driver)
            error = GatewayMisconfigured(f"unexpected error ({type(exc).__name__}); the log has the details")
            return SiteOutcome(site.id, status_of(error), None, str(error)[:ERROR_CHARS]), state
    return SiteOutcome(site.id, "ok", result, None), state


def _write_usage(
    state: _SiteState,
    check: QuotaCheck,
    result: ReconcileResult,
    *,
    runtime: Runtime,
    now: datetime,
) -> ReconcileResult:
    dropped = result.dropped
    if not check.readings and not dropped:
        return result
    with runtime.sessions() as session:
        written = usage.record(check.readings, now=now, session=session)
        ended = usage.end_over_quota(
            dropped, org_id=state.site.org_id, site_id=state.site.id, now=now, session=session
        )
        session.commit()
    if ended:
        ops_metrics.QUOTA_EXCEEDED.labels(driver=state.driver).inc(len(ended))
        log.info("gateway.quota_exceeded", site_id=state.site.id, driver=state.driver, sessions=len(ended))
    return dataclasses.replace(result, usage_written=written, quota_ended=len(ended))


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
                SiteUser.download_kbps,
                SiteUser.upload_kbps,
                SiteUser.data_limit_mb,
                SiteUser.bytes_in,
                SiteUser.bytes_out,
                SiteUser.gateway_bytes_in,
                SiteUser.gateway_bytes_out,
            ).where(SiteUser.site_id == site.id, SiteUser.live_at(now))
        ).all()
        garden = [
            GardenEntry(entry.ip_address, entry.type)
            for entry in session.scalars(
                select(WalledGardenEntry).where(WalledGardenEntry.site_id == site.id)
            )
            if entry.ip_address is not None
        ]
        garden += provider_addresses(site.id, session=session)
        names = names_of(site.id, session=session)
    return _SiteState(
        site=fresh,
        driver=fresh.gateway_driver,
        config=dict(fresh.gateway_config or {}),
        guests=[
            GuestAccess(session_id=r[0], ip=r[1], mac=r[2], until=r[3], download_kbps=r[5], upload_kbps=r[6])
            for r in rows
        ],
        garden=garden,
        names=names,
        pending=[r[0] for r in rows if r[4] is None],
        usage={
            r[0]: usage.Usage(
                bytes_in=r[8] or 0, bytes_out=r[9] or 0, raw_in=r[10], raw_out=r[11], data_limit_mb=r[7]
            )
            for r in rows
        },
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
