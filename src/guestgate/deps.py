"""FastAPI dependencies, as `Annotated` aliases routes declare."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Path, Query, Request, Response
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from guestgate.audit import service as audit_service
from guestgate.db import immediate
from guestgate.errors import AuthenticationFailed
from guestgate.networks import Network
from guestgate.pagination import PageRequest
from guestgate.portal.clients import client_address
from guestgate.portal.config import parse_proxies
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_ISSUE, SCOPE_READ, SCOPE_WRITE, Principal


def get_runtime(request: Request) -> Runtime:
    """The process's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_session(request: Request) -> Iterator[Session]:
    """A database session for this request; services commit, closing rolls back the rest.

    On an operator request the session carries the caller, so the changes it commits are
    audited as theirs.
    """
    runtime = get_runtime(request)
    # SQLite: a write request takes the write lock at BEGIN. Begun deferred, its first write after
    # a read could not wait for another writer (SQLite refuses at once to avoid a deadlock) and
    # would fail as "database is locked" under any concurrent sign-in, however short.
    bind = _writer(runtime.engine) if request.method not in _READ_METHODS else runtime.engine
    with runtime.sessions(bind=bind) as session:
        principal = request.scope.get("state", {}).get("principal")
        if isinstance(principal, Principal):
            ip = request_address(request, runtime)
            audit_service.act_as(session, audit_service.Actor(principal.subject, ip))
        yield session


def request_address(request: Request, runtime: Runtime) -> str | None:
    """The client's address: the peer, or behind a trusted proxy the address it forwards."""
    peer = request.client.host if request.client else None
    return client_address(
        peer,
        request.headers.get("x-forwarded-for"),
        _trusted_proxies(runtime.settings.portal_trusted_proxies),
    )


@functools.lru_cache(maxsize=8)
def _trusted_proxies(value: str) -> tuple[Network, ...]:
    # The same proxies that may name a guest's address name an operator's.
    return parse_proxies(value)


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@functools.lru_cache(maxsize=8)
def _writer(engine: Engine) -> Engine:
    return immediate(engine)


def _principal(request: Request) -> Principal:
    # Authenticated before routing by OperatorAuthMiddleware, so 401 precedes 400/404.
    principal = request.scope.get("state", {}).get("principal")
    if not isinstance(principal, Principal):
        raise AuthenticationFailed("No bearer token was supplied.", code="token_missing")
    return principal


def scoped(*accepted: str) -> Callable[[Request], Principal]:
    """A dependency returning the caller if the token has one of `accepted` scopes."""

    def dependency(request: Request) -> Principal:
        principal = _principal(request)
        principal.require(*accepted)
        return principal

    return dependency


def page_request(
    limit: Annotated[int | None, Query(description="Page size, 1..1000 (default 100).")] = None,
    cursor: Annotated[str | None, Query(description="The `rel=next` cursor of the previous page.")] = None,
) -> PageRequest:
    """The validated `limit`/`cursor` query parameters."""
    return PageRequest.parse(limit, cursor)


def set_next_link(request: Request, response: Response, next_cursor: str | None) -> None:
    """Add `Link: <...>; rel="next"` when there is another page."""
    if next_cursor is None:
        return
    response.headers["Link"] = f'<{next_page_url(request, next_cursor)}>; rel="next"'


def next_page_url(request: Request, next_cursor: str) -> str:
    """The absolute URL of the next page: this request's, with `cursor` set."""
    url = get_runtime(request).settings.public_url + request.url.path
    query = dict(request.query_params)
    query["cursor"] = next_cursor
    return f"{url}?{urlencode(query)}"


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SessionDep = Annotated[Session, Depends(get_session)]
PageDep = Annotated[PageRequest, Depends(page_request)]
Reader = Annotated[Principal, Depends(scoped(SCOPE_READ))]
Writer = Annotated[Principal, Depends(scoped(SCOPE_WRITE))]
IssuerReader = Annotated[Principal, Depends(scoped(SCOPE_READ, SCOPE_ISSUE))]
IssuerWriter = Annotated[Principal, Depends(scoped(SCOPE_WRITE, SCOPE_ISSUE))]

# Path parameters shared by several domains, named as in Altostrat's API.
InstanceId = Annotated[
    str,
    Path(
        alias="instanceId",
        description="The unique identifier for the captive portal instance.",
        json_schema_extra={"format": "uuid", "example": "9a7f1b2c-3d4e-5f6a-7b8c-9d0e1f2a3b4c"},
    ),
]
SiteId = Annotated[
    str,
    Path(
        alias="siteId",
        description="The unique identifier for the site.",
        json_schema_extra={"format": "uuid", "example": "3f2b8c1d-6a7e-4b9c-8d0e-1f2a3b4c5d6e"},
    ),
]
