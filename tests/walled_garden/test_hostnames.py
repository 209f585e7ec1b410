"""Walled garden by host name: the `hostname` extension field, beside Altostrat's `ip_address`."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from guestgate.walled_garden import hostnames, service
from tests.core.test_errors import assert_error
from tests.walled_garden.test_routes import ENTRY, create_entry, create_site

NAMED = {"name": "IdP", "hostname": "accounts.example.com", "type": "captive-auth"}


@pytest.fixture
def site_id(client: TestClient, headers: dict[str, str]) -> str:
    return create_site(client, headers)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("accounts.google.com", "accounts.google.com"),
        ("Login.MicrosoftOnline.COM.", "login.microsoftonline.com"),
        ("*.example.com", "*.example.com"),
        ("  *.Example.org ", "*.example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("*.ÉCOLE.test", "*.xn--cole-9oa.test"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("idp.test", "idp.test"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
    ],
)
def test_hostnames_are_normalised(given: str, stored: str) -> None:
    assert hostnames.normalize(given) == stored


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "must not be empty"),
        ("intranet", "must be a fully qualified name"),
        ("*.com", "must be a fully qualified name (a wildcard"),
        ("a.*.example.com", "may contain '*' only"),
        ("*example.com", "may contain '*' only"),
        ("**.example.com", "may contain '*' only"),
        ("*", "may contain '*' only"),
        ("192.0.2.1", "must be a DNS name, not an IP address"),
        ("10.0.0.0/24", "must be a DNS name, not an IP address"),
        ("2001:db8::1", "must be a DNS name, not an IP address"),
        ("10.1", "must be a DNS name, not an IP address"),
        ("localhost", "must be a fully qualified name"),
        ("portal.localhost", "must not name this host"),
        ("-bad.example.com", "must be a"),
        ("bad-.example.com", "must be a"),
        ("under_score.example.com", "must be a"),
        ("a..example.com", "must be a"),
        ("a" * 64 + ".example", "must be a"),
        (".".join(["a" * 63] * 4) + ".example", "must be at most 253"),
        ("host.123", "must end in a top-level domain"),
        ("exa mple.com", "must not contain white space"),
        ("example.com\n", "must not contain white space"),
        ("http://example.com", "must be a"),
    ],
)
def test_invalid_hostnames_are_refused_with_the_reason(bad: str, reason: str) -> None:
    with pytest.raises(hostnames.HostnameInvalid) as caught:
        hostnames.normalize(bad)
    assert str(caught.value).startswith(reason), str(caught.value)


def test_a_hostname_entry_is_created_read_and_listed(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    response = client.post(f"/captive/walled-garden/{site_id}", headers=headers, json=NAMED)
    assert response.status_code == 201, response.text
    entry = response.json()
    assert set(entry) == {"id", "name", "type", "ip_address", "hostname", "created_at"}
    assert entry["hostname"] == "accounts.example.com" and entry["ip_address"] is None
    assert client.get(f"/captive/walled-garden/{site_id}/{entry['id']}", headers=headers).json() == entry
    address_entry = create_entry(client, headers, site_id)
    listed = client.get(f"/captive/walled-garden/{site_id}", headers=headers).json()
    assert [e["id"] for e in listed] == [address_entry["id"], entry["id"]]
    # Address entries read exactly as Altostrat's: no `hostname` key at all.
    assert set(listed[0]) == {"id", "name", "type", "ip_address", "created_at"}


def test_wildcard_and_idn_names_are_stored_normalised(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    entry = create_entry(client, headers, site_id, ip_address=None, hostname="*.Bücher.Example")
    assert entry["hostname"] == "*.xn--bcher-kva.example"


def test_both_ip_address_and_hostname_is_400_naming_hostname(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    response = client.post(
        f"/captive/walled-garden/{site_id}", headers=headers, json={**ENTRY, "hostname": "idp.example.com"}
    )
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"].startswith("The 'hostname' parameter must not be given together with 'ip_address'")


@pytest.mark.parametrize("body", [{"name": "x"}, {"name": "x", "ip_address": None, "hostname": None}])
def test_neither_is_400_parameter_missing_naming_ip_address(
    client: TestClient, headers: dict[str, str], site_id: str, body: dict[str, object]
) -> None:
    response = client.post(f"/captive/walled-garden/{site_id}", headers=headers, json=body)
    error = assert_error(response, 400, "invalid_request_error", "parameter_missing")
    assert error["message"] == "The 'ip_address' parameter is required for this request."


@pytest.mark.parametrize(
    ("bad", "reason"), [("*.com", "must be a fully qualified name"), (42, "must be a string")]
)
def test_invalid_hostname_is_400_naming_the_parameter(
    client: TestClient, headers: dict[str, str], site_id: str, bad: object, reason: str
) -> None:
    response = client.post(
        f"/captive/walled-garden/{site_id}", headers=headers, json={**NAMED, "hostname": bad}
    )
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"].startswith(f"The 'hostname' parameter {reason}")


def test_duplicate_hostname_and_type_is_409_other_type_is_fine(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    first = create_entry(client, headers, site_id, ip_address=None, hostname="idp.example.com")
    response = client.post(
        f"/captive/walled-garden/{site_id}", headers=headers, json={**NAMED, "hostname": "IDP.example.com."}
    )
    body = assert_error(response, 409, "conflict_error", "resource_in_use")
    assert "idp.example.com" in body["message"] and str(first["id"]) in body["message"]
    create_entry(client, headers, site_id, ip_address=None, hostname="idp.example.com", type="captive-portal")


def test_put_turns_an_address_entry_into_a_hostname_entry_and_back(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    entry = create_entry(client, headers, site_id)
    url = f"/captive/walled-garden/{site_id}/{entry['id']}"
    named = client.put(url, headers=headers, json={"name": "IdP", "hostname": "*.idp.test"})
    assert named.status_code == 200, named.text
    assert named.json()["hostname"] == "*.idp.test" and named.json()["ip_address"] is None
    back = client.put(url, headers=headers, json=ENTRY)
    assert back.status_code == 200
    assert back.json() == {**entry, "name": ENTRY["name"]}


def test_hostname_cap_is_separate_from_the_entry_cap(
    client: TestClient, headers: dict[str, str], site_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "MAX_HOSTNAMES_PER_SITE", 2)
    create_entry(client, headers, site_id, ip_address=None, hostname="a.example.com")
    second = create_entry(client, headers, site_id, ip_address=None, hostname="b.example.com")
    response = client.post(
        f"/captive/walled-garden/{site_id}", headers=headers, json={**NAMED, "hostname": "c.example.com"}
    )
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"] == "A site can have at most 2 walled garden entries with a hostname."
    # Address entries are still welcome, and an existing name entry may be renamed.
    create_entry(client, headers, site_id)
    renamed = client.put(
        f"/captive/walled-garden/{site_id}/{second['id']}",
        headers=headers,
        json={**NAMED, "hostname": "d.example.com"},
    )
    assert renamed.status_code == 200, renamed.text


def test_hostname_entries_are_audited_with_the_name(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    create_entry(client, headers, site_id, ip_address=None, hostname="idp.example.com")
    events = client.get("/captive/audit-events", headers=headers)
    assert events.status_code == 200, events.text
    details = [e["detail"] for e in events.json() if e["action"] == "walled_garden_entry.create"]
    assert details and details[0]["hostname"] == "idp.example.com" and details[0]["ip_address"] is None


def test_openapi_describes_hostname_and_keeps_ip_address_for_altostrat_clients(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    request = schemas["WalledGardenEntryIn"]["properties"]
    assert "hostname" in request and "ip_address" in request
    response = schemas["WalledGardenEntry"]
    assert "hostname" not in response.get("required", [])
    assert "ip_address" in response["properties"]
