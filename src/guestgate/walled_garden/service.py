"""Walled garden: per-site destinations reachable before login (always, or during the auth window)."""

from __future__ import annotations

import ipaddress
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guestgate.audit import service as audit_service
from guestgate.auth_integrations.models import AuthIntegration
from guestgate.errors import Conflict, InvalidRequest, NotFound, ParameterInvalid, ParameterMissing
from guestgate.instances.models import Instance, InstanceSubnet
from guestgate.pagination import Page, PageRequest, fetch_page
from guestgate.sites import service as site_service
from guestgate.walled_garden import presets
from guestgate.walled_garden.models import WalledGardenEntry
from guestgate.walled_garden.schemas import DEFAULT_TYPE, WalledGardenEntryIn
from guestgate.walled_garden.schemas import WalledGardenEntry as WalledGardenEntryOut

# Gateways hold the garden in one address list / nft set; this keeps a push to them small and
# far below RouterOS's practical list sizes.
MAX_ENTRIES_PER_SITE = 1000
# Host-name entries count towards the cap above, and at most this many of them: each exact name
# is resolved by guestgate (nftables and agent sites) and refreshed as its TTL runs out.
MAX_HOSTNAMES_PER_SITE = 100


def get(site_id: str, entry_id: str, *, org_id: str, session: Session) -> WalledGardenEntry:
    """The entry of the org's site, or NotFound (the site first, then the entry)."""
    site = site_service.get(site_id, org_id=org_id, session=session)
    entry = session.get(WalledGardenEntry, entry_id)
    if entry is None or entry.site_id != site.id:
        raise NotFound("walled garden entry", entry_id)
    return entry


def list_entries(
    site_id: str, *, org_id: str, page: PageRequest, session: Session
) -> Page[WalledGardenEntry]:
    """The org's site's entries, newest first."""
    site = site_service.get(site_id, org_id=org_id, session=session)
    stmt = select(WalledGardenEntry).where(WalledGardenEntry.site_id == site.id)
    return fetch_page(session, stmt, page, WalledGardenEntry.created_at, WalledGardenEntry.id)


def entries_for_site(site_id: str, *, session: Session) -> list[WalledGardenEntry]:
    """Every entry of a site, oldest first: what its gateway must hold."""
    stmt = (
        select(WalledGardenEntry)
        .where(WalledGardenEntry.site_id == site_id)
        .order_by(WalledGardenEntry.created_at, WalledGardenEntry.id)
    )
    return list(session.scalars(stmt))


def provider_hosts(site_id: str, *, session: Session) -> tuple[list[str], list[str]]:
    """The sign-in hosts of the providers of the site's oauth2 instances, for the auth window.

    `(host names, addresses)`: the presets of their types (see `presets`), and an `oidc`
    integration's sign-in host, which is an address when its authorization endpoint names one.
    """
    stmt = select(AuthIntegration.type, AuthIntegration.sign_in_host).where(
        AuthIntegration.id.in_(
            select(Instance.auth_integration_id)
            .join(InstanceSubnet, InstanceSubnet.instance_id == Instance.id)
            .where(InstanceSubnet.site_id == site_id, Instance.strategy == "oauth2")
        )
    )
    names: set[str] = set()
    addresses: set[str] = set()
    for kind, host in {(row[0], row[1]) for row in session.execute(stmt)}:
        for found in presets.sign_in_hosts(kind, host):
            (addresses if _is_address(found) else names).add(found)
    return sorted(names), sorted(addresses)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def create(
    site_id: str, data: WalledGardenEntryIn, *, org_id: str, now: datetime, session: Session
) -> WalledGardenEntry:
    """Add an entry to the org's site and commit; duplicates and entries beyond the cap are refused."""
    ip_address, hostname = destination(data)
    site = site_service.get(site_id, org_id=org_id, session=session)
    count = (
        session.scalar(
            select(func.count()).select_from(WalledGardenEntry).where(WalledGardenEntry.site_id == site.id)
        )
        or 0
    )
    if count >= MAX_ENTRIES_PER_SITE:
        raise InvalidRequest(f"A site can have at most {MAX_ENTRIES_PER_SITE} walled garden entries.")
    if hostname is not None:
        _refuse_beyond_hostname_cap(site.id, except_id=None, session=session)
    entry_type = data.type or DEFAULT_TYPE
    _refuse_duplicate(site.id, ip_address, hostname, entry_type, except_id=None, session=session)
    entry = WalledGardenEntry(
        org_id=site.org_id,
        site_id=site.id,
        name=data.name,
        type=entry_type,
        ip_address=ip_address,
        hostname=hostname,
        created_at=now,
    )
    session.add(entry)
    session.flush()
    _audit(entry, "walled_garden_entry.create", session=session)
    session.commit()
    return entry


