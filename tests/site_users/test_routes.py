"""Site users API: listing with filters, computed expiry, ordering, pagination, disconnect, tenancy, scopes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from guestgate.db import utcnow
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_ISSUE, SCOPE_READ
from guestgate.site_users.models import SiteUser
from tests.core.test_errors import assert_error
from tests.site_users.test_service import add_user
from tests.utils.settings import TokenFactory

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def create_site(client: TestClient, headers: dict[str, str], name: str = "HQ") -> str:
    response = client.post("/captive/sites", headers=headers, json={"name": name, "subnets": ["10.0.0.0/24"]})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def site_id(client: TestClient, headers: dict[str, str]) -> str:
    return create_site(client, headers)


@pytest.fixture
def now() -> datetime:
    """The real clock to whole seconds: the API compares against it and renders second precision."""
    return utcnow().replace(microsecond=0)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def insert(runtime: Runtime, site_id: str, **fields: Any) -> str:
    """A session row relative to the real clock (active for another hour unless told otherwise)."""
    fields.setdefault("now", utcnow())
    with runtime.sessions() as session:
        return add_user(session, site_id, **fields).id


def listed(
    client: TestClient, headers: dict[str, str], site_id: str, query: str = ""
) -> list[dict[str, Any]]:
    response = client.get(f"/captive/sites/{site_id}/users{query}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def ids(users: list[dict[str, Any]]) -> list[str]:
    return [user["id"] for user in users]


def test_list_returns_the_full_site_user_shape(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime, now: datetime
) -> None:
    identity = {"provider": "github", "subject": "42", "email": "ana@example.com", "name": "Ana"}
    user_id = insert(
        runtime,
        site_id,
        now=now,
        ip_address="10.0.0.23",
        mac_address="AA:BB:CC:DD:EE:FF",
        strategy="oauth2",
        identity=identity,
    )
    assert listed(client, headers, site_id) == [
        {
            "id": user_id,
            "site_id": site_id,
            "instance_id": "9a7f1b2c-3d4e-4f6a-8b8c-9d0e1f2a3b4c",
            "ip_address": "10.0.0.23",
            "mac_address": "aa:bb:cc:dd:ee:ff",
            "strategy": "oauth2",
            "coupon_id": None,
            "identity": identity,
            "status": "active",
            "started_at": stamp(now - timedelta(minutes=10)),
            "expires_at": stamp(now + timedelta(hours=1)),
            "ended_at": None,
        }
    ]


def test_list_of_a_site_without_sessions_is_empty(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    assert listed(client, headers, site_id) == []


def test_list_is_newest_first_and_only_this_sites_sessions(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime, now: datetime
) -> None:
    other_site = create_site(client, headers, name="Branch")
    insert(runtime, other_site, now=now)
    oldest = insert(runtime, site_id, started_at=now - timedelta(hours=3))
    newest = insert(runtime, site_id, started_at=now - timedelta(hours=1))
    middle = insert(runtime, site_id, started_at=now - timedelta(hours=2))
    # Same start: the larger id comes first, as the cursor expects.
    tie = sorted(
        [insert(runtime, site_id, started_at=now - timedelta(hours=4)) for _ in range(2)],
        reverse=True,
    )
    assert ids(listed(client, headers, site_id)) == [newest, middle, oldest, *tie]


def test_active_session_past_expiry_is_reported_expired(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime, now: datetime
) -> None:
    expires_at = now - timedelta(minutes=1)
    insert(runtime, site_id, now=now, expires_at=expires_at)
    [user] = listed(client, headers, site_id)
    assert user["status"] == "expired"
    assert user["ended_at"] == stamp(expires_at)
    with runtime.sessions() as session:
        assert session.scalars(select(SiteUser.status)).all() == ["active"]  # reading changes nothing


@pytest.fixture
def mixed(runtime: Runtime, site_id: str, now: datetime) -> dict[str, str]:
    """One session of each kind, newest first in this order."""
    return {
        "active": insert(
            runtime, site_id, started_at=now - timedelta(minutes=1), expires_at=now + timedelta(hours=1)
        ),
        "past_expiry": insert(runtime, site_id, started_at=now - timedelta(minutes=2), expires_at=now),
        "expired": insert(
            runtime,
            site_id,
            status="expired",
            started_at=now - timedelta(minutes=3),
            expires_at=now - timedelta(minutes=1),
            ended_at=now - timedelta(minutes=1),
            end_reason="expired",
        ),
        "disconnected": insert(
            runtime,
            site_id,
            status="disconnected",
            started_at=now - timedelta(minutes=4),
            expires_at=now + timedelta(hours=1),
            ended_at=now - timedelta(minutes=2),
            end_reason="operator",
        ),
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("active", ["active"]),
        ("expired", ["past_expiry", "expired"]),
        ("disconnected", ["disconnected"]),
    ],
)
def test_status_filter_uses_the_computed_status(
    client: TestClient,
    headers: dict[str, str],
    site_id: str,
    mixed: dict[str, str],
    status: str,
    expected: list[str],
) -> None:
    users = listed(client, headers, site_id, f"?status={status}")
    assert ids(users) == [mixed[name] for name in expected]
    assert {user["status"] for user in users} == {status}


def test_no_status_filter_lists_every_session_with_its_computed_status(
    client: TestClient, headers: dict[str, str], site_id: str, mixed: dict[str, str]
) -> None:
    users = listed(client, headers, site_id)
    assert [(u["id"], u["status"]) for u in users] == [
        (mixed["active"], "active"),
        (mixed["past_expiry"], "expired"),
        (mixed["expired"], "expired"),
        (mixed["disconnected"], "disconnected"),
    ]


@pytest.mark.parametrize("bad", ["ACTIVE", "ended", ""])
def test_unknown_status_is_400_naming_the_parameter(
    client: TestClient, headers: dict[str, str], site_id: str, bad: str
) -> None:
    response = client.get(f"/captive/sites/{site_id}/users?status={bad}", headers=headers)
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"] == (
        "The 'status' parameter must be one of 'active', 'expired', 'disconnected' or 'quota_exceeded'."
    )


@pytest.mark.parametrize(
    ("query", "matching"),
    [
        ("10.0.0.5", "v4"),
        ("::ffff:10.0.0.5", "v4"),
        ("2001:DB8:0:0::5", "v6"),
    ],
)
def test_ip_address_filter_matches_exactly_after_canonicalising(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime, query: str, matching: str
) -> None:
    users = {
        "v4": insert(runtime, site_id, ip_address="10.0.0.5"),
        "v4_prefix": insert(runtime, site_id, ip_address="10.0.0.50"),
        "v6": insert(runtime, site_id, ip_address="2001:db8::5"),
    }
    assert ids(listed(client, headers, site_id, f"?ip_address={quote(query)}")) == [users[matching]]


@pytest.mark.parametrize("bad", ["10.0.0", "10.0.0.0/24", "host.example", "10.0.0.256", ""])
def test_invalid_ip_address_filter_is_400_naming_the_parameter(
    client: TestClient, headers: dict[str, str], site_id: str, bad: str
) -> None:
    response = client.get(f"/captive/sites/{site_id}/users?ip_address={quote(bad)}", headers=headers)
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"] == "The 'ip_address' parameter must be an IPv4 or IPv6 address."


@pytest.mark.parametrize(
    "query", ["aa:bb:cc:dd:ee:01", "AA-BB-CC-DD-EE-01", "aabb.ccdd.ee01", "AABBCCDDEE01"]
)
def test_mac_address_filter_accepts_the_usual_notations(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime, query: str
) -> None:
    wanted = insert(runtime, site_id, mac_address="aa:bb:cc:dd:ee:01")
    insert(runtime, site_id, mac_address="aa:bb:cc:dd:ee:02")
    insert(runtime, site_id, mac_address=None)
    assert ids(listed(client, headers, site_id, f"?mac_address={query}")) == [wanted]


def test_mac_address_filter_matches_a_mac_stored_in_uppercase(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime
) -> None:
    wanted = insert(runtime, site_id, mac_address="AA:BB:CC:DD:EE:02")
    insert(runtime, site_id, mac_address="AA:BB:CC:DD:EE:03")
    [user] = listed(client, headers, site_id, "?mac_address=aa:bb:cc:dd:ee:02")
    assert user["id"] == wanted
    assert user["mac_address"] == "aa:bb:cc:dd:ee:02"


@pytest.mark.parametrize(
    "bad", ["aa:bb:cc:dd:ee", "aa:bb:cc:dd:ee:gg", "aa:bb-cc:dd:ee:ff", "01:02:03:04:05:06:07", ""]
)
def test_invalid_mac_address_filter_is_400_naming_the_parameter(
    client: TestClient, headers: dict[str, str], site_id: str, bad: str
) -> None:
    response = client.get(f"/captive/sites/{site_id}/users?mac_address={quote(bad)}", headers=headers)
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"] == "The 'mac_address' parameter must be a MAC address such as aa:bb:cc:dd:ee:ff."


def test_since_filter_keeps_sessions_started_at_or_after_it(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime, now: datetime
) -> None:
    insert(runtime, site_id, started_at=now - timedelta(hours=3))
    at_edge = insert(runtime, site_id, started_at=now - timedelta(hours=2))
    after = insert(runtime, site_id, started_at=now - timedelta(hours=1))
    edge = now - timedelta(hours=2)
    assert ids(listed(client, headers, site_id, f"?since={stamp(edge)}")) == [after, at_edge]
    same_instant = (edge + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    assert ids(listed(client, headers, site_id, f"?since={quote(same_instant)}")) == [after, at_edge]
    one_second_later = stamp(edge + timedelta(seconds=1))
    assert ids(listed(client, headers, site_id, f"?since={one_second_later}")) == [after]


@pytest.mark.parametrize(
    "bad", ["yesterday", "2025-10-29", "2025-10-29T08:00:00", "2025-13-01T00:00:00Z", "1761724800", ""]
)
def test_invalid_since_filter_is_400_naming_the_parameter(
    client: TestClient, headers: dict[str, str], site_id: str, bad: str
) -> None:
    response = client.get(f"/captive/sites/{site_id}/users?since={quote(bad)}", headers=headers)
    body = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
    assert body["message"] == (
        "The 'since' parameter must be an RFC 3339 date-time with a time zone, such as 2025-10-29T08:00:00Z."
    )


def test_filters_combine(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime, now: datetime
) -> None:
    wanted = insert(runtime, site_id, ip_address="10.0.0.7", mac_address="aa:bb:cc:dd:ee:07")
    insert(runtime, site_id, ip_address="10.0.0.7", mac_address="aa:bb:cc:dd:ee:08")
    insert(runtime, site_id, ip_address="10.0.0.7", mac_address="aa:bb:cc:dd:ee:07", status="disconnected")
    insert(
        runtime,
        site_id,
        ip_address="10.0.0.7",
        mac_address="aa:bb:cc:dd:ee:07",
        started_at=now - timedelta(days=2),
        expires_at=now + timedelta(hours=1),
    )
    query = f"?status=active&ip_address=10.0.0.7&mac_address=aa-bb-cc-dd-ee-07&since={stamp(now - timedelta(days=1))}"
    assert ids(listed(client, headers, site_id, query)) == [wanted]


def test_list_paginates_keeping_the_filters_in_the_next_link(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime, now: datetime
) -> None:
    actives = [insert(runtime, site_id, started_at=now - timedelta(minutes=m)) for m in (1, 2, 3)]
    insert(runtime, site_id, started_at=now - timedelta(seconds=30), status="disconnected")
    first = client.get(f"/captive/sites/{site_id}/users?status=active&limit=2", headers=headers)
    assert first.status_code == 200
    assert ids(first.json()) == actives[:2]
    link = first.headers["Link"]
    assert link.startswith(f"<http://testserver/captive/sites/{site_id}/users?") and link.endswith(
        '>; rel="next"'
    )
    assert "status=active" in link
    second = client.get(link[1 : link.index(">")].removeprefix("http://testserver"), headers=headers)
    assert second.status_code == 200
    assert ids(second.json()) == actives[2:]
    assert "Link" not in second.headers


def test_bad_limit_and_cursor_are_400(client: TestClient, headers: dict[str, str], site_id: str) -> None:
    body = assert_error(
        client.get(f"/captive/sites/{site_id}/users?limit=0", headers=headers),
        400,
        "invalid_request_error",
        "parameter_invalid",
    )
    assert body["message"] == "The 'limit' parameter must be between 1 and 1000."
    body = assert_error(
        client.get(f"/captive/sites/{site_id}/users?cursor=nonsense", headers=headers),
        400,
        "invalid_request_error",
        "parameter_invalid",
    )
    assert body["message"].startswith("The 'cursor' parameter")


def test_disconnect_ends_the_session_now(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime, now: datetime
) -> None:
    user_id = insert(runtime, site_id, now=now)
    before = utcnow().replace(microsecond=0)
    response = client.post(f"/captive/sites/{site_id}/users/{user_id}/disconnect", headers=headers)
    after = utcnow()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == user_id
    assert body["status"] == "disconnected"
    assert stamp(before) <= body["ended_at"] <= stamp(after)
    assert body["expires_at"] == stamp(now + timedelta(hours=1))
    with runtime.sessions() as session:
        row = session.get(SiteUser, user_id)
        assert row is not None
        assert (row.status, row.end_reason) == ("disconnected", "operator")
    assert ids(listed(client, headers, site_id, "?status=disconnected")) == [user_id]
    assert listed(client, headers, site_id, "?status=active") == []


def test_disconnect_twice_returns_the_same_session_unchanged(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime
) -> None:
    user_id = insert(runtime, site_id)
    first = client.post(f"/captive/sites/{site_id}/users/{user_id}/disconnect", headers=headers)
    second = client.post(f"/captive/sites/{site_id}/users/{user_id}/disconnect", headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()


@pytest.mark.parametrize("state", ["stored_expired", "past_expiry"])
def test_disconnecting_an_expired_session_returns_it_unchanged(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime, now: datetime, state: str
) -> None:
    expires_at = now - timedelta(minutes=5)
    stored = (
        {"status": "expired", "ended_at": expires_at, "end_reason": "expired"}
        if state == "stored_expired"
        else {}
    )
    user_id = insert(runtime, site_id, now=now, expires_at=expires_at, **stored)
    response = client.post(f"/captive/sites/{site_id}/users/{user_id}/disconnect", headers=headers)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["ended_at"]) == ("expired", stamp(expires_at))
    with runtime.sessions() as session:
        row = session.get(SiteUser, user_id)
        assert row is not None and row.end_reason == stored.get("end_reason")


def test_disconnect_of_a_user_of_another_site_is_404(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime
) -> None:
    other_site = create_site(client, headers, name="Branch")
    user_id = insert(runtime, other_site)
    response = client.post(f"/captive/sites/{site_id}/users/{user_id}/disconnect", headers=headers)
    body = assert_error(response, 404, "not_found_error", "resource_not_found")
    assert body["message"] == f"No such site user: '{user_id}'."
    with runtime.sessions() as session:
        assert session.scalars(select(SiteUser.status)).all() == ["active"]


def test_disconnect_of_an_unknown_user_is_404(
    client: TestClient, headers: dict[str, str], site_id: str
) -> None:
    response = client.post(f"/captive/sites/{site_id}/users/{UNKNOWN_ID}/disconnect", headers=headers)
    body = assert_error(response, 404, "not_found_error", "resource_not_found")
    assert body["message"] == f"No such site user: '{UNKNOWN_ID}'."


def test_unknown_site_is_404(client: TestClient, headers: dict[str, str]) -> None:
    body = assert_error(
        client.get(f"/captive/sites/{UNKNOWN_ID}/users", headers=headers),
        404,
        "not_found_error",
        "resource_not_found",
    )
    assert body["message"] == f"No such site: '{UNKNOWN_ID}'."
    assert_error(
        client.post(f"/captive/sites/{UNKNOWN_ID}/users/{UNKNOWN_ID}/disconnect", headers=headers),
        404,
        "not_found_error",
        "resource_not_found",
    )


def test_other_orgs_site_and_sessions_are_404(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime, auth: TokenFactory
) -> None:
    user_id = insert(runtime, site_id)
    other = auth(org="org-b")
    assert_error(
        client.get(f"/captive/sites/{site_id}/users", headers=other),
        404,
        "not_found_error",
        "resource_not_found",
    )
    assert_error(
        client.post(f"/captive/sites/{site_id}/users/{user_id}/disconnect", headers=other),
        404,
        "not_found_error",
        "resource_not_found",
    )
    # Nor can org-b reach the session through a site of its own.
    their_site = create_site(client, other, name="Theirs")
    assert_error(
        client.post(f"/captive/sites/{their_site}/users/{user_id}/disconnect", headers=other),
        404,
        "not_found_error",
        "resource_not_found",
    )
    assert listed(client, headers, site_id)[0]["status"] == "active"


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", "/users"), ("POST", f"/users/{UNKNOWN_ID}/disconnect")]
)
def test_no_token_is_401(client: TestClient, site_id: str, method: str, suffix: str) -> None:
    response = client.request(method, f"/captive/sites/{site_id}{suffix}")
    assert_error(response, 401, "authentication_error", "token_missing")


def test_read_scope_lists_but_cannot_disconnect(
    client: TestClient, headers: dict[str, str], site_id: str, runtime: Runtime, auth: TokenFactory
) -> None:
    user_id = insert(runtime, site_id)
    reader = auth(scopes=(SCOPE_READ,))
    assert ids(listed(client, reader, site_id)) == [user_id]
    response = client.post(f"/captive/sites/{site_id}/users/{user_id}/disconnect", headers=reader)
    assert_error(response, 403, "permission_error", "insufficient_scope")
    assert listed(client, headers, site_id)[0]["status"] == "active"


def test_issuer_scope_cannot_list_or_disconnect(
    client: TestClient, site_id: str, runtime: Runtime, auth: TokenFactory
) -> None:
    user_id = insert(runtime, site_id)
    issuer = auth(scopes=(SCOPE_ISSUE,))
    assert_error(
        client.get(f"/captive/sites/{site_id}/users", headers=issuer),
        403,
        "permission_error",
        "insufficient_scope",
    )
    assert_error(
        client.post(f"/captive/sites/{site_id}/users/{user_id}/disconnect", headers=issuer),
        403,
        "permission_error",
        "insufficient_scope",
    )
