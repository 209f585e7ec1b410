"""Builds the ASGI application: the operator API under /captive, service pages, the guest portal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from guestgate import docs, error_handlers, openapi, pages
from guestgate.auth_integrations import routes as auth_integration_routes
from guestgate.config import Settings, get_settings
from guestgate.coupons import routes as coupon_routes
from guestgate.instances import routes as instance_routes
from guestgate.middleware import BodyLimitMiddleware, OperatorAuthMiddleware
from guestgate.notifications import routes as notification_routes
from guestgate.portal import routes as portal_routes
from guestgate.runtime import Runtime
from guestgate.schedules import routes as schedule_routes
from guestgate.site_users import routes as site_user_routes
from guestgate.sites import routes as site_routes
from guestgate.walled_garden import routes as walled_garden_routes

OPERATOR_ROUTERS = (
    instance_routes.router,
    instance_routes.assets_router,
    auth_integration_routes.router,
    coupon_routes.router,
    schedule_routes.router,
    walled_garden_routes.router,
    site_user_routes.router,
    site_routes.router,
    notification_routes.router,
)


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """The guestgate ASGI app for `settings` (default: the process settings).

    With `scheduler_enabled`, the background jobs (schedule runner, deliveries, expiry) run in
    the server process; SIGTERM lets the job in progress finish before the process exits.
    """
    if runtime is None:
        runtime = Runtime.build(settings or get_settings())
    settings = runtime.settings

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        jobs = None
        if settings.scheduler_enabled:
            from guestgate import worker  # the job modules load only where jobs run

            jobs = asyncio.create_task(worker.run_jobs(runtime, stop))
        try:
            yield
        finally:
            stop.set()
            if jobs is not None:
                await jobs
            runtime.close()

    app = FastAPI(
        title=openapi.TITLE,
        version=openapi.VERSION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    error_handlers.install(app, settings.public_url)
    app.mount("/guest", portal_routes.build(runtime))
    for router in OPERATOR_ROUTERS:
        app.include_router(router)
    app.include_router(pages.router)
    docs.install(app, openapi.TITLE)

    def custom_openapi() -> dict[str, Any]:
        return openapi.build(app)

    app.openapi = custom_openapi  # type: ignore[method-assign]
    app.add_middleware(OperatorAuthMiddleware, verifier=runtime.verifier, public_url=settings.public_url)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, public_url=settings.public_url)
    return app
