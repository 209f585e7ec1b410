"""Organisations (tenants)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guestgate.orgs.models import Org

# Near matches for a mistyped org are looked for among at most this many orgs.
MAX_NEAR_CANDIDATES = 100_000


def ensure(org_id: str, *, session: Session) -> Org:
    """The org with this id, created if new (flushed, not committed)."""
    org = session.get(Org, org_id)
    if org is None:
        org = Org(id=org_id)
        session.add(org)
        session.flush()
    return org


@dataclass(frozen=True)
class OrgSummary:
    """An org with how much it holds, for `guestgate org list`."""

    id: str
    created_at: datetime
    instances: int
    sites: int


def exists(org_id: str, *, session: Session) -> bool:
    """True if the org exists."""
    return session.get(Org, org_id) is not None


def summaries(*, limit: int, session: Session) -> list[OrgSummary]:
    """The first `limit` orgs by id, with their instance and site counts (one query)."""
    from guestgate.instances.models import Instance
    from guestgate.sites.models import Site

    instances = select(Instance.org_id, func.count().label("n")).group_by(Instance.org_id).subquery()
    sites = select(Site.org_id, func.count().label("n")).group_by(Site.org_id).subquery()
    rows = session.execute(
        select(Org.id, Org.created_at, func.coalesce(instances.c.n, 0), func.coalesce(sites.c.n, 0))
        .outerjoin(instances, instances.c.org_id == Org.id)
        .outerjoin(sites, sites.c.org_id == Org.id)
        .order_by(Org.id)
        .limit(limit)
    )
    return [OrgSummary(id=r[0], created_at=r[1], instances=int(r[2]), sites=int(r[3])) for r in rows]


def count(*, session: Session) -> int:
    """How many orgs exist."""
    return int(session.scalar(select(func.count()).select_from(Org)) or 0)


def near(org_id: str, *, session: Session, limit: int = 3) -> list[str]:
    """Existing org ids that look like `org_id` (a typo, another case), closest first."""
    wanted = org_id.lower()
    ids = session.scalars(select(Org.id).limit(MAX_NEAR_CANDIDATES)).all()
    same_case = [i for i in ids if i.lower() == wanted]
    close = difflib.get_close_matches(wanted, [i.lower() for i in ids], n=limit, cutoff=0.6)
    by_lower = {i.lower(): i for i in ids}
    found = same_case + [by_lower[c] for c in close if by_lower[c] not in same_case]
    return found[:limit]
