"""HTTP of the agent API, mounted at /agent (outside the operator API and its tokens).

    GET /agent/v1/state?site=<siteId>&since=<version>&wait=<seconds>
    Authorization: Bearer <the site's agent key>
    X-Guestgate-Agent-Error: <why the last state could not be applied>   (optional)

`since` is the version the agent holds (applied); empty on its first poll. The answer is the
state as JSON (200) as soon as its version differs from `since`, or 304 with no body after
`wait` seconds (0-60, default 25) without a change: a long-poll, so an agent behind NAT hears of
a sign-in within moments without any inbound connection. Changes made in this process wake the
poll at once, and so do those of other processes (another replica, a worker) on PostgreSQL,
through the agent bus (`guestgate.gateways.bus`); without it (SQLite) the poll re-reads the
state every second. A server told to stop (SIGTERM) answers its polls at once, so its shutdown
does not wait for them; the agent polls again, through the proxy, at another replica. Each poll is also the agent's report: `since` equal to the current version marks the
site `ok` (and its sessions applied); an error header marks it `misconfigured` with that error.

    POST /agent/v1/usage?site=<siteId>        (same key)
    {"counters": [{"session_id": "...", "bytes_in": 123, "bytes_out": 456}, ...]}

The agent's raw byte counters of its guests, after each apply (at most `MAX_USAGE_ENTRIES`
entries, `MAX_USAGE_BYTES` of body). They are added to the sessions' usage as the reconciler
adds a pushed gateway's (`guestgate.site_users.usage`); sessions of other sites are ignored.
A session past its data limit ends `quota_exceeded` and the site's polls wake at once, so the
agent drops the guest with the state it pulls next. Answers 200 `{"written": n, "ended": m}`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import Receive, Scope, Send

from guestgate.db import utcnow
from guestgate.error_handlers import error_response
from guestgate.errors import (
    AuthenticationFailed,
    GuestgateError,
    NotFound,
    ParameterInvalid,
    ParameterMissing,
)
from guestgate.gateways import service
from guestgate.gateways.agent import AGENT_DRIVER, agent_key_valid
from guestgate.gateways.agent_protocol import (
    DEFAULT_WAIT_SECONDS,
    ERROR_HEADER,
    MAX_ERROR_CHARS,
    MAX_SITE_ID_CHARS,
    MAX_VERSION_CHARS,
    MAX_WAIT_SECONDS,
    STATE_ROUTE,
    USAGE_ROUTE,
)
from guestgate.gateways.base import GuestCounters
from guestgate.runtime import Runtime
from guestgate.sites.models import Site

# An agent reports every guest of its site at once: this many at most (a large site), in this
# much body (about 100 bytes an entry).
MAX_USAGE_ENTRIES = 20_000
MAX_USAGE_BYTES = 4_000_000


class AgentApi:
    """The ASGI app of the agent API."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        clock: Callable[[], datetime] = utcnow,
        tick_seconds: float = 0.1,
        recheck_seconds: float = 1.0,
        shared_recheck_seconds: float = 15.0,
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        self.tick = tick_seconds
        self.recheck = recheck_seconds
        # With the bus every change wakes the poll; the re-read is only for time passing (a
        # session or window ending), which the gateway's own timeouts already enforce.
        self.shared_recheck = shared_recheck_seconds
        self.router = Router(
            routes=[
                Route(STATE_ROUTE, self.state, methods=["GET"]),
                Route(USAGE_ROUTE, self.usage, methods=["POST"]),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)

    async def state(self, request: Request) -> Response:
        """The site's desired state once it differs from the agent's `since` (long-poll)."""
        public_url = self.runtime.settings.public_url
        try:
            site_id, since, wait = _params(request)
            key = _bearer(request.headers.get("authorization"))
            site = await self._authorized(site_id, key)
        except GuestgateError as error:
            return error_response(error, public_url)
        error_text = (request.headers.get(ERROR_HEADER) or "").strip()[:MAX_ERROR_CHARS] or None
        state = await asyncio.to_thread(
            service.agent_report, self.runtime, site, applied=since, error=error_text, now=self.clock()
        )
        feed = self.runtime.gateways.agents
        draining = self.runtime.draining
        deadline = time.monotonic() + wait
        generation = feed.generation(site.id)
        checked = time.monotonic()
        while state.version == since and time.monotonic() < deadline and not draining.is_set():
            await asyncio.sleep(min(self.tick, max(0.0, deadline - time.monotonic())))
            recheck = self.shared_recheck if self.runtime.agent_changes_shared else self.recheck
            if feed.generation(site.id) != generation or time.monotonic() - checked >= recheck:
                generation = feed.generation(site.id)
                checked = time.monotonic()
                try:
                    # A rotation wakes the poll: the key it began with may no longer be the site's.
                    site = await self._authorized(site_id, key)
                except GuestgateError as error:
                    return error_response(error, public_url)
                state = await asyncio.to_thread(service.agent_state, self.runtime, site, now=self.clock())
        headers = {"etag": f'"{state.version}"', "cache-control": "no-store"}
        if state.version == since:
            return Response(status_code=304, headers=headers)
        return JSONResponse(state.document(now=self.clock()), headers=headers)

    async def usage(self, request: Request) -> Response:
        """The agent's counters: added to its sessions' usage; those over quota end."""
        public_url = self.runtime.settings.public_url
        try:
            site_id, _, _ = _params(request)
            key = _bearer(request.headers.get("authorization"))
            site = await self._authorized(site_id, key)
            body = await request.body()
            if len(body) > MAX_USAGE_BYTES:
                raise ParameterInvalid("counters", f"the body must be at most {MAX_USAGE_BYTES} bytes")
            counters = _counters(body)
        except GuestgateError as error:
            return error_response(error, public_url)
        written, ended = await asyncio.to_thread(
            service.agent_usage, self.runtime, site, counters, now=self.clock()
        )
        return JSONResponse({"written": written, "ended": ended}, headers={"cache-control": "no-store"})


    async def _authorized(self, site_id: str, key: str | None) -> Site:
        """The agent site `key` is the current key of; AuthenticationFailed, or NotFound for a valid
        key of a site that is not (or no longer) an agent site.

        The site's salt is read from the database on every request, so a rotated key is refused
        at once here and on every other replica.
        """
        if key is None:
            raise AuthenticationFailed("The agent key is missing or is not this site's.", code="token_invalid")
        site = await asyncio.to_thread(service.site_row, self.runtime, site_id)
        salt = site.agent_key_salt if site is not None else None
        if not agent_key_valid(self.runtime.settings, site_id, key, salt):
            raise AuthenticationFailed("The agent key is missing or is not this site's.", code="token_invalid")
        if site is None or site.gateway_driver != AGENT_DRIVER:
            raise NotFound("agent site", site_id)
        return site


def _counters(body: bytes) -> dict[str, GuestCounters]:
    try:
        document = json.loads(body or b"{}")
    except ValueError as exc:
        raise ParameterInvalid("counters", "the body must be JSON") from exc
    entries = document.get("counters") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ParameterMissing("counters")
    if len(entries) > MAX_USAGE_ENTRIES:
        raise ParameterInvalid("counters", f"at most {MAX_USAGE_ENTRIES} entries")
    found: dict[str, GuestCounters] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise ParameterInvalid("counters", "each entry must be an object")
        session_id, up, down = entry.get("session_id"), entry.get("bytes_in"), entry.get("bytes_out")
        if not isinstance(session_id, str) or not 0 < len(session_id) <= 36:
            raise ParameterInvalid("counters", "session_id must be a session id")
        for value in (up, down):
            if type(value) is not int or not 0 <= value < 2**63:
                raise ParameterInvalid("counters", "bytes_in and bytes_out must be non-negative integers")
        found[session_id] = GuestCounters(bytes_in=int(up), bytes_out=int(down))  # type: ignore[arg-type]
    return found


def _params(request: Request) -> tuple[str, str, float]:
    site_id = (request.query_params.get("site") or "").strip().lower()
    if not site_id:
        raise ParameterMissing("site")
    if len(site_id) > MAX_SITE_ID_CHARS:
        raise ParameterInvalid("site", "must be a site id")
    since = (request.query_params.get("since") or "").strip()
    if len(since) > MAX_VERSION_CHARS:
        raise ParameterInvalid("since", "must be a version this API returned")
    raw_wait = request.query_params.get("wait")
    if raw_wait is None or raw_wait == "":
        return site_id, since, float(DEFAULT_WAIT_SECONDS)
    try:
        wait = float(raw_wait)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= MAX_WAIT_SECONDS:
        raise ParameterInvalid("wait", f"must be between 0 and {MAX_WAIT_SECONDS}")
    return site_id, since, wait


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
