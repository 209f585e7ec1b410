"""Console walled-garden page: list, add an address or a host name (wildcards too), delete; the gateway follows."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from guestgate.gateways.none import NoneGateway
from guestgate.runtime import Runtime
from guestgate.sites.models import Site
from guestgate.walled_garden.models import WalledGardenEntry
from tests.utils.console import MemberFactory, make_org, sign_in


def _gateway(runtime: Runtime, site_id: str) -> NoneGateway:
    with runtime.sessions() as session:
        site = session.get(Site, site_id)
        assert site is not None
        gateway = runtime.gateways.get(site)
    assert isinstance(gateway, NoneGateway)
    return gateway


def test_admin_adds_a_wildcard_host_name_and_an_address_then_deletes_one(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    path = f"/console/sites/{org.site_id}/walled-garden"
    assert "No entries yet." in client.get(path).text
    added = client.post(
        path,
        data={
            "csrf_token": csrf,
            "name": "Booking",
            "hostname": "*.Booking.example.com",
            "type": "captive-portal",
        },
        follow_redirects=False,
    )
    assert added.status_code == 303 and added.headers["location"] == path
    client.post(path, data={"csrf_token": csrf, "name": "Payments", "ip_address": "203.0.113.0/24"})
    page = client.get(path)
    assert "*.booking.example.com" in page.text and "203.0.113.0/24" in page.text
    assert _gateway(runtime, org.site_id).garden_names == ["*.booking.example.com"]
    with runtime.sessions() as session:
        entry = session.scalars(select(WalledGardenEntry).where(WalledGardenEntry.name == "Booking")).one()
    deleted = client.post(f"{path}/{entry.id}/delete", data={"csrf_token": csrf}, follow_redirects=False)
    assert deleted.status_code == 303
    assert "*.booking.example.com" not in client.get(path).text
    assert _gateway(runtime, org.site_id).garden_names == []


def test_garden_errors_are_shown_next_to_their_field(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    path = f"/console/sites/{org.site_id}/walled-garden"
    cases = [
        ({"name": "Everything", "ip_address": "0.0.0.0/0"}, "ip_address", 400),
        ({"name": "Bad", "hostname": "exa mple.com"}, "hostname", 400),
        ({"name": "Both", "hostname": "a.example.com", "ip_address": "192.0.2.1"}, "hostname", 400),
        ({"name": "Neither"}, "ip_address", 400),
        ({"name": "", "ip_address": "192.0.2.1"}, "name", 400),
    ]
    for form, field, status in cases:
        bad = client.post(path, data={"csrf_token": csrf, **form})
        assert bad.status_code == status, (form, bad.status_code)
        assert f'id="{field}-error"' in bad.text, form
    client.post(path, data={"csrf_token": csrf, "name": "Once", "ip_address": "192.0.2.1"})
    again = client.post(path, data={"csrf_token": csrf, "name": "Twice", "ip_address": "192.0.2.1"})
    assert again.status_code == 409 and "error" in again.text
    with runtime.sessions() as session:
        assert len(session.scalars(select(WalledGardenEntry)).all()) == 1


def test_a_viewer_sees_the_garden_without_forms(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "viewer"))
    page = client.get(f"/console/sites/{org.site_id}/walled-garden")
    assert page.status_code == 200 and "Add an entry" not in page.text
    refused = client.post(
        f"/console/sites/{org.site_id}/walled-garden",
        data={"csrf_token": csrf, "name": "X", "ip_address": "192.0.2.1"},
    )
    assert refused.status_code == 403
