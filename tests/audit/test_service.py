"""The audit service's bulk writer gives the same events `record` would, on both databases."""

from __future__ import annotations

from sqlalchemy import select

from guestgate.audit import service as audit_service
from guestgate.audit.models import AuditEvent
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime


def _events(runtime: Runtime, action: str) -> list[tuple[object, ...]]:
    with runtime.sessions() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))
        return [(e.org_id, e.actor, e.ip_address, e.target_type, e.target_id, e.detail) for e in rows]


def test_record_many_writes_one_event_per_target_as_record_does_with_secrets_dropped(
    runtime: Runtime,
) -> None:
    with runtime.sessions() as session:
        org_service.ensure("org-a", session=session)
        session.commit()
    detail = {"site_id": "s1", "password": "hunter2", "nested": {"token": "t", "kept": 1}}
    with runtime.sessions() as session:
        audit_service.act_as(session, audit_service.Actor("ops@example.com", "192.0.2.7"))
        audit_service.record(
            session,
            org_id="org-a",
            action="one.by.one",
            target_type="site_user",
            target_id="a",
            detail=detail,
        )
        audit_service.record(
            session,
            org_id="org-a",
            action="one.by.one",
            target_type="site_user",
            target_id="b",
            detail=detail,
        )
        written = audit_service.record_many(
            session,
            org_id="org-a",
            action="in.bulk",
            target_type="site_user",
            target_ids=["a", "b"],
            detail=detail,
        )
        nothing = audit_service.record_many(
            session, org_id="org-a", action="in.bulk", target_type="site_user", target_ids=[], detail=detail
        )
        session.commit()
    assert (written, nothing) == (2, 0)
    bulk = _events(runtime, "in.bulk")
    assert bulk == _events(runtime, "one.by.one")
    assert bulk[0] == (
        "org-a",
        "ops@example.com",
        "192.0.2.7",
        "site_user",
        "a",
        {"site_id": "s1", "nested": {"kept": 1}},
    )


def test_record_many_rolls_back_with_the_change(runtime: Runtime) -> None:
    with runtime.sessions() as session:
        audit_service.record_many(
            session, org_id="org-a", action="in.bulk", target_type="x", target_ids=["a"]
        )
        session.rollback()
    assert _events(runtime, "in.bulk") == []
