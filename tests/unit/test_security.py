"""Operator token verification, URL signing with key rotation, secret encryption."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr

from guestgate.config import Settings
from guestgate.errors import AuthenticationFailed, InsufficientScope, SignatureInvalid, UrlExpired
from guestgate.security import (
    SCOPE_ISSUE,
    SCOPE_READ,
    SCOPE_WRITE,
    Principal,
    SecretBox,
    TokenVerifier,
    UrlSigner,
    mint_token,
)

SECRET = "s" * 40
KEY_A = base64.urlsafe_b64encode(b"a" * 32).decode()
KEY_B = base64.urlsafe_b64encode(b"b" * 32).decode()


def hs_settings(**extra: object) -> Settings:
    return Settings.model_validate({"jwt_secret": SecretStr(SECRET), **extra})


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {"sub": "me", "org": "acme", "scope": SCOPE_READ, "exp": now + 60, "iat": now}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def verify(token: str, settings: Settings | None = None) -> Principal:
    return TokenVerifier(settings or hs_settings()).verify(f"Bearer {token}")


def code_of(token: str, settings: Settings | None = None) -> str:
    with pytest.raises(AuthenticationFailed) as info:
        verify(token, settings)
    return info.value.code


def test_minted_token_round_trips() -> None:
    settings = hs_settings()
    token = mint_token(settings, org="acme", subject="ops", scopes=[SCOPE_WRITE], ttl_seconds=60)
    principal = verify(token, settings)
    assert principal == Principal(subject="ops", org_id="acme", scopes=frozenset({SCOPE_WRITE}))


def test_missing_header_is_token_missing() -> None:
    with pytest.raises(AuthenticationFailed) as info:
        TokenVerifier(hs_settings()).verify(None)
    assert info.value.code == "token_missing"


def test_basic_scheme_is_token_missing() -> None:
    with pytest.raises(AuthenticationFailed) as info:
        TokenVerifier(hs_settings()).verify("Basic dXNlcjpwYXNz")
    assert info.value.code == "token_missing"


def test_expired_token_is_token_expired() -> None:
    token = jwt.encode(claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256")
    assert code_of(token) == "token_expired"


def test_wrong_key_is_token_invalid() -> None:
    token = jwt.encode(claims(), "t" * 40, algorithm="HS256")
    assert code_of(token) == "token_invalid"


def test_alg_none_is_refused() -> None:
    token = jwt.encode(claims(), None, algorithm="none")
    assert code_of(token) == "token_invalid"


@pytest.mark.parametrize("missing", ["org", "sub", "scope", "exp"])
def test_each_required_claim_missing_is_token_invalid(missing: str) -> None:
    token = jwt.encode(claims(**{missing: None}), SECRET, algorithm="HS256")
    assert code_of(token) == "token_invalid"


def test_future_nbf_is_token_invalid() -> None:
    token = jwt.encode(claims(nbf=int(time.time()) + 300), SECRET, algorithm="HS256")
    assert code_of(token) == "token_invalid"


def test_audience_and_issuer_are_checked_when_configured() -> None:
    settings = hs_settings(jwt_audience="guestgate", jwt_issuer="https://idp.example")
    good = jwt.encode(claims(aud="guestgate", iss="https://idp.example"), SECRET, algorithm="HS256")
    assert verify(good, settings).org_id == "acme"
    wrong_aud = jwt.encode(claims(aud="other", iss="https://idp.example"), SECRET, algorithm="HS256")
    assert code_of(wrong_aud, settings) == "token_invalid"
    no_iss = jwt.encode(claims(aud="guestgate"), SECRET, algorithm="HS256")
    assert code_of(no_iss, settings) == "token_invalid"


def _pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_rs256_and_es256_tokens_verify_with_the_configured_public_key() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings = Settings(jwt_public_key=_pem(rsa_key))
    assert verify(jwt.encode(claims(), rsa_key, algorithm="RS256"), settings).subject == "me"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    settings = Settings(jwt_public_key=_pem(ec_key))
    assert verify(jwt.encode(claims(), ec_key, algorithm="ES256"), settings).subject == "me"


def test_hs256_signed_with_the_public_key_is_refused() -> None:
    """The HS/RS confusion attack: the public key used as an HMAC secret."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = _pem(rsa_key)
    settings = Settings(jwt_public_key=pem)
    forged = _hmac_token_with_key(pem)
    assert code_of(forged, settings) == "token_invalid"


def _hmac_token_with_key(key: str) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    signature = hmac.new(key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def test_write_scope_implies_read_but_not_issue() -> None:
    writer = Principal("me", "acme", frozenset({SCOPE_WRITE}))
    assert writer.has(SCOPE_READ)
    assert not writer.has(SCOPE_ISSUE)
    issuer = Principal("me", "acme", frozenset({SCOPE_ISSUE}))
    issuer.require(SCOPE_READ, SCOPE_ISSUE)
    with pytest.raises(InsufficientScope):
        issuer.require(SCOPE_WRITE)


def test_signed_url_accepts_previous_key_during_rotation() -> None:
    old = UrlSigner(Settings(signing_key=SecretStr("o" * 32)))
    rotated = UrlSigner(Settings(signing_key=SecretStr("n" * 32), signing_key_previous=SecretStr("o" * 32)))
    expires = int(time.time()) + 60
    signature = old.sign("coupons", "sid", str(expires))
    rotated.verify_expiring(signature, expires, "coupons", "sid")
    assert rotated.sign("coupons", "sid", str(expires)) != signature


def test_signed_url_tampering_and_expiry() -> None:
    signer = UrlSigner(Settings(signing_key=SecretStr("n" * 32)))
    expires = int(time.time()) + 60
    signature = signer.sign("coupons", "sid", str(expires))
    with pytest.raises(SignatureInvalid):
        signer.verify_expiring(signature, expires, "coupons", "other")
    with pytest.raises(SignatureInvalid):
        signer.verify_expiring(signature, expires + 1, "coupons", "sid")
    past = int(time.time()) - 1
    with pytest.raises(UrlExpired):
        signer.verify_expiring(signer.sign("coupons", "sid", str(past)), past, "coupons", "sid")


def test_secret_box_reads_values_sealed_with_the_previous_key() -> None:
    old_box = SecretBox(Settings(encryption_key=SecretStr(KEY_A)))
    sealed = old_box.seal("hunter2")
    assert "hunter2" not in sealed
    rotated = SecretBox(Settings(encryption_key=SecretStr(KEY_B), encryption_key_previous=SecretStr(KEY_A)))
    assert rotated.open(sealed) == "hunter2"
    with pytest.raises(RuntimeError):
        SecretBox(Settings(encryption_key=SecretStr(KEY_B))).open(sealed)


def test_non_ascii_signature_is_invalid_not_a_crash() -> None:
    signer = UrlSigner(Settings(signing_key=SecretStr("n" * 32)))
    assert signer.check("é" * 64, "coupons", "sid") is False
