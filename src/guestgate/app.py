"""Builds the ASGI application: the operator API under /captive, service pages, the guest portal."""

from __future__ import annotations

import asyncio
import functools
import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from guestgate import docs, doctor, error_handlers, openapi, pages
from guestgate.api_tokens import routes as api_token_routes
from guestgate.audit import routes as audit_routes
from guestgate.auth_integrations import routes as auth_integration_routes
from guestgate.config import Settings, get_settings
from guestgate.console import account_pages
from guestgate.console import routes as console_routes
from guestgate.coupon_links import limits as coupon_link_limits
from guestgate.coupon_links import routes as coupon_link_routes
from guestgate.coupons import routes as coupon_routes
from guestgate.db import utcnow
from guestgate.gateways import service as gateway_service
from guestgate.gateways.agent_routes import AgentApi
from guestgate.gateways.captive import CaptiveRedirect
from guestgate.gateways.metrics import MetricsApp
from guestgate.gateways.notifier import PoolNotifier
from guestgate.instances import routes as instance_routes
from guestgate.middleware import BodyLimitMiddleware, OperatorAuthMiddleware
from guestgate.notifications import routes as notification_routes
from guestgate.ops import ratelimit
from guestgate.ops.requests import RequestContextMiddleware
from guestgate.portal import routes as portal_routes
from guestgate.portal.http import route_path
from guestgate.runtime import Runtime
from guestgate.schedules import routes as schedule_routes
from guestgate.site_users import routes as site_user_routes
from guestgate.sites import routes as site_routes
from guestgate.text_guard import TextGuardMiddleware
from guestgate.walled_garden import routes as walled_garden_routes

log = structlog.get_logger(__name__)
OPERATOR_ROUTERS = (
    instance_routes.router,
    instance_routes.assets_router,
    auth_integration_routes.router,
    coupon_routes.router,
    schedule_routes.router,
    coupon_link_routes.router,
    walled_garden_routes.router,
    site_user_routes.router,
    site_routes.router,
    notification_routes.router,
    audit_routes.router,
    api_token_routes.router,
)
GUEST_PREFIX = "/guest"


class GuestgateApp(FastAPI):
    """FastAPI, except that guest portal requests go straight to the portal app.

    A coupon sign-in is the product's hot path. The portal answers every failure with its own
    page and limits every body it reads (8 KB), and the app's middlewares let /guest through
    unchanged (the captive redirect counts it as guestgate's own path, operator auth is for
    /captive), so the middleware stack and the router would only add their cost. `/guest`
    itself and websockets still take the mount.
    """

    guest_portal: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        portal = self.guest_portal
        if portal is not None and scope["type"] == "http":
            root: str = scope.get("root_path", "")
            if route_path(scope).startswith(GUEST_PREFIX + "/"):
                # What Starlette's Mount("/guest") would hand the portal.
                scope["app"] = self
                scope["app_root_path"] = scope.get("app_root_path", root)
                scope["root_path"] = root + GUEST_PREFIX
                scope["path_params"] = {}
                await portal(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """The guestgate ASGI app for `settings` (default: the process settings).

    With `scheduler_enabled`, the background jobs (schedule runner, deliveries, expiry) run in
    the server process; SIGTERM lets the job in progress finish before the process exits.
    """
    if runtime is None:
        runtime = Runtime.build(settings or get_settings())
    settings = runtime.settings
    limiter = ratelimit.build(settings)
    public_limits = coupon_link_limits.build(settings)
    console_reset_limiter = account_pages.build_limiter(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        jobs = None
        # nftables gateways on this host get their table (with the active guests) before traffic.
        await asyncio.to_thread(_apply_local_gateways, runtime)
        # Stored settings today's rules refuse are logged, without holding up the start (names resolve).
        threading.Thread(
            target=doctor.log_problems, args=(runtime,), name="guestgate-doctor", daemon=True
        ).start()
        # Agent long-polls here hear of changes made by other replicas and workers (PostgreSQL).
        runtime.listen_for_agent_changes()
        if settings.scheduler_enabled:
            from guestgate import worker  # the job modules load only where jobs run

            jobs = asyncio.create_task(worker.run_jobs(runtime, stop))
        _freeze_startup_objects()
        try:
            yield
        finally:
            stop.set()
            if jobs is not None:
                await jobs
            if limiter is not None:
                await limiter.close()
            await public_limits.close()
            if console_reset_limiter is not None:
                await console_reset_limiter.close()
            runtime.close()

    app = GuestgateApp(
        title=openapi.TITLE,
        version=openapi.VERSION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.public_limits = public_limits
    app.state.console_reset_limiter = console_reset_limiter
    error_handlers.install(app, settings.public_url)
    portal = portal_routes.build(runtime, notifier=PoolNotifier(runtime))
    app.mount(GUEST_PREFIX, portal)
    app.guest_portal = portal
    app.mount("/agent", AgentApi(runtime))
    app.add_route("/metrics", MetricsApp(runtime).endpoint, include_in_schema=False)
    for router in OPERATOR_ROUTERS:
        app.include_router(router)
    app.include_router(pages.router)
    app.include_router(console_routes.router)
    docs.install(app, openapi.TITLE)

    def custom_openapi() -> dict[str, Any]:
        return openapi.build(app)

    app.openapi = custom_openapi  # type: ignore[method-assign]
    # Innermost: after authentication, text no database can store (NUL, lone surrogates) is a 400.
    app.add_middleware(TextGuardMiddleware, public_url=settings.public_url)
    app.add_middleware(
        OperatorAuthMiddleware, verifier=runtime.verifier, public_url=settings.public_url, limiter=limiter
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, public_url=settings.public_url)
    # A guest's intercepted request for another host goes to the portal entry.
    app.add_middleware(CaptiveRedirect, public_url=settings.public_url, entry_params=portal.redirect_params)
    # Outside everything but the portal (dispatched before the middleware stack): request ids,
    # access log lines and request metrics.
    app.add_middleware(RequestContextMiddleware)
    return app


@functools.cache
def _freeze_startup_objects() -> None:
    """Keep what exists at start-up (modules, the app, its routes) out of full garbage collections.

    It lives as long as the process; left in the collector's reach, every full collection
    walks all of it and stalls the requests in flight for tens of milliseconds. Once per
    process: a later app (tests build many) is left to the collector as usual.
    """
    gc.collect()
    gc.freeze()


def _apply_local_gateways(runtime: Runtime) -> None:
    try:
        gateway_service.apply_local_tables(runtime, now=utcnow())
    except Exception:
        # A broken gateway must not keep the API and the portal from starting; the reconciler retries.
        log.exception("gateway.startup_apply_failed")
