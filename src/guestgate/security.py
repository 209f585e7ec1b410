"""Operator tokens (JWT), signed URLs and encryption of secrets at rest.

Tokens: HS256 with the configured secret, or RS256/ES256 with a PEM public key or a JWKS URL.
The algorithm family is fixed by the key that verifies it, so an HS256 token can never be
checked against a public key (the HS/RS confusion attack). With a JWKS URL, `authenticate`
(the async entry the middleware uses) finds the key without blocking the event loop
(`guestgate.jwks`); the synchronous `verify` uses the keys already fetched.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from guestgate.config import Settings
from guestgate.errors import AuthenticationFailed, InsufficientScope, SignatureInvalid, UrlExpired
from guestgate.jwks import JwksKeys

SCOPE_READ = "captive:read"
SCOPE_WRITE = "captive:write"
SCOPE_ISSUE = "coupons:issue"
ALL_SCOPES = (SCOPE_READ, SCOPE_WRITE, SCOPE_ISSUE)
REQUIRED_CLAIMS = ("exp", "sub", "org", "scope")
ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]
# What a token signed with another key is told: the likely cause, never which key this server has.
SIGNATURE_MISMATCH = (
    "The bearer token's signature does not verify with this server's key: it was probably signed "
    "with another key (a token minted with another data directory or another GUESTGATE_JWT_SECRET). "
    "Mint it with the server's settings; 'guestgate token inspect <token>' tells whether a data "
    "directory's key verifies it."
)
REVOKED = (
    "The bearer token was revoked, or it is not registered in this server's database (its 'jti' is "
    "unknown here). Mint a new one: 'guestgate token create' or POST /captive/api-tokens."
)


class Revocations(Protocol):
    """Whether a token id (`jti`) of an org is still accepted: from memory, or from the database."""

    def cached(self, jti: str, org_id: str) -> bool | None:
        """True (accepted) or False (refused) if known recently, None if the database must be asked."""

    def load(self, jti: str, org_id: str) -> bool:
        """Ask the database (blocking) and remember the answer."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's subject, org and scopes."""

    subject: str
    org_id: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        """True if the token grants `scope` (write implies read)."""
        if scope == SCOPE_READ and SCOPE_WRITE in self.scopes:
            return True
        return scope in self.scopes

    def require(self, *accepted: str) -> None:
        """Raise InsufficientScope unless one of `accepted` is granted."""
        if not any(self.has(scope) for scope in accepted):
            raise InsufficientScope(accepted[0])


