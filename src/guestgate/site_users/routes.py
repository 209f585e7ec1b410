"""HTTP routes of site users: the guest sessions of a site, and disconnecting one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request, Response

from guestgate.db import utcnow
from guestgate.deps import PageDep, Reader, RuntimeDep, SessionDep, SiteId, Writer, set_next_link
from guestgate.gateways import service as gateway_service
from guestgate.openapi import errors
from guestgate.site_users import service
from guestgate.site_users.schemas import SessionFilter, SiteUser, StatusName

router = APIRouter(prefix="/captive/sites", tags=["Site Users"])
UserId = Annotated[
    str,
    Path(
        alias="userId",
        description="The unique identifier for the site user (guest session).",
        examples=["5f4e3d2c-1b0a-4987-8654-3210fedcba98"],
    ),
]


@router.get(
    "/{siteId}/users",
    operation_id="listSiteUsers",
    summary="List users of a site",
    responses=errors(400, 401, 403, 404),
)
def list_site_users(
    site_id: SiteId,
    request: Request,
    response: Response,
    who: Reader,
    session: SessionDep,
    page: PageDep,
    status: Annotated[
        StatusName | None,
        Query(description="Only sessions with this status (an active session past its expiry is `expired`)."),
    ] = None,
    ip_address: Annotated[
        str | None, Query(description="Only sessions of this guest IP address.", examples=["10.0.0.23"])
    ] = None,
    mac_address: Annotated[
        str | None,
        Query(
            description="Only sessions of this MAC address (`aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` or `aabb.ccdd.eeff`).",
            examples=["aa:bb:cc:dd:ee:ff"],
        ),
    ] = None,
    since: Annotated[
        str | None,
        Query(
            description="Only sessions started at or after this RFC 3339 date-time.",
            examples=["2025-10-29T08:00:00Z"],
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
) -> list[SiteUser]:
    """Retrieves the guest sessions of a site, newest first, optionally filtered."""
    filters = SessionFilter.parse(status=status, ip_address=ip_address, mac_address=mac_address, since=since)
    now = utcnow()
    result = service.list_users(
        site_id, org_id=who.org_id, filters=filters, now=now, page=page, session=session
    )
    set_next_link(request, response, result.next_cursor)
    return [service.to_out(user, now=now) for user in result.items]


@router.post(
    "/{siteId}/users/{userId}/disconnect",
    operation_id="disconnectSiteUser",
    summary="Disconnect a site user",
    responses=errors(401, 403, 404),
)
def disconnect_site_user(
    site_id: SiteId,
    user_id: UserId,
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> SiteUser:
    """Ends a guest's session now; the gateway revokes its access. A session already ended is returned unchanged."""
    now = utcnow()
    user = service.disconnect(site_id, user_id, org_id=who.org_id, now=now, session=session)
    out = service.to_out(user, now=now)
    if out.status != service.ACTIVE:
        # After the response, from the committed row: a gateway that is down delays nobody, and the
        # reconciler removes the entry once it answers again.
        background.add_task(gateway_service.revoke, runtime, [gateway_service.ref_of(user)])
    return out
