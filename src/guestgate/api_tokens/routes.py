"""HTTP routes of API tokens: mint, list and revoke an org's named operator tokens (an extension)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from guestgate.api_tokens import service
from guestgate.api_tokens.schemas import ApiTokenCreated, ApiTokenIn, ApiTokenOut
from guestgate.db import utcnow
from guestgate.deps import PageDep, RuntimeDep, SessionDep, Writer, set_next_link
from guestgate.openapi import errors

router = APIRouter(prefix="/captive/api-tokens", tags=["API Tokens"])
TokenId = Annotated[
    str,
    Path(
        alias="apiTokenId",
        description="The unique identifier (the `jti`) of the API token.",
        examples=["5b0c8e2a-1f3d-4c6b-9a7e-2d4f6a8b0c1e"],
    ),
]


@router.get(
    "",
    operation_id="listApiTokens",
    summary="List API tokens",
    responses=errors(400, 401, 403),
)
def list_tokens(
    request: Request, response: Response, who: Writer, session: SessionDep, page: PageDep
) -> list[ApiTokenOut]:
    """Retrieves the org's API tokens, newest first, revoked and expired ones included; never the tokens
    themselves. Needs `captive:write`."""
    result = service.list_tokens(who.org_id, page=page, session=session)
    set_next_link(request, response, result.next_cursor)
    return [service.to_out(row) for row in result.items]


@router.post(
    "",
    status_code=201,
    operation_id="createApiToken",
    summary="Mint an API token",
    responses=errors(400, 401, 403),
)
def create_token(body: ApiTokenIn, who: Writer, session: SessionDep, runtime: RuntimeDep) -> ApiTokenCreated:
    """Mints a named, revocable operator token for the caller's org, with at most the caller's scopes
    and a lifetime of at most 365 days (at most 100 active tokens an org). The token is in this answer
    only."""
    row, token = service.mint(
        who.org_id,
        body.name,
        body.scopes if body.scopes is not None else sorted(who.scopes),
        body.ttl_seconds if body.ttl_seconds is not None else service.DEFAULT_TTL_SECONDS,
        who.subject,
        settings=runtime.settings,
        session=session,
        now=utcnow(),
        subject=who.subject,
        granted_by=who.scopes,
    )
    return ApiTokenCreated(**service.to_out(row).model_dump(), token=token)


@router.delete(
    "/{apiTokenId}",
    status_code=204,
    operation_id="revokeApiToken",
    summary="Revoke an API token",
    responses=errors(401, 403, 404),
)
def revoke_token(token_id: TokenId, who: Writer, session: SessionDep, runtime: RuntimeDep) -> Response:
    """Revokes an API token: this server refuses it at once, every other replica within
    GUESTGATE_API_TOKEN_REVOCATION_SECONDS. Revoking a revoked token changes nothing."""
    service.revoke(
        token_id, org_id=who.org_id, session=session, now=utcnow(), revocations=runtime.revocations
    )
    return Response(status_code=204)
