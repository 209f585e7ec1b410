"""Requests a gateway sent to the portal: a guest's web request for another host is redirected to the entry page.

A gateway's redirect rule (nft `redirect`/`dnat`, RouterOS `dst-nat`) hands guestgate the
guest's plain HTTP request as it was, e.g. `GET /hotspot-detect.html` with `Host:
captive.apple.com`. Such a request names a host that is not guestgate's and a path guestgate
does not serve; it is answered with a redirect to `<public url>/guest/entry?orig=<the URL the
guest asked for>` (with `ots` and `osig`, the portal's signature of that URL for the guest's
address: `portal.continue_links`), where the portal finds the guest's site by its address. Requests for
guestgate's own paths are never redirected, whatever host they name, so the API keeps working
under any alias.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

# (the request, the URL it asked for) -> the entry URL's query parameters.
EntryParams = Callable[[Scope, str], dict[str, str]]

OWN_PREFIXES = (
    "/captive",
    "/guest",
    "/agent",
    "/metrics",
    "/docs",
    "/redoc",
    "/openapi.json",
    "/errors",
    "/healthz",
    "/readyz",
)
_MAX_ORIG = 2000


class CaptiveRedirect:
    """Redirects intercepted guest requests (another host, not a guestgate path) to the portal entry."""

    def __init__(self, app: ASGIApp, *, public_url: str, entry_params: EntryParams | None = None) -> None:
        self.app = app
        self.public_url = public_url.rstrip("/")
        self.entry_params = entry_params or (lambda _scope, orig: {"orig": orig})
        # A guest never names the loopback: those are an operator's browser on the server itself.
        self.own_hosts = {(urlsplit(self.public_url).hostname or "").lower(), "localhost", "127.0.0.1", "::1"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _own_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        host = None
        for key, value in scope["headers"]:
            if key == b"host":
                host = value.decode("latin-1")
                break
        if not host or _hostname(host) in self.own_hosts:
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        orig = f"{scope.get('scheme', 'http')}://{host}{scope.get('raw_path', b'').decode('latin-1') or scope['path']}"
        if query:
            orig += "?" + query
        target = f"{self.public_url}/guest/entry"
        if len(orig) <= _MAX_ORIG:
            target += "?" + urlencode(self.entry_params(scope, orig))
        body = f'<!doctype html><title>Sign in</title><a href="{_escape(target)}">Sign in to this network</a>'.encode()
        await send(
            {
                "type": "http.response.start",
                "status": 302,
                "headers": [
                    (b"location", target.encode("latin-1", "replace")),
                    (b"cache-control", b"no-store"),
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _own_path(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in OWN_PREFIXES)


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
