"""Captive portal instances: CRUD, site subnets, the cascade of deletion, signed URLs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from guestgate import networks
from guestgate.audit import service as audit_service
from guestgate.auth_integrations.models import AuthIntegration
from guestgate.db import utcnow
from guestgate.errors import Conflict, ParameterInvalid, ParameterMissing, ReferenceMissing
from guestgate.instances import urls
from guestgate.instances.models import Image, Instance, InstanceSubnet
from guestgate.instances.schemas import (
    DEFAULT_AUTH_WINDOW_TTL,
    DEFAULT_THEME,
    InstanceCreate,
    InstanceUpdate,
    SiteAssignment,
    SiteSubnets,
    Theme,
)
from guestgate.instances.schemas import Instance as InstanceOut
from guestgate.orgs import service as org_service
from guestgate.pagination import Page, PageRequest, fetch_page
from guestgate.plans import service as plan_service
from guestgate.security import UrlSigner
from guestgate.site_users.models import SessionStatus, SiteUser
from guestgate.sites.models import Site
from guestgate.tenancy import find_owned, get_owned

# The columns an update's audit event names when they change.
AUDITED_FIELDS = (
    "name",
    "strategy",
    "auth_integration_id",
    "session_ttl",
    "auth_window_ttl",
    "theme",
    "terms_text",
    "locale",
    "network_name",
    "timezone",
    *plan_service.FIELDS,
)


@dataclass
class InstanceView:
    """An instance with what its representation needs: subnets by site and images by kind."""

    instance: Instance
    sites: dict[str, list[str]] = field(default_factory=dict)
    images: dict[str, Image] = field(default_factory=dict)


def get(instance_id: str, *, org_id: str, session: Session) -> Instance:
    """The org's instance, or NotFound."""
    return get_owned(session, Instance, instance_id, org_id, resource="instance")


def view(instance_id: str, *, org_id: str, session: Session) -> InstanceView:
    """The org's instance with its sites and images."""
    return _views([get(instance_id, org_id=org_id, session=session)], session=session)[0]


def list_instances(*, org_id: str, page: PageRequest, session: Session) -> Page[InstanceView]:
    """The org's instances, newest first."""
    stmt = select(Instance).where(Instance.org_id == org_id)
    result = fetch_page(session, stmt, page, Instance.created_at, Instance.id)
    return Page(_views(result.items, session=session), result.next_cursor)


def create(data: InstanceCreate, *, org_id: str, session: Session) -> InstanceView:
    """Create an instance: the defaults (theme, locale `en`, no sites) where the request gives nothing."""
    # What the request alone decides is checked before its transaction takes the write lock.
    plan = check_assignments(data.sites) if data.sites is not None else None
    org_service.ensure(org_id, session=session)
    _check_strategy(data, org_id=org_id, session=session)
    instance = Instance(
        org_id=org_id,
        name=data.name,
        strategy=data.strategy,
        auth_integration_id=data.auth_integration_id if data.strategy == "oauth2" else None,
        session_ttl=data.session_ttl,
        auth_window_ttl=DEFAULT_AUTH_WINDOW_TTL,
        theme=dict(DEFAULT_THEME),
        locale="en",
    )
    session.add(instance)
    session.flush()
    _apply_optional(instance, data, plan, session=session)
    audit_service.record(
        session,
        org_id=org_id,
        action="instance.create",
        target_type="instance",
        target_id=instance.id,
        detail={"name": instance.name, "strategy": instance.strategy},
    )
    session.commit()
    return view(instance.id, org_id=org_id, session=session)


def replace(instance_id: str, data: InstanceUpdate, *, org_id: str, session: Session) -> InstanceView:
    """Update an instance: required fields replace, omitted optional fields keep their values."""
    # What the request alone decides is checked before its transaction takes the write lock.
    plan = check_assignments(data.sites) if data.sites is not None else None
    instance = get(instance_id, org_id=org_id, session=session)
    _check_strategy(data, org_id=org_id, session=session)
    before = audit_service.snapshot(instance, AUDITED_FIELDS)
    instance.name = data.name
    instance.strategy = data.strategy
    instance.auth_integration_id = data.auth_integration_id if data.strategy == "oauth2" else None
    instance.session_ttl = data.session_ttl
    _apply_optional(instance, data, plan, session=session)
    changed = audit_service.changed(before, instance, AUDITED_FIELDS)
    if plan is not None:
        changed.append("sites")
    audit_service.record(
        session,
        org_id=org_id,
        action="instance.update",
        target_type="instance",
        target_id=instance.id,
        detail={"name": instance.name, "changed": changed},
    )
    session.commit()
    return view(instance.id, org_id=org_id, session=session)


