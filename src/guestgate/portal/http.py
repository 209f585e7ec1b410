"""The portal's small HTTP layer on plain ASGI: the request an endpoint reads, the reply it
returns, the form reader, `send`, and the path below a mount (`route_path`, shared with the
app's `/guest` shortcut in `guestgate.app`).

The sign-in is the product's hot path; Starlette's Request/Response machinery would cost more
than the rest of it, so endpoints are `Handler`s taking a `GuestRequest` and giving a `Reply`.
`PortalPages` is what an extension (OAuth2 sign-in, `oauth_routes`) uses of the portal app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from guestgate.portal import clients
from guestgate.portal.service import PortalError

if TYPE_CHECKING:
    from guestgate import networks
    from guestgate.portal.i18n import Translator
    from guestgate.portal.render import Page, Renderer
    from guestgate.portal.service import Portal
    from guestgate.portal.store import GuestSession, InstanceInfo
    from guestgate.portal.tokens import GuestIdentity

MAX_FORM_BYTES = 8 * 1024
MAX_QUERY_FIELDS = 16
# Headers are looked at only up to this size (a Cookie header may carry a whole domain's cookies).
MAX_HEADER_CHARS = 16384
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class GuestRequest:
    """What a portal endpoint needs from a request."""

    scope: Scope
    query: dict[str, str]
    peer: str | None
    accept_language: str | None
    content_type: str
    base: str


@dataclass(frozen=True)
class Reply:
    """A response: status, headers and body."""

    status: int
    body: bytes
    headers: dict[str, str]


Handler = Callable[[GuestRequest, Receive], Awaitable[Reply]]
# What an extension adds to the sign-in form of an oauth2 instance: (request, instance, token) -> context.
FormExtras = Callable[[GuestRequest, "InstanceInfo", str], dict[str, Any]]


def parse_query(data: str) -> dict[str, str]:
    """A query string or urlencoded form: each field's first value, at most `MAX_QUERY_FIELDS` fields."""
    try:
        pairs = parse_qsl(data, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS, errors="replace")
    except ValueError as exc:
        raise PortalError(400, "err_params") from exc
    found: dict[str, str] = {}
    for key, value in pairs:
        found.setdefault(key, value)
    return found


def request_of(scope: Scope, trusted: Sequence[networks.Network]) -> GuestRequest:
    """The request of an HTTP scope; the guest's address as the trusted proxies report it."""
    headers: dict[bytes, bytes] = {}
    for key, value in scope.get("headers", ()):
        headers.setdefault(key, value)
    client = scope.get("client")
    forwarded = headers.get(b"x-forwarded-for")
    peer = clients.client_address(
        client[0] if client else None,
        forwarded.decode("latin-1") if forwarded is not None else None,
        trusted,
    )
    raw_query = scope.get("query_string", b"").decode("latin-1")
    try:
        query = parse_query(raw_query) if raw_query else {}
    except PortalError:
        query = {}
    language = headers.get(b"accept-language")
    return GuestRequest(
        scope=scope,
        query=query,
        peer=peer,
        accept_language=language.decode("latin-1") if language is not None else None,
        content_type=headers.get(b"content-type", b"").decode("latin-1"),
        base=scope.get("root_path", ""),
    )


def header(request: GuestRequest, name: bytes) -> str | None:
    """The first header called `name` (lower case), or None if absent or over `MAX_HEADER_CHARS`."""
    for key, value in request.scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text if len(text) <= MAX_HEADER_CHARS else None
    return None


async def read_form(request: GuestRequest, receive: Receive, *, limit: int) -> dict[str, str]:
    """The urlencoded body of a POST, at most `limit` bytes (else a 413 page)."""
    if request.content_type.split(";", 1)[0].strip().lower() != FORM_TYPE:
        raise PortalError(400, "err_token_missing")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise PortalError(400, "err_token_missing")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PortalError(413, "err_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return parse_query(b"".join(chunks).decode("utf-8", errors="replace"))


async def send(send: Send, reply: Reply) -> None:
    """Send a whole reply."""
    headers = [(k.encode(), v.encode("latin-1")) for k, v in reply.headers.items()]
    headers.append((b"content-length", str(len(reply.body)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


def html(status: int, page: Page, extra: dict[str, str] | None = None) -> Reply:
    """A rendered page as a reply, with `extra` headers."""
    headers = page.headers()
    if extra:
        headers.update({k.lower(): v for k, v in extra.items()})
    return Reply(status, page.body, headers)


def with_headers(reply: Reply, extra: dict[str, str]) -> Reply:
    """`reply` with `extra` headers added (or replaced)."""
    return Reply(reply.status, reply.body, {**reply.headers, **extra})


def route_path(scope: Scope) -> str:
    """The path below the mount point (as Starlette's router computes it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if len(path) == len(root):
        return ""
    if path[len(root)] == "/":
        return path[len(root) :]
    return path


class PortalPages(Protocol):
    """What an extension uses of the portal app (`routes.PortalApp`): its service, endpoints and pages."""

    portal: Portal
    renderer: Renderer

    def include(self, routes: Sequence[BaseRoute], *, form_extras: FormExtras | None = None) -> None:
        """Add endpoints (ahead of the portal's own) and what they add to oauth2 sign-in forms."""

    def endpoint(self, handler: Handler) -> ASGIApp:
        """`handler` as an ASGI app: a PortalError it raises becomes the error page."""

    async def read_form(self, request: GuestRequest, receive: Receive) -> dict[str, str]:
        """The request's form, within the portal's body limit."""

    def translator(self, request: GuestRequest, instance: InstanceInfo | None) -> Translator:
        """The guest's language for the instance's page."""

    def form_page(
        self,
        request: GuestRequest,
        t: Translator,
        instance: InstanceInfo,
        *,
        token: str,
        status: int = 200,
        preview: bool = False,
        **context: Any,
    ) -> Reply:
        """The sign-in form."""

    def session_page(
        self,
        request: GuestRequest,
        t: Translator,
        instance: InstanceInfo,
        session: GuestSession,
        status_token: str | None,
        guest: GuestIdentity | None,
        title: str,
        *,
        activating: bool = False,
    ) -> Reply:
        """The page of a signed-in guest."""

    def portal_error_page(self, request: GuestRequest, exc: PortalError) -> Reply:
        """The error page of a PortalError."""
