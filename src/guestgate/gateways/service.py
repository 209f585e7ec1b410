"""Gateway use cases outside the reconciler: what the portal, the operator routes and the CLI push.

Every change takes the site's lock in the process's `GatewayPool` (see registry) and goes to the
driver right away, after the database change it follows was committed. A gateway that fails is
logged and left to the reconciler, which retries every few seconds from the database; nothing
here undoes a committed change because a gateway was down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from guestgate.audit import service as audit_service
from guestgate.db import utcnow
from guestgate.errors import NotFound
from guestgate.gateways.agent import AGENT_STALE_SECONDS, AgentState, agent_keys, desired_state, new_salt
from guestgate.gateways.base import (
    GardenEntry,
    GatewayError,
    GatewayHealth,
    GatewayMisconfigured,
    GatewayUnreachable,
    GuestAccess,
    GuestCounters,
)
from guestgate.gateways.locks import gateway_lock
from guestgate.gateways.nftables import NftablesGateway, remove_table
from guestgate.gateways.policy import LOCAL_DRIVER, LocalTable, local_table
from guestgate.gateways.reconcile import (
    ERROR_CHARS,
    QuotaCheck,
    mark_applied,
    names_of,
    provider_addresses,
    resolved,
    status_of,
)
from guestgate.gateways.rsc import render_script
from guestgate.ops import metrics as ops_metrics
from guestgate.runtime import Runtime
from guestgate.site_users import usage
from guestgate.site_users.models import SessionStatus, SiteUser
from guestgate.sites import service as site_service
from guestgate.sites.models import Site
from guestgate.walled_garden.models import WalledGardenEntry

log = structlog.get_logger(__name__)
# How long a sign-in waits for another change to the same gateway before it leaves it to the reconciler.
ALLOW_LOCK_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class SessionRef:
    """What revoking a session at its gateway needs."""

    site_id: str
    session_id: str
    ip: str


@dataclass(frozen=True)
class Applied:
    """What `guestgate gateway apply` installed."""

    table: str
    netns: str | None
    guests: int
    walled_garden: int


def allow(runtime: Runtime, site: Site, guest: GuestAccess, *, now: datetime) -> bool:
    """Let the guest through at the site's gateway; True if enforced now, False if it waits for the reconciler or agent."""
    pool = runtime.gateways
    if site.gateway_driver == "none":
        # Records in memory only: nothing to wait for, nothing to stamp.
        pool.get(site).allow(guest, now=now)
        return True
    # A reconciliation of thousands of RouterOS entries holds the lock for seconds; the guest
    # does not wait for it: the "activating" page does, and the next reconciliation applies it.
    with gateway_lock(runtime, site, timeout=ALLOW_LOCK_WAIT_SECONDS) as held:
        if not held:
            log.info("gateway.allow_deferred", site_id=site.id, session_id=guest.session_id)
            return False
        try:
            gateway = pool.get(site)
            gateway.allow(guest, now=now)
        except GatewayError as exc:
            log.warning("gateway.allow_failed", site_id=site.id, session_id=guest.session_id, error=str(exc))
            return False
    if gateway.remote:
        return False
    if gateway.enforcing:
        with runtime.sessions() as session:
            mark_applied([guest.session_id], now=now, session=session)
            session.commit()
    return True


def open_auth_window(runtime: Runtime, site: Site, ip: str, seconds: int) -> bool:
    """Let `ip` reach the site's captive-auth walled garden for `seconds`; False if the gateway failed."""
    pool = runtime.gateways
    try:
        with gateway_lock(runtime, site) as held:
            if not held:
                return False
            pool.get(site).open_auth_window(ip, seconds)
    except GatewayError as exc:
        log.warning("gateway.auth_window_failed", site_id=site.id, ip=ip, error=str(exc))
        return False
    return True