class TokenVerifier:
    """Verifies operator bearer tokens according to the settings."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._public_key = settings.jwt_public_key
        self.jwks = (
            JwksKeys(
                settings.jwt_jwks_url,
                cache_seconds=settings.jwt_jwks_cache_seconds,
                cooldown_seconds=settings.jwt_jwks_cooldown_seconds,
                timeout_seconds=settings.jwt_jwks_timeout_seconds,
            )
            if settings.jwt_jwks_url
            else None
        )
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        # Set by the runtime (it needs the database); without it a `jti` is not checked.
        self.revocations: Revocations | None = None

    def verify(self, authorization: str | None) -> Principal:
        """The principal of an `Authorization` header value, or AuthenticationFailed (JWKS: cached keys only)."""
        token, header = self._parse(authorization)
        jwks_key = self.jwks.cached(header.get("kid")) if self._uses_jwks(header) and self.jwks else None
        claims = self._decode(token, header, jwks_key)
        principal = self._principal(claims)
        jti = self._registered_id(header, claims)
        if jti is not None and self.revocations is not None:
            accepted = self.revocations.cached(jti, principal.org_id)
            if accepted is None:
                accepted = self.revocations.load(jti, principal.org_id)
            if not accepted:
                raise AuthenticationFailed(REVOKED)
        return principal

    async def authenticate(self, authorization: str | None) -> Principal:
        """`verify`, fetching the JWKS (off the event loop, shared, with a cooldown) when a key is missing."""
        token, header = self._parse(authorization)
        jwks_key = None
        if self._uses_jwks(header) and self.jwks is not None:
            kid = header.get("kid")
            jwks_key = await self.jwks.key(kid if isinstance(kid, str) else None)
        claims = self._decode(token, header, jwks_key)
        principal = self._principal(claims)
        jti = self._registered_id(header, claims)
        if jti is not None and self.revocations is not None:
            # The hot path: a dict lookup. The database is asked (off the loop) once per token
            # and process per GUESTGATE_API_TOKEN_REVOCATION_SECONDS.
            accepted = self.revocations.cached(jti, principal.org_id)
            if accepted is None:
                accepted = await asyncio.to_thread(self.revocations.load, jti, principal.org_id)
            if not accepted:
                raise AuthenticationFailed(REVOKED)
        return principal

    @staticmethod
    def _registered_id(header: dict[str, Any], claims: dict[str, Any]) -> str | None:
        """The `jti` of a token this deployment minted (HS256), or None if there is nothing to check."""
        if header.get("alg") != "HS256" or "jti" not in claims:
            return None
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > 64:
            raise AuthenticationFailed("The token's 'jti' claim must be a string of at most 64 characters.")
        return jti

    def _parse(self, authorization: str | None) -> tuple[str, dict[str, Any]]:
        if not authorization:
            raise AuthenticationFailed("No bearer token was supplied.", code="token_missing")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed(
                "The Authorization header must be 'Bearer <token>'.", code="token_missing"
            )
        if token.partition(" ")[0].lower() == "bearer":
            # `Bearer Bearer ...`: Swagger UI's Authorize adds the scheme to what is pasted.
            raise AuthenticationFailed(
                "The token starts with 'Bearer ': paste the token without the 'Bearer ' prefix."
            )
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed("The bearer token is malformed.") from exc
        return token, header

    def _uses_jwks(self, header: dict[str, Any]) -> bool:
        return header.get("alg") in ASYMMETRIC_ALGORITHMS and self._public_key is None

    def _principal(self, claims: dict[str, Any]) -> Principal:
        org, sub, scope = claims.get("org"), claims.get("sub"), claims.get("scope")
        if not isinstance(org, str) or not org or not isinstance(sub, str) or not isinstance(scope, str):
            raise AuthenticationFailed("The token's 'org', 'sub' and 'scope' claims must be strings.")
        return Principal(subject=sub, org_id=org, scopes=frozenset(scope.split()))

    def _decode(self, token: str, header: dict[str, Any], jwks_key: jwt.PyJWK | None) -> dict[str, Any]:
        alg = header.get("alg")
        key: Any
        if alg == "HS256" and self._secret is not None:
            key, algorithms = self._secret, ["HS256"]
        elif alg in ASYMMETRIC_ALGORITHMS and self._public_key is not None:
            key, algorithms = self._public_key, ASYMMETRIC_ALGORITHMS
        elif alg in ASYMMETRIC_ALGORITHMS and self.jwks is not None:
            if jwks_key is None:
                raise AuthenticationFailed("The token's signing key is not in the JWKS.")
            key, algorithms = jwks_key.key, ASYMMETRIC_ALGORITHMS
        else:
            raise AuthenticationFailed(f"Tokens signed with '{alg}' are not accepted.")
        try:
            return jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={"require": list(REQUIRED_CLAIMS), "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationFailed("The bearer token has expired.", code="token_expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationFailed(SIGNATURE_MISMATCH) from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationFailed(f"The bearer token is invalid: {exc}.") from exc


def mint_token(
    settings: Settings,
    *,
    org: str,
    subject: str,
    scopes: Iterable[str],
    ttl_seconds: int,
    jti: str | None = None,
    issued_at: float | None = None,
) -> str:
    """An HS256 operator token signed with the configured secret (with `jti`: a registered, revocable one)."""
    if settings.jwt_secret is None:
        raise RuntimeError("GUESTGATE_JWT_SECRET is needed to mint tokens")
    now = int(time.time() if issued_at is None else issued_at)
    claims: dict[str, Any] = {
        "sub": subject,
        "org": org,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if jti is not None:
        claims["jti"] = jti
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


class UrlSigner:
    """HMAC-SHA256 signatures for public URLs; signs with the current key, accepts the previous."""

    def __init__(self, settings: Settings) -> None:
        keys = [settings.signing_key, settings.signing_key_previous]
        self._keys = [k.get_secret_value().encode() for k in keys if k is not None]
        if not self._keys:
            raise RuntimeError("GUESTGATE_SIGNING_KEY is not set")

    def sign(self, *parts: str) -> str:
        """Hex HMAC of the parts (joined by newlines) with the current key."""
        return _hmac_hex(self._keys[0], parts)

    def check(self, signature: str, *parts: str) -> bool:
        """True if `signature` matches the parts under any accepted key."""
        if not signature.isascii():  # compare_digest refuses non-ASCII str; no hex digest has it
            return False
        return any(hmac.compare_digest(_hmac_hex(key, parts), signature.lower()) for key in self._keys)

    def verify_expiring(self, signature: str, expires: int, *parts: str, now: float | None = None) -> None:
        """Raise SignatureInvalid or UrlExpired for a URL signed over `parts` and `expires`."""
        if not self.check(signature, *parts, str(expires)):
            raise SignatureInvalid()
        if expires < (time.time() if now is None else now):
            raise UrlExpired()


def _hmac_hex(key: bytes, parts: Iterable[str]) -> str:
    return hmac.new(key, "\n".join(parts).encode(), hashlib.sha256).hexdigest()


class SecretBox:
    """Encrypts secrets at rest (Fernet); decrypts with the current or the previous key."""

    def __init__(self, settings: Settings) -> None:
        keys = [settings.encryption_key, settings.encryption_key_previous]
        fernets = [Fernet(k.get_secret_value().encode()) for k in keys if k is not None]
        if not fernets:
            raise RuntimeError("GUESTGATE_ENCRYPTION_KEY is not set")
        self._fernet = MultiFernet(fernets)

    def seal(self, plaintext: str) -> str:
        """The ciphertext of `plaintext`, as text."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, ciphertext: str) -> str:
        """The plaintext of a value sealed by this or the previous key."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise RuntimeError("a stored secret cannot be decrypted with the configured keys") from exc
