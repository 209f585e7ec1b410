"""Sites registry [extension]: CRUD, validation, gateway secrets write-only, tenancy."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from guestgate.runtime import Runtime
from guestgate.security import SCOPE_READ
from guestgate.sites.models import Site
from tests.core.test_errors import assert_error
from tests.utils.settings import TokenFactory

SITE = {"name": "HQ", "subnets": ["10.0.0.0/24", "10.0.1.0/24"]}


def create_site(client: TestClient, headers: dict[str, str], **overrides: object) -> dict[str, object]:
    response = client.post("/captive/sites", headers=headers, json={**SITE, **overrides})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_create_site_returns_the_site_with_none_driver_not_enforcing(
    client: TestClient, headers: dict[str, str]
) -> None:
    site = create_site(client, headers)
    assert site["name"] == "HQ"
    assert site["subnets"] == ["10.0.0.0/24", "10.0.1.0/24"]
    assert site["gateway"]["driver"] == "none"  # type: ignore[index]
    assert site["gateway_status"] == {"state": "not_enforcing", "last_error": None, "last_sync_at": None}
    assert client.get(f"/captive/sites/{site['id']}", headers=headers).json() == site


def test_bare_ip_subnet_is_normalised(client: TestClient, headers: dict[str, str]) -> None:
    site = create_site(client, headers, subnets=["192.168.5.7", "2001:db8::/64"])
    assert site["subnets"] == ["192.168.5.7/32", "2001:db8::/64"]


def test_invalid_subnet_is_400_naming_the_item(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/captive/sites", headers=headers, json={**SITE, "subnets": ["10.0.0.5/24"]})
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"].startswith("The 'subnets[0]' parameter must be a valid RFC 4632 address")


def test_overlapping_subnets_are_rejected(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(
        "/captive/sites", headers=headers, json={**SITE, "subnets": ["10.0.0.0/16", "10.0.1.0/24"]}
    )
    assert_error(response, 400, "invalid_request_error", "parameter_invalid")


def test_name_is_required(client: TestClient, headers: dict[str, str]) -> None:
    body = assert_error(
        client.post("/captive/sites", headers=headers, json={"subnets": []}),
        400,
        "invalid_request_error",
        "parameter_missing",
    )
    assert body["message"] == "The 'name' parameter is required for this request."


def test_routeros_gateway_needs_host_and_username(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post(
        "/captive/sites", headers=headers, json={**SITE, "gateway": {"driver": "routeros"}}
    )
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert "'gateway'" in body["message"]


def test_gateway_password_is_write_only_and_sealed(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    gateway = {
        "driver": "routeros",
        "host": "router.example.com",
        "username": "guestgate",
        "password": "s3cret-pass",
    }
    site = create_site(client, headers, gateway=gateway)
    assert "password" not in site["gateway"]  # type: ignore[operator]
    assert site["gateway"]["password_set"] is True  # type: ignore[index]
    with runtime.sessions() as session:
        row = session.scalar(select(Site).where(Site.id == site["id"]))
        assert row is not None and row.gateway_secrets_sealed is not None
        assert "s3cret-pass" not in row.gateway_secrets_sealed
    # An update without the password keeps it.
    gateway_without = {k: v for k, v in gateway.items() if k != "password"}
    updated = client.put(
        f"/captive/sites/{site['id']}", headers=headers, json={**SITE, "gateway": gateway_without}
    ).json()
    assert updated["gateway"]["password_set"] is True


def test_update_replaces_name_and_subnets(client: TestClient, headers: dict[str, str]) -> None:
    site = create_site(client, headers)
    response = client.put(
        f"/captive/sites/{site['id']}", headers=headers, json={"name": "HQ2", "subnets": ["10.9.0.0/24"]}
    )
    assert response.status_code == 200
    assert response.json()["name"] == "HQ2"
    assert response.json()["subnets"] == ["10.9.0.0/24"]


def test_removing_a_subnet_an_instance_uses_is_409(client: TestClient, headers: dict[str, str]) -> None:
    site = create_site(client, headers)
    instance = client.post(
        "/captive/instances",
        headers=headers,
        json={"name": "Lobby", "strategy": "coupon", "session_ttl": 3600},
    ).json()
    body = {
        "name": "Lobby",
        "strategy": "coupon",
        "session_ttl": 3600,
        "sites": [{"id": site["id"], "subnets": ["10.0.1.0/25"]}],
    }
    assert client.put(f"/captive/instances/{instance['id']}", headers=headers, json=body).status_code == 200
    response = client.put(
        f"/captive/sites/{site['id']}", headers=headers, json={**SITE, "subnets": ["10.0.0.0/24"]}
    )
    assert_error(response, 409, "conflict_error", "resource_in_use")
    assert_error(
        client.delete(f"/captive/sites/{site['id']}", headers=headers),
        409,
        "conflict_error",
        "resource_in_use",
    )


def test_delete_site_then_it_is_gone(client: TestClient, headers: dict[str, str]) -> None:
    site = create_site(client, headers)
    assert client.delete(f"/captive/sites/{site['id']}", headers=headers).status_code == 204
    assert_error(
        client.get(f"/captive/sites/{site['id']}", headers=headers),
        404,
        "not_found_error",
        "resource_not_found",
    )


def test_other_orgs_site_is_404_everywhere(
    client: TestClient, headers: dict[str, str], auth: TokenFactory
) -> None:
    site = create_site(client, headers)
    other = auth(org="org-b")
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(method, f"/captive/sites/{site['id']}", headers=other, json=SITE)
        assert_error(response, 404, "not_found_error", "resource_not_found")
    assert client.get("/captive/sites", headers=other).json() == []


def test_read_scope_cannot_create_sites(client: TestClient, auth: TokenFactory) -> None:
    response = client.post("/captive/sites", headers=auth(scopes=(SCOPE_READ,)), json=SITE)
    assert_error(response, 403, "permission_error", "insufficient_scope")


def test_list_is_newest_first_with_cursor_pagination(client: TestClient, headers: dict[str, str]) -> None:
    ids = [create_site(client, headers, name=f"S{i}")["id"] for i in range(5)]
    first = client.get("/captive/sites?limit=2", headers=headers)
    assert first.status_code == 200
    seen = [s["id"] for s in first.json()]
    link = first.headers["link"]
    while link:
        url = link.split(";")[0].strip("<>").replace("http://testserver", "")
        page = client.get(url, headers=headers)
        seen += [s["id"] for s in page.json()]
        link = page.headers.get("link", "")
    assert seen == list(reversed(ids))


def test_limit_out_of_range_is_400(client: TestClient, headers: dict[str, str]) -> None:
    body = assert_error(
        client.get("/captive/sites?limit=0", headers=headers),
        400,
        "invalid_request_error",
        "parameter_invalid",
    )
    assert body["message"] == "The 'limit' parameter must be between 1 and 1000."
    assert_error(
        client.get("/captive/sites?cursor=%%%", headers=headers),
        400,
        "invalid_request_error",
        "parameter_invalid",
    )
