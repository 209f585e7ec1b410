"""Sites registry: create, read, replace, delete; secrets of the gateway sealed at rest.

A site's gateway settings follow the deployment's rules (`gateways.policy`: who may use the
nftables driver and where, the table name, the outbound policy for a router's host). A RouterOS
password follows its router: a change of host, port or TLS trust needs the password again, as a
webhook's secret needs to be given again for a new URL (`outbound.secret_for_destination`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from guestgate import networks
from guestgate.audit import service as audit_service
from guestgate.db import new_id
from guestgate.errors import Conflict, NotFound
from guestgate.gateways.nftables import table_name
from guestgate.gateways.policy import TABLE_DRIVERS, GatewayRules, LocalTable, effective_table, local_table
from guestgate.instances.models import InstanceSubnet
from guestgate.orgs import service as org_service
from guestgate.outbound import secret_for_destination
from guestgate.pagination import Page, PageRequest, fetch_page
from guestgate.security import SecretBox
from guestgate.sites.models import Site
from guestgate.sites.schemas import MAX_SITE_SUBNETS, MIN_PREFIX, GatewayIn, GatewayOut, GatewayStatus, SiteIn
from guestgate.sites.schemas import Site as SiteOut

# The columns an update's audit event names when they change (secrets by name only, below).
AUDITED_FIELDS = ("name", "subnets", "gateway_driver", "gateway_config")

SECRET_FIELDS = ("password",)
# Why a RouterOS password must be given again (the router it is bound to: `_router_identity`).
ROUTER_CHANGED = (
    "the router's host, port or TLS settings changed, and the stored password is only ever sent to "
    "the router it was given for"
)


@dataclass(frozen=True)
class Replaced:
    """A replaced site, and the nft table on this host it no longer uses (to remove), if any."""

    site: Site
    left_table: LocalTable | None


def get(site_id: str, *, org_id: str, session: Session) -> Site:
    """The org's site, or NotFound."""
    site = session.get(Site, site_id)
    if site is None or site.org_id != org_id:
        raise NotFound("site", site_id)
    return site


def list_sites(*, org_id: str, page: PageRequest, session: Session) -> Page[Site]:
    """The org's sites, newest first."""
    stmt = select(Site).where(Site.org_id == org_id)
    return fetch_page(session, stmt, page, Site.created_at, Site.id)


def create(data: SiteIn, *, org_id: str, box: SecretBox, rules: GatewayRules, session: Session) -> Site:
    """Register a site."""
    org_service.ensure(org_id, session=session)
    site = Site(id=new_id(), org_id=org_id, name=data.name, subnets=list(data.subnets))
    _apply_gateway(site, data.gateway, box=box, rules=rules, session=session)
    session.add(site)
    session.flush()
    audit_service.record(
        session,
        org_id=org_id,
        action="site.create",
        target_type="site",
        target_id=site.id,
        detail={"name": site.name, "driver": site.gateway_driver},
    )
    session.commit()
    return site


def replace(
    site_id: str, data: SiteIn, *, org_id: str, box: SecretBox, rules: GatewayRules, session: Session
) -> Replaced:
    """Replace a site; its subnets must still contain every instance subnet assigned from it."""
    site = get(site_id, org_id=org_id, session=session)
    # The subnets come deduplicated and free of overlaps (`SiteIn`, checked before the request's
    # transaction); what is left needs the database: one look-up per assigned subnet, O(log n).
    subnets = list(data.subnets)
    cover = networks.Cover(networks.parse(s) for s in subnets)
    for assigned in session.scalars(select(InstanceSubnet).where(InstanceSubnet.site_id == site.id)):
        if not cover.contains(networks.parse(assigned.subnet)):
            raise Conflict(
                f"The subnet {assigned.subnet} of this site is used by instance {assigned.instance_id}; "
                "remove it from the instance first.",
                code="resource_in_use",
            )
    before = audit_service.snapshot(site, AUDITED_FIELDS)
    previous = local_table(site.gateway_driver, site.gateway_config or {})
    _apply_gateway(site, data.gateway, box=box, rules=rules, session=session)
    site.name = data.name
    site.subnets = subnets
    changed = audit_service.changed(before, site, AUDITED_FIELDS)
    # That a gateway secret was given, never its value.
    changed += [f"gateway.{name}" for name in SECRET_FIELDS if getattr(data.gateway, name) is not None]
    audit_service.record(
        session,
        org_id=org_id,
        action="site.update",
        target_type="site",
        target_id=site.id,
        detail={"name": site.name, "driver": site.gateway_driver, "changed": changed},
    )
    session.commit()
    now_local = local_table(site.gateway_driver, site.gateway_config or {})
    return Replaced(site=site, left_table=previous if previous != now_local else None)


