"""HTTP routes of the sites registry [extension]."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Request, Response

from guestgate.deps import PageDep, Reader, RuntimeDep, SessionDep, SiteId, Writer, set_next_link
from guestgate.gateways import service as gateway_service
from guestgate.openapi import errors
from guestgate.sites import service
from guestgate.sites.schemas import AgentKey, Site, SiteIn

router = APIRouter(prefix="/captive/sites", tags=["Sites"])


@router.get("", operation_id="listSites", summary="List sites", responses=errors(401, 403))
def list_sites(
    request: Request, response: Response, who: Reader, session: SessionDep, page: PageDep
) -> list[Site]:
    """Lists the sites of your organisation, newest first."""
    result = service.list_sites(org_id=who.org_id, page=page, session=session)
    set_next_link(request, response, result.next_cursor)
    return [service.to_out(site) for site in result.items]


@router.post(
    "", status_code=201, operation_id="createSite", summary="Create a site", responses=errors(400, 401, 403)
)
def create_site(body: SiteIn, who: Writer, session: SessionDep, runtime: RuntimeDep) -> Site:
    """Registers a site: its guest subnets and the gateway that enforces access there."""
    site = service.create(
        body, org_id=who.org_id, box=runtime.box, rules=runtime.gateway_rules, session=session
    )
    return service.to_out(site)


@router.get("/{siteId}", operation_id="getSite", summary="Retrieve a site", responses=errors(401, 403, 404))
def get_site(site_id: SiteId, who: Reader, session: SessionDep) -> Site:
    """Retrieves a site with its gateway status."""
    return service.to_out(service.get(site_id, org_id=who.org_id, session=session))


@router.put(
    "/{siteId}", operation_id="updateSite", summary="Update a site", responses=errors(400, 401, 403, 404, 409)
)
def update_site(
    site_id: SiteId,
    body: SiteIn,
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
    background: BackgroundTasks,
) -> Site:
    """Replaces a site; an omitted gateway password keeps the stored one while the router stays the same."""
    done = service.replace(
        site_id, body, org_id=who.org_id, box=runtime.box, rules=runtime.gateway_rules, session=session
    )
    if done.left_table is not None:
        # After the response: the site's new table goes in first, then the one it left comes out.
        background.add_task(gateway_service.move_table, runtime, done.site.id, done.left_table)
    return service.to_out(done.site)


@router.delete(
    "/{siteId}",
    status_code=204,
    operation_id="deleteSite",
    summary="Delete a site",
    responses=errors(401, 403, 404, 409),
)
def delete_site(
    site_id: SiteId, who: Writer, session: SessionDep, runtime: RuntimeDep, background: BackgroundTasks
) -> Response:
    """Deletes a site, its walled garden and its session history; refused while an instance uses it."""
    left = service.delete(site_id, org_id=who.org_id, session=session)
    if left is not None:
        background.add_task(gateway_service.move_table, runtime, None, left)
    return Response(status_code=204)


@router.post(
    "/{siteId}/agent-key/rotate",
    operation_id="rotateSiteAgentKey",
    summary="Rotate a site's agent key",
    responses=errors(401, 403, 404),
)
def rotate_agent_key(site_id: SiteId, who: Writer, session: SessionDep, runtime: RuntimeDep) -> AgentKey:
    """Gives the site a new agent key, returned this once; the old key is refused from now on."""
    key = gateway_service.rotate_agent_key(runtime, site_id, org_id=who.org_id, session=session)
    return AgentKey(site_id=site_id, agent_key=key)
