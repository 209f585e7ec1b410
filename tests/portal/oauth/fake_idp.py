"""In-process identity providers behind an httpx2 MockTransport: an OpenID provider and GitHub.

`FakeOIDC` plays Google (or a Microsoft tenant): discovery, JWKS, a token endpoint that checks
the client secret, the redirect URI and the PKCE verifier, and id_tokens signed with its RSA
key. `authorize()` does what the guest's browser and the consent screen do: it checks the
authorization request and returns the callback's query. Tests bend it through attributes
(`claims_patch`, `token_error`, `sign_with`, ...) to produce every way a provider can fail.

`FakeGitHub` answers GitHub's documented endpoints: `/login/oauth/access_token` (JSON when
asked with `Accept: application/json`, HTTP 200 with an `error` on failure, as GitHub does),
`/user` and `/user/emails`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "guestgate-client"
CLIENT_SECRET = "s3cret-of-the-client"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def query_of(url: str) -> dict[str, str]:
    """The first value of each query parameter of a URL."""
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class Authorization:
    """What the provider remembers about a code between the consent and the token request."""

    redirect_uri: str
    challenge: str | None
    challenge_method: str | None
    nonce: str | None
    subject: str


@dataclass
class FakeOIDC:
    """An OpenID provider: Google-like at `base`, or a Microsoft tenant with `tenant` set."""

    base: str = "https://accounts.google.test"
    tenant: str | None = None
    # Microsoft's multi-tenant metadata names the issuer as a template.
    templated_issuer: bool = False
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    codes: dict[str, Authorization] = field(default_factory=dict)
    requests: list[httpx2.Request] = field(default_factory=list)
    # Knobs for failures.
    claims_patch: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    token_error: str | None = None
    token_status: int = 200
    omit_id_token: bool = False
    sign_with: RSAKey | None = None
    header_patch: dict[str, Any] = field(default_factory=dict)
    discovery_status: int = 200
    published_keys: list[RSAKey] | None = None

    @property
    def issuer(self) -> str:
        """The issuer id_tokens carry."""
        return f"{self.base}/{self.tenant}/v2.0" if self.tenant else self.base

    @property
    def announced_issuer(self) -> str:
        """The issuer the discovery document names."""
        return f"{self.base}/{{tenantid}}/v2.0" if self.templated_issuer else self.issuer

    def metadata(self) -> dict[str, Any]:
        """The discovery document."""
        root = f"{self.base}/{self.tenant}/v2.0" if self.tenant else self.base
        return {
            "issuer": self.announced_issuer,
            "authorization_endpoint": f"{root}/authorize",
            "token_endpoint": f"{root}/token",
            "jwks_uri": f"{root}/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"],
        }

    def authorize(self, url: str, *, subject: str = "108774532", deny: bool = False) -> dict[str, str]:
        """The guest consents at `url`: the callback's query (`code` and `state`, or an error)."""
        params = query_of(url)
        assert url.startswith(self.metadata()["authorization_endpoint"] + "?"), url
        assert params["client_id"] == CLIENT_ID
        assert params["response_type"] == "code"
        assert params["scope"] == "openid email profile"
        assert params["code_challenge_method"] == "S256"
        assert len(params["state"]) >= 32 and len(params["nonce"]) >= 16
        if deny:
            return {"error": "access_denied", "state": params["state"]}
        code = secrets.token_urlsafe(16)
        self.codes[code] = Authorization(
            redirect_uri=params["redirect_uri"],
            challenge=params.get("code_challenge"),
            challenge_method=params.get("code_challenge_method"),
            nonce=params.get("nonce"),
            subject=subject,
        )
        return {"code": code, "state": params["state"]}

    def id_token(self, claims: dict[str, Any], *, key: RSAKey | None = None) -> str:
        """An id_token with `claims`, signed with this provider's key (or `key`)."""
        signer = key or self.key
        header = {"alg": "RS256", "kid": signer.kid, **self.header_patch}
        return jwt.encode(header, claims, signer)

    def claims_for(self, grant: Authorization) -> dict[str, Any]:
        """The id_token claims of a code."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": grant.subject,
            "iat": now,
            "exp": now + 3600,
            "nonce": grant.nonce,
            "name": "Ada Lovelace",
        }
        if self.tenant:
            claims.update(tid=self.tenant, preferred_username="ada@contoso.test")
        else:
            claims.update(email="ada@example.test", email_verified=True)
        return self.claims_patch(claims) if self.claims_patch else claims

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        """The provider's HTTP endpoints."""
        self.requests.append(request)
        metadata = self.metadata()
        url = str(request.url).split("?")[0]
        if url.endswith("/.well-known/openid-configuration"):
            return httpx2.Response(self.discovery_status, json=metadata)
        if url == metadata["jwks_uri"]:
            keys = self.published_keys if self.published_keys is not None else [self.key]
            return httpx2.Response(200, json={"keys": [key.as_dict(private=False) for key in keys]})
        if url == metadata["token_endpoint"] and request.method == "POST":
            return self._token(request)
        return httpx2.Response(404, json={"error": "not_found"})

    def _token(self, request: httpx2.Request) -> httpx2.Response:
        form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        if self.token_error:
            return httpx2.Response(self.token_status or 400, json={"error": self.token_error})
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return httpx2.Response(401, json={"error": "invalid_client"})
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return httpx2.Response(400, json={"error": "invalid_grant"})
        if form.get("redirect_uri") != grant.redirect_uri:
            return httpx2.Response(400, json={"error": "invalid_grant", "error_description": "redirect_uri"})
        verifier = form.get("code_verifier", "")
        if grant.challenge_method != "S256" or not verifier or s256(verifier) != grant.challenge:
            return httpx2.Response(400, json={"error": "invalid_grant", "error_description": "PKCE"})
        body: dict[str, Any] = {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 3600,
        }
        if not self.omit_id_token:
            body["id_token"] = self.id_token(self.claims_for(grant), key=self.sign_with)
        return httpx2.Response(self.token_status, json=body)