def replace(
    site_id: str, entry_id: str, data: WalledGardenEntryIn, *, org_id: str, session: Session
) -> WalledGardenEntry:
    """Replace an entry's name, address and type (absent type means captive-auth) and commit."""
    ip_address, hostname = destination(data)
    entry = get(site_id, entry_id, org_id=org_id, session=session)
    if hostname is not None and entry.hostname is None:
        _refuse_beyond_hostname_cap(entry.site_id, except_id=entry.id, session=session)
    entry_type = data.type or DEFAULT_TYPE
    _refuse_duplicate(entry.site_id, ip_address, hostname, entry_type, except_id=entry.id, session=session)
    entry.name = data.name
    entry.ip_address = ip_address
    entry.hostname = hostname
    entry.type = entry_type
    _audit(entry, "walled_garden_entry.update", session=session)
    session.commit()
    return entry


def delete(site_id: str, entry_id: str, *, org_id: str, session: Session) -> WalledGardenEntry:
    """Delete an entry and commit; returns the deleted entry."""
    entry = get(site_id, entry_id, org_id=org_id, session=session)
    _audit(entry, "walled_garden_entry.delete", session=session)
    session.delete(entry)
    session.commit()
    return entry


def _audit(entry: WalledGardenEntry, action: str, *, session: Session) -> None:
    audit_service.record(
        session,
        org_id=entry.org_id,
        action=action,
        target_type="walled_garden_entry",
        target_id=entry.id,
        detail={
            "site_id": entry.site_id,
            "name": entry.name,
            "ip_address": entry.ip_address,
            "hostname": entry.hostname,
            "type": entry.type,
        },
    )


def to_out(entry: WalledGardenEntry) -> WalledGardenEntryOut:
    """The API representation of an entry."""
    return WalledGardenEntryOut(
        id=entry.id,
        name=entry.name,
        type=entry.type,
        ip_address=entry.ip_address,
        hostname=entry.hostname,
        created_at=entry.created_at,
    )


def destination(data: WalledGardenEntryIn) -> tuple[str | None, str | None]:
    """The entry's address or host name: exactly one is given, or the request names what is wrong."""
    if data.ip_address is not None and data.hostname is not None:
        raise ParameterInvalid(
            "hostname", "must not be given together with 'ip_address' (an entry is one or the other)"
        )
    if data.ip_address is None and data.hostname is None:
        # Altostrat's clients know only `ip_address`: the message they have always had.
        raise ParameterMissing("ip_address")
    return data.ip_address, data.hostname


def _refuse_beyond_hostname_cap(site_id: str, *, except_id: str | None, session: Session) -> None:
    stmt = (
        select(func.count())
        .select_from(WalledGardenEntry)
        .where(WalledGardenEntry.site_id == site_id, WalledGardenEntry.hostname.is_not(None))
    )
    if except_id is not None:
        stmt = stmt.where(WalledGardenEntry.id != except_id)
    if (session.scalar(stmt) or 0) >= MAX_HOSTNAMES_PER_SITE:
        raise InvalidRequest(
            f"A site can have at most {MAX_HOSTNAMES_PER_SITE} walled garden entries with a hostname."
        )


def _refuse_duplicate(
    site_id: str,
    ip_address: str | None,
    hostname: str | None,
    entry_type: str,
    *,
    except_id: str | None,
    session: Session,
) -> None:
    same = (
        WalledGardenEntry.ip_address == ip_address
        if ip_address is not None
        else WalledGardenEntry.hostname == hostname
    )
    stmt = select(WalledGardenEntry.id).where(
        WalledGardenEntry.site_id == site_id, same, WalledGardenEntry.type == entry_type
    )
    if except_id is not None:
        stmt = stmt.where(WalledGardenEntry.id != except_id)
    existing = session.scalar(stmt.limit(1))
    if existing is not None:
        raise Conflict(
            f"The site already has a {entry_type} walled garden entry for {ip_address or hostname} ({existing}).",
            code="resource_in_use",
        )
