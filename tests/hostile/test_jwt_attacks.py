"""JWT attacks end to end: each forged or broken token against real operator endpoints.

tests/unit/test_security.py checks the verifier alone; here every token goes through the HTTP
stack (middleware, error handlers) so the status and the error body are the ones a client sees.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from guestgate.app import create_app
from guestgate.runtime import Runtime
from guestgate.security import ALL_SCOPES
from tests.core.test_errors import assert_error
from tests.utils.settings import TEST_KEYS, make_settings

ISSUER = "https://idp.example.com/"
AUDIENCE = "guestgate-api"
SECRET = TEST_KEYS["jwt_secret"]
# A read and a write on real endpoints: neither may be reached with a bad token.
PROBES = (
    ("GET", "/captive/instances", None),
    ("POST", "/captive/sites", {"name": "x", "subnets": ["10.9.0.0/16"]}),
)

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_EC = ec.generate_private_key(ec.SECP256R1())
PUBLIC_PEM = (
    _RSA.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for the configured issuer and audience; a None value removes the claim."""
    now = int(time.time())
    found: dict[str, Any] = {
        "sub": "mallory",
        "org": "org-a",
        "scope": " ".join(ALL_SCOPES),
        "iat": now,
        "exp": now + 600,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    found.update(changes)
    return {key: value for key, value in found.items() if value is not None}


def unsigned(payload: dict[str, Any], alg: str = "none") -> str:
    header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}."


@pytest.fixture
def strict_client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """HS256 secret and an RS256 public key, with issuer and audience required."""
    settings = make_settings(
        db_url, tmp_path / "var", jwt_public_key=PUBLIC_PEM, jwt_issuer=ISSUER, jwt_audience=AUDIENCE
    )
    runtime = Runtime.build(settings)
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
        yield client
    runtime.close()


@pytest.fixture
def rs_only_client(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    """Only the RS256 public key: no HS256 secret at all."""
    settings = make_settings(db_url, tmp_path / "var", jwt_secret=None, jwt_public_key=PUBLIC_PEM)
    runtime = Runtime.build(settings)
    with TestClient(create_app(runtime=runtime), raise_server_exceptions=False) as client:
        yield client
    runtime.close()


def assert_refused(client: TestClient, token: str | None, code: str, *, raw: str | None = None) -> None:
    for method, path, body in PROBES:
        if raw is not None:
            headers = {"Authorization": raw}
        else:
            headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        response = client.request(method, path, headers=headers, json=body)
        assert_error(response, 401, "authentication_error", code)
        assert "Traceback" not in response.text


def test_a_valid_token_of_each_kind_is_accepted(strict_client: TestClient) -> None:
    for token in (
        jwt.encode(claims(), SECRET, algorithm="HS256"),
        jwt.encode(claims(), _RSA, algorithm="RS256"),
    ):
        response = strict_client.get("/captive/instances", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_401_token_invalid(strict_client: TestClient, alg: str) -> None:
    assert_refused(strict_client, unsigned(claims(), alg), "token_invalid")
    # An unsigned token carrying a signature of the real token is still unsigned.
    real = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert_refused(strict_client, unsigned(claims(), alg) + real.rsplit(".", 1)[1], "token_invalid")


def test_hs256_signed_with_the_rs256_public_key_is_refused(
    strict_client: TestClient, rs_only_client: TestClient
) -> None:
    # PyJWT refuses to sign HMAC with a PEM key, which is the attack: sign it by hand.
    import hashlib
    import hmac

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    for client, payload in ((strict_client, claims()), (rs_only_client, claims(iss=None, aud=None))):
        body = b64(json.dumps(payload).encode())
        signature = hmac.new(PUBLIC_PEM.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
        assert_refused(client, f"{header}.{body}.{b64(signature)}", "token_invalid")


def test_hs256_token_is_refused_where_only_a_public_key_is_configured(rs_only_client: TestClient) -> None:
    assert_refused(
        rs_only_client, jwt.encode(claims(iss=None, aud=None), SECRET, algorithm="HS256"), "token_invalid"
    )
    ok = jwt.encode(claims(iss=None, aud=None), _RSA, algorithm="RS256")
    assert (
        rs_only_client.get("/captive/instances", headers={"Authorization": f"Bearer {ok}"}).status_code == 200
    )


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize(
    "token",
    [
        pytest.param(
            lambda: jwt.encode(claims(), "another-secret-that-is-32-bytes-long!!", algorithm="HS256"),
            id="hs-wrong-secret",
        ),
        pytest.param(lambda: jwt.encode(claims(), _OTHER_RSA, algorithm="RS256"), id="rs-wrong-key"),
        pytest.param(lambda: jwt.encode(claims(), _EC, algorithm="ES256"), id="es-against-rsa-key"),
        pytest.param(lambda: jwt.encode(claims(), SECRET, algorithm="HS512"), id="hs512-not-accepted"),
        pytest.param(lambda: jwt.encode(claims(), SECRET, algorithm="HS384"), id="hs384-not-accepted"),
    ],
)
def test_wrong_key_or_algorithm_is_401_token_invalid(strict_client: TestClient, token: Any) -> None:
    assert_refused(strict_client, token(), "token_invalid")


def test_expired_token_is_401_token_expired(strict_client: TestClient) -> None:
    past = int(time.time()) - 120
    for key, alg in ((SECRET, "HS256"), (_RSA, "RS256")):
        assert_refused(strict_client, jwt.encode(claims(exp=past), key, algorithm=alg), "token_expired")


def test_future_nbf_and_non_numeric_times_are_401_token_invalid(strict_client: TestClient) -> None:
    future = int(time.time()) + 3600
    assert_refused(strict_client, jwt.encode(claims(nbf=future), SECRET, algorithm="HS256"), "token_invalid")
    assert_refused(
        strict_client, jwt.encode(claims(exp="tomorrow"), SECRET, algorithm="HS256"), "token_invalid"
    )
    assert_refused(strict_client, jwt.encode(claims(iat="now"), SECRET, algorithm="HS256"), "token_invalid")


@pytest.mark.parametrize("missing", ["exp", "sub", "org", "scope"])
def test_each_required_claim_missing_is_401_token_invalid(strict_client: TestClient, missing: str) -> None:
    assert_refused(
        strict_client, jwt.encode(claims(**{missing: None}), SECRET, algorithm="HS256"), "token_invalid"
    )
    assert_refused(
        strict_client, jwt.encode(claims(**{missing: None}), _RSA, algorithm="RS256"), "token_invalid"
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"org": ""},
        {"org": 42},
        {"org": ["org-a"]},
        {"sub": 7},
        {"scope": ["captive:read"]},
        {"scope": None, "scp": "captive:read"},
    ],
    ids=["empty-org", "numeric-org", "list-org", "numeric-sub", "list-scope", "scp-instead-of-scope"],
)
def test_claims_of_the_wrong_type_are_401_token_invalid(
    strict_client: TestClient, changes: dict[str, Any]
) -> None:
    assert_refused(strict_client, jwt.encode(claims(**changes), SECRET, algorithm="HS256"), "token_invalid")


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "someone-else"},
        {"aud": None},
        {"aud": ["someone-else"]},
        {"iss": "https://evil.example.com/"},
        {"iss": None},
    ],
    ids=["wrong-aud", "no-aud", "aud-list-without-ours", "wrong-iss", "no-iss"],
)
def test_wrong_or_missing_audience_and_issuer_are_401_when_configured(
    strict_client: TestClient, changes: dict[str, Any]
) -> None:
    for key, alg in ((SECRET, "HS256"), (_RSA, "RS256")):
        assert_refused(strict_client, jwt.encode(claims(**changes), key, algorithm=alg), "token_invalid")


