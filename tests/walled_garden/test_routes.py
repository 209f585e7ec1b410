"""Walled garden: CRUD per site, address normalisation and validation, duplicates, cap, tenancy, scopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from guestgate.runtime import Runtime
from guestgate.security import SCOPE_ISSUE, SCOPE_READ
from guestgate.walled_garden import service
from guestgate.walled_garden.models import WalledGardenEntry
from tests.core.test_errors import assert_error
from tests.utils.settings import TokenFactory

ENTRY = {"name": "Google Sign-In", "ip_address": "142.250.0.0/15", "type": "captive-auth"}
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def create_site(client: TestClient, headers: dict[str, str], name: str = "HQ") -> str:
    response = client.post("/captive/sites", headers=headers, json={"name": name, "subnets": ["10.0.0.0/24"]})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def create_entry(
    client: TestClient, headers: dict[str, str], site_id: str, **overrides: object
) -> dict[str, object]:
    response = client.post(f"/captive/walled-garden/{site_id}", headers=headers, json={**ENTRY, **overrides})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def site_id(client: TestClient, headers: dict[str, str]) -> str:
    return create_site(client, headers)


def test_create_entry_returns_it_and_get_reads_it_back(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    entry = create_entry(client, headers, site_id)
    assert set(entry) == {"id", "name", "type", "ip_address", "created_at"}
    assert entry["name"] == "Google Sign-In"
    assert entry["type"] == "captive-auth"
    assert entry["ip_address"] == "142.250.0.0/15"
    assert isinstance(entry["created_at"], str) and entry["created_at"].endswith("Z")
    response = client.get(f"/captive/walled-garden/{site_id}/{entry['id']}", headers=headers)
    assert response.status_code == 200
    assert response.json() == entry


@pytest.mark.parametrize("given", [None, "absent"])
def test_null_or_absent_type_is_stored_as_captive_auth(
    client: TestClient, headers: dict[str, str], site_id: str, given: str | None
) -> None:
    body: dict[str, object] = {"name": "IdP", "ip_address": "192.0.2.0/24"}
    if given is None:
        body["type"] = None
    response = client.post(f"/captive/walled-garden/{site_id}", headers=headers, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["type"] == "captive-auth"


def test_captive_portal_type_is_kept(client: TestClient, headers: dict[str, str], site_id: str) -> None:
    assert create_entry(client, headers, site_id, type="captive-portal")["type"] == "captive-portal"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("192.0.2.10", "192.0.2.10/32"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("2001:DB8:0:0::/64", "2001:db8::/64"),
        (" 198.51.100.0/24 ", "198.51.100.0/24"),
    ],
)
def test_ip_address_is_normalised(
    client: TestClient, headers: dict[str, str], site_id: str, given: str, stored: str
) -> None:
    assert create_entry(client, headers, site_id, ip_address=given)["ip_address"] == stored


@pytest.mark.parametrize("bad", ["10.0.0.5/24", "10.0.0.0/33", "not-an-ip", "", "10.0.0", "2001:db8::1/64"])
def test_invalid_ip_address_is_400_naming_the_parameter(
    client: TestClient, headers: dict[str, str], site_id: str, bad: str
) -> None:
    response = client.post(
        f"/captive/walled-garden/{site_id}", headers=headers, json={**ENTRY, "ip_address": bad}
    )
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"].startswith("The 'ip_address' parameter must be a valid RFC 4632 address")


@pytest.mark.parametrize("everything", ["0.0.0.0/0", "::/0"])
def test_an_entry_opening_every_destination_is_rejected(
    client: TestClient, headers: dict[str, str], site_id: str, everything: str
) -> None:
    response = client.post(
        f"/captive/walled-garden/{site_id}", headers=headers, json={**ENTRY, "ip_address": everything}
    )
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"].startswith("The 'ip_address' parameter must not be 0.0.0.0/0 or ::/0")


def test_ip_address_of_wrong_type_is_400(client: TestClient, headers: dict[str, str], site_id: str) -> None:
    response = client.post(
        f"/captive/walled-garden/{site_id}", headers=headers, json={**ENTRY, "ip_address": 42}
    )
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"] == "The 'ip_address' parameter must be a string."


@pytest.mark.parametrize("field", ["name", "ip_address"])
def test_create_requires_name_and_ip_address(
    client: TestClient, headers: dict[str, str], site_id: str, field: str
) -> None:
    body = {k: v for k, v in ENTRY.items() if k != field}
    response = client.post(f"/captive/walled-garden/{site_id}", headers=headers, json=body)
    error = assert_error(response, 400, "invalid_request_error", "parameter_missing")
    assert error["message"] == f"The '{field}' parameter is required for this request."


@pytest.mark.parametrize(
    ("name", "reason"), [("   ", "must not be empty"), ("x" * 201, "must be at most 200")]
)
def test_invalid_name_is_400(
    client: TestClient, headers: dict[str, str], site_id: str, name: str, reason: str
) -> None:
    response = client.post(f"/captive/walled-garden/{site_id}", headers=headers, json={**ENTRY, "name": name})
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"].startswith(f"The 'name' parameter {reason}")


def test_name_of_200_characters_is_accepted(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    assert create_entry(client, headers, site_id, name="x" * 200)["name"] == "x" * 200


def test_unknown_type_is_400_listing_the_allowed_values(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    response = client.post(
        f"/captive/walled-garden/{site_id}", headers=headers, json={**ENTRY, "type": "always"}
    )
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"] == "The 'type' parameter must be one of 'captive-auth' or 'captive-portal'."


def test_duplicate_address_and_type_in_a_site_is_409(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    first = create_entry(client, headers, site_id, ip_address="192.0.2.7")
    response = client.post(
        f"/captive/walled-garden/{site_id}", headers=headers, json={**ENTRY, "ip_address": "192.0.2.7/32"}
    )
    body = assert_error(response, 409, "conflict_error", "resource_in_use")
    assert "192.0.2.7/32" in body["message"] and str(first["id"]) in body["message"]


def test_same_address_with_other_type_or_in_other_site_is_allowed(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    create_entry(client, headers, site_id)
    create_entry(client, headers, site_id, type="captive-portal")
    other_site = create_site(client, headers, name="Branch")
    create_entry(client, headers, other_site)


def test_site_entry_cap_rejects_one_more(
    client: TestClient, headers: dict[str, str], site_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "MAX_ENTRIES_PER_SITE", 2)
    create_entry(client, headers, site_id, ip_address="192.0.2.1")
    create_entry(client, headers, site_id, ip_address="192.0.2.2")
    response = client.post(
        f"/captive/walled-garden/{site_id}", headers=headers, json={**ENTRY, "ip_address": "192.0.2.3"}
    )
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"] == "A site can have at most 2 walled garden entries."
    assert len(client.get(f"/captive/walled-garden/{site_id}", headers=headers).json()) == 2


def test_list_is_newest_first_and_only_this_sites_entries(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime
) -> None:
    other_site = create_site(client, headers, name="Branch")
    create_entry(client, headers, other_site)
    base = datetime(2025, 10, 29, 8, 0, tzinfo=UTC)
    with runtime.sessions() as session:
        for minute, address in enumerate(["192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32"]):
            session.add(
                WalledGardenEntry(
                    org_id="org-a",
                    site_id=site_id,
                    name=address,
                    ip_address=address,
                    created_at=base + timedelta(minutes=minute),
                )
            )
        session.commit()
    response = client.get(f"/captive/walled-garden/{site_id}", headers=headers)
    assert response.status_code == 200
    assert [e["ip_address"] for e in response.json()] == ["192.0.2.3/32", "192.0.2.2/32", "192.0.2.1/32"]


def test_list_paginates_with_limit_and_link_cursor(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    created = [
        str(create_entry(client, headers, site_id, ip_address=f"192.0.2.{i}")["id"]) for i in range(1, 4)
    ]
    first = client.get(f"/captive/walled-garden/{site_id}?limit=2", headers=headers)
    assert first.status_code == 200
    assert len(first.json()) == 2
    link = first.headers["Link"]
    assert link.endswith('>; rel="next"') and link.startswith(
        f"<http://testserver/captive/walled-garden/{site_id}?"
    )
    next_url = link[1 : link.index(">")].removeprefix("http://testserver")
    second = client.get(next_url, headers=headers)
    assert second.status_code == 200
    assert "Link" not in second.headers
    seen = [e["id"] for e in first.json() + second.json()]
    assert sorted(seen) == sorted(created) and len(set(seen)) == 3


def test_list_of_empty_site_is_empty_array(client: TestClient, headers: dict[str, str], site_id: str) -> None:
    response = client.get(f"/captive/walled-garden/{site_id}", headers=headers)
    assert response.status_code == 200
    assert response.json() == []


def test_put_replaces_name_address_and_type(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    entry = create_entry(client, headers, site_id, type="captive-portal")
    response = client.put(
        f"/captive/walled-garden/{site_id}/{entry['id']}",
        headers=headers,
        json={"name": "Status page", "ip_address": "203.0.113.9"},
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated == {
        "id": entry["id"],
        "name": "Status page",
        "type": "captive-auth",  # PUT replaces: an absent type is the default again
        "ip_address": "203.0.113.9/32",
        "created_at": entry["created_at"],
    }
    assert client.get(f"/captive/walled-garden/{site_id}/{entry['id']}", headers=headers).json() == updated


def test_put_keeping_its_own_address_is_not_a_duplicate(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    entry = create_entry(client, headers, site_id)
    response = client.put(
        f"/captive/walled-garden/{site_id}/{entry['id']}", headers=headers, json={**ENTRY, "name": "Renamed"}
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"


def test_put_onto_another_entrys_address_is_409(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    create_entry(client, headers, site_id, ip_address="192.0.2.1")
    second = create_entry(client, headers, site_id, ip_address="192.0.2.2")
    response = client.put(
        f"/captive/walled-garden/{site_id}/{second['id']}",
        headers=headers,
        json={**ENTRY, "ip_address": "192.0.2.1"},
    )
    assert_error(response, 409, "conflict_error", "resource_in_use")


@pytest.mark.parametrize("field", ["name", "ip_address"])
def test_put_requires_name_and_ip_address(
    client: TestClient, headers: dict[str, str], site_id: str, field: str
) -> None:
    entry = create_entry(client, headers, site_id)
    body = {k: v for k, v in ENTRY.items() if k != field}
    response = client.put(f"/captive/walled-garden/{site_id}/{entry['id']}", headers=headers, json=body)
    error = assert_error(response, 400, "invalid_request_error", "parameter_missing")
    assert error["message"] == f"The '{field}' parameter is required for this request."


def test_put_with_host_bits_set_is_400(client: TestClient, headers: dict[str, str], site_id: str) -> None:
    entry = create_entry(client, headers, site_id)
    response = client.put(
        f"/captive/walled-garden/{site_id}/{entry['id']}",
        headers=headers,
        json={**ENTRY, "ip_address": "10.0.0.5/24"},
    )
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"].startswith("The 'ip_address' parameter must be a valid RFC 4632 address")


def test_delete_removes_the_entry(client: TestClient, headers: dict[str, str], site_id: str) -> None:
    entry = create_entry(client, headers, site_id)
    response = client.delete(f"/captive/walled-garden/{site_id}/{entry['id']}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(
        client.get(f"/captive/walled-garden/{site_id}/{entry['id']}", headers=headers),
        404,
        "not_found_error",
        "resource_not_found",
    )
    assert client.get(f"/captive/walled-garden/{site_id}", headers=headers).json() == []


def test_deleting_the_site_deletes_its_entries(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime
) -> None:
    create_entry(client, headers, site_id)
    assert client.delete(f"/captive/sites/{site_id}", headers=headers).status_code == 204
    with runtime.sessions() as session:
        assert service.entries_for_site(site_id, session=session) == []


def test_entries_for_site_lists_every_entry_oldest_first(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime
) -> None:
    other_site = create_site(client, headers, name="Branch")
    create_entry(client, headers, other_site, ip_address="198.51.100.1")
    with runtime.sessions() as session:
        base = datetime(2025, 10, 29, 8, 0, tzinfo=UTC)
        for minute, (address, kind) in enumerate(
            [("192.0.2.1/32", "captive-portal"), ("192.0.2.2/32", "captive-auth")]
        ):
            session.add(
                WalledGardenEntry(
                    org_id="org-a",
                    site_id=site_id,
                    name=address,
                    ip_address=address,
                    type=kind,
                    created_at=base + timedelta(minutes=minute),
                )
            )
        session.commit()
        entries = service.entries_for_site(site_id, session=session)
    assert [(e.ip_address, e.type) for e in entries] == [
        ("192.0.2.1/32", "captive-portal"),
        ("192.0.2.2/32", "captive-auth"),
    ]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_site_is_404(client: TestClient, headers: dict[str, str], method: str) -> None:
    response = client.request(method, f"/captive/walled-garden/{UNKNOWN_ID}", headers=headers, json=ENTRY)
    body = assert_error(response, 404, "not_found_error", "resource_not_found")
    assert UNKNOWN_ID in body["message"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_unknown_entry_is_404(client: TestClient, headers: dict[str, str], site_id: str, method: str) -> None:
    response = client.request(
        method, f"/captive/walled-garden/{site_id}/{UNKNOWN_ID}", headers=headers, json=ENTRY
    )
    body = assert_error(response, 404, "not_found_error", "resource_not_found")
    assert body["message"] == f"No such walled garden entry: '{UNKNOWN_ID}'."


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_entry_addressed_through_another_site_is_404(
    client: TestClient, headers: dict[str, str], site_id: str, method: str
) -> None:
    entry = create_entry(client, headers, site_id)
    other_site = create_site(client, headers, name="Branch")
    response = client.request(
        method, f"/captive/walled-garden/{other_site}/{entry['id']}", headers=headers, json=ENTRY
    )
    assert_error(response, 404, "not_found_error", "resource_not_found")
    assert client.get(f"/captive/walled-garden/{site_id}/{entry['id']}", headers=headers).json() == entry


def test_other_orgs_site_and_entry_are_404_everywhere(
    client: TestClient, headers: dict[str, str], site_id: str, auth: TokenFactory
) -> None:
    entry = create_entry(client, headers, site_id)
    other = auth(org="org-b")
    for method in ("GET", "POST"):
        response = client.request(method, f"/captive/walled-garden/{site_id}", headers=other, json=ENTRY)
        assert_error(response, 404, "not_found_error", "resource_not_found")
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(
            method, f"/captive/walled-garden/{site_id}/{entry['id']}", headers=other, json=ENTRY
        )
        assert_error(response, 404, "not_found_error", "resource_not_found")
    assert client.get(f"/captive/walled-garden/{site_id}/{entry['id']}", headers=headers).json() == entry


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("POST", ""), ("GET", "/x"), ("PUT", "/x"), ("DELETE", "/x")]
)
def test_no_token_is_401(client: TestClient, site_id: str, method: str, suffix: str) -> None:
    response = client.request(method, f"/captive/walled-garden/{site_id}{suffix}", json=ENTRY)
    assert_error(response, 401, "authentication_error", "token_missing")


@pytest.mark.parametrize(("method", "suffix"), [("POST", ""), ("PUT", "/{id}"), ("DELETE", "/{id}")])
def test_read_scope_cannot_change_the_walled_garden(
    client: TestClient, headers: dict[str, str], site_id: str, auth: TokenFactory, method: str, suffix: str
) -> None:
    entry = create_entry(client, headers, site_id)
    path = f"/captive/walled-garden/{site_id}{suffix.format(id=entry['id'])}"
    response = client.request(
        method, path, headers=auth(scopes=(SCOPE_READ,)), json={**ENTRY, "type": "captive-portal"}
    )
    assert_error(response, 403, "permission_error", "insufficient_scope")
    assert client.get(f"/captive/walled-garden/{site_id}", headers=headers).json() == [entry]


def test_read_scope_can_list_and_get(
    client: TestClient, headers: dict[str, str], site_id: str, auth: TokenFactory
) -> None:
    entry = create_entry(client, headers, site_id)
    reader = auth(scopes=(SCOPE_READ,))
    assert client.get(f"/captive/walled-garden/{site_id}", headers=reader).json() == [entry]
    assert client.get(f"/captive/walled-garden/{site_id}/{entry['id']}", headers=reader).json() == entry


@pytest.mark.parametrize("suffix", ["", "/{id}"])
def test_issuer_scope_cannot_read_the_walled_garden(
    client: TestClient, headers: dict[str, str], site_id: str, auth: TokenFactory, suffix: str
) -> None:
    entry = create_entry(client, headers, site_id)
    path = f"/captive/walled-garden/{site_id}{suffix.format(id=entry['id'])}"
    response = client.get(path, headers=auth(scopes=(SCOPE_ISSUE,)))
    assert_error(response, 403, "permission_error", "insufficient_scope")