def revoke(runtime: Runtime, sessions: Sequence[SessionRef]) -> None:
    """Remove ended sessions from their gateways; failures are left to the reconciler."""
    by_site: dict[str, list[SessionRef]] = defaultdict(list)
    for ref in sessions:
        by_site[ref.site_id].append(ref)
    if not by_site:
        return
    with runtime.sessions() as session:
        sites = list(session.scalars(select(Site).where(Site.id.in_(sorted(by_site)))))
    pool = runtime.gateways
    for site in sites:
        try:
            with gateway_lock(runtime, site) as held:
                if not held:
                    continue  # the reconciler removes them
                gateway = pool.get(site)
                for ref in by_site[site.id]:
                    gateway.revoke(ref.session_id, ref.ip)
        except GatewayError as exc:
            log.warning("gateway.revoke_failed", site_id=site.id, error=str(exc))


def push_walled_garden(runtime: Runtime, site_id: str) -> None:
    """Make the site's gateway hold the walled garden of the database; failures are left to the reconciler."""
    with runtime.sessions() as session:
        site = session.get(Site, site_id)
        if site is None:
            return
        entries = garden_of(site_id, session=session)
        names = names_of(site_id, session=session)
    names = resolved(runtime, site.gateway_driver, names, now=utcnow())
    pool = runtime.gateways
    try:
        with gateway_lock(runtime, site) as held:
            if not held:
                return  # the reconciler pushes it
            pool.get(site).replace_walled_garden(entries, names)
    except GatewayError as exc:
        log.warning("gateway.walled_garden_failed", site_id=site_id, error=str(exc))


def active_sessions_of_instance(instance_id: str, *, session: Session) -> list[SessionRef]:
    """The instance's active sessions: those its deletion ends."""
    rows = session.execute(
        select(SiteUser.site_id, SiteUser.id, SiteUser.ip_address).where(
            SiteUser.instance_id == instance_id, SiteUser.status == SessionStatus.ACTIVE
        )
    ).all()
    return [SessionRef(site_id=r[0], session_id=r[1], ip=r[2]) for r in rows]


def ref_of(user: SiteUser) -> SessionRef:
    """The revocation handle of a session row."""
    return SessionRef(site_id=user.site_id, session_id=user.id, ip=user.ip_address)


def garden_of(site_id: str, *, session: Session) -> list[GardenEntry]:
    """The walled garden the site's gateway must hold."""
    stmt = select(WalledGardenEntry.ip_address, WalledGardenEntry.type).where(
        WalledGardenEntry.site_id == site_id
    )
    own = [GardenEntry(row[0], row[1]) for row in session.execute(stmt) if row[0] is not None]
    return own + provider_addresses(site_id, session=session)


def guests_of(site_id: str, *, now: datetime, session: Session) -> list[GuestAccess]:
    """The site's sessions active at `now`, as the gateway must hold them."""
    rows = session.execute(
        select(
            SiteUser.id,
            SiteUser.ip_address,
            SiteUser.mac_address,
            SiteUser.expires_at,
            SiteUser.download_kbps,
            SiteUser.upload_kbps,
        ).where(SiteUser.site_id == site_id, SiteUser.live_at(now))
    ).all()
    return [
        GuestAccess(session_id=r[0], ip=r[1], mac=r[2], until=r[3], download_kbps=r[4], upload_kbps=r[5])
        for r in rows
    ]


def find_site(site_id: str, *, session: Session) -> Site:
    """Any org's site by id (for the command line, which acts for the operator of the host), or NotFound."""
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound("site", site_id)
    return site


