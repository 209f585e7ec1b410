"""HTTP of the guest portal under /guest: lean ASGI endpoints, HTML pages, RFC 8908 JSON.

Not FastAPI: the sign-in POST is the product's hot path, so requests are parsed by hand (a
form of a few hundred bytes) and every page is rendered straight to the socket. Every
failure, expected or not, ends in a page a guest can read, with the right status.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import psycopg
import structlog
from sqlalchemy import event
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from guestgate import local_time
from guestgate.db import utcnow
from guestgate.portal import clients, continue_links, oauth_routes
from guestgate.portal.config import PortalConfig
from guestgate.portal.entry_signing import site_keys
from guestgate.portal.gateway import GatewayNotifier, RecordOnly
from guestgate.portal.http import (
    MAX_FORM_BYTES,
    FormExtras,
    GuestRequest,
    Handler,
    Reply,
    html,
    read_form,
    request_of,
    route_path,
)
from guestgate.portal.http import send as send_reply
from guestgate.portal.i18n import Translator, negotiate
from guestgate.portal.oauth import IdentityProviders
from guestgate.portal.render import STATIC, Renderer
from guestgate.portal.service import Portal, PortalError, SignInOutcome, scope_hint
from guestgate.portal.store import AsyncGuestStore, GuestSession, InstanceInfo, open_store
from guestgate.portal.throttle import (
    SCOPE_NETWORK,
    FailureCounters,
    Lockout,
    MemoryCounters,
    RedisCounters,
    Throttle,
)
from guestgate.portal.tokens import GuestIdentity, TokenSealer
from guestgate.portal.usage import UsageLookup, data_left_text, speed_text
from guestgate.runtime import Runtime
from guestgate.site_users.usage import QUOTA_EXCEEDED, SessionUsage

log = structlog.get_logger(__name__)

CAPPORT_TYPE = "application/captive+json"
# How often the "activating" page asks again whether the gateway has let the guest through.
ACTIVATING_REFRESH_SECONDS = 3

# outcome: (status, message key, field the message is about)
_FORM_OUTCOMES: dict[SignInOutcome, tuple[int, str, str]] = {
    SignInOutcome.UNKNOWN: (400, "err_unknown", "code"),
    SignInOutcome.EXPIRED: (410, "err_expired", "code"),
    SignInOutcome.USED: (409, "err_used", "code"),
    SignInOutcome.IN_USE: (409, "err_in_use", "code"),
    SignInOutcome.MISSING_CODE: (400, "err_missing_code", "code"),
    SignInOutcome.MALFORMED: (400, "err_malformed", "code"),
    SignInOutcome.TERMS_REQUIRED: (400, "err_terms", "accept"),
}
# When even the error page cannot be rendered.
_PLAIN_500 = (
    b'<!doctype html><html lang="en"><meta charset="utf-8"><title>Sorry</title>'
    b"<p>Something went wrong on our side. Please try again in a moment.</p></html>"
)
_HTTP_KEYS = {404: "err_not_found", 405: "err_method", 413: "err_too_large"}


def refusal_text(t: Translator, key: str, allowed: int | None) -> str:
    """A refused code's words: with its limit where it has more than one device or sign-in
    ("This code is already in use on 2 devices"); a single-use code keeps its first words."""
    if allowed is not None and allowed > 1 and key in ("err_used", "err_in_use"):
        return t(f"{key}_many", count=allowed)
    return t(key)


class PortalApp:
    """The ASGI app mounted at /guest."""

    def __init__(self, portal: Portal, renderer: Renderer) -> None:
        self.portal = portal
        self.renderer = renderer
        self.trusted = portal.config.trusted_proxies
        self.router = Router(
            routes=[
                Route("/entry", self.endpoint(self.entry), methods=["GET"]),
                Route("/signin", self.endpoint(self.sign_in), methods=["POST"]),
                Route("/status", self.endpoint(self.status), methods=["GET"]),
                Route("/capport", self.endpoint(self.capport), methods=["GET"]),
                Route("/preview/{instance_id}", self.endpoint(self.preview), methods=["GET"]),
                Mount("/static", app=StaticFiles(directory=STATIC)),
            ],
            default=self._not_found,
        )
        self._form_extras: FormExtras | None = None
        # Reads of a session's limits and usage for the status page (None: not shown).
        self.usage: UsageLookup | None = None
        self._exact: dict[tuple[str, str], ASGIApp] | None = None

    def include(self, routes: Sequence[BaseRoute], *, form_extras: FormExtras | None = None) -> None:
        """Add an extension's endpoints (ahead of the portal's own) and what it adds to oauth2 forms."""
        self.router.routes[0:0] = list(routes)
        self._exact = None
        if form_extras is not None:
            self._form_extras = form_extras

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.router(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            endpoint = self._exact_routes().get((scope["method"], route_path(scope)))
            if endpoint is not None:
                await endpoint(scope, receive, tracking_send)
            else:
                await self.router(scope, receive, tracking_send)
        except (sqlite3.OperationalError, psycopg.OperationalError) as exc:
            # A locked or unreachable database: worth retrying in a moment, not a crash.
            log.warning("portal.database_unavailable", path=scope.get("path"), error=str(exc))
            if not started:
                await send_reply(
                    send, self._error(self._request(scope), 503, "err_unavailable", {"retry-after": "5"})
                )
        except HTTPException as exc:
            if not started:
                extra = dict(exc.headers or {})
                await send_reply(
                    send, self._error(self._request(scope), exc.status_code, _key_of(exc.status_code), extra)
                )
        except Exception:
            log.exception("portal.request_failed", path=scope.get("path"))
            if not started:
                await send_reply(send, self._last_resort(scope))

    def redirect_params(self, scope: Scope, orig: str) -> dict[str, str]:
        """The entry URL's query for a guest's intercepted request to `orig` (see `continue_links`)."""
        request = self._request(scope)
        if request.peer is None or not self.portal.config.orig_keys:
            return {"orig": orig}
        return continue_links.redirect_params(
            self.portal.config.orig_keys[0], orig=orig, client=request.peer, now=self._now().timestamp()
        )

    def _exact_routes(self) -> dict[tuple[str, str], ASGIApp]:
        """(method, path) -> endpoint of the routes without path parameters, as the router orders them.

        The router would try each route's pattern in turn; for the sign-in POST a dict look-up
        finds the same endpoint (the first route listed for that method and path).
        """
        if self._exact is None:
            table: dict[tuple[str, str], ASGIApp] = {}
            for route in self.router.routes:
                if isinstance(route, Route) and not route.param_convertors and route.methods:
                    for method in route.methods:
                        table.setdefault((method, route.path), route.app)
            self._exact = table
        return self._exact

    def _last_resort(self, scope: Scope) -> Reply:
        try:
            return self._error(self._request(scope), 500, "err_internal")
        except Exception:
            log.exception("portal.error_page_failed")
            return Reply(
                500, _PLAIN_500, {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"}
            )

    def endpoint(self, handler: Handler) -> ASGIApp:
        """`handler` as an ASGI app: a PortalError it raises becomes the error page."""
        return _Endpoint(self, handler)

    def _request(self, scope: Scope) -> GuestRequest:
        return request_of(scope, self.trusted)

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_reply(send, self._error(self._request(scope), 404, "err_not_found"))

    # -- endpoints ---------------------------------------------------------------------------

    async def entry(self, request: GuestRequest, _receive: Receive) -> Reply:
        """The page a gateway sends a guest to: the sign-in form, or its session if signed in."""
        entry = await self.portal.enter(request.query, peer=request.peer)
        t = self.translator(request, entry.instance)
        if entry.session is not None:
            return self.session_page(
                request,
                t,
                entry.instance,
                entry.session,
                entry.status_token,
                entry.identity,
                t("status_title"),
                activating=await self.portal.activating(entry.session),
            )
        # A printed card's QR code opens the page with its code filled in.
        code = request.query.get("code", "")
        if entry.lockout is not None:
            return self._locked(
                request, t, entry.instance, entry.identity.site_id, entry.lockout, entry.now, code=code[:16]
            )
        return self.form_page(request, t, entry.instance, token=entry.token, code=code[:16])

    async def sign_in(self, request: GuestRequest, receive: Receive) -> Reply:
        """The coupon form's POST."""
        form = await self.read_form(request, receive)
        result = await self.portal.sign_in(form, peer=request.peer)
        t = self.translator(request, result.instance)
        outcome = result.outcome
        if outcome in (SignInOutcome.SUCCESS, SignInOutcome.ALREADY_ACTIVE):
            assert result.session is not None
            title = t("success_title") if outcome is SignInOutcome.SUCCESS else t("status_title")
            return self.session_page(
                request,
                t,
                result.instance,
                result.session,
                result.status_token,
                result.identity,
                title,
                activating=result.activating,
            )
        if outcome is SignInOutcome.LOCKED:
            assert result.lockout is not None
            return self._locked(
                request, t, result.instance, result.identity.site_id, result.lockout, result.now
            )
        status, key, field = _FORM_OUTCOMES[outcome]
        return self.form_page(
            request,
            t,
            result.instance,
            token=result.token,
            status=status,
            error=refusal_text(t, key, result.allowed),
            error_field=field,
            code=result.code,
            accepted=form.get("accept") in ("yes", "on", "1", "true"),
            outcome=outcome.value,
        )

    async def status(self, request: GuestRequest, _receive: Receive) -> Reply:
        """The page a guest reopens to see its session."""
        view = await self.portal.status(request.query, peer=request.peer)
        t = self.translator(request, view.instance)
        found = await self.usage.of(view.session_id) if self.usage and view.session_id else None
        if view.session is not None and view.instance is not None:
            return self.session_page(
                request,
                t,
                view.instance,
                view.session,
                view.status_token,
                None,
                t("status_title"),
                activating=await self.portal.activating(view.session),
                usage=found,
            )
        quota = found is not None and found.status == QUOTA_EXCEEDED
        if not quota and self.usage and view.session is None and request.peer and not request.query.get("t"):
            # Found by address: the guest the gateway dropped for its data limit is told so.
            quota = await self.usage.ended_over_quota(view.site_id, request.peer, now=self._now())
        if quota:
            message = t("quota_exceeded")
        else:
            message = t("session_ended") if request.query.get("t") else t("not_signed_in")
        page = self.renderer.render(
            "session.html",
            t=t,
            title=t("quota_title") if quota else t("status_title"),
            quota=quota,
            instance=view.instance,
            now=self._now(),
            base=request.base,
            session=None,
            message=message,
            entry_url=f"{request.base}/entry?{urlencode({'site': view.site_id})}",
        )
        return html(200, page)

    async def capport(self, request: GuestRequest, _receive: Receive) -> Reply:
        """RFC 8908: the captive portal API state of the calling guest."""
        headers = {"content-type": CAPPORT_TYPE, "cache-control": "private"}
        try:
            state = await self.portal.capport(
                request.query.get("site") or None,
                peer=request.peer,
                instance_id=scope_hint(request.query),
            )
        except PortalError as exc:
            # Whatever the reason, this address is not a guest this portal knows.
            error = {
                "type": "not_found_error",
                "code": "resource_not_found",
                "message": Translator("en")(exc.key),
                "doc_url": f"{self.portal.config.public_url}/errors/resource_not_found",
            }
            return Reply(404, json.dumps(error).encode(), {**headers, "content-type": "application/json"})
        return Reply(200, json.dumps(state).encode(), headers)

    async def preview(self, request: GuestRequest, _receive: Receive) -> Reply:
        """The instance's real page with its real theme, with a form that cannot be sent."""
        instance_id = str(request.scope.get("path_params", {}).get("instance_id", ""))
        instance = await self.portal.preview(instance_id, request.query)
        t = self.translator(request, instance)
        return self.form_page(request, t, instance, token="", preview=True)

    # -- pages -------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.portal.clock()

    def translator(self, request: GuestRequest, instance: InstanceInfo | None) -> Translator:
        return Translator(negotiate(request.accept_language, instance.locale if instance else None))

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
        if self._form_extras is not None and instance.strategy == "oauth2":
            context = {**self._form_extras(request, instance, token), **context}
        page = self.renderer.render(
            "signin.html",
            t=t,
            title=t("page_title"),
            instance=instance,
            now=self._now(),
            base=request.base,
            token=token,
            preview=preview,
            **context,
        )
        return html(status, page)

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
        usage: SessionUsage | None = None,
    ) -> Reply:
        now = self._now()
        # Where the guest was going: a link only when the gateway or our captive redirect vouched
        # for it (`continue_links`), plain text otherwise.
        orig = clients.safe_orig(guest.orig) if guest is not None else None
        vouched = guest is not None and guest.orig_vouched
        left = max(0.0, session.expires_at.timestamp() - now.timestamp())
        status_url = f"{request.base}/status?{urlencode({'t': status_token})}" if status_token else None
        if activating:
            # The gateway has not let the guest through yet: the page asks again until it has.
            title = t("activating_title")
            refresh_url = status_url or f"{request.base}/status?{urlencode({'site': session.site_id})}"
        else:
            refresh_url = None
        # Every sign-in ends here: the page is filled into a cached skeleton (see `render_filled`).
        page = self.renderer.render_filled(
            "session.html",
            t=t,
            title=title,
            instance=instance,
            now=now,
            base=request.base,
            slots={
                "remaining": local_time.duration_words(left, t.locale),
                "ends_at": local_time.clock(session.expires_at, local_time.zone(instance.timezone), now=now),
                "expires_iso": session.expires_at.replace(microsecond=0, tzinfo=None).isoformat() + "Z",
                "orig": orig if vouched else None,
                "orig_text": None if vouched else orig,
                "status_url": status_url,
                "refresh_url": refresh_url,
                # The plan's figures, on the status page of a session with limits.
                "data_left": data_left_text(usage, t),
                "speed": speed_text(usage, t),
            },
            # The template only tests whether there is a session; what it shows of it is in the slots.
            session=True,
            activating=activating,
            refresh_seconds=ACTIVATING_REFRESH_SECONDS,
        )
        return html(200, page)

    def _locked(
        self,
        request: GuestRequest,
        t: Translator,
        instance: InstanceInfo,
        site_id: str,
        lockout: Lockout,
        now: float,
        *,
        code: str = "",
    ) -> Reply:
        """The lock-out page: the venue, why, how long; it reloads the entry when the time is up."""
        wait = max(1, math.ceil(lockout.until - now))
        key = "locked_site" if lockout.scope == SCOPE_NETWORK else "locked_client"
        query = {"site": site_id, **({"code": code} if code else {})}
        retry_url = f"{request.base}/entry?{urlencode(query)}"
        page = self.renderer.render(
            "locked.html",
            t=t,
            title=t("locked_title"),
            instance=instance,
            now=self._now(),
            base=request.base,
            message=t(key, wait=t.duration(wait, round_up=True)),
            retry_url=retry_url,
            refresh_url=retry_url,
            refresh_seconds=wait,
        )
        return html(429, page, {"retry-after": str(wait)})

    def portal_error_page(self, request: GuestRequest, exc: PortalError) -> Reply:
        return self._error(request, exc.status, exc.key, site_id=exc.site_id)

    def _error(
        self,
        request: GuestRequest,
        status: int,
        key: str,
        extra: dict[str, str] | None = None,
        *,
        site_id: str | None = None,
    ) -> Reply:
        t = self.translator(request, None)
        entry_url = f"{request.base}/entry?{urlencode({'site': site_id})}" if site_id else None
        page = self.renderer.render(
            "error.html",
            t=t,
            title=t("error_title"),
            instance=None,
            now=self._now(),
            base=request.base,
            message=t(key),
            entry_url=entry_url,
        )
        return html(status, page, extra)

    async def read_form(self, request: GuestRequest, receive: Receive) -> dict[str, str]:
        """The request's form, within the portal's body limit."""
        return await read_form(request, receive, limit=min(MAX_FORM_BYTES, self.portal.config.max_body_bytes))


