"""The one tenant check: a row by id, only if it belongs to the org (and, optionally, its parent).

A row of another org is not found, in the same words as a missing one, so an id never tells
one org that another org's resource exists (tests/hostile/test_tenant_isolation.py).
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from guestgate.db import Base
from guestgate.errors import NotFound

T = TypeVar("T", bound=Base)


def find_owned(session: Session, model: type[T], row_id: object, org_id: str, **parent: object) -> T | None:
    """The `model` row `row_id` if its `org_id` (and each `parent` column) matches, else None."""
    row = session.get(model, row_id)
    if row is None or getattr(row, "org_id") != org_id:  # noqa: B009  (every owned model has it)
        return None
    if any(getattr(row, column) != value for column, value in parent.items()):
        return None
    return row


def get_owned(
    session: Session, model: type[T], row_id: str, org_id: str, *, resource: str, **parent: object
) -> T:
    """The `model` row `row_id` of the org (and of each `parent` column's value), or NotFound(resource)."""
    row = find_owned(session, model, row_id, org_id, **parent)
    if row is None:
        raise NotFound(resource, row_id)
    return row