def apply_table(runtime: Runtime, site_id: str, *, now: datetime) -> Applied:
    """Install or repair the nft table of an nftables site with its active guests and walled garden."""
    with runtime.sessions() as session:
        site = find_site(site_id, session=session)
        if site.gateway_driver != "nftables":
            hint = " (run `guestgate agent` on the gateway)" if site.gateway_driver == "agent" else ""
            raise GatewayMisconfigured(
                f"site {site.id} uses the '{site.gateway_driver}' driver; only nftables sites have a local table{hint}"
            )
        guests = guests_of(site.id, now=now, session=session)
        garden = garden_of(site.id, session=session)
        names = names_of(site.id, session=session)
    names = resolved(runtime, site.gateway_driver, names, now=now)
    pool = runtime.gateways
    try:
        with gateway_lock(runtime, site) as held:
            if not held:
                raise GatewayUnreachable("the database lock of the site's gateway could not be taken")
            gateway = pool.get(site)
            assert isinstance(gateway, NftablesGateway)
            gateway.apply(guests=guests, walled_garden=garden, now=now, names=names)
    except GatewayError as exc:
        _set_status(site.id, status_of(exc), str(exc), runtime=runtime, now=now)
        raise
    with runtime.sessions() as session:
        mark_applied([g.session_id for g in guests], now=now, session=session)
        session.commit()
    _set_status(site.id, "ok", None, runtime=runtime, now=now)
    return Applied(table=gateway.table, netns=gateway.netns, guests=len(guests), walled_garden=len(garden))


def move_table(runtime: Runtime, site_id: str | None, left: LocalTable) -> bool:
    """After a site left an nft table on this host (edited, deleted): remove it; True if removed.

    A site that is still an nftables site gets its new table first, so its guests are never
    without one. The old table stays if another site still uses it (two sites made before tables
    were per site can share `guestgate`). Failures are logged; the reconciler installs the new table.
    """
    now = utcnow()
    with runtime.sessions() as session:
        if site_id is not None:
            site = session.get(Site, site_id)
            moved = site is not None and site.gateway_driver == LOCAL_DRIVER
        else:
            moved = False
        users = [
            row[0]
            for row in session.execute(select(Site.id, Site.gateway_driver, Site.gateway_config))
            if local_table(row[1], row[2] or {}) == left
        ]
    if moved and site_id is not None:
        try:
            apply_table(runtime, site_id, now=now)
        except GatewayError as exc:
            log.warning("gateway.table_move_failed", site_id=site_id, error=str(exc))
    if users:
        log.info("gateway.table_kept", table=left.table, netns=left.netns, used_by=users)
        return False
    try:
        remove_table(left.table, netns=left.netns)
    except GatewayError as exc:
        log.warning("gateway.table_remove_failed", table=left.table, netns=left.netns, error=str(exc))
        return False
    log.info("gateway.table_removed", table=left.table, netns=left.netns, site_id=site_id)
    return True


def apply_local_tables(runtime: Runtime, *, now: datetime) -> dict[str, str | None]:
    """At server start: install or repair the table of every nftables site; site id -> error or None."""
    with runtime.sessions() as session:
        ids = list(
            session.scalars(select(Site.id).where(Site.gateway_driver == "nftables").order_by(Site.id))
        )
    done: dict[str, str | None] = {}
    for site_id in ids:
        try:
            applied = apply_table(runtime, site_id, now=now)
        except GatewayError as exc:
            log.warning("gateway.apply_failed", site_id=site_id, error=str(exc))
            done[site_id] = str(exc)
        else:
            log.info("gateway.applied", site_id=site_id, table=applied.table, guests=applied.guests)
            done[site_id] = None
    return done


def bootstrap_script(
    runtime: Runtime,
    site_id: str,
    *,
    api_user: str | None = None,
    controller_address: str | None = None,
) -> str:
    """The RouterOS `.rsc` set-up of a site, for its gateway's user and password."""
    with runtime.sessions() as session:
        site = find_site(site_id, session=session)
        config = dict(site.gateway_config or {})
        secrets = site_service.gateway_secrets(site, box=runtime.box)
        return render_script(
            site,
            runtime.settings.public_url,
            api_user or str(config.get("username") or "guestgate"),
            api_password=secrets.get("password", ""),
            controller_address=controller_address,
        )


