"""HTTP route of the audit log: `GET /captive/audit-events` (extension)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from guestgate.audit import service
from guestgate.audit.schemas import AuditEvent, AuditFilter
from guestgate.deps import PageDep, Reader, SessionDep, set_next_link
from guestgate.openapi import errors

router = APIRouter(prefix="/captive/audit-events", tags=["Audit"])


@router.get("", operation_id="listAuditEvents", summary="List audit events", responses=errors(400, 401, 403))
def list_audit_events(
    request: Request,
    response: Response,
    who: Reader,
    session: SessionDep,
    page: PageDep,
    action: Annotated[
        str | None, Query(description="Only events of this action.", examples=["instance.update"])
    ] = None,
    actor: Annotated[
        str | None, Query(description="Only events by this actor (a token's `sub`, `guest:<ip>`).")
    ] = None,
    target_type: Annotated[
        str | None, Query(description="Only events about this kind of resource.", examples=["instance"])
    ] = None,
    target_id: Annotated[
        str | None, Query(description="Only events about the resource with this id.")
    ] = None,
    since: Annotated[
        str | None,
        Query(
            description="Only events at or after this RFC 3339 date-time.",
            examples=["2025-10-29T08:00:00Z"],
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(
            description="Only events before this RFC 3339 date-time.",
            examples=["2025-10-30T08:00:00Z"],
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
) -> list[AuditEvent]:
    """Retrieves the organization's audit log, newest first: every change made through the API and
    every failed guest sign-in and lock-out. [extension]"""
    filters = AuditFilter.parse(
        action=action, actor=actor, target_type=target_type, target_id=target_id, since=since, until=until
    )
    result = service.list_events(org_id=who.org_id, filters=filters, page=page, session=session)
    set_next_link(request, response, result.next_cursor)
    return [service.to_out(event) for event in result.items]