def _apply_optional(
    instance: Instance, data: InstanceCreate, plan: list[PlannedSite] | None, *, session: Session
) -> None:
    """The optional fields of a create or an update: each one given replaces, each one omitted stays."""
    if data.auth_window_ttl is not None:
        instance.auth_window_ttl = data.auth_window_ttl
    # The plan as a whole must hold together (max_uses against max_devices), given fields or kept.
    base = plan_service.DEFAULT if instance.max_devices is None else plan_service.of(instance)
    plan_service.set_columns(instance, plan_service.check(data.plan_over(base)))
    if data.theme is not None:
        colours = data.theme.model_dump(exclude_none=True)
        instance.theme = {**DEFAULT_THEME, **(instance.theme or {}), **colours}
    if "terms_text" in data.model_fields_set:
        instance.terms_text = data.terms_text
    if data.locale is not None:
        instance.locale = data.locale
    if "network_name" in data.model_fields_set:
        instance.network_name = data.network_name
    if "timezone" in data.model_fields_set:
        instance.timezone = data.timezone
    if plan is not None:
        _assign_sites(instance, plan, session=session)


def delete(instance_id: str, *, org_id: str, session: Session) -> None:
    """Delete an instance: its coupons, schedules and images go, active sessions end, subnets are freed."""
    instance = get(instance_id, org_id=org_id, session=session)
    now = utcnow()
    session.execute(
        update(SiteUser)
        .where(SiteUser.instance_id == instance.id, SiteUser.status == SessionStatus.ACTIVE)
        .values(status="disconnected", ended_at=now, end_reason="instance_deleted")
    )
    audit_service.record(
        session,
        org_id=org_id,
        action="instance.delete",
        target_type="instance",
        target_id=instance.id,
        detail={"name": instance.name},
    )
    session.delete(instance)
    session.commit()


def to_out(
    item: InstanceView, *, signer: UrlSigner, public_url: str, now: datetime | None = None
) -> InstanceOut:
    """The API representation, with fresh signed URLs."""
    instance = item.instance
    moment = now or utcnow()
    colours = {**DEFAULT_THEME, **(instance.theme or {})}
    images = {
        kind: urls.asset_url(image.id, signer=signer, public_url=public_url, now=moment)
        for kind, image in item.images.items()
    }
    return InstanceOut(
        id=instance.id,
        name=instance.name,
        strategy=instance.strategy,
        auth_integration_id=instance.auth_integration_id,
        session_ttl=instance.session_ttl,
        auth_window_ttl=instance.auth_window_ttl,
        theme=Theme(logo=images.get("logo"), icon=images.get("icon"), **colours),
        terms_text=instance.terms_text,
        locale=instance.locale,
        sites=[SiteSubnets(id=site_id, subnets=subnets) for site_id, subnets in item.sites.items()],
        network_name=instance.network_name,
        timezone=instance.timezone,
        **plan_service.columns(plan_service.of(instance)),
        created_at=instance.created_at,
        preview_url=urls.preview_url(instance.id, signer=signer, public_url=public_url, now=moment),
    )


def _views(instances: list[Instance], *, session: Session) -> list[InstanceView]:
    ids = [i.id for i in instances]
    if not ids:
        return []
    sites: dict[str, dict[str, list[str]]] = defaultdict(dict)
    rows = session.scalars(
        select(InstanceSubnet).where(InstanceSubnet.instance_id.in_(ids)).order_by(InstanceSubnet.position)
    )
    for row in rows:
        sites[row.instance_id].setdefault(row.site_id, []).append(row.subnet)
    images: dict[str, dict[str, Image]] = defaultdict(dict)
    for image in session.scalars(select(Image).where(Image.instance_id.in_(ids))):
        images[image.instance_id][image.kind] = image
    return [InstanceView(i, sites.get(i.id, {}), images.get(i.id, {})) for i in instances]


def _check_strategy(data: InstanceCreate, *, org_id: str, session: Session) -> None:
    if data.strategy == "oauth2":
        if not data.auth_integration_id:
            raise ParameterMissing("auth_integration_id")
        if find_owned(session, AuthIntegration, data.auth_integration_id, org_id) is None:
            raise ReferenceMissing("auth_integration_id", data.auth_integration_id)
    elif data.auth_integration_id is not None:
        raise ParameterInvalid("auth_integration_id", "must be null for the 'coupon' strategy")