def site_script(runtime: Runtime, site_id: str, *, org_id: str, session: Session) -> str:
    """The `.rsc` set-up of the org's site (NotFound for another org's); handing it out is audited.

    The script holds the gateway's API password, so who downloaded it is worth knowing later,
    as `guestgate gateway agent-key` records who was given an agent key.
    """
    site = site_service.get(site_id, org_id=org_id, session=session)
    script = bootstrap_script(runtime, site.id)
    audit_service.record(
        session, org_id=org_id, action="site.script_downloaded", target_type="site", target_id=site.id
    )
    session.commit()
    return script


def site_agent_key(runtime: Runtime, site_id: str, *, org_id: str, session: Session) -> str:
    """The key `guestgate agent` authenticates with for the org's site; handing it out is audited."""
    site = site_service.get(site_id, org_id=org_id, session=session)
    audit_service.record(
        session,
        org_id=org_id,
        action="site.agent_key_shown",
        target_type="site",
        target_id=site.id,
        detail={"driver": site.gateway_driver},
    )
    session.commit()
    return agent_keys(runtime.settings, site.id, site.agent_key_salt)[0]


def rotate_agent_key(runtime: Runtime, site_id: str, *, org_id: str, session: Session) -> str:
    """Give the org's site a new agent key and return it; the old one is refused from now on. Audited.

    Only the site's new salt is stored; the key is shown to the caller this once (and derived
    again by `guestgate gateway agent-key`). Waiting long-polls are woken, so one that began with
    the old key is answered 401 instead of being held open.
    """
    site = site_service.get(site_id, org_id=org_id, session=session)
    site.agent_key_salt = new_salt()
    audit_service.record(
        session,
        org_id=org_id,
        action="site.agent_key_rotated",
        target_type="site",
        target_id=site.id,
        detail={"driver": site.gateway_driver},
    )
    session.commit()
    runtime.gateways.agents.bump(site.id)
    return agent_keys(runtime.settings, site.id, site.agent_key_salt)[0]


def check_connection(runtime: Runtime, site: Site) -> GatewayHealth:
    """Ask the site's gateway whether it answers with the stored settings; GatewayError if not.

    The driver is the one the reconciler uses (the process's pool), so a RouterOS host goes
    through the outbound policy like every other call to it. An agent is never reached from
    here: its last poll answers (GatewayUnreachable when it is stale or never came).
    """
    if site.gateway_driver == "agent":
        seen = site.gateway_last_sync_at
        if site.gateway_status == "ok" and seen is not None:
            return GatewayHealth(state="ok", detail=f"the agent last polled at {seen:%Y-%m-%d %H:%M:%S} UTC")
        raise GatewayUnreachable(
            "the agent has not polled yet"
            if seen is None
            else f"the agent has not polled since {seen.isoformat()}"
        )
    return runtime.gateways.get(site).health()


def agent_state(runtime: Runtime, site: Site, *, now: datetime) -> AgentState:
    """The state an agent site's gateway must hold now."""
    pool = runtime.gateways
    with runtime.sessions() as session:
        names = names_of(site.id, session=session)
    names = resolved(runtime, "agent", names, now=now)
    with runtime.sessions() as session:
        return desired_state(
            site,
            feed=pool.agents,
            default_portal_port=pool.default_portal_port,
            now=now,
            session=session,
            names=names,
        )


def site_row(runtime: Runtime, site_id: str) -> Site | None:
    """The site, whatever its driver, read afresh (its agent-key salt included)."""
    with runtime.sessions() as session:
        return session.get(Site, site_id)


def agent_site(runtime: Runtime, site_id: str) -> Site | None:
    """The site if it exists and its driver is `agent`."""
    with runtime.sessions() as session:
        site = session.get(Site, site_id)
        if site is None or site.gateway_driver != "agent":
            return None
        return site


