"""Guest portal test helpers: the world (a site with an instance on one subnet, coupons), a clock,
sign-in steps.

The fixtures built on them are in tests/portal/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from starlette.testclient import TestClient

from guestgate.audit.models import AuditEvent
from guestgate.coupons.models import Coupon
from guestgate.instances.models import Image, Instance
from guestgate.portal import continue_links
from guestgate.portal.config import PortalConfig
from guestgate.portal.routes import PortalApp
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser

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
