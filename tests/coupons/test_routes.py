"""HTTP routes of coupons: #12 list valid coupons and #13 create a batch."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from guestgate.auth_integrations.models import AuthIntegration
from guestgate.coupons.models import Coupon
from guestgate.plans.service import DEFAULT
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_ISSUE, SCOPE_READ, SCOPE_WRITE

CODE = re.compile(r"^[2-9A-HJKMNP-Z]{6}$")
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
}
TokenFactory = Callable[..., dict[str, str]]


def make_instance(client: TestClient, headers: dict[str, str], **extra: object) -> str:
    body = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600, **extra}
    response = client.post("/captive/instances", json=body, headers=headers)
    assert response.status_code == 201, response.text
    instance_id: str = response.json()["id"]
    return instance_id


@pytest.fixture
def instance_id(client: TestClient, headers: dict[str, str]) -> str:
    return make_instance(client, headers)


def url(instance_id: str) -> str:
    return f"/captive/instances/{instance_id}/coupons"


def assert_error(response: Any, status: int, code: str, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {
        "type": ERROR_TYPES[status],
        "code": code,
        "message": message,
        "doc_url": f"http://testserver/errors/{code}",
    }


def parse(stamp: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp), stamp
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# --- POST /captive/instances/{instanceId}/coupons (#13) ---------------------------------------


def test_create_coupons_returns_201_and_the_batch(
    client: TestClient, headers: dict[str, str], instance_id: str
) -> None:
    response = client.post(url(instance_id), json={"minutes_valid": 90, "count": 3}, headers=headers)
    assert response.status_code == 201
    body = response.json()
    assert isinstance(body, list)
    assert len(body) == 3
    for coupon in body:
        # Altostrat's fields, and [extension] the code's plan and sign-ins so far.
        assert set(coupon) == {"id", "code", "expires_at", "redeemed_at", "created_at", "uses", "plan"}
        assert coupon["uses"] == 0 and coupon["plan"] == DEFAULT.to_dict()
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", coupon["id"]
        )
        assert CODE.match(coupon["code"])
        assert coupon["redeemed_at"] is None
        assert parse(coupon["expires_at"]) - parse(coupon["created_at"]) == timedelta(minutes=90)
    assert len({c["code"] for c in body}) == 3


def test_created_coupons_are_listed(client: TestClient, headers: dict[str, str], instance_id: str) -> None:
    created = client.post(url(instance_id), json={"minutes_valid": 60, "count": 4}, headers=headers).json()
    listed = client.get(url(instance_id), headers=headers)
    assert listed.status_code == 200
    assert sorted(listed.json(), key=lambda c: c["id"]) == sorted(created, key=lambda c: c["id"])


@pytest.mark.parametrize("count", [1, 200])
def test_create_coupons_count_at_the_bounds_is_accepted(
    client: TestClient, headers: dict[str, str], instance_id: str, count: int
) -> None:
    response = client.post(url(instance_id), json={"minutes_valid": 60, "count": count}, headers=headers)
    assert response.status_code == 201
    codes = [c["code"] for c in response.json()]
    assert len(codes) == count
    assert len(set(codes)) == count


@pytest.mark.parametrize("count", [0, -1, 201, 1000])
def test_create_coupons_count_out_of_range_is_rejected(
    client: TestClient, headers: dict[str, str], instance_id: str, count: int
) -> None:
    response = client.post(url(instance_id), json={"minutes_valid": 60, "count": count}, headers=headers)
    assert_error(response, 400, "parameter_invalid", "The 'count' parameter must be between 1 and 200.")
    assert client.get(url(instance_id), headers=headers).json() == []


@pytest.mark.parametrize("minutes", [1, 525600])
def test_create_coupons_minutes_valid_at_the_bounds_is_accepted(
    client: TestClient, headers: dict[str, str], instance_id: str, minutes: int
) -> None:
    response = client.post(url(instance_id), json={"minutes_valid": minutes, "count": 1}, headers=headers)
    assert response.status_code == 201
    (coupon,) = response.json()
    assert parse(coupon["expires_at"]) - parse(coupon["created_at"]) == timedelta(minutes=minutes)


@pytest.mark.parametrize("minutes", [0, -5, 525601])
def test_create_coupons_minutes_valid_out_of_range_is_rejected(
    client: TestClient, headers: dict[str, str], instance_id: str, minutes: int
) -> None:
    response = client.post(url(instance_id), json={"minutes_valid": minutes, "count": 1}, headers=headers)
    assert_error(
        response, 400, "parameter_invalid", "The 'minutes_valid' parameter must be between 1 and 525600."
    )


@pytest.mark.parametrize("field", ["minutes_valid", "count"])
def test_create_coupons_without_a_required_field_is_rejected(
    client: TestClient, headers: dict[str, str], instance_id: str, field: str
) -> None:
    body = {"minutes_valid": 60, "count": 1}
    del body[field]
    response = client.post(url(instance_id), json=body, headers=headers)
    assert_error(response, 400, "parameter_missing", f"The '{field}' parameter is required for this request.")


@pytest.mark.parametrize("field", ["minutes_valid", "count"])
@pytest.mark.parametrize("value", [1.5, "abc", None, [5]])
def test_create_coupons_with_a_non_integer_is_rejected(
    client: TestClient, headers: dict[str, str], instance_id: str, field: str, value: object
) -> None:
    body: dict[str, object] = {"minutes_valid": 60, "count": 1, field: value}
    response = client.post(url(instance_id), json=body, headers=headers)
    assert_error(response, 400, "parameter_invalid", f"The '{field}' parameter must be an integer.")


def test_create_coupons_with_invalid_json_is_rejected(
    client: TestClient, headers: dict[str, str], instance_id: str
) -> None:
    response = client.post(
        url(instance_id), content=b'{"count": 1,', headers={**headers, "Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json", "The request body is not valid JSON.")


def test_create_coupons_ignores_unknown_fields(
    client: TestClient, headers: dict[str, str], instance_id: str
) -> None:
    response = client.post(
        url(instance_id), json={"minutes_valid": 60, "count": 2, "code": "AAAAAA"}, headers=headers
    )
    assert response.status_code == 201
    assert len(response.json()) == 2


def test_create_coupons_for_an_oauth2_instance_is_rejected(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    with runtime.sessions() as session:
        integration = AuthIntegration(
            org_id="org-a",
            name="Google",
            type="google",
            client_id="client",
            client_secret_sealed=runtime.box.seal("secret"),
        )
        session.add(integration)
        session.commit()
        integration_id = integration.id
    oauth_instance = make_instance(client, headers, strategy="oauth2", auth_integration_id=integration_id)
    response = client.post(url(oauth_instance), json={"minutes_valid": 60, "count": 1}, headers=headers)
    assert_error(
        response,
        400,
        "parameter_invalid",
        "Coupons can only be created for instances whose strategy is 'coupon'.",
    )
    assert client.get(url(oauth_instance), headers=headers).json() == []


# --- GET /captive/instances/{instanceId}/coupons (#12) ----------------------------------------


def test_list_coupons_of_a_new_instance_is_empty(
    client: TestClient, headers: dict[str, str], instance_id: str
) -> None:
    response = client.get(url(instance_id), headers=headers)
    assert response.status_code == 200
    assert response.json() == []
    assert "Link" not in response.headers


def test_list_coupons_leaves_out_redeemed_and_expired(
    client: TestClient, headers: dict[str, str], instance_id: str, runtime: Runtime
) -> None:
    redeemed, expired, valid = client.post(
        url(instance_id), json={"minutes_valid": 60, "count": 3}, headers=headers
    ).json()
    past = parse(valid["created_at"]) - timedelta(minutes=1)
    with runtime.sessions() as session:
        session.execute(update(Coupon).where(Coupon.id == redeemed["id"]).values(redeemed_at=past))
        session.execute(update(Coupon).where(Coupon.id == expired["id"]).values(expires_at=past))
        session.commit()
    response = client.get(url(instance_id), headers=headers)
    assert response.status_code == 200
    assert [c["id"] for c in response.json()] == [valid["id"]]


def test_list_coupons_is_newest_first(
    client: TestClient, headers: dict[str, str], instance_id: str, runtime: Runtime
) -> None:
    created = client.post(url(instance_id), json={"minutes_valid": 60, "count": 3}, headers=headers).json()
    base = parse(created[0]["created_at"])
    with runtime.sessions() as session:
        for age, coupon in enumerate(created):
            session.execute(
                update(Coupon)
                .where(Coupon.id == coupon["id"])
                .values(created_at=base - timedelta(minutes=age))
            )
        session.commit()
    listed = client.get(url(instance_id), headers=headers).json()
    assert [c["id"] for c in listed] == [c["id"] for c in created]


def test_list_coupons_pages_through_the_link_header(
    client: TestClient, headers: dict[str, str], instance_id: str
) -> None:
    created = client.post(url(instance_id), json={"minutes_valid": 60, "count": 5}, headers=headers).json()
    seen: list[str] = []
    next_url: str | None = url(instance_id) + "?limit=2"
    sizes = []
    while next_url is not None:
        response = client.get(next_url, headers=headers)
        assert response.status_code == 200
        sizes.append(len(response.json()))
        seen += [c["id"] for c in response.json()]
        link = response.headers.get("Link")
        if link is None:
            next_url = None
        else:
            match = re.fullmatch(r'<http://testserver(/captive/instances/[^>]+)>; rel="next"', link)
            assert match, link
            assert "limit=2" in match.group(1)
            next_url = match.group(1)
    assert sizes == [2, 2, 1]
    assert sorted(seen) == sorted(c["id"] for c in created)
    assert seen == [c["id"] for c in client.get(url(instance_id), headers=headers).json()]


@pytest.mark.parametrize("limit", [0, 1001])
def test_list_coupons_limit_out_of_range_is_rejected(
    client: TestClient, headers: dict[str, str], instance_id: str, limit: int
) -> None:
    response = client.get(url(instance_id), params={"limit": limit}, headers=headers)
    assert_error(response, 400, "parameter_invalid", "The 'limit' parameter must be between 1 and 1000.")


def test_list_coupons_with_a_forged_cursor_is_rejected(
    client: TestClient, headers: dict[str, str], instance_id: str
) -> None:
    response = client.get(url(instance_id), params={"cursor": "not-a-cursor"}, headers=headers)
    assert_error(
        response, 400, "parameter_invalid", "The 'cursor' parameter is not a cursor this API returned."
    )


# --- authentication, scopes and tenancy -------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_coupons_without_a_token_is_401(client: TestClient, instance_id: str, method: str) -> None:
    response = client.request(method, url(instance_id), json={"minutes_valid": 60, "count": 1})
    assert response.status_code == 401
    body = response.json()
    assert (body["type"], body["code"]) == ("authentication_error", "token_missing")
    assert set(body) == {"type", "code", "message", "doc_url"}


def test_create_coupons_with_only_captive_read_is_403(
    client: TestClient, auth: TokenFactory, instance_id: str
) -> None:
    reader = auth(scopes=(SCOPE_READ,))
    response = client.post(url(instance_id), json={"minutes_valid": 60, "count": 1}, headers=reader)
    assert_error(response, 403, "insufficient_scope", "This request needs the 'captive:write' scope.")
    assert client.get(url(instance_id), headers=reader).json() == []


def test_list_coupons_with_captive_read_is_allowed(
    client: TestClient, auth: TokenFactory, instance_id: str
) -> None:
    response = client.get(url(instance_id), headers=auth(scopes=(SCOPE_READ,)))
    assert response.status_code == 200


def test_create_coupons_with_captive_write_is_allowed(
    client: TestClient, auth: TokenFactory, instance_id: str
) -> None:
    writer = auth(scopes=(SCOPE_WRITE,))
    response = client.post(url(instance_id), json={"minutes_valid": 60, "count": 1}, headers=writer)
    assert response.status_code == 201


def test_coupons_issue_token_can_create_and_list(
    client: TestClient, auth: TokenFactory, instance_id: str
) -> None:
    desk = auth(scopes=(SCOPE_ISSUE,))
    created = client.post(url(instance_id), json={"minutes_valid": 60, "count": 2}, headers=desk)
    assert created.status_code == 201
    listed = client.get(url(instance_id), headers=desk)
    assert listed.status_code == 200
    assert {c["id"] for c in listed.json()} == {c["id"] for c in created.json()}


def test_coupons_issue_token_cannot_manage_the_instance(
    client: TestClient, auth: TokenFactory, instance_id: str
) -> None:
    # The front-desk role is limited to coupons; guards against IssuerReader leaking into instances.
    response = client.delete(f"/captive/instances/{instance_id}", headers=auth(scopes=(SCOPE_ISSUE,)))
    assert response.status_code == 403


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_coupons_of_an_unknown_instance_is_404(
    client: TestClient, headers: dict[str, str], method: str
) -> None:
    response = client.request(
        method, url(UNKNOWN_ID), json={"minutes_valid": 60, "count": 1}, headers=headers
    )
    assert_error(response, 404, "resource_not_found", f"No such instance: '{UNKNOWN_ID}'.")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_coupons_of_another_orgs_instance_is_404(
    client: TestClient, headers: dict[str, str], auth: TokenFactory, method: str
) -> None:
    other_org = auth(org="org-b")
    theirs = make_instance(client, other_org)
    client.post(url(theirs), json={"minutes_valid": 60, "count": 2}, headers=other_org)
    response = client.request(method, url(theirs), json={"minutes_valid": 60, "count": 1}, headers=headers)
    assert_error(response, 404, "resource_not_found", f"No such instance: '{theirs}'.")
    assert len(client.get(url(theirs), headers=other_org).json()) == 2


def test_openapi_documents_the_coupon_operations(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    item = paths["/captive/instances/{instanceId}/coupons"]
    assert item["get"]["operationId"] == "listCoupons"
    assert item["post"]["operationId"] == "createCoupons"
    assert item["get"]["tags"] == item["post"]["tags"] == ["Coupons"]
    assert "201" in item["post"]["responses"]
    assert {"400", "401", "403", "404"} <= set(item["post"]["responses"])
    assert {"401", "403", "404"} <= set(item["get"]["responses"])
