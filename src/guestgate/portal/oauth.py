"""Signing a guest in with an identity provider: Google and Microsoft (OpenID Connect), GitHub (OAuth2),
and **[extension]** any OpenID Connect issuer an operator names (`oidc`).

All three use the authorization code flow with PKCE (S256) and `state` (kept by the caller,
see `oauth_state`). For OpenID Connect the endpoints come from the provider's discovery
document and the id_token is checked here: its signature against the provider's JWKS (only
asymmetric algorithms the provider announces), issuer, audience, nonce and expiry. Microsoft's
multi-tenant audiences (`common`, `organizations`) announce the issuer as a template,
`.../{tenantid}/v2.0`, completed from the token's own `tid` before comparing. GitHub is plain
OAuth2: the user comes from `GET /user`, the e-mail from `GET /user/emails` (the primary one,
and only if GitHub has verified it).

Every URL of Google, Microsoft and GitHub is a setting (`GUESTGATE_OAUTH_*`), so tests point
them at a local provider. An `oidc` integration's issuer is tenant input instead: its discovery
document, token endpoint and key set are reached through the outbound policy (purpose
`identity-provider`), the document is checked by `auth_integrations.discovery.parse` (issuer
identical to the configured one, https endpoints unless `GUESTGATE_OAUTH_OIDC_ALLOW_HTTP`) and
cached like the others; the identity comes from the id_token's claims.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import structlog
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jwt
from joserfc.errors import ClaimError, JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from guestgate.auth_integrations import discovery
from guestgate.auth_integrations.discovery import SIGNING_ALGORITHMS
from guestgate.config import Settings
from guestgate.outbound import OutboundPolicy, OutboundRefused

log = structlog.get_logger(__name__)

GOOGLE = "google"
AZURE = "azure"
GITHUB = "github"
OIDC = "oidc"
OIDC_PROVIDERS = (GOOGLE, AZURE, OIDC)
# What a guest sees on the button, whatever the integration is called.
PROVIDER_NAMES = {GOOGLE: "Google", AZURE: "Microsoft", GITHUB: "GitHub", OIDC: "OpenID Connect"}
OIDC_SCOPE = "openid email profile"
GITHUB_SCOPE = "read:user user:email"
CLOCK_LEEWAY_SECONDS = 60
METADATA_SECONDS = 3600
MAX_CACHED_DOCUMENTS = 256
# Identity values are shown on pages and stored: bounded.
MAX_CLAIM_CHARS = 320
_TENANT_TEMPLATE = "{tenantid}"
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class SignInFailed(Exception):
    """The provider did not vouch for a guest; `reason` says at which step (for logs and pages)."""

    UNREACHABLE = "unreachable"
    EXCHANGE = "token_exchange"
    VERIFY = "id_token_invalid"
    USER = "user_lookup"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Endpoints:
    """Where the providers are (settings; tests point them at local servers)."""

    google_discovery_url: str = "https://accounts.google.com/.well-known/openid-configuration"
    azure_authority: str = "https://login.microsoftonline.com"
    github_base_url: str = "https://github.com"
    github_api_url: str = "https://api.github.com"
    timeout_seconds: float = 10.0
    # `oidc` issuers and endpoints may be http:// (tests only).
    oidc_allow_http: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Endpoints:
        """The endpoints configured by `GUESTGATE_OAUTH_*`."""
        return cls(
            google_discovery_url=settings.oauth_google_discovery_url,
            azure_authority=settings.oauth_azure_authority.rstrip("/"),
            github_base_url=settings.oauth_github_base_url.rstrip("/"),
            github_api_url=settings.oauth_github_api_url.rstrip("/"),
            timeout_seconds=settings.oauth_timeout_seconds,
            oidc_allow_http=settings.oauth_oidc_allow_http,
        )

    def discovery_url(self, provider: str, tenant: str | None) -> str:
        """The OpenID discovery document of Google, or of a Microsoft tenant."""
        if provider == GOOGLE:
            return self.google_discovery_url
        return f"{self.azure_authority}/{tenant or 'common'}/v2.0/.well-known/openid-configuration"


@dataclass(frozen=True)
class Integration:
    """An auth integration as the sign-in needs it (the secret decrypted, never shown)."""

    id: str
    org_id: str
    type: str
    client_id: str
    client_secret: str = field(repr=False)
    tenant: str | None = None
    issuer: str | None = None
    # `oidc`: the authorization endpoint's host found when saved (the one the auth window opens).
    sign_in_host: str | None = None


@dataclass(frozen=True)
class Identity:
    """Who the provider says the guest is: what a session records."""

    provider: str
    subject: str
    email: str | None
    name: str | None

    def as_record(self) -> dict[str, str | None]:
        """The SiteUser `identity` object."""
        return {"provider": self.provider, "subject": self.subject, "email": self.email, "name": self.name}


@dataclass(frozen=True)
class Attempt:
    """The per-attempt values only guestgate knows until the callback: state, PKCE verifier, nonce."""

    state: str
    code_verifier: str
    nonce: str

    @classmethod
    def new(cls) -> Attempt:
        """Fresh random values (the verifier is 64 characters, inside RFC 7636's 43..128)."""
        return cls(
            state=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(48),
            nonce=secrets.token_urlsafe(24),
        )


class IdentityProviders:
    """Talks to the providers: authorization URLs, code exchange, id_token checks, GitHub's API.

    Discovery documents and key sets are cached for an hour; an id_token signed with a key the
    cached set does not have fetches the set again once (the provider rotated its keys).
    """

    def __init__(
        self,
        endpoints: Endpoints,
        *,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        self.endpoints = endpoints
        self._transport = transport
        self._clock = clock
        # `oidc` issuers are tenant input: reached only through this policy (none: refused).
        self._outbound = outbound
        self._documents: dict[str, tuple[float, dict[str, Any]]] = {}
        self._http: httpx2.AsyncClient | None = None
        self._tenant_http: httpx2.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self, integration: Integration | None = None) -> httpx2.AsyncClient:
        """The pool for the deployment's providers, or for a tenant's `oidc` issuer (guarded)."""
        # A pool's connections belong to the event loop that opened them.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._http = self._tenant_http = None
            self._loop = loop
        if integration is not None and integration.type == OIDC:
            if self._tenant_http is None:
                self._tenant_http = httpx2.AsyncClient(
                    transport=self._tenant_transport(),
                    timeout=self.endpoints.timeout_seconds,
                    follow_redirects=False,
                )
            return self._tenant_http
        if self._http is None:
            self._http = httpx2.AsyncClient(
                transport=self._transport, timeout=self.endpoints.timeout_seconds, follow_redirects=False
            )
        return self._http

    def _tenant_transport(self) -> httpx2.AsyncBaseTransport:
        if self._transport is not None:
            return self._transport
        if self._outbound is None:
            raise SignInFailed(SignInFailed.UNREACHABLE, "no outbound policy for an oidc issuer")
        return self._outbound.async_transport("identity-provider")

    def _oauth_client(
        self, integration: Integration, redirect_uri: str, *, auth_method: str = "client_secret_post"
    ) -> AsyncOAuth2Client:
        scope = GITHUB_SCOPE if integration.type == GITHUB else OIDC_SCOPE
        return AsyncOAuth2Client(
            client_id=integration.client_id,
            client_secret=integration.client_secret,
            # Google, Microsoft and GitHub all document the secret in the form body; an `oidc`
            # issuer's choice comes from its discovery document.
            token_endpoint_auth_method=auth_method,
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            transport=self._tenant_transport() if integration.type == OIDC else self._transport,
            timeout=self.endpoints.timeout_seconds,
        )

    async def aclose(self) -> None:
        """Close the connection pools."""
        for client in (self._http, self._tenant_http):
            if client is not None:
                await client.aclose()
        self._http = self._tenant_http = None

    async def authorization_url(
        self, integration: Integration, *, redirect_uri: str, attempt: Attempt
    ) -> str:
        """Where to send the guest: the provider's consent page for this attempt."""
        extra: dict[str, str] = {}
        if integration.type == GITHUB:
            endpoint = f"{self.endpoints.github_base_url}/login/oauth/authorize"
        else:
            metadata = await self.metadata(integration)
            endpoint = _text(metadata, "authorization_endpoint")
            extra["nonce"] = attempt.nonce
            if integration.type == OIDC:
                self._warn_if_moved(integration, metadata)
        client = self._oauth_client(integration, redirect_uri)
        try:
            url, _ = client.create_authorization_url(
                endpoint, state=attempt.state, code_verifier=attempt.code_verifier, **extra
            )
        finally:
            await client.aclose()
        return str(url)

    async def identify(
        self, integration: Integration, *, code: str, redirect_uri: str, attempt: Attempt
    ) -> Identity:
        """Exchange the callback's code and return who the guest is; SignInFailed otherwise."""
        if integration.type == GITHUB:
            token = await self._exchange(
                integration,
                f"{self.endpoints.github_base_url}/login/oauth/access_token",
                code,
                redirect_uri,
                attempt,
            )
            return await self._github_user(str(token["access_token"]))
        metadata = await self.metadata(integration)
        auth_method = "client_secret_post"
        if integration.type == OIDC:
            auth_method = self._discovered(integration, metadata).token_auth_method
        token = await self._exchange(
            integration,
            _text(metadata, "token_endpoint"),
            code,
            redirect_uri,
            attempt,
            auth_method=auth_method,
        )
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise SignInFailed(SignInFailed.VERIFY, "the token response has no id_token")
        claims = await self.verify_id_token(integration, id_token, nonce=attempt.nonce)
        return _oidc_identity(integration.type, claims)

    async def metadata(self, integration: Integration) -> dict[str, Any]:
        """The provider's discovery document (cached)."""
        if integration.type == OIDC:
            url = discovery.discovery_url(integration.issuer or "")
            metadata = await self._document(url, client=self._client(integration))
            self._discovered(integration, metadata)
            return metadata
        url = self.endpoints.discovery_url(integration.type, integration.tenant)
        metadata = await self._document(url)
        for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
            _text(metadata, key)
        return metadata

    def _warn_if_moved(self, integration: Integration, metadata: dict[str, Any]) -> None:
        # The auth window opens the host found when the integration was saved; a provider that
        # moved its login page since is blocked for guests until the integration is saved again.
        host = self._discovered(integration, metadata).sign_in_host
        if integration.sign_in_host is not None and host != integration.sign_in_host:
            log.warning(
                "portal.oauth_sign_in_host_moved",
                integration_id=integration.id,
                saved=integration.sign_in_host,
                discovered=host,
                fix="save the auth integration again (PUT) to open the new host in the auth window",
            )

    def _discovered(self, integration: Integration, metadata: dict[str, Any]) -> discovery.Discovered:
        try:
            return discovery.parse(
                metadata, issuer=integration.issuer or "", allow_http=self.endpoints.oidc_allow_http
            )
        except discovery.DiscoveryFailed as exc:
            raise SignInFailed(SignInFailed.UNREACHABLE, f"the issuer {exc}") from exc

    async def verify_id_token(self, integration: Integration, id_token: str, *, nonce: str) -> dict[str, Any]:
        """The claims of an id_token issued to this integration for this attempt; SignInFailed otherwise."""
        metadata = await self.metadata(integration)
        announced = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [alg for alg in SIGNING_ALGORITHMS if alg in announced]
        if not algorithms:
            raise SignInFailed(SignInFailed.VERIFY, f"no acceptable signing algorithm in {announced!r}")
        jwks_uri = _text(metadata, "jwks_uri")
        client = self._client(integration)
        try:
            token = await self._decode(id_token, jwks_uri, algorithms, refresh=False, client=client)
        except _UnknownKey:
            token = await self._decode(id_token, jwks_uri, algorithms, refresh=True, client=client)
        claims: dict[str, Any] = dict(token.claims)
        issuer = _expected_issuer(_text(metadata, "issuer"), claims)
        registry = JWTClaimsRegistry(
            now=int(self._clock()),
            leeway=CLOCK_LEEWAY_SECONDS,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": integration.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except ClaimError as exc:
            raise SignInFailed(SignInFailed.VERIFY, f"{exc.error} '{exc.claim}': {exc.description}") from exc
        except JoseError as exc:
            raise SignInFailed(SignInFailed.VERIFY, f"{exc.error}: {exc.description or ''}".strip()) from exc
        audience = claims["aud"]
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != integration.client_id:
            # OpenID Connect Core 3.1.3.7: with several audiences, azp must name us.
            raise SignInFailed(SignInFailed.VERIFY, "several audiences and azp is not this client")
        return claims

    async def _decode(
        self,
        id_token: str,
        jwks_uri: str,
        algorithms: list[str],
        *,
        refresh: bool,
        client: httpx2.AsyncClient,
    ) -> Any:
        document = await self._document(jwks_uri, refresh=refresh, client=client)
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise SignInFailed(SignInFailed.VERIFY, f"the provider's key set is unusable: {exc}") from exc
        try:
            return jwt.decode(id_token, keys, algorithms=algorithms)
        except JoseError as exc:
            if exc.error in ("invalid_key_id", "missing_key") and not refresh:
                raise _UnknownKey from exc
            raise SignInFailed(SignInFailed.VERIFY, f"{exc.error}: {exc.description or ''}".strip()) from exc
        except ValueError as exc:
            raise SignInFailed(SignInFailed.VERIFY, f"malformed id_token: {exc}") from exc

    async def _document(
        self, url: str, *, refresh: bool = False, client: httpx2.AsyncClient | None = None
    ) -> dict[str, Any]:
        now = time.monotonic()
        cached = self._documents.get(url)
        if cached is not None and cached[0] > now and not refresh:
            return cached[1]
        try:
            document = await _json_of(client or self._client(), url)
        except (httpx2.HTTPError, OutboundRefused) as exc:
            raise SignInFailed(SignInFailed.UNREACHABLE, f"GET {url}: {exc}") from exc
        except ValueError as exc:
            raise SignInFailed(SignInFailed.UNREACHABLE, f"GET {url}: not JSON ({exc})") from exc
        if not isinstance(document, dict):
            raise SignInFailed(SignInFailed.UNREACHABLE, f"GET {url}: not a JSON object")
        if len(self._documents) >= MAX_CACHED_DOCUMENTS:
            self._documents.clear()
        self._documents[url] = (now + METADATA_SECONDS, document)
        return document

    async def _exchange(
        self,
        integration: Integration,
        endpoint: str,
        code: str,
        redirect_uri: str,
        attempt: Attempt,
        *,
        auth_method: str = "client_secret_post",
    ) -> dict[str, Any]:
        client = self._oauth_client(integration, redirect_uri, auth_method=auth_method)
        try:
            token = await client.fetch_token(
                endpoint, grant_type="authorization_code", code=code, code_verifier=attempt.code_verifier
            )
        except OAuthError as exc:
            raise SignInFailed(
                SignInFailed.EXCHANGE, f"{exc.error}: {exc.description or ''}".strip()
            ) from exc
        except (httpx2.TransportError, OutboundRefused) as exc:
            raise SignInFailed(SignInFailed.UNREACHABLE, f"POST {endpoint}: {exc}") from exc
        except (httpx2.HTTPError, ValueError) as exc:
            raise SignInFailed(SignInFailed.EXCHANGE, f"POST {endpoint}: {exc}") from exc
        finally:
            await client.aclose()
        if not isinstance(token.get("access_token"), str) or not token["access_token"]:
            raise SignInFailed(SignInFailed.EXCHANGE, "the token response has no access_token")
        return dict(token)

    async def _github_user(self, access_token: str) -> Identity:
        headers = {**_GITHUB_HEADERS, "Authorization": f"Bearer {access_token}"}
        user = await self._github_get("/user", headers)
        emails = await self._github_get("/user/emails", headers)
        if not isinstance(user, dict) or not isinstance(user.get("id"), int | str):
            raise SignInFailed(SignInFailed.USER, "GET /user did not name a user")
        email = None
        if isinstance(emails, list):
            email = next(
                (
                    item["email"]
                    for item in emails
                    if isinstance(item, dict)
                    and item.get("primary") is True
                    and item.get("verified") is True
                    and isinstance(item.get("email"), str)
                ),
                None,
            )
        name = user.get("name") or user.get("login")
        return Identity(
            provider=GITHUB,
            subject=_bounded(str(user["id"])) or "",
            email=_bounded(email),
            name=_bounded(name if isinstance(name, str) else None),
        )

    async def _github_get(self, path: str, headers: dict[str, str]) -> Any:
        url = f"{self.endpoints.github_api_url}{path}"
        try:
            response = await self._client().get(url, headers=headers)
        except httpx2.HTTPError as exc:
            raise SignInFailed(SignInFailed.UNREACHABLE, f"GET {url}: {exc}") from exc
        if response.status_code != 200:
            raise SignInFailed(SignInFailed.USER, f"GET {url}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise SignInFailed(SignInFailed.USER, f"GET {url}: not JSON") from exc


async def _json_of(client: httpx2.AsyncClient, url: str) -> Any:
    """GET a JSON document of at most MAX_DOCUMENT_BYTES (an `oidc` issuer is tenant input)."""
    async with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
        response.raise_for_status()
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > discovery.MAX_DOCUMENT_BYTES:
                raise ValueError("larger than the largest document accepted")
    return json.loads(bytes(body))


class _UnknownKey(Exception):
    """The id_token names a key the cached key set does not have."""


def _text(document: dict[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise SignInFailed(SignInFailed.UNREACHABLE, f"the discovery document has no '{key}'")
    return value


def _expected_issuer(announced: str, claims: dict[str, Any]) -> str:
    """The issuer the token must name: Microsoft's `{tenantid}` template is filled from `tid`."""
    if _TENANT_TEMPLATE not in announced:
        return announced
    tenant = claims.get("tid")
    if not isinstance(tenant, str) or not _GUID.fullmatch(tenant):
        raise SignInFailed(SignInFailed.VERIFY, "a multi-tenant id_token without a tenant id (tid)")
    return announced.replace(_TENANT_TEMPLATE, tenant)


def _oidc_identity(provider: str, claims: dict[str, Any]) -> Identity:
    email = claims.get("email")
    if claims.get("email_verified") is False:
        # Google says so for addresses it has not verified: not a fact about the guest.
        email = None
    if provider == AZURE and not isinstance(email, str):
        # Work accounts carry their sign-in name (usually their address) here instead.
        username = claims.get("preferred_username")
        email = username if isinstance(username, str) and "@" in username else None
    name = claims.get("name")
    return Identity(
        provider=provider,
        subject=_bounded(str(claims["sub"])) or "",
        email=_bounded(email if isinstance(email, str) else None),
        name=_bounded(name if isinstance(name, str) else None),
    )


def _bounded(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    return text[:MAX_CLAIM_CHARS] or None