class _Endpoint:
    """One endpoint as a plain ASGI app (Starlette would wrap a function in its Request machinery)."""

    def __init__(self, owner: PortalApp, handler: Handler) -> None:
        self.owner = owner
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = self.owner._request(scope)
        try:
            reply = await self.handler(request, receive)
        except PortalError as exc:
            reply = self.owner.portal_error_page(request, exc)
        await send_reply(send, reply)


def _key_of(status: int) -> str:
    return _HTTP_KEYS.get(status, "err_internal" if status >= 500 else "err_params")


def build(
    runtime: Runtime,
    *,
    config: PortalConfig | None = None,
    store: AsyncGuestStore | None = None,
    counters: FailureCounters | None = None,
    notifier: GatewayNotifier | None = None,
    clock: Callable[[], datetime] = utcnow,
    identity_providers: IdentityProviders | None = None,
) -> PortalApp:
    """The guest portal app for a runtime (defaults from its settings; parts replaceable for tests)."""
    config = config or PortalConfig.from_settings(runtime.settings)
    if store is None:
        store = open_store(runtime.settings.resolved_database_url, pg_pool_size=config.pg_pool_size)
    if counters is None:
        counters = (
            RedisCounters(config.redis_url, prefix=config.redis_prefix)
            if config.redis_url
            else MemoryCounters()
        )
    settings = runtime.settings
    portal = Portal(
        config=config,
        store=store,
        sealer=TokenSealer.from_settings(settings),
        signer=runtime.signer,
        entry_keys=lambda site_id: site_keys(settings, site_id),
        throttle=Throttle(counters, config.throttle),
        notifier=notifier or RecordOnly(),
        clock=clock,
    )
    opened = store
    # Mounted apps get no lifespan events; the runtime's shutdown disposes the engine, so the
    # portal's own connections close with it.
    event.listen(runtime.engine, "engine_disposed", lambda _engine: opened.close())
    app = PortalApp(portal, Renderer(signer=runtime.signer))
    app.usage = UsageLookup(runtime)
    oauth_routes.install(app, runtime, providers=identity_providers)
    return app