def test_audience_in_a_list_with_ours_is_accepted(strict_client: TestClient) -> None:
    token = jwt.encode(claims(aud=["other", AUDIENCE]), SECRET, algorithm="HS256")
    assert (
        strict_client.get("/captive/instances", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )


def _truncations() -> list[str]:
    good = jwt.encode(claims(), SECRET, algorithm="HS256")
    header, payload, signature = good.split(".")
    return [
        good[:-1],
        good[:-10],
        f"{header}.{payload}.",
        f"{header}.{payload}",
        f"{header}.",
        header,
        f"{header}.{payload[:-3]}.{signature}",
        f"{header}.{payload}.{signature}.{signature}",
        f"{header}..{signature}",
        good.replace(".", "", 1),
        good + "AAAA",
        "..",
        ".",
        "a.b.c",
        "not-a-token",
        "eyJhbGciOiJIUzI1NiJ9.%%%.###",
        "e30.e30.e30",  # {} . {} . {}
        b64(b"[1,2]") + "." + b64(b"{}") + ".",
        b64(b'{"alg":"HS256"}') + "." + b64(b"\xff\xfe not json") + "." + signature,
        b64(b'{"alg":"HS256"}') + "." + b64(b"[]") + "." + signature,
        b64(b'{"alg":"HS256"}') + "." + b64(b"null") + "." + signature,
        "\u00e9\u00e9.\u00e9.\u00e9",
    ]


def test_garbage_and_truncated_tokens_are_401_token_invalid(strict_client: TestClient) -> None:
    for token in _truncations():
        raw = f"Bearer {token}"
        for method, path, body in PROBES:
            response = strict_client.request(
                method,
                path,
                headers={"Authorization": raw.encode("utf-8")},
                json=body,  # type: ignore[dict-item]
            )
            assert_error(response, 401, "authentication_error", "token_invalid")


@pytest.mark.parametrize("size", [8 * 1024, 64 * 1024, 1024 * 1024])
def test_huge_tokens_are_refused_quickly(strict_client: TestClient, size: int) -> None:
    good = jwt.encode(claims(padding="x" * size), SECRET, algorithm="HS256")
    forged = good[:-5] + ("A" if good[-5] != "A" else "B") + good[-4:]
    started = time.perf_counter()
    assert_refused(strict_client, forged, "token_invalid")
    assert_refused(strict_client, "A" * size, "token_invalid")
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "bearer"],
    ids=["empty", "scheme-only", "scheme-space", "basic", "token-scheme", "lowercase-scheme-only"],
)
def test_malformed_authorization_headers_are_401_token_missing(
    strict_client: TestClient, header: str
) -> None:
    assert_refused(strict_client, None, "token_missing", raw=header)


@pytest.mark.parametrize("param", ["access_token", "token", "jwt", "bearer", "authorization"])
def test_a_valid_token_in_the_query_string_is_not_accepted(strict_client: TestClient, param: str) -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    for method, path, body in PROBES:
        response = strict_client.request(method, f"{path}?{param}={token}", json=body)
        assert_error(response, 401, "authentication_error", "token_missing")
    # Nor in a cookie.
    strict_client.cookies.set("access_token", token)
    response = strict_client.get("/captive/instances")
    strict_client.cookies.clear()
    assert_error(response, 401, "authentication_error", "token_missing")


def test_a_token_with_no_scopes_is_authenticated_but_forbidden(strict_client: TestClient) -> None:
    token = jwt.encode(claims(scope=""), SECRET, algorithm="HS256")
    response = strict_client.get("/captive/instances", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 403, "permission_error", "insufficient_scope")
