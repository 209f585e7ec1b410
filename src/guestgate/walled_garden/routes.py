"""HTTP routes of the walled garden: per-site destinations reachable before authentication."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response

from guestgate.db import utcnow
from guestgate.deps import PageDep, Reader, RuntimeDep, SessionDep, SiteId, Writer, set_next_link
from guestgate.gateways import service as gateway_service
from guestgate.openapi import errors
from guestgate.walled_garden import service
from guestgate.walled_garden.schemas import WalledGardenEntry, WalledGardenEntryIn

router = APIRouter(prefix="/captive/walled-garden", tags=["Walled Garden"])
EntryId = Annotated[
    str,
    Path(
        alias="walledGardenEntryId",
        description="The unique identifier for the walled garden entry.",
        examples=["1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"],
    ),
]


@router.get(
    "/{siteId}",
    operation_id="listWalledGardenEntries",
    summary="List walled garden entries for a site",
    responses=errors(401, 403, 404),
)
def list_entries(
    site_id: SiteId, request: Request, response: Response, who: Reader, session: SessionDep, page: PageDep
) -> list[WalledGardenEntry]:
    """Retrieves the walled garden entries of a site, newest first."""
    result = service.list_entries(site_id, org_id=who.org_id, page=page, session=session)
    set_next_link(request, response, result.next_cursor)
    return [service.to_out(entry) for entry in result.items]


@router.post(
    "/{siteId}",
    status_code=201,
    operation_id="createWalledGardenEntry",
    summary="Create a walled garden entry",
    responses=errors(400, 401, 403, 404, 409),
)
def create_entry(
    site_id: SiteId,
    body: WalledGardenEntryIn,
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> WalledGardenEntry:
    """Adds an IP address or subnet, or **[extension]** a host name (`hostname`: an exact name or a
    `*.` wildcard), that guests of the site can reach before authenticating (at most 1000 entries a
    site, of which at most 100 host names)."""
    entry = service.create(site_id, body, org_id=who.org_id, now=utcnow(), session=session)
    # After the response: the site's whole walled garden, as committed, goes to its gateway.
    background.add_task(gateway_service.push_walled_garden, runtime, entry.site_id)
    return service.to_out(entry)


@router.get(
    "/{siteId}/{walledGardenEntryId}",
    operation_id="getWalledGardenEntry",
    summary="Retrieve a walled garden entry",
    responses=errors(401, 403, 404),
)
def get_entry(site_id: SiteId, entry_id: EntryId, who: Reader, session: SessionDep) -> WalledGardenEntry:
    """Retrieves one walled garden entry of a site."""
    return service.to_out(service.get(site_id, entry_id, org_id=who.org_id, session=session))


@router.put(
    "/{siteId}/{walledGardenEntryId}",
    operation_id="updateWalledGardenEntry",
    summary="Update a walled garden entry",
    responses=errors(400, 401, 403, 404, 409),
)
def update_entry(
    site_id: SiteId,
    entry_id: EntryId,
    body: WalledGardenEntryIn,
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> WalledGardenEntry:
    """Replaces a walled garden entry's name, address or host name, and type (an absent type means
    `captive-auth`)."""
    entry = service.replace(site_id, entry_id, body, org_id=who.org_id, session=session)
    background.add_task(gateway_service.push_walled_garden, runtime, entry.site_id)
    return service.to_out(entry)


@router.delete(
    "/{siteId}/{walledGardenEntryId}",
    status_code=204,
    operation_id="deleteWalledGardenEntry",
    summary="Delete a walled garden entry",
    responses=errors(401, 403, 404),
)
def delete_entry(
    site_id: SiteId,
    entry_id: EntryId,
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> Response:
    """Removes a walled garden entry from a site."""
    entry = service.delete(site_id, entry_id, org_id=who.org_id, session=session)
    background.add_task(gateway_service.push_walled_garden, runtime, entry.site_id)
    return Response(status_code=204, background=background)
