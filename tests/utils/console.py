"""Console test helpers: orgs with members of each role, signing in, the CSRF token.

The fixtures built on them are in tests/console/conftest.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from fastapi.testclient import TestClient

from guestgate.db import utcnow
from guestgate.instances.models import Instance, InstanceSubnet
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF.search(html)
    assert found is not None, html
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign `client` in through the login form; returns the session's CSRF token."""
    page = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": csrf_of(page.text),
            "next": "/console/guests",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/console/guests").text)


@dataclass(frozen=True)
class Org:
    """An org with a coupon instance, a site and one guest online."""

    id: str
    instance_id: str
    site_id: str
    guest_id: str


def make_org(runtime: Runtime, org_id: str) -> Org:
    """An org with a coupon instance serving a site with one active guest."""
    with runtime.sessions() as session:
        org_service.ensure(org_id, session=session)
        site = Site(org_id=org_id, name=f"Site of {org_id}", subnets=["10.0.0.0/24"])
        session.add(site)
        session.flush()
        instance = Instance(
            org_id=org_id,
            name=f"Lobby {org_id}",
            strategy="coupon",
            session_ttl=3600,
            auth_window_ttl=300,
            theme={},
            locale="en",
        )
        session.add(instance)
        session.flush()
        session.add(
            InstanceSubnet(instance_id=instance.id, site_id=site.id, subnet="10.0.0.0/24", position=0)
        )
        now = utcnow()
        guest = SiteUser(
            org_id=org_id,
            site_id=site.id,
            instance_id=instance.id,
            ip_address="10.0.0.23",
            mac_address="aa:bb:cc:dd:ee:ff",
            strategy="coupon",
            status="active",
            started_at=now,
            expires_at=now + timedelta(hours=1),
        )
        session.add(guest)
        session.commit()
        return Org(org_id, instance.id, site.id, guest.id)


MemberFactory = Callable[..., str]
