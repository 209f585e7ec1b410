"""The new console pages print what tenants typed as text: names with markup are escaped everywhere."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from guestgate.notifications.models import NotificationGroup
from guestgate.runtime import Runtime
from guestgate.schedules.models import CouponSchedule
from guestgate.sites.models import Site
from tests.utils.console import MemberFactory, make_org, sign_in

MARKUP = '<img src=x onerror="alert(1)">'
ESCAPED = "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;"


def test_names_with_markup_are_escaped_on_every_new_page(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    client.post("/console/sites", data={"csrf_token": csrf, "name": MARKUP, "subnets": "10.50.0.0/24"})
    client.post(
        "/console/notification-groups", data={"csrf_token": csrf, "name": MARKUP, "emails": "a@example.com"}
    )
    with runtime.sessions() as session:
        site = session.scalars(select(Site).where(Site.name == MARKUP)).one()
        group = session.scalars(select(NotificationGroup)).one()
    client.post(
        f"/console/sites/{site.id}/walled-garden",
        data={"csrf_token": csrf, "name": MARKUP, "hostname": "a.example.com"},
    )
    client.post(
        f"/console/schedules/{org.instance_id}",
        data={
            "csrf_token": csrf,
            "name": MARKUP,
            "count": "1",
            "recurrence_type": "daily",
            "valid_for_in_minutes": "60",
            "timezone": "UTC",
            "notification_group_id": group.id,
        },
    )
    with runtime.sessions() as session:
        schedule = session.scalars(select(CouponSchedule)).one()
    pages = [
        "/console/sites",
        f"/console/sites/{site.id}",
        f"/console/sites/{site.id}/walled-garden",
        f"/console/schedules?instance={org.instance_id}",
        f"/console/schedules/{org.instance_id}/{schedule.id}",
        "/console/notification-groups",
        f"/console/notification-groups/{group.id}",
    ]
    for path in pages:
        page = client.get(path)
        assert page.status_code == 200, path
        assert MARKUP not in page.text and ESCAPED in page.text, path
    # A refused form prints back what was typed, escaped too.
    refused = client.post("/console/sites", data={"csrf_token": csrf, "name": MARKUP, "subnets": MARKUP})
    assert refused.status_code == 400 and MARKUP not in refused.text
    assert client.get("/console/coupons.csv").status_code == 400
    assert client.get("/console/schedules/new").status_code == 400
