"""Request ids, access log lines and request metrics for everything but the guest portal.

Each request gets an id: a sane inbound `X-Request-ID` (a proxy's) is kept, anything else is
replaced by a fresh one. It is returned in the response's `X-Request-ID` and bound to every log
line written while the request runs (structlog context variables follow the request into the
thread pool). The access line names the route template, never the query string: signed URLs
carry their signature there.
"""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guestgate.ops import metrics

HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
# Requests the access log leaves out: probes and scrapes every few seconds would drown the rest.
QUIET_PATHS = frozenset(("/healthz", "/readyz", "/metrics"))

log = structlog.get_logger("guestgate.access")


def request_id_of(scope: Scope) -> str:
    """The request's inbound X-Request-ID if it is sane (1-128 of `A-Z a-z 0-9 . _ : -`), else a new one."""
    for key, value in scope["headers"]:
        if key == HEADER:
            return value.decode("ascii") if _SANE_ID.fullmatch(value) else uuid.uuid4().hex
    return uuid.uuid4().hex


def route_of(scope: Scope) -> str:
    """The path template that answered (`/captive/instances/{instanceId}`), or `unmatched`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class RequestContextMiddleware:
    """Outermost middleware: the request id, one access log line and the request metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        header = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                method = scope["method"]
                route = route_of(scope)
                metrics.HTTP_REQUESTS.labels(method, route, str(status)).inc()
                metrics.HTTP_DURATION.labels(method, route).observe(elapsed)
                if scope["path"] not in QUIET_PATHS:
                    log.info(
                        "request",
                        method=method,
                        route=route,
                        status=status,
                        duration_ms=round(elapsed * 1000, 1),
                    )
