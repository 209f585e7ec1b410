"""Captive portal instances: create, list, get, update (theme, terms, locale, sites), delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from guestgate.coupons.models import Coupon
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_READ
from guestgate.site_users.models import SiteUser
from tests.core.test_errors import assert_error
from tests.utils.settings import TokenFactory

CREATE = {"name": "Lobby Wi-Fi", "strategy": "coupon", "session_ttl": 3600}
DEFAULT_COLOURS = {
    "accent_text": "#FFFFFF",
    "accent_color": "#0396d5",
    "text_color": "#4f4f4f",
    "secondary_text_color": "#8f8f8f",
    "background_color": "#f9f9f9",
    "border_color": "#e0e0e0",
    "box_color": "#ffffff",
}


def create(client: TestClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = client.post("/captive/instances", headers=headers, json={**CREATE, **overrides})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def site(client: TestClient, headers: dict[str, str], subnets: list[str]) -> str:
    response = client.post("/captive/sites", headers=headers, json={"name": "HQ", "subnets": subnets})
    assert response.status_code == 201
    return response.json()["id"]  # type: ignore[no-any-return]


def test_create_returns_the_full_instance(client: TestClient, headers: dict[str, str]) -> None:
    instance = create(client, headers)
    assert set(instance) == {
        "id",
        "name",
        "strategy",
        "auth_integration_id",
        "session_ttl",
        "auth_window_ttl",
        "theme",
        "terms_text",
        "locale",
        "sites",
        "network_name",
        "timezone",
        "max_devices",
        "max_uses",
        "download_kbps",
        "upload_kbps",
        "data_limit_mb",
        "validity_from",
        "created_at",
        "preview_url",
    }
    assert instance["name"] == "Lobby Wi-Fi" and instance["strategy"] == "coupon"
    assert instance["network_name"] is None and instance["timezone"] is None
    assert instance["auth_integration_id"] is None and instance["session_ttl"] == 3600
    assert instance["auth_window_ttl"] == 300 and instance["locale"] == "en" and instance["sites"] == []
    assert instance["theme"] == {"logo": None, "icon": None, **DEFAULT_COLOURS}
    assert instance["terms_text"] is None
    datetime.strptime(instance["created_at"], "%Y-%m-%dT%H:%M:%SZ")


def test_preview_url_is_signed_and_fresh(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    instance = create(client, headers)
    url = urlparse(instance["preview_url"])
    assert url.path == f"/guest/preview/{instance['id']}"
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert runtime.signer.check(query["signature"], "preview", instance["id"], query["expires"])
    assert int(query["expires"]) > datetime.now(UTC).timestamp() + 3000


@pytest.mark.parametrize("field", ["name", "strategy", "session_ttl"])
def test_each_required_field_missing_is_400(client: TestClient, headers: dict[str, str], field: str) -> None:
    body = {k: v for k, v in CREATE.items() if k != field}
    error = assert_error(
        client.post("/captive/instances", headers=headers, json=body),
        400,
        "invalid_request_error",
        "parameter_missing",
    )
    assert error["message"] == f"The '{field}' parameter is required for this request."


@pytest.mark.parametrize(("ttl", "ok"), [(1199, False), (1200, True), (604800, True), (604801, False)])
def test_session_ttl_range_edges(client: TestClient, headers: dict[str, str], ttl: int, ok: bool) -> None:
    response = client.post("/captive/instances", headers=headers, json={**CREATE, "session_ttl": ttl})
    if ok:
        assert response.status_code == 201
    else:
        error = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
        assert error["message"] == "The 'session_ttl' parameter must be between 1200 and 604800."


def test_strategy_enum(client: TestClient, headers: dict[str, str]) -> None:
    error = assert_error(
        client.post("/captive/instances", headers=headers, json={**CREATE, "strategy": "radius"}),
        400,
        "invalid_request_error",
        "parameter_invalid",
    )
    assert "'strategy'" in error["message"]


def test_oauth2_without_integration_is_400_missing(client: TestClient, headers: dict[str, str]) -> None:
    error = assert_error(
        client.post("/captive/instances", headers=headers, json={**CREATE, "strategy": "oauth2"}),
        400,
        "invalid_request_error",
        "parameter_missing",
    )
    assert error["message"] == "The 'auth_integration_id' parameter is required for this request."


def test_oauth2_with_unknown_integration_is_400_resource_missing(
    client: TestClient, headers: dict[str, str]
) -> None:
    body = {**CREATE, "strategy": "oauth2", "auth_integration_id": "5b1a3f0e-0000-4000-8000-000000000000"}
    assert_error(
        client.post("/captive/instances", headers=headers, json=body),
        400,
        "invalid_request_error",
        "resource_missing",
    )


def test_coupon_with_integration_is_400(client: TestClient, headers: dict[str, str]) -> None:
    body = {**CREATE, "auth_integration_id": "5b1a3f0e-0000-4000-8000-000000000000"}
    error = assert_error(
        client.post("/captive/instances", headers=headers, json=body),
        400,
        "invalid_request_error",
        "parameter_invalid",
    )
    assert "'auth_integration_id'" in error["message"]


def test_unknown_fields_are_ignored(client: TestClient, headers: dict[str, str]) -> None:
    assert create(client, headers, colour_of_the_day="blue")["name"] == "Lobby Wi-Fi"


def test_update_theme_terms_locale_and_ttl(client: TestClient, headers: dict[str, str]) -> None:
    instance = create(client, headers)
    body = {
        **CREATE,
        "name": "Renamed",
        "session_ttl": 7200,
        "auth_window_ttl": 600,
        "theme": {"accent_color": "#ff0000", "box_color": "#abc"},
        "terms_text": "Be nice.",
        "locale": "pt-BR",
    }
    response = client.put(f"/captive/instances/{instance['id']}", headers=headers, json=body)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (
        updated["name"] == "Renamed" and updated["session_ttl"] == 7200 and updated["auth_window_ttl"] == 600
    )
    assert updated["theme"]["accent_color"] == "#ff0000" and updated["theme"]["box_color"] == "#abc"
    assert updated["theme"]["text_color"] == DEFAULT_COLOURS["text_color"]
    assert updated["terms_text"] == "Be nice." and updated["locale"] == "pt-BR"
    # Omitted optional fields keep their values; an explicit null clears terms.
    again = client.put(f"/captive/instances/{instance['id']}", headers=headers, json={**CREATE}).json()
    assert again["theme"]["accent_color"] == "#ff0000" and again["terms_text"] == "Be nice."
    cleared = client.put(
        f"/captive/instances/{instance['id']}", headers=headers, json={**CREATE, "terms_text": None}
    ).json()
    assert cleared["terms_text"] is None
    assert client.get(f"/captive/instances/{instance['id']}", headers=headers).json()["terms_text"] is None


LOCALE_MESSAGE = (
    "The 'locale' parameter must be one of the supported languages (en, es, fr, de, pt), optionally "
    "with a region such as 'pt-BR'."
)
VALIDATION_CASES = [
    ("auth_window_ttl", 119, "The 'auth_window_ttl' parameter must be between 120 and 900."),
    ("auth_window_ttl", 901, "The 'auth_window_ttl' parameter must be between 120 and 900."),
    (
        "theme",
        {"accent_color": "red"},
        "The 'theme.accent_color' parameter must be a colour as #RRGGBB or #RGB.",
    ),
    ("locale", "english please", LOCALE_MESSAGE),
    ("locale", "it", LOCALE_MESSAGE),
    ("locale", "zh-Hant", LOCALE_MESSAGE),
    ("terms_text", "x" * 20_001, "The 'terms_text' parameter must be at most 20000 characters."),
    (
        "sites",
        [{"subnets": ["10.0.0.0/24"]}],
        "The 'sites[0].id' parameter is required for this request.",
    ),
    (
        "sites",
        [{"id": "00000000-0000-4000-8000-000000000000", "subnets": ["10.0.0.0/24"]}],
        "The 'sites[0].id' parameter refers to '00000000-0000-4000-8000-000000000000', which does not exist.",
    ),
]


@pytest.mark.parametrize(("field", "value", "message"), VALIDATION_CASES)
def test_update_validation(
    client: TestClient, headers: dict[str, str], field: str, value: Any, message: str
) -> None:
    instance = create(client, headers)
    response = client.put(
        f"/captive/instances/{instance['id']}", headers=headers, json={**CREATE, field: value}
    )
    assert response.status_code == 400
    assert response.json()["message"] == message


@pytest.mark.parametrize(("field", "value", "message"), VALIDATION_CASES)
def test_create_validates_the_optional_fields_as_update_does_and_stores_nothing(
    client: TestClient, headers: dict[str, str], field: str, value: Any, message: str
) -> None:
    response = client.post("/captive/instances", headers=headers, json={**CREATE, field: value})
    assert response.status_code == 400
    assert response.json()["message"] == message
    assert client.get("/captive/instances", headers=headers).json() == []
    events = client.get("/captive/audit-events", headers=headers).json()
    assert [e for e in events if e["action"] == "instance.create"] == []


def test_create_takes_theme_terms_locale_ttl_and_sites(client: TestClient, headers: dict[str, str]) -> None:
    site_id = site(client, headers, ["10.0.0.0/16"])
    instance = create(
        client,
        headers,
        auth_window_ttl=600,
        theme={"accent_color": "#ff0000"},
        terms_text="Be nice.",
        locale="pt-BR",
        sites=[{"id": site_id, "subnets": ["10.0.1.0/24"]}],
    )
    assert instance["auth_window_ttl"] == 600 and instance["locale"] == "pt-BR"
    assert instance["theme"] == {"logo": None, "icon": None, **DEFAULT_COLOURS, "accent_color": "#ff0000"}
    assert instance["terms_text"] == "Be nice."
    assert instance["sites"] == [{"id": site_id, "subnets": ["10.0.1.0/24"]}]
    stored = client.get(f"/captive/instances/{instance['id']}", headers=headers).json()
    assert {k: v for k, v in stored.items() if k != "preview_url"} == {
        k: v for k, v in instance.items() if k != "preview_url"
    }
    # A second instance asking for the same subnet at creation meets the update's 409.
    taken = client.post(
        "/captive/instances",
        headers=headers,
        json={**CREATE, "sites": [{"id": site_id, "subnets": ["10.0.1.128/25"]}]},
    )
    assert_error(taken, 409, "conflict_error", "subnet_in_use")
    assert len(client.get("/captive/instances", headers=headers).json()) == 1


@pytest.mark.parametrize("locale", ["en", "es", "fr", "de", "pt", "pt-BR", "de_AT", "FR"])
def test_every_supported_locale_is_accepted(client: TestClient, headers: dict[str, str], locale: str) -> None:
    assert create(client, headers, locale=locale)["locale"] == locale


def test_put_requires_the_required_fields(client: TestClient, headers: dict[str, str]) -> None:
    instance = create(client, headers)
    response = client.put(f"/captive/instances/{instance['id']}", headers=headers, json={"name": "x"})
    assert_error(response, 400, "invalid_request_error", "parameter_missing")


def test_sites_assignment_and_subnet_rules(client: TestClient, headers: dict[str, str]) -> None:
    site_id = site(client, headers, ["10.0.0.0/16"])
    a = create(client, headers, name="A")
    b = create(client, headers, name="B")
    url_a, url_b = f"/captive/instances/{a['id']}", f"/captive/instances/{b['id']}"
    ok = client.put(
        url_a, headers=headers, json={**CREATE, "sites": [{"id": site_id, "subnets": ["10.0.1.0/24"]}]}
    )
    assert ok.status_code == 200
    assert ok.json()["sites"] == [{"id": site_id, "subnets": ["10.0.1.0/24"]}]
    # Outside the site's subnets.
    outside = client.put(
        url_b, headers=headers, json={**CREATE, "sites": [{"id": site_id, "subnets": ["10.1.0.0/24"]}]}
    )
    error = assert_error(outside, 400, "invalid_request_error", "parameter_invalid")
    assert "'sites[0].subnets[0]'" in error["message"]
    # Overlapping another instance's subnet of the same site.
    taken = client.put(
        url_b, headers=headers, json={**CREATE, "sites": [{"id": site_id, "subnets": ["10.0.1.128/25"]}]}
    )
    assert_error(taken, 409, "conflict_error", "subnet_in_use")
    # Unknown site.
    unknown = client.put(
        url_b,
        headers=headers,
        json={
            **CREATE,
            "sites": [{"id": "00000000-0000-4000-8000-000000000000", "subnets": ["10.0.0.0/24"]}],
        },
    )
    assert_error(unknown, 400, "invalid_request_error", "resource_missing")
    # [] removes every site and frees the subnet for B.
    assert client.put(url_a, headers=headers, json={**CREATE, "sites": []}).json()["sites"] == []
    freed = client.put(
        url_b, headers=headers, json={**CREATE, "sites": [{"id": site_id, "subnets": ["10.0.1.128/25"]}]}
    )
    assert freed.status_code == 200


def test_other_orgs_site_cannot_be_assigned(
    client: TestClient, headers: dict[str, str], auth: TokenFactory
) -> None:
    foreign = site(client, auth(org="org-b"), ["10.0.0.0/24"])
    instance = create(client, headers)
    response = client.put(
        f"/captive/instances/{instance['id']}",
        headers=headers,
        json={**CREATE, "sites": [{"id": foreign, "subnets": ["10.0.0.0/24"]}]},
    )
    assert_error(response, 400, "invalid_request_error", "resource_missing")


def test_list_is_newest_first(client: TestClient, headers: dict[str, str]) -> None:
    ids = [create(client, headers, name=f"I{i}")["id"] for i in range(3)]
    listed = client.get("/captive/instances", headers=headers).json()
    assert [i["id"] for i in listed] == list(reversed(ids))


def test_delete_cascades_coupons_and_ends_sessions(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    site_id = site(client, headers, ["10.0.0.0/24"])
    instance = create(client, headers)
    client.put(
        f"/captive/instances/{instance['id']}",
        headers=headers,
        json={**CREATE, "sites": [{"id": site_id, "subnets": ["10.0.0.0/24"]}]},
    )
    now = datetime.now(UTC)
    with runtime.sessions() as session:
        session.add(
            Coupon(
                org_id="org-a", instance_id=instance["id"], code="ABCDEF", expires_at=now + timedelta(hours=1)
            )
        )
        session.add(
            SiteUser(
                org_id="org-a",
                site_id=site_id,
                instance_id=instance["id"],
                ip_address="10.0.0.5",
                strategy="coupon",
                expires_at=now + timedelta(hours=1),
            )
        )
        session.commit()
    assert client.delete(f"/captive/instances/{instance['id']}", headers=headers).status_code == 204
    assert_error(
        client.get(f"/captive/instances/{instance['id']}", headers=headers),
        404,
        "not_found_error",
        "resource_not_found",
    )
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Coupon)) == 0
        user = session.scalars(select(SiteUser)).one()
        assert user.status == "disconnected" and user.ended_at is not None
    # The subnet is free again for a new instance.
    other = create(client, headers)
    response = client.put(
        f"/captive/instances/{other['id']}",
        headers=headers,
        json={**CREATE, "sites": [{"id": site_id, "subnets": ["10.0.0.0/24"]}]},
    )
    assert response.status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_unknown_and_other_orgs_instance_is_404(
    client: TestClient, headers: dict[str, str], auth: TokenFactory, method: str
) -> None:
    instance = create(client, headers)
    for target, who in (
        (instance["id"], auth(org="org-b")),
        ("not-a-uuid", headers),
        ("7c9e6679-7425-40de-944b-e07fc1f90ae7", headers),
    ):
        response = client.request(method, f"/captive/instances/{target}", headers=who, json=CREATE)
        assert_error(response, 404, "not_found_error", "resource_not_found")


def test_read_scope_cannot_update_or_delete(
    client: TestClient, headers: dict[str, str], auth: TokenFactory
) -> None:
    instance = create(client, headers)
    reader = auth(scopes=(SCOPE_READ,))
    assert client.get(f"/captive/instances/{instance['id']}", headers=reader).status_code == 200
    for method in ("PUT", "DELETE"):
        response = client.request(method, f"/captive/instances/{instance['id']}", headers=reader, json=CREATE)
        assert_error(response, 403, "permission_error", "insufficient_scope")


# --- network_name and timezone (extensions: cards, local times) ------------------------------------


def test_network_name_and_timezone_are_set_kept_when_omitted_and_cleared_with_null(
    client: TestClient, headers: dict[str, str]
) -> None:
    instance = create(client, headers)
    url = f"/captive/instances/{instance['id']}"
    given = {**CREATE, "network_name": "  Lobby-Guest ", "timezone": "Australia/Sydney"}
    updated = client.put(url, headers=headers, json=given).json()
    assert (updated["network_name"], updated["timezone"]) == ("Lobby-Guest", "Australia/Sydney")
    kept = client.put(url, headers=headers, json=CREATE).json()
    assert (kept["network_name"], kept["timezone"]) == ("Lobby-Guest", "Australia/Sydney")
    cleared = client.put(url, headers=headers, json={**CREATE, "network_name": None, "timezone": None}).json()
    assert (cleared["network_name"], cleared["timezone"]) == (None, None)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("network_name", "x" * 33, "must be at most 32 bytes"),
        ("network_name", "Café-" + "é" * 14, "must be at most 32 bytes"),  # 19 characters, 34 bytes
        ("network_name", "   ", "must not be empty"),
        ("network_name", "Lobby\nGuest", "must not contain control characters"),
        ("network_name", 42, "must be a string"),
        ("timezone", "Mars/Olympus", "must be a valid IANA time zone"),
        ("timezone", "UTC\n", "must be a valid IANA time zone"),
    ],
)
def test_invalid_network_name_or_timezone_is_400_naming_it(
    client: TestClient, headers: dict[str, str], field: str, value: object, reason: str
) -> None:
    instance = create(client, headers)
    response = client.put(
        f"/captive/instances/{instance['id']}", headers=headers, json={**CREATE, field: value}
    )
    error = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert error["message"].startswith(f"The '{field}' parameter {reason}")


def test_a_32_byte_network_name_is_accepted(client: TestClient, headers: dict[str, str]) -> None:
    instance = create(client, headers)
    name = "Café-" + "é" * 13  # 18 characters, 32 bytes
    response = client.put(
        f"/captive/instances/{instance['id']}", headers=headers, json={**CREATE, "network_name": name}
    )
    assert response.status_code == 200 and response.json()["network_name"] == name
