"""The audit log: who changed what in an org, written in the transaction of the change.

A service calls `record(...)` before it commits, so the event and the change are committed
(or rolled back) together. Who did it is a property of the unit of work: the operator routes
bind the token's subject and the client's address to the request's session (`act_as`);
sessions nobody bound (jobs, the command line, tests calling services) record `system`.

`detail` holds a few facts (a name, the names of changed fields, a count), never a secret:
`record` drops every key that names one (`client_secret`, `password`, `secret`, `token`, ...)
however deep, so a careless caller cannot leak one into the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from guestgate.audit.models import AuditEvent
from guestgate.audit.schemas import AuditEvent as AuditEventOut
from guestgate.audit.schemas import AuditFilter
from guestgate.db import utcnow
from guestgate.logs import is_secret_key
from guestgate.pagination import Page, PageRequest, fetch_page

_ACTOR_KEY = "guestgate.audit.actor"


@dataclass(frozen=True)
class Actor:
    """Who is changing things: a token's subject (or `system`, `cli`) and the client's address."""

    subject: str
    ip: str | None = None


SYSTEM = Actor("system")


def act_as(session: Session, actor: Actor) -> None:
    """Record `actor` as the author of every change made through `session`."""
    session.info[_ACTOR_KEY] = actor


def actor_of(session: Session) -> Actor:
    """The author bound to `session`, `system` if none."""
    actor = session.info.get(_ACTOR_KEY)
    return actor if isinstance(actor, Actor) else SYSTEM


def record(
    session: Session,
    *,
    org_id: str,
    action: str,
    target_type: str,
    target_id: str | None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Add an audit event to the session's transaction (the caller commits it with the change)."""
    actor = actor_of(session)
    session.add(
        AuditEvent(
            org_id=org_id,
            at=utcnow(),
            actor=actor.subject[:200],
            action=action,
            target_type=target_type,
            target_id=target_id,
            ip_address=actor.ip,
            detail=scrub(detail or {}),
        )
    )


def record_many(
    session: Session,
    *,
    org_id: str,
    action: str,
    target_type: str,
    target_ids: Iterable[str],
    detail: Mapping[str, Any] | None = None,
) -> int:
    """One audit event per target, the same action and detail, in one INSERT (the caller commits).

    For jobs that act on many rows at once (a reconciler pass ending a thousand sessions): the
    same rows `record` would add, without building an ORM object per event. Returns the count.
    """
    actor = actor_of(session)
    at = utcnow()
    facts = scrub(detail or {})
    rows = [
        {
            "org_id": org_id,
            "at": at,
            "actor": actor.subject[:200],
            "action": action,
            "target_type": target_type,
            "target_id": target_id,
            "ip_address": actor.ip,
            "detail": facts,
        }
        for target_id in target_ids
    ]
    if rows:
        session.execute(insert(AuditEvent), rows)
    return len(rows)


def scrub(detail: Mapping[str, Any]) -> dict[str, Any]:
    """`detail` without any key that names a secret, at any depth."""
    return {key: _scrub_value(value) for key, value in detail.items() if not is_secret_key(key)}


def _scrub_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return scrub(value)
    if isinstance(value, list | tuple):
        return [_scrub_value(item) for item in value]
    return value


def changed(before: Mapping[str, Any], row: object, fields: Iterable[str]) -> list[str]:
    """The names of `fields` whose value on `row` differs from `before` (a `snapshot`)."""
    return sorted(name for name in fields if getattr(row, name) != before.get(name))


def snapshot(row: object, fields: Iterable[str]) -> dict[str, Any]:
    """The current values of `fields` on `row`, to compare after a change."""
    return {name: getattr(row, name) for name in fields}


def list_events(
    *, org_id: str, filters: AuditFilter, page: PageRequest, session: Session
) -> Page[AuditEvent]:
    """The org's audit events matching `filters`, newest first."""
    stmt = select(AuditEvent).where(AuditEvent.org_id == org_id)
    if filters.action is not None:
        stmt = stmt.where(AuditEvent.action == filters.action)
    if filters.actor is not None:
        stmt = stmt.where(AuditEvent.actor == filters.actor)
    if filters.target_type is not None:
        stmt = stmt.where(AuditEvent.target_type == filters.target_type)
    if filters.target_id is not None:
        stmt = stmt.where(AuditEvent.target_id == filters.target_id)
    if filters.since is not None:
        stmt = stmt.where(AuditEvent.at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(AuditEvent.at < filters.until)
    return fetch_page(session, stmt, page, AuditEvent.at, AuditEvent.id)


def to_out(event: AuditEvent) -> AuditEventOut:
    """The API representation of an event."""
    return AuditEventOut(
        id=event.id,
        at=event.at,
        actor=event.actor,
        action=event.action,
        target_type=event.target_type,
        target_id=event.target_id,
        ip_address=event.ip_address,
        detail=event.detail or {},
    )
