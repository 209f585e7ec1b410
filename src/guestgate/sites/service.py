"""Sites registry: create, read, replace, delete; secrets of the gateway sealed at rest."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from guestgate import networks
from guestgate.audit import service as audit_service
from guestgate.errors import Conflict, NotFound, ParameterInvalid
from guestgate.instances.models import InstanceSubnet
from guestgate.orgs import service as org_service
from guestgate.pagination import Page, PageRequest, fetch_page
from guestgate.security import SecretBox
from guestgate.sites.models import Site
from guestgate.sites.schemas import GatewayIn, GatewayOut, GatewayStatus, SiteIn
from guestgate.sites.schemas import Site as SiteOut

# The columns an update's audit event names when they change (secrets by name only, below).
AUDITED_FIELDS = ("name", "subnets", "gateway_driver", "gateway_config")

SECRET_FIELDS = ("password",)


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


def create(data: SiteIn, *, org_id: str, box: SecretBox, session: Session) -> Site:
    """Register a site."""
    org_service.ensure(org_id, session=session)
    site = Site(org_id=org_id, name=data.name, subnets=_dedupe(data.subnets))
    _apply_gateway(site, data.gateway, box=box)
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


def replace(site_id: str, data: SiteIn, *, org_id: str, box: SecretBox, session: Session) -> Site:
    """Replace a site; its subnets must still contain every instance subnet assigned from it."""
    site = get(site_id, org_id=org_id, session=session)
    subnets = _dedupe(data.subnets)
    site_networks = [networks.parse(s) for s in subnets]
    for assigned in session.scalars(select(InstanceSubnet).where(InstanceSubnet.site_id == site.id)):
        if not networks.within_any(networks.parse(assigned.subnet), site_networks):
            raise Conflict(
                f"The subnet {assigned.subnet} of this site is used by instance {assigned.instance_id}; "
                "remove it from the instance first.",
                code="resource_in_use",
            )
    before = audit_service.snapshot(site, AUDITED_FIELDS)
    site.name = data.name
    site.subnets = subnets
    _apply_gateway(site, data.gateway, box=box)
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
    return site


def delete(site_id: str, *, org_id: str, session: Session) -> None:
    """Delete a site with its walled garden and sessions; refused while an instance uses it."""
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
    session.delete(site)
    session.commit()


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


def _apply_gateway(site: Site, gateway: GatewayIn, *, box: SecretBox) -> None:
    settings = gateway.model_dump(exclude={"driver", *SECRET_FIELDS}, exclude_none=True)
    secrets: dict[str, str] = {}
    if site.gateway_secrets_sealed and site.gateway_driver == gateway.driver:
        secrets = json.loads(box.open(site.gateway_secrets_sealed))
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


def _dedupe(subnets: list[str]) -> list[str]:
    seen: list[str] = []
    for subnet in subnets:
        if subnet not in seen:
            seen.append(subnet)
    for i, first in enumerate(seen):
        for second in seen[i + 1 :]:
            if networks.overlaps(networks.parse(first), networks.parse(second)):
                raise ParameterInvalid("subnets", f"has overlapping subnets {first} and {second}")
    return seen
