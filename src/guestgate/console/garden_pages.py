"""Console page of a site's walled garden: list, add (address, subnet or host name), delete.

Entries go through `walled_garden.service` with the API's `WalledGardenEntryIn`; after each
change the site's whole walled garden goes to its gateway, as the API's routes do.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from sqlalchemy.orm import Session

from guestgate.console.web import (
    PREFIX,
    ConsoleRoute,
    FormDep,
    Reader,
    Writer,
    field_errors,
    optional,
    page_request,
    parse_model,
    redirect,
    render,
)
from guestgate.db import utcnow
from guestgate.deps import RuntimeDep, SessionDep
from guestgate.errors import GuestgateError, kind_of
from guestgate.gateways import service as gateway_service
from guestgate.sites import service as site_service
from guestgate.walled_garden import service as garden_service
from guestgate.walled_garden.schemas import WalledGardenEntryIn

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)
FIELDS = frozenset({"name", "ip_address", "hostname", "type"})


def entry_in(form: dict[str, str]) -> WalledGardenEntryIn:
    """The posted form as the API's `WalledGardenEntryIn` (blank fields omitted)."""
    data: dict[str, Any] = {name: optional(form, name) for name in FIELDS}
    return parse_model(WalledGardenEntryIn, {k: v for k, v in data.items() if v is not None})


def _garden(
    request: Request,
    site_id: str,
    *,
    org_id: str,
    session: Session,
    cursor: str | None,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    site = site_service.get(site_id, org_id=org_id, session=session)
    page = garden_service.list_entries(site.id, org_id=org_id, page=page_request(cursor), session=session)
    return render(
        request,
        "walled_garden.html",
        {"site": site, "page": page, "values": values, "errors": errors},
        status=status,
    )


@router.get("/sites/{site_id}/walled-garden")
def garden_page(
    request: Request,
    site_id: str,
    who: Reader,
    session: SessionDep,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    """The site's walled garden, newest first, and (for admins) the form to add an entry."""
    return _garden(
        request,
        site_id,
        org_id=who.org_id,
        session=session,
        cursor=cursor,
        values={"type": "captive-portal"},
        errors={},
    )


@router.post("/sites/{site_id}/walled-garden")
def add_entry(
    request: Request,
    site_id: str,
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    form: FormDep,
) -> Response:
    """Add an entry (as `POST /captive/walled-garden/{siteId}`); errors next to their field."""
    try:
        entry = garden_service.create(
            site_id, entry_in(form), org_id=who.org_id, now=utcnow(), session=session
        )
    except GuestgateError as error:
        session.rollback()
        return _garden(
            request,
            site_id,
            org_id=who.org_id,
            session=session,
            cursor=None,
            values=form,
            errors=field_errors(error, fields=FIELDS),
            status=kind_of(error).status,
        )
    background.add_task(gateway_service.push_walled_garden, runtime, entry.site_id)
    response = redirect(f"{PREFIX}/sites/{entry.site_id}/walled-garden")
    response.background = background
    return response


@router.post("/sites/{site_id}/walled-garden/{entry_id}/delete")
def delete_entry(
    site_id: str,
    entry_id: str,
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
    _form: FormDep,
) -> Response:
    """Remove an entry (as `DELETE /captive/walled-garden/{siteId}/{entryId}`)."""
    entry = garden_service.delete(site_id, entry_id, org_id=who.org_id, session=session)
    background.add_task(gateway_service.push_walled_garden, runtime, entry.site_id)
    response = redirect(f"{PREFIX}/sites/{entry.site_id}/walled-garden")
    response.background = background
    return response
