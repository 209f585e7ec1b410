"""HTTP routes of auth integrations (OAuth2 identity providers)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from guestgate.auth_integrations import service
from guestgate.auth_integrations.discovery import Discoverer
from guestgate.auth_integrations.schemas import AuthIntegration, AuthIntegrationCreate, AuthIntegrationUpdate
from guestgate.deps import PageDep, Reader, RuntimeDep, SessionDep, Writer, set_next_link
from guestgate.openapi import errors
from guestgate.runtime import Runtime

router = APIRouter(prefix="/captive/auth-integrations", tags=["Auth Integrations"])
AuthIntegrationId = Annotated[
    str,
    Path(
        alias="authIntegrationId",
        description="The unique identifier for the auth integration.",
        examples=["c1d2e3f4-a5b6-c7d8-e9f0-a1b2c3d4e5f6"],
    ),
]


@router.get(
    "",
    operation_id="listAuthIntegrations",
    summary="List all auth integrations",
    responses=errors(401, 403),
)
def list_auth_integrations(
    request: Request, response: Response, who: Reader, session: SessionDep, runtime: RuntimeDep, page: PageDep
) -> list[AuthIntegration]:
    """Retrieves a list of all configured authentication integrations (IDPs) for your organization."""
    result = service.list_integrations(org_id=who.org_id, page=page, session=session)
    set_next_link(request, response, result.next_cursor)
    return [
        service.to_out(item, signer=runtime.signer, public_url=runtime.settings.public_url)
        for item in result.items
    ]


@router.post(
    "",
    status_code=201,
    operation_id="createAuthIntegration",
    summary="Create an auth integration",
    responses=errors(400, 401, 403),
)
def create_auth_integration(
    body: AuthIntegrationCreate, who: Writer, session: SessionDep, runtime: RuntimeDep
) -> AuthIntegration:
    """Creates a new authentication integration for use with OAuth2-based captive portals.
    **[extension]** An `oidc` integration's issuer is checked now: its discovery document is
    fetched and must name it."""
    item = service.create(
        body, org_id=who.org_id, box=runtime.box, session=session, discoverer=_discoverer(runtime)
    )
    return service.to_out(item, signer=runtime.signer, public_url=runtime.settings.public_url)


@router.get(
    "/{authIntegrationId}",
    operation_id="getAuthIntegration",
    summary="Retrieve an auth integration",
    responses=errors(401, 403, 404),
)
def get_auth_integration(
    integration_id: AuthIntegrationId, who: Reader, session: SessionDep, runtime: RuntimeDep
) -> AuthIntegration:
    """Retrieves the details of a specific authentication integration by its unique ID."""
    item = service.get(integration_id, org_id=who.org_id, session=session)
    return service.to_out(item, signer=runtime.signer, public_url=runtime.settings.public_url)


@router.put(
    "/{authIntegrationId}",
    operation_id="updateAuthIntegration",
    summary="Update an auth integration",
    responses=errors(400, 401, 403, 404),
)
def update_auth_integration(
    integration_id: AuthIntegrationId,
    body: AuthIntegrationUpdate,
    who: Writer,
    session: SessionDep,
    runtime: RuntimeDep,
) -> AuthIntegration:
    """Updates the configuration of an existing authentication integration; an omitted secret is kept."""
    item = service.replace(
        integration_id,
        body,
        org_id=who.org_id,
        box=runtime.box,
        session=session,
        discoverer=_discoverer(runtime),
    )
    return service.to_out(item, signer=runtime.signer, public_url=runtime.settings.public_url)


@router.delete(
    "/{authIntegrationId}",
    status_code=204,
    operation_id="deleteAuthIntegration",
    summary="Delete an auth integration",
    responses=errors(401, 403, 404, 409),
)
def delete_auth_integration(integration_id: AuthIntegrationId, who: Writer, session: SessionDep) -> Response:
    """Permanently deletes an authentication integration; refused while an instance uses it."""
    service.delete(integration_id, org_id=who.org_id, session=session)
    return Response(status_code=204)


def _discoverer(runtime: Runtime) -> Discoverer:
    return Discoverer.from_settings(runtime.outbound, runtime.settings)
