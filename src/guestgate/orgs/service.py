"""Organisations (tenants)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from guestgate.orgs.models import Org


def ensure(org_id: str, *, session: Session) -> Org:
    """The org with this id, created if new (flushed, not committed)."""
    org = session.get(Org, org_id)
    if org is None:
        org = Org(id=org_id)
        session.add(org)
        session.flush()
    return org
