"""The /captive/api-tokens extension and the revocation check of the operator API (both databases)."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from guestgate.api_tokens import service
from guestgate.app import create_app
from guestgate.config import Settings
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_ISSUE, SCOPE_READ, SCOPE_WRITE
from tests.core.test_errors import assert_error
from tests.utils.settings import TEST_KEYS, TokenFactory, make_settings

BOUND = 0.5


@pytest.fixture
def settings(db_url: str, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings(db_url, tmp_path / "var", api_token_revocation_seconds=BOUND)


def _create(client: TestClient, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = client.post("/captive/api-tokens", json={"name": "ci", **body}, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def _bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_minted_token_works_and_is_shown_only_once(client: TestClient, headers: dict[str, str]) -> None:
    created = _create(client, headers, scopes=[SCOPE_READ], ttl_seconds=600)
    assert set(created) == {
        "id",
        "name",
        "scopes",
        "created_at",
        "expires_at",
        "revoked_at",
        "created_by",
        "token",
    }
    assert created["scopes"] == [SCOPE_READ] and created["revoked_at"] is None
    assert created["created_by"] == "tester"
    claims = jwt.decode(str(created["token"]), TEST_KEYS["jwt_secret"], algorithms=["HS256"])
    assert claims["jti"] == created["id"] and claims["exp"] - claims["iat"] == 600
    mine = _bearer(created["token"])
    assert client.get("/captive/instances", headers=mine).status_code == 200
    assert_error(
        client.post("/captive/instances", json={}, headers=mine),
        403,
        "permission_error",
        "insufficient_scope",
    )
    listed = client.get("/captive/api-tokens", headers=headers)
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()] == [created["id"]]
    assert "token" not in listed.json()[0]
    assert str(created["token"]) not in listed.text


def test_revoked_token_is_401_at_once_here_with_the_usual_error_body(
    client: TestClient, headers: dict[str, str]
) -> None:
    created = _create(client, headers)
    mine = _bearer(created["token"])
    assert client.get("/captive/instances", headers=mine).status_code == 200
    assert client.delete(f"/captive/api-tokens/{created['id']}", headers=headers).status_code == 204
    body = assert_error(
        client.get("/captive/instances", headers=mine), 401, "authentication_error", "token_invalid"
    )
    assert "revoked" in body["message"]
    # Idempotent, and the list says when.
    assert client.delete(f"/captive/api-tokens/{created['id']}", headers=headers).status_code == 204
    assert client.get("/captive/api-tokens", headers=headers).json()[0]["revoked_at"] is not None


def test_a_revocation_reaches_another_app_on_the_same_database_within_the_bound(
    runtime: Runtime, client: TestClient, headers: dict[str, str]
) -> None:
    other_runtime = Runtime.build(runtime.settings)
    try:
        with TestClient(create_app(runtime=other_runtime), raise_server_exceptions=False) as other:
            created = _create(client, headers)
            mine = _bearer(created["token"])
            assert other.get("/captive/instances", headers=mine).status_code == 200  # cached there now
            assert client.delete(f"/captive/api-tokens/{created['id']}", headers=headers).status_code == 204
            revoked_at = time.monotonic()
            while other.get("/captive/instances", headers=mine).status_code == 200:
                assert time.monotonic() - revoked_at < BOUND + 0.5, "the other app still accepts the token"
                time.sleep(0.05)
            assert_error(
                other.get("/captive/instances", headers=mine), 401, "authentication_error", "token_invalid"
            )
    finally:
        other_runtime.close()


def test_a_token_unknown_to_this_database_is_refused(client: TestClient, headers: dict[str, str]) -> None:
    forged_jti = jwt.encode(
        {
            "sub": "x",
            "org": "org-a",
            "scope": SCOPE_READ,
            "exp": int(time.time()) + 60,
            "jti": "not-registered",
        },
        TEST_KEYS["jwt_secret"],
        algorithm="HS256",
    )
    assert_error(
        client.get("/captive/instances", headers=_bearer(forged_jti)),
        401,
        "authentication_error",
        "token_invalid",
    )


def test_a_jti_that_is_not_a_string_is_refused(client: TestClient, headers: dict[str, str]) -> None:
    token = jwt.encode(
        {"sub": "x", "org": "org-a", "scope": SCOPE_READ, "exp": int(time.time()) + 60, "jti": 7},
        TEST_KEYS["jwt_secret"],
        algorithm="HS256",
    )
    assert_error(
        client.get("/captive/instances", headers=_bearer(token)), 401, "authentication_error", "token_invalid"
    )


def test_a_token_registered_for_another_org_cannot_be_replayed_for_this_one(
    client: TestClient, auth: TokenFactory
) -> None:
    created = _create(client, auth("org-b"))
    # Same jti, org claim changed: only someone with the secret could sign it, but the row says org-b.
    token = jwt.encode(
        {"sub": "x", "org": "org-a", "scope": SCOPE_READ, "exp": int(time.time()) + 60, "jti": created["id"]},
        TEST_KEYS["jwt_secret"],
        algorithm="HS256",
    )
    auth("org-a")
    assert_error(
        client.get("/captive/instances", headers=_bearer(token)), 401, "authentication_error", "token_invalid"
    )


def test_tokens_without_jti_keep_working(client: TestClient, headers: dict[str, str]) -> None:
    assert "jti" not in jwt.decode(headers["Authorization"][7:], options={"verify_signature": False})
    assert client.get("/captive/instances", headers=headers).status_code == 200


def test_scopes_beyond_the_callers_are_refused(client: TestClient, auth: TokenFactory) -> None:
    writer = auth(scopes=(SCOPE_WRITE,))
    assert_error(
        client.post("/captive/api-tokens", json={"name": "x", "scopes": [SCOPE_ISSUE]}, headers=writer),
        403,
        "permission_error",
        "insufficient_scope",
    )
    created = _create(client, writer)  # absent scopes: the caller's own
    assert created["scopes"] == [SCOPE_WRITE]
    assert _create(client, writer, scopes=[SCOPE_READ])["scopes"] == [SCOPE_READ]


@pytest.mark.parametrize("scopes", [(SCOPE_READ,), (SCOPE_ISSUE,), (SCOPE_READ, SCOPE_ISSUE)])
def test_the_endpoints_need_captive_write(
    client: TestClient, auth: TokenFactory, scopes: tuple[str, ...]
) -> None:
    weak = auth(scopes=scopes)
    for response in (
        client.get("/captive/api-tokens", headers=weak),
        client.post("/captive/api-tokens", json={"name": "x", "scopes": [SCOPE_READ]}, headers=weak),
        client.delete("/captive/api-tokens/anything", headers=weak),
    ):
        assert_error(response, 403, "permission_error", "insufficient_scope")


def test_another_orgs_token_is_404_and_stays_valid(client: TestClient, auth: TokenFactory) -> None:
    theirs = _create(client, auth("org-b"))
    mine = auth("org-a")
    assert_error(
        client.delete(f"/captive/api-tokens/{theirs['id']}", headers=mine),
        404,
        "not_found_error",
        "resource_not_found",
    )
    assert client.get("/captive/api-tokens", headers=mine).json() == []
    assert client.get("/captive/instances", headers=_bearer(theirs["token"])).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x", "ttl_seconds": 59},
        {"name": "x", "ttl_seconds": service.MAX_TTL_SECONDS + 1},
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "scopes": [SCOPE_READ] * 4},
    ],
)
def test_bad_requests_are_400(client: TestClient, headers: dict[str, str], body: dict[str, object]) -> None:
    response = client.post("/captive/api-tokens", json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "invalid_request_error"


def test_list_is_paged_and_capped(client: TestClient, headers: dict[str, str]) -> None:
    for i in range(3):
        _create(client, headers, name=f"t{i}")
    first = client.get("/captive/api-tokens?limit=2", headers=headers)
    assert [t["name"] for t in first.json()] == ["t2", "t1"]
    assert 'rel="next"' in first.headers["Link"]
    assert client.get("/captive/api-tokens?limit=1001", headers=headers).status_code == 400


def test_cap_of_active_tokens_is_400(client: TestClient, headers: dict[str, str], runtime: Runtime) -> None:
    from guestgate.db import utcnow

    with runtime.sessions() as session:
        for i in range(service.MAX_ACTIVE_PER_ORG):
            service.mint(
                "org-a",
                f"t{i}",
                [SCOPE_READ],
                3600,
                "cli",
                settings=runtime.settings,
                session=session,
                now=utcnow(),
            )
    response = client.post("/captive/api-tokens", json={"name": "one more"}, headers=headers)
    assert response.status_code == 400
    assert "at most 100 active" in response.json()["message"]


def test_revoked_unknown_id_is_404(client: TestClient, headers: dict[str, str]) -> None:
    assert_error(
        client.delete("/captive/api-tokens/nope", headers=headers),
        404,
        "not_found_error",
        "resource_not_found",
    )