@dataclass
class FakeGitHub:
    """GitHub's OAuth endpoints and the two API calls guestgate makes."""

    base: str = "https://github.test"
    api: str = "https://api.github.test"
    user: dict[str, Any] = field(
        default_factory=lambda: {"id": 583231, "login": "octocat", "name": "The Octocat", "email": None}
    )
    emails: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"email": "octocat@old.example", "primary": False, "verified": False, "visibility": None},
            {"email": "octocat@github.test", "primary": True, "verified": True, "visibility": "private"},
        ]
    )
    codes: dict[str, Authorization] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    requests: list[httpx2.Request] = field(default_factory=list)
    user_status: int = 200

    def authorize(self, url: str, *, deny: bool = False) -> dict[str, str]:
        """The guest authorizes the OAuth app at `url`: the callback's query."""
        params = query_of(url)
        assert url.startswith(f"{self.base}/login/oauth/authorize?"), url
        assert params["client_id"] == CLIENT_ID
        assert params["scope"] == "read:user user:email"
        assert params["code_challenge_method"] == "S256"
        assert "nonce" not in params
        if deny:
            # GitHub's documented answer when the user cancels.
            return {
                "error": "access_denied",
                "error_description": "The user has denied your application access.",
                "state": params["state"],
            }
        code = secrets.token_hex(10)
        self.codes[code] = Authorization(
            redirect_uri=params["redirect_uri"],
            challenge=params.get("code_challenge"),
            challenge_method=params.get("code_challenge_method"),
            nonce=None,
            subject=str(self.user["id"]),
        )
        return {"code": code, "state": params["state"]}

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        """GitHub's endpoints."""
        self.requests.append(request)
        url = str(request.url).split("?")[0]
        if url == f"{self.base}/login/oauth/access_token" and request.method == "POST":
            return self._access_token(request)
        if url in (f"{self.api}/user", f"{self.api}/user/emails"):
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.tokens:
                return httpx2.Response(401, json={"message": "Bad credentials"})
            assert request.headers["accept"] == "application/vnd.github+json"
            if url.endswith("/user"):
                return httpx2.Response(self.user_status, json=self.user)
            return httpx2.Response(200, json=self.emails)
        return httpx2.Response(404, json={"message": "Not Found"})

    def _access_token(self, request: httpx2.Request) -> httpx2.Response:
        form = {key: values[0] for key, values in parse_qs(request.content.decode()).items()}
        if "application/json" not in request.headers.get("accept", ""):
            # Without it GitHub answers form-encoded, which guestgate must never depend on.
            return httpx2.Response(
                200, text="error=unsupported", headers={"content-type": "application/x-www-form-urlencoded"}
            )
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return httpx2.Response(200, json={"error": "incorrect_client_credentials"})
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("redirect_uri") != grant.redirect_uri:
            return httpx2.Response(200, json={"error": "bad_verification_code"})
        if s256(form.get("code_verifier", "")) != grant.challenge:
            return httpx2.Response(200, json={"error": "bad_verification_code"})
        token = "gho_" + secrets.token_hex(18)
        self.tokens.add(token)
        return httpx2.Response(
            200, json={"access_token": token, "token_type": "bearer", "scope": "read:user,user:email"}
        )


def transport(*providers: FakeOIDC | FakeGitHub) -> httpx2.MockTransport:
    """One transport answering for every fake, by host."""
    hosts: dict[str, Callable[[httpx2.Request], httpx2.Response]] = {}
    for provider in providers:
        if isinstance(provider, FakeGitHub):
            hosts[urlsplit(provider.base).netloc] = provider.handle
            hosts[urlsplit(provider.api).netloc] = provider.handle
        else:
            hosts[urlsplit(provider.base).netloc] = provider.handle

    def route(request: httpx2.Request) -> httpx2.Response:
        handler = hosts.get(request.url.netloc.decode())
        if handler is None:
            return httpx2.Response(502, text=json.dumps({"error": "no such host"}))
        return handler(request)

    return httpx2.MockTransport(route)