def agent_report(
    runtime: Runtime, site: Site, *, applied: str, error: str | None, now: datetime
) -> AgentState:
    """Record an agent's poll: the version it holds (its sessions are then applied) or its error."""
    state = agent_state(runtime, site, now=now)
    with runtime.sessions() as session:
        row = session.get(Site, site.id)
        if row is None:
            return state
        if error:
            row.gateway_status = "misconfigured"
            row.gateway_last_error = error[:ERROR_CHARS]
        elif applied and applied == state.version:
            row.gateway_status = "ok"
            row.gateway_last_error = None
            row.gateway_last_sync_at = now
            mark_applied(state.pending, now=now, session=session)
        session.commit()
    return state


def agent_usage(
    runtime: Runtime, site: Site, counters: Mapping[str, GuestCounters], *, now: datetime
) -> tuple[int, int]:
    """Add an agent's counters to its site's active sessions; end those over quota. Returns (written, ended)."""
    ids = sorted(counters)
    before: dict[str, usage.Usage] = {}
    with runtime.sessions() as session:
        for start in range(0, len(ids), usage.WRITE_BATCH):
            chunk = ids[start : start + usage.WRITE_BATCH]
            rows = session.execute(
                select(
                    SiteUser.id,
                    SiteUser.bytes_in,
                    SiteUser.bytes_out,
                    SiteUser.gateway_bytes_in,
                    SiteUser.gateway_bytes_out,
                    SiteUser.data_limit_mb,
                ).where(
                    SiteUser.id.in_(chunk),
                    SiteUser.site_id == site.id,
                    SiteUser.status == SessionStatus.ACTIVE,
                    SiteUser.expires_at > now,
                )
            )
            for r in rows:
                before[r[0]] = usage.Usage(r[1] or 0, r[2] or 0, r[3], r[4], r[5])
        check = QuotaCheck(before)
        over = check({sid: c for sid, c in counters.items() if sid in before})
        written = usage.record(check.readings, now=now, session=session)
        ended = usage.end_over_quota(over, org_id=site.org_id, site_id=site.id, now=now, session=session)
        session.commit()
    if ended:
        ops_metrics.QUOTA_EXCEEDED.labels(driver="agent").inc(len(ended))
        # The agent drops them with the state its woken poll brings.
        runtime.gateways.agents.bump(site.id)
    return written, len(ended)


def mark_stale_agents(runtime: Runtime, *, now: datetime) -> int:
    """Report agent sites whose agent has not polled for a while as unreachable; returns how many changed."""
    cutoff = now.timestamp() - AGENT_STALE_SECONDS
    with runtime.sessions() as session:
        sites = session.scalars(
            select(Site).where(Site.gateway_driver == "agent", Site.gateway_status == "ok")
        )
        changed = 0
        for site in sites:
            seen = site.gateway_last_sync_at
            if seen is None or seen.timestamp() < cutoff:
                site.gateway_status = "unreachable"
                site.gateway_last_error = (
                    f"the agent has not polled since {seen.isoformat() if seen else 'it was set up'}"
                )
                changed += 1
        session.commit()
        return changed


def site_pending(session_id: str, *, runtime: Runtime) -> bool:
    """True while the session is active at an enforcing site whose gateway has not let it through yet."""
    with runtime.sessions() as session:
        row = session.execute(
            select(SiteUser.gateway_applied_at, Site.gateway_driver)
            .join(Site, Site.id == SiteUser.site_id)
            .where(SiteUser.id == session_id, SiteUser.status == SessionStatus.ACTIVE)
        ).first()
    return row is not None and row[0] is None and row[1] != "none"


def _set_status(site_id: str, status: str, error: str | None, *, runtime: Runtime, now: datetime) -> None:
    values: dict[str, object] = {
        "gateway_status": status,
        "gateway_last_error": error[:ERROR_CHARS] if error else None,
    }
    if status == "ok":
        values["gateway_last_sync_at"] = now
    with runtime.sessions() as session:
        session.execute(update(Site).where(Site.id == site_id).values(**values))
        session.commit()