def delete(site_id: str, *, org_id: str, session: Session) -> LocalTable | None:
    """Delete a site with its walled garden and sessions; refused while an instance uses it.

    Returns the nft table the site kept on this host, which the caller removes.
    """
    site = get(site_id, org_id=org_id, session=session)
    used_by = session.scalar(
        select(InstanceSubnet.instance_id).where(InstanceSubnet.site_id == site.id).limit(1)
    )
    if used_by is not None:
        raise Conflict(f"The site is used by instance {used_by}; remove it from the instance first.")
    audit_service.record(
        session,
        org_id=org_id,
        action="site.delete",
        target_type="site",
        target_id=site.id,
        detail={"name": site.name, "driver": site.gateway_driver},
    )
    left = local_table(site.gateway_driver, site.gateway_config or {})
    session.delete(site)
    session.commit()
    return left


def over_limits(*, session: Session) -> list[tuple[str, str, str]]:
    """`(org id, site id, what)` of every site stored by an earlier version beyond today's limits.

    Such a site keeps working as it is (its subnets still resolve, its guests still sign in);
    the next update of it must bring it within the limits. `guestgate serve` logs each at start.
    """
    found: list[tuple[str, str, str]] = []
    for org_id, site_id, subnets in session.execute(select(Site.org_id, Site.id, Site.subnets)):
        values = list(subnets or [])
        if len(values) > MAX_SITE_SUBNETS:
            found.append((org_id, site_id, f"{len(values)} subnets (at most {MAX_SITE_SUBNETS})"))
        broad = [v for v in values if networks.parse(v).prefixlen < MIN_PREFIX[networks.parse(v).version]]
        if broad:
            found.append((org_id, site_id, f"subnets broader than a site may have: {', '.join(broad[:5])}"))
    return found


def gateway_secrets(site: Site, *, box: SecretBox) -> dict[str, str]:
    """The decrypted secret settings of a site's gateway."""
    if not site.gateway_secrets_sealed:
        return {}
    loaded: dict[str, str] = json.loads(box.open(site.gateway_secrets_sealed))
    return loaded


def reported_state(driver: str, status: str) -> str:
    """The gateway state a site reports: its last sync's, or `not_enforcing` for the `none` driver."""
    return "not_enforcing" if driver == "none" else status


def to_out(site: Site) -> SiteOut:
    """The API representation of a site."""
    config: dict[str, Any] = dict(site.gateway_config or {})
    table = effective_table(site.gateway_driver, config)
    if table is not None:
        config["table"] = table
    state = reported_state(site.gateway_driver, site.gateway_status)
    return SiteOut(
        id=site.id,
        name=site.name,
        subnets=list(site.subnets),
        gateway=GatewayOut(
            driver=site.gateway_driver, password_set=bool(site.gateway_secrets_sealed), **config
        ),
        gateway_status=GatewayStatus(
            state=state, last_error=site.gateway_last_error, last_sync_at=site.gateway_last_sync_at
        ),
        created_at=site.created_at,
    )


def _apply_gateway(
    site: Site, gateway: GatewayIn, *, box: SecretBox, rules: GatewayRules, session: Session
) -> None:
    settings = gateway.model_dump(exclude={"driver", *SECRET_FIELDS}, exclude_none=True)
    if gateway.driver in TABLE_DRIVERS:
        # Given, it is checked (a client may send back what it read); stored, it is always the site's own.
        settings.setdefault("table", table_name(site.id))
    else:
        settings.pop("table", None)
    rules.check(site.id, site.org_id, gateway.driver, settings, session=session)
    if gateway.driver in TABLE_DRIVERS:
        settings["table"] = table_name(site.id)
    stored: dict[str, str] = {}
    if site.gateway_secrets_sealed and site.gateway_driver == gateway.driver:
        stored = json.loads(box.open(site.gateway_secrets_sealed))
    secrets = dict(stored)
    if gateway.driver == "routeros" and "password" in stored:
        before = _router_identity(site.gateway_config or {})
        secrets["password"] = secret_for_destination(
            _router_identity(settings),
            given=gateway.password,
            stored={before: stored["password"]},
            parameter="gateway.password",
            reason=ROUTER_CHANGED,
        )
    for name in SECRET_FIELDS:
        value = getattr(gateway, name)
        if value is not None:
            secrets[name] = value
    if gateway.driver != site.gateway_driver:
        site.gateway_status = "unknown"
        site.gateway_last_error = None
        site.gateway_last_sync_at = None
    site.gateway_driver = gateway.driver
    site.gateway_config = settings
    site.gateway_secrets_sealed = box.seal(json.dumps(secrets)) if secrets else None


def _router_identity(config: dict[str, Any]) -> tuple[str, int, bool, str, str]:
    """What a RouterOS password is bound to, with the defaults filled in."""
    return (
        str(config.get("host") or "").strip().lower(),
        int(config.get("port") or 443),
        bool(config.get("tls_verify", True)),
        str(config.get("ca_pem") or "").strip(),
        str(config.get("pinned_sha256") or "").replace(":", "").replace(" ", "").lower(),
    )

