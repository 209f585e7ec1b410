"""Fixtures of the guest portal tests: a site with an instance on one subnet, coupons, clients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from guestgate.db import utcnow
from guestgate.instances.models import Instance, InstanceSubnet
from guestgate.orgs import service as org_service
from guestgate.portal.config import PortalConfig
from guestgate.portal.routes import PortalApp, build
from guestgate.portal.throttle import FailureCounters, MemoryCounters
from guestgate.runtime import Runtime
from guestgate.sites.models import Site
from tests.utils.portal import (
    GUEST_IP,
    PORTAL_SUBNET,
    SITE_SUBNET,
    TERMS,
    ClientFactory,
    Clock,
    PortalFactory,
    World,
)


@pytest.fixture
def clock() -> Clock:
    """A hand-moved clock starting now."""
    return Clock(utcnow().replace(microsecond=0))


@pytest.fixture
def world(runtime: Runtime, clock: Clock) -> World:
    """The standard site and instance."""
    with runtime.sessions() as session:
        org_service.ensure("org-a", session=session)
        site = Site(org_id="org-a", name="HQ", subnets=[SITE_SUBNET])
        session.add(site)
        session.flush()
        instance = Instance(
            org_id="org-a",
            name="Lobby Wi-Fi",
            strategy="coupon",
            session_ttl=3600,
            auth_window_ttl=300,
            theme={
                "accent_text": "#FFFFFF",
                "accent_color": "#0396d5",
                "text_color": "#4f4f4f",
                "secondary_text_color": "#8f8f8f",
                "background_color": "#f9f9f9",
                "border_color": "#e0e0e0",
                "box_color": "#ffffff",
            },
            terms_text=TERMS,
            locale="en",
        )
        session.add(instance)
        session.flush()
        session.add(
            InstanceSubnet(instance_id=instance.id, site_id=site.id, subnet=PORTAL_SUBNET, position=0)
        )
        session.commit()
        return World(runtime=runtime, org_id="org-a", site_id=site.id, instance_id=instance.id, clock=clock)


@pytest.fixture
def make_portal(runtime: Runtime, clock: Clock) -> PortalFactory:
    """`make_portal(counters=..., **config)` -> a portal app on the test's database and clock."""

    def make(counters: FailureCounters | None = None, **config: Any) -> PortalApp:
        base = PortalConfig.from_settings(runtime.settings)
        throttle = config.pop("throttle", None)
        settings = replace(base, **config)
        if throttle is not None:
            settings = replace(settings, throttle=throttle)
        return build(runtime, config=settings, counters=counters or MemoryCounters(), clock=clock)

    return make


@pytest.fixture
def guest(make_portal: PortalFactory) -> Iterator[ClientFactory]:
    """`guest(ip, portal=None)` -> an HTTP client coming from `ip` (one shared portal by default)."""
    shared: dict[str, PortalApp] = {}
    opened: list[TestClient] = []

    def make(ip: str = GUEST_IP, portal: PortalApp | None = None, **headers: str) -> TestClient:
        if portal is None:
            if "app" not in shared:
                shared["app"] = make_portal()
            portal = shared["app"]
        app = Starlette(routes=[Mount("/guest", app=portal)])
        client = TestClient(app, client=(ip, 40000), raise_server_exceptions=False, headers=headers)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)