@dataclass(frozen=True)
class PlannedSite:
    """One site of an instance's `sites`, as the request lists it: its index there, id and subnets."""

    index: int
    site_id: str
    subnets: list[str]
    networks: list[networks.Network]


def check_assignments(assignments: list[SiteAssignment]) -> list[PlannedSite]:
    """The request's sites, checked for what needs no database (repeats, empty lists, overlaps).

    O(n log n) in the subnets listed: one sort of each site's subnets, never every pair.
    """
    plan: list[PlannedSite] = []
    seen_sites: set[str] = set()
    for i, item in enumerate(assignments):
        if item.id in seen_sites:
            raise ParameterInvalid(f"sites[{i}].id", "lists a site that is already listed")
        seen_sites.add(item.id)
        if not item.subnets:
            raise ParameterInvalid(f"sites[{i}].subnets", "must list at least one subnet")
        parsed = [networks.parse(subnet) for subnet in item.subnets]
        overlap = networks.first_overlap(parsed)
        if overlap is not None:
            raise ParameterInvalid(
                f"sites[{i}].subnets[{overlap[1]}]", "overlaps another subnet of the same site"
            )
        plan.append(PlannedSite(i, item.id, list(item.subnets), parsed))
    return plan


def _assign_sites(instance: Instance, plan: list[PlannedSite], *, session: Session) -> None:
    """Check the planned sites against the database and make them the instance's.

    Two queries whatever the number of sites; each subnet costs O(log n) against its site's
    subnets and one sweep against the subnets other instances hold at the site. Rows that stay
    are kept as they are (their ids order claims across orgs: `portal.resolution`).
    """
    ids = [planned.site_id for planned in plan]
    sites = {site.id: site for site in session.scalars(select(Site).where(Site.id.in_(ids)))} if ids else {}
    for planned in plan:
        site = sites.get(planned.site_id)
        if site is None or site.org_id != instance.org_id:
            raise ReferenceMissing(f"sites[{planned.index}].id", planned.site_id)
        cover = networks.Cover(networks.parse(s) for s in site.subnets)
        for j, network in enumerate(planned.networks):
            if not cover.contains(network):
                raise ParameterInvalid(
                    f"sites[{planned.index}].subnets[{j}]",
                    f"must lie within one of the site's subnets ({', '.join(site.subnets) or 'it has none'})",
                )
    taken: dict[str, list[InstanceSubnet]] = defaultdict(list)
    if ids:
        others = select(InstanceSubnet).where(
            InstanceSubnet.site_id.in_(ids), InstanceSubnet.instance_id != instance.id
        )
        for row in session.scalars(others):
            taken[row.site_id].append(row)
    for planned in plan:
        theirs = taken.get(planned.site_id, [])
        clash = networks.first_overlap_between(planned.networks, [networks.parse(r.subnet) for r in theirs])
        if clash is not None:
            other = theirs[clash[1]]
            raise Conflict(
                f"The subnet {other.subnet} of site {planned.site_id} already belongs to instance "
                f"{other.instance_id}.",
                code="subnet_in_use",
            )
    wanted = [(planned.site_id, subnet) for planned in plan for subnet in planned.subnets]
    existing = {
        (row.site_id, row.subnet): (row.id, row.position)
        for row in session.execute(
            select(
                InstanceSubnet.site_id, InstanceSubnet.subnet, InstanceSubnet.id, InstanceSubnet.position
            ).where(InstanceSubnet.instance_id == instance.id)
        )
    }
    keep = set(wanted)
    gone = [row_id for key, (row_id, _) in existing.items() if key not in keep]
    moved = [
        {"id": existing[key][0], "position": position}
        for position, key in enumerate(wanted)
        if key in existing and existing[key][1] != position
    ]
    added = [
        {"instance_id": instance.id, "site_id": key[0], "subnet": key[1], "position": position}
        for position, key in enumerate(wanted)
        if key not in existing
    ]
    # A few statements however many rows (executemany): the write lock is held for milliseconds.
    if gone:
        session.execute(sql_delete(InstanceSubnet).where(InstanceSubnet.id.in_(gone)))
    if moved:
        session.execute(update(InstanceSubnet), moved)
    if added:
        session.execute(insert(InstanceSubnet), added)
    session.flush()
