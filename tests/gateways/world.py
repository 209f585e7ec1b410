"""A site with a coupon instance and coupons, for the gateway journeys (portal, operator API, agent)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from guestgate.coupons.models import Coupon
from guestgate.db import utcnow
from guestgate.instances.models import Instance, InstanceSubnet
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites import service as site_service
from guestgate.sites.models import Site
from guestgate.sites.schemas import GatewayIn, SiteIn

ORG = "org-a"
THEME = {
    "accent_text": "#FFFFFF",
    "accent_color": "#0396d5",
    "text_color": "#4f4f4f",
    "secondary_text_color": "#8f8f8f",
    "background_color": "#f9f9f9",
    "border_color": "#e0e0e0",
    "box_color": "#ffffff",
}
ACTIVATING = "Connecting…"
CONNECTED = "You're connected"


@dataclass
class GuestSite:
    """An org's site whose whole subnet is served by one coupon instance (session_ttl 1 h)."""

    runtime: Runtime
    site_id: str
    instance_id: str

    def coupon(self, code: str, **plan: Any) -> str:
        """Add a coupon valid for a day; `plan` sets its plan columns (`download_kbps=...`)."""
        now = utcnow()
        with self.runtime.sessions() as session:
            row = Coupon(
                org_id=ORG,
                instance_id=self.instance_id,
                code=code,
                expires_at=now + timedelta(days=1),
                created_at=now - timedelta(minutes=1),
                **plan,
            )
            session.add(row)
            session.commit()
            return row.id

    def users(self) -> list[SiteUser]:
        """The site's sessions, oldest first."""
        with self.runtime.sessions() as session:
            stmt = select(SiteUser).where(SiteUser.site_id == self.site_id).order_by(SiteUser.started_at)
            return list(session.scalars(stmt))

    def site(self) -> Site:
        """The site row."""
        with self.runtime.sessions() as session:
            site = session.get(Site, self.site_id)
            assert site is not None
            return site

    def update_user(self, user_id: str, **values: Any) -> None:
        """Change columns of a session row."""
        with self.runtime.sessions() as session:
            user = session.get(SiteUser, user_id)
            assert user is not None
            for key, value in values.items():
                setattr(user, key, value)
            session.commit()


def allow_nftables(runtime: Runtime, gateway: GatewayIn, *, org: str = ORG) -> None:
    """Let `org` use the nftables driver where `gateway` puts it, as a deployment does
    (GUESTGATE_NFTABLES_ALLOW); no org may unless it is allowed."""
    place = f"{gateway.netns}/{gateway.interface}" if gateway.netns else str(gateway.interface)
    allowed = {name: list(places) for name, places in runtime.settings.nftables_allow.items()}
    allowed.setdefault(org, []).append(place)
    runtime.settings = runtime.settings.model_copy(update={"nftables_allow": allowed})


def make_guest_site(runtime: Runtime, gateway: GatewayIn, *, subnet: str = "10.0.0.0/24") -> GuestSite:
    """Create the org, the site (through the sites service, so secrets are sealed) and the instance.

    An nftables site's place is allowed for the org first (`allow_nftables`).
    """
    if gateway.driver == "nftables":
        allow_nftables(runtime, gateway)
    with runtime.sessions() as session:
        org_service.ensure(ORG, session=session)
        site = site_service.create(
            SiteIn(name="Lobby", subnets=[subnet], gateway=gateway),
            org_id=ORG,
            box=runtime.box,
            rules=runtime.gateway_rules,
            session=session,
        )
        instance = Instance(
            org_id=ORG,
            name="Lobby Wi-Fi",
            strategy="coupon",
            session_ttl=3600,
            auth_window_ttl=300,
            theme=THEME,
            terms_text=None,
            locale="en",
        )
        session.add(instance)
        session.flush()
        session.add(InstanceSubnet(instance_id=instance.id, site_id=site.id, subnet=subnet, position=0))
        session.commit()
        return GuestSite(runtime=runtime, site_id=site.id, instance_id=instance.id)
