"""Fixtures of the guest portal tests: a site with an instance on one subnet, coupons, clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from guestgate.audit.models import AuditEvent
from guestgate.coupons.models import Coupon
from guestgate.db import utcnow
from guestgate.instances.models import Image, Instance, InstanceSubnet
from guestgate.orgs import service as org_service
from guestgate.portal import continue_links
from guestgate.portal.config import PortalConfig
from guestgate.portal.routes import PortalApp, build
from guestgate.portal.throttle import FailureCounters, MemoryCounters
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site

GUEST_IP = "10.0.1.5"
SITE_SUBNET = "10.0.0.0/16"
PORTAL_SUBNET = "10.0.1.0/24"
TERMS = "Be nice. No <script>alert(1)</script> please."


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class World:
    """An org with one site (10.0.0.0/16) whose 10.0.1.0/24 is served by one coupon instance."""

    runtime: Runtime
    org_id: str
    site_id: str
    instance_id: str
    clock: Clock

    def coupon(
        self,
        code: str,
        *,
        minutes: float = 60,
        redeemed: bool = False,
        instance_id: str | None = None,
        **plan: Any,
    ) -> str:
        """Add a coupon valid for `minutes` from the clock's now (negative: already expired), made two
        minutes ago; `plan` sets its plan columns (`max_devices=2`, ...)."""
        now = self.clock()
        with self.runtime.sessions() as session:
            row = Coupon(
                org_id=self.org_id,
                instance_id=instance_id or self.instance_id,
                code=code,
                expires_at=now + timedelta(minutes=minutes),
                redeemed_at=now - timedelta(minutes=1) if redeemed else None,
                uses=1 if redeemed else 0,
                created_at=now - timedelta(minutes=2),
                **plan,
            )
            session.add(row)
            session.commit()
            return row.id

    def update_instance(self, **values: Any) -> None:
        """Change columns of the instance."""
        with self.runtime.sessions() as session:
            instance = session.get(Instance, self.instance_id)
            assert instance is not None
            for key, value in values.items():
                setattr(instance, key, value)
            session.commit()

    def sessions(self) -> list[SiteUser]:
        """Every site user row."""
        with self.runtime.sessions() as session:
            return list(session.scalars(select(SiteUser)))

    def oauth_failures(self) -> list[str]:
        """The reasons of the audited OAuth2 sign-in failures, oldest first (no site user either)."""
        assert self.count_rows()[0] == 0
        return [
            event.detail["reason"]
            for event in self.audit("guest.signin_failed")
            if event.detail.get("strategy") == "oauth2"
        ]

    def audit(self, action: str | None = None) -> list[AuditEvent]:
        """Audit events, oldest first (optionally of one action)."""
        with self.runtime.sessions() as session:
            stmt = select(AuditEvent).order_by(AuditEvent.id)
            if action is not None:
                stmt = stmt.where(AuditEvent.action == action)
            return list(session.scalars(stmt))

    def coupon_row(self, coupon_id: str) -> Coupon:
        """A coupon as the ORM sees it."""
        with self.runtime.sessions() as session:
            row = session.get(Coupon, coupon_id)
            assert row is not None
            return row

    def count_rows(self) -> tuple[int, int]:
        """(site users, audit events of guests); the operator changes that set the world up are not counted."""
        with self.runtime.sessions() as session:
            users = session.scalar(select(func.count()).select_from(SiteUser)) or 0
            events = (
                session.scalar(
                    select(func.count()).select_from(AuditEvent).where(AuditEvent.action.startswith("guest."))
                )
                or 0
            )
            return users, events


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


def add_image(runtime: Runtime, instance_id: str, kind: str, width: int, height: int) -> str:
    """Store an image row for an instance (the bytes do not matter to the page)."""
    with runtime.sessions() as session:
        image = Image(
            instance_id=instance_id,
            kind=kind,
            content_type="image/png",
            width=width,
            height=height,
            sha256="0" * 64,
            data=b"png",
        )
        session.add(image)
        session.commit()
        return image.id


PortalFactory = Callable[..., PortalApp]
ClientFactory = Callable[..., TestClient]


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


def token_of(html: str) -> str:
    """The sign-in token in a page's form."""
    marker = 'name="t" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def enter(client: TestClient, site_id: str, **params: str) -> Any:
    """GET /guest/entry for a site."""
    return client.get("/guest/entry", params={"site": site_id, **params})


def sign_in(client: TestClient, token: str, code: str | None, *, accept: bool = True, **extra: str) -> Any:
    """POST the sign-in form."""
    form: dict[str, str] = {"t": token, **extra}
    if code is not None:
        form["code"] = code
    if accept:
        form["accept"] = "yes"
    return client.post("/guest/signin", data=form)


def vouched_orig(world: World, orig: str, client: str = GUEST_IP) -> dict[str, str]:
    """The entry parameters guestgate's captive redirect gives a guest at `client` going to `orig`."""
    key = PortalConfig.from_settings(world.runtime.settings).orig_keys[0]
    return continue_links.redirect_params(key, orig=orig, client=client, now=world.clock().timestamp())


def fresh_token(client: TestClient, world: World) -> str:
    """Enter the portal as `client` and return its sign-in token."""
    response = enter(client, world.site_id)
    assert response.status_code == 200, response.text
    return token_of(response.text)
