"""Bearer authentication and scopes on the operator API: 401 and 403 exactly as the contract says."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from guestgate.security import SCOPE_ISSUE, SCOPE_READ, SCOPE_WRITE
from tests.core.test_errors import assert_error
from tests.utils.settings import TEST_KEYS, TokenFactory

INSTANCE = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600}


def test_no_token_is_401_token_missing(client: TestClient) -> None:
    assert_error(client.get("/captive/instances"), 401, "authentication_error", "token_missing")


def test_no_token_beats_bad_json_and_unknown_route(client: TestClient) -> None:
    assert_error(
        client.post("/captive/instances", content=b"{", headers={"Content-Type": "application/json"}),
        401,
        "authentication_error",
        "token_missing",
    )
    assert_error(client.get("/captive/nothing-here"), 401, "authentication_error", "token_missing")


def test_bad_signature_is_401_token_invalid(client: TestClient) -> None:
    token = jwt.encode(
        {"sub": "x", "org": "org-a", "scope": SCOPE_READ, "exp": int(time.time()) + 60},
        "another-secret-that-is-long-enough-to-use",
        algorithm="HS256",
    )
    response = client.get("/captive/instances", headers={"Authorization": f"Bearer {token}"})
    body = assert_error(response, 401, "authentication_error", "token_invalid")
    # The likely cause (another data directory's key) and what to do, never which key the server has.
    assert "signed with another key" in body["message"]
    assert "guestgate token inspect" in body["message"]
    assert TEST_KEYS["jwt_secret"] not in body["message"] and "/" not in body["message"]  # no path


@pytest.mark.parametrize("prefix", ["Bearer ", "bearer ", "BEARER  "])
def test_a_token_pasted_with_its_bearer_prefix_is_told_to_drop_it(
    client: TestClient, auth: TokenFactory, prefix: str
) -> None:
    pasted = auth()["Authorization"]  # "Bearer <token>", as Swagger UI's Authorize would add it again
    response = client.get("/captive/instances", headers={"Authorization": prefix + pasted})
    body = assert_error(response, 401, "authentication_error", "token_invalid")
    assert body["message"] == "The token starts with 'Bearer ': paste the token without the 'Bearer ' prefix."


def test_expired_token_is_401_token_expired(client: TestClient) -> None:
    token = jwt.encode(
        {"sub": "x", "org": "org-a", "scope": SCOPE_READ, "exp": int(time.time()) - 5},
        TEST_KEYS["jwt_secret"],
        algorithm="HS256",
    )
    response = client.get("/captive/instances", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "authentication_error", "token_expired")


def test_garbage_token_is_401_token_invalid(client: TestClient) -> None:
    response = client.get("/captive/instances", headers={"Authorization": "Bearer not.a.jwt"})
    assert_error(response, 401, "authentication_error", "token_invalid")


def test_read_scope_cannot_write(client: TestClient, auth: TokenFactory) -> None:
    body = assert_error(
        client.post("/captive/instances", json=INSTANCE, headers=auth(scopes=(SCOPE_READ,))),
        403,
        "permission_error",
        "insufficient_scope",
    )
    assert "captive:write" in body["message"]


def test_write_scope_implies_read(client: TestClient, auth: TokenFactory) -> None:
    assert client.get("/captive/instances", headers=auth(scopes=(SCOPE_WRITE,))).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/captive/instances"), ("GET", "/captive/sites"), ("POST", "/captive/instances")],
)
def test_issue_scope_is_limited_to_coupon_work(
    client: TestClient, auth: TokenFactory, method: str, path: str
) -> None:
    response = client.request(method, path, headers=auth(scopes=(SCOPE_ISSUE,)), json=INSTANCE)
    assert_error(response, 403, "permission_error", "insufficient_scope")


def test_org_is_created_on_first_use_of_a_token(client: TestClient) -> None:
    token = jwt.encode(
        {"sub": "x", "org": "brand-new-org", "scope": SCOPE_WRITE, "exp": int(time.time()) + 60},
        TEST_KEYS["jwt_secret"],
        algorithm="HS256",
    )
    response = client.post("/captive/instances", json=INSTANCE, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 201
