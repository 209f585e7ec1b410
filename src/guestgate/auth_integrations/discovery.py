"""OpenID Connect discovery of an `oidc` integration's issuer: fetched, checked, reduced to what sign-in needs.

An `oidc` integration names an issuer URL (**[extension]**). Its discovery document is
`<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0, section 4), fetched
through the outbound policy (purpose `identity-provider`: the issuer is tenant input, so it may
not aim guestgate at its own networks), without following redirects, at most
MAX_DOCUMENT_BYTES. It is accepted when:

- its `issuer` is exactly the configured one (section 4.3: a document served for another
  issuer is refused, so a mix-up cannot vouch for guests);
- `authorization_endpoint`, `token_endpoint` and `jwks_uri` are absolute `https://` URLs
  (`http://` too when the deployment allows it, `GUESTGATE_OAUTH_OIDC_ALLOW_HTTP`, for tests);
- what it announces allows our flow: the `code` response type, PKCE S256, an asymmetric
  id_token signing algorithm, and a client authentication guestgate speaks
  (`client_secret_post`, else `client_secret_basic`, the default when none is announced).

The API checks this when an integration is created or replaced (`Discoverer`, blocking: the
routes run in a worker thread) and stores the issuer and the host of the authorization endpoint
(`sign_in_host`): that host is the one the *guest's browser* must reach before it is signed in,
so it joins the instance's auth-window walled garden like the presets of the other types. The
token endpoint, key set and user info are called by guestgate, not by the browser, so they do
not. The portal fetches the document again at sign-in (cached, see `guestgate.portal.oauth`)
and checks it with `parse`.

Errors are in our words: which step failed, never what the remote server answered.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx2

from guestgate.config import Settings
from guestgate.outbound import OutboundPolicy, OutboundRefused, describe_failure
from guestgate.walled_garden import hostnames

WELL_KNOWN = "/.well-known/openid-configuration"
MAX_ISSUER_CHARS = 500
MAX_DOCUMENT_BYTES = 256 * 1024
# Asymmetric only: an HS256 id_token would be "signed" with our own client secret.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
# In the order guestgate prefers them (the other providers document the form body too).
AUTH_METHODS = ("client_secret_post", "client_secret_basic")
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")


class DiscoveryFailed(Exception):
    """The issuer cannot be used; the message completes `The 'config.issuer' parameter ...`."""


@dataclass(frozen=True)
class Discovered:
    """What sign-in needs from a checked discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_method: str
    algorithms: tuple[str, ...]

    @property
    def sign_in_host(self) -> str:
        """The host of the authorization endpoint: what the guest's browser opens to sign in."""
        return sign_in_host(self.authorization_endpoint)


def check_issuer(text: str, *, allow_http: bool) -> str:
    """The issuer as stored (surrounding spaces trimmed); DiscoveryFailed says what is wrong."""
    issuer = text.strip(" ")
    if not issuer:
        raise DiscoveryFailed("must not be empty")
    if len(issuer) > MAX_ISSUER_CHARS:
        raise DiscoveryFailed(f"must be at most {MAX_ISSUER_CHARS} characters")
    if any(ch.isspace() or ch in "{}" for ch in issuer):
        raise DiscoveryFailed("must be a URL without white space or braces")
    _check_url(issuer, what="must be", allow_http=allow_http)
    parts = urlsplit(issuer)
    # OpenID Connect Discovery 4.1 and Core 2: an issuer has no query and no fragment.
    if parts.query or parts.fragment or issuer.endswith(("?", "#")):
        raise DiscoveryFailed("must be the issuer URL without a query or fragment")
    return issuer


def discovery_url(issuer: str) -> str:
    """Where the issuer's discovery document is (a trailing `/` of the issuer is not doubled)."""
    return issuer.rstrip("/") + WELL_KNOWN


def parse(document: object, *, issuer: str, allow_http: bool) -> Discovered:
    """The parts of a discovery document sign-in uses, if it is one for `issuer`; DiscoveryFailed otherwise."""
    if not isinstance(document, dict):
        raise DiscoveryFailed("did not serve a discovery document (not a JSON object)")
    if document.get("issuer") != issuer:
        raise DiscoveryFailed("serves a discovery document for another issuer (its 'issuer' differs)")
    found: dict[str, str] = {}
    for key in ENDPOINTS:
        value = document.get(key)
        if not isinstance(value, str) or not value:
            raise DiscoveryFailed(f"serves a discovery document without '{key}'")
        _check_url(value, what=f"serves a discovery document whose '{key}' is not", allow_http=allow_http)
        found[key] = value
    _require_announced(document, "response_types_supported", "code", default=("code",))
    _require_announced(document, "code_challenge_methods_supported", "S256", default=("S256",))
    announced = _strings(document, "id_token_signing_alg_values_supported", default=("RS256",))
    algorithms = tuple(alg for alg in SIGNING_ALGORITHMS if alg in announced)
    if not algorithms:
        raise DiscoveryFailed("signs id_tokens with no algorithm guestgate accepts (RS*, PS*, ES*)")
    methods = _strings(document, "token_endpoint_auth_methods_supported", default=("client_secret_basic",))
    method = next((m for m in AUTH_METHODS if m in methods), None)
    if method is None:
        raise DiscoveryFailed(
            "accepts no client authentication guestgate speaks (client_secret_post or _basic)"
        )
    discovered = Discovered(
        issuer=issuer,
        authorization_endpoint=found["authorization_endpoint"],
        token_endpoint=found["token_endpoint"],
        jwks_uri=found["jwks_uri"],
        token_auth_method=method,
        algorithms=algorithms,
    )
    sign_in_host(discovered.authorization_endpoint)
    return discovered


def read_json(body: bytes) -> object:
    """A response body as JSON; DiscoveryFailed when it is too large or not JSON."""
    if len(body) > MAX_DOCUMENT_BYTES:
        raise DiscoveryFailed(f"serves a discovery document larger than {MAX_DOCUMENT_BYTES // 1024} KiB")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DiscoveryFailed("did not serve a discovery document (not JSON)") from exc


def sign_in_host(url: str) -> str:
    """The walled-garden spelling of a URL's host: an address, or a normalised DNS name."""
    host = urlsplit(url).hostname or ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return hostnames.normalize(host)
    except hostnames.HostnameInvalid as exc:
        raise DiscoveryFailed(f"serves an authorization endpoint whose host {exc}") from exc


class Discoverer:
    """Fetches and checks discovery documents for the API (blocking; call from a worker thread)."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        allow_http: bool,
        timeout: float,
        transport: httpx2.BaseTransport | None = None,
    ) -> None:
        self.policy = policy
        self.allow_http = allow_http
        self.timeout = timeout
        self._transport = transport

    @classmethod
    def from_settings(cls, policy: OutboundPolicy, settings: Settings) -> Discoverer:
        """The deployment's discoverer (`GUESTGATE_OAUTH_OIDC_ALLOW_HTTP`, `GUESTGATE_OAUTH_TIMEOUT_SECONDS`)."""
        return cls(policy, allow_http=settings.oauth_oidc_allow_http, timeout=settings.oauth_timeout_seconds)

    def discover(self, issuer: str) -> Discovered:
        """The issuer's checked discovery document; DiscoveryFailed in our words otherwise."""
        issuer = check_issuer(issuer, allow_http=self.allow_http)
        url = discovery_url(issuer)
        try:
            # Checked when saved, and again by the transport when the connection opens (rebinding).
            self.policy.vet_url(url, "identity-provider")
        except OutboundRefused as exc:
            raise DiscoveryFailed(f"is refused: {exc}") from exc
        transport = self._transport or self.policy.transport("identity-provider")
        try:
            with httpx2.Client(transport=transport, timeout=self.timeout, follow_redirects=False) as client:
                body = self._get(client, url)
        except httpx2.InvalidURL as exc:
            raise DiscoveryFailed("must be a valid URL") from exc
        except httpx2.HTTPError as exc:
            cause = exc.__cause__ or exc.__context__
            failure = cause if isinstance(cause, OutboundRefused) else exc
            raise DiscoveryFailed(
                f"could not be used: its discovery document could not be fetched "
                f"({describe_failure(failure, timeout=self.timeout)})"
            ) from exc
        except OutboundRefused as exc:
            raise DiscoveryFailed(f"is refused: {exc}") from exc
        discovered = parse(read_json(body), issuer=issuer, allow_http=self.allow_http)
        self._check_garden_host(discovered)
        return discovered

    def _get(self, client: httpx2.Client, url: str) -> bytes:
        with client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise DiscoveryFailed(
                    "could not be used: its discovery document was not served (the answer was not 200 OK)"
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_DOCUMENT_BYTES:
                    raise DiscoveryFailed(
                        f"serves a discovery document larger than {MAX_DOCUMENT_BYTES // 1024} KiB"
                    )
                chunks.append(chunk)
            return b"".join(chunks)

    def _check_garden_host(self, discovered: Discovered) -> None:
        # Guests will be let through to this host before they are signed in: the same rule as for
        # walled-garden host names (no opening the controller's own networks to them).
        parts = urlsplit(discovered.authorization_endpoint)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            self.policy.vet(discovered.sign_in_host, port, "walled-garden")
        except OutboundRefused as exc:
            raise DiscoveryFailed(f"serves an authorization endpoint guests may not reach: {exc}") from exc


def _check_url(url: str, *, what: str, allow_http: bool) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it validates the port
    except ValueError as exc:
        raise DiscoveryFailed(f"{what} a valid URL") from exc
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        shown = "an https:// or http:// URL" if allow_http else "an https:// URL"
        raise DiscoveryFailed(f"{what} {shown}")
    if parts.username is not None or parts.password is not None:
        raise DiscoveryFailed(f"{what} a URL without a user name or password")
    if parts.fragment:
        raise DiscoveryFailed(f"{what} a URL without a fragment")


def _strings(document: dict[str, object], key: str, *, default: tuple[str, ...]) -> tuple[str, ...]:
    value = document.get(key)
    if value is None:
        return default
    if not isinstance(value, list):
        raise DiscoveryFailed(f"serves a discovery document whose '{key}' is not a list")
    return tuple(item for item in value if isinstance(item, str))


def _require_announced(
    document: dict[str, object], key: str, needed: str, *, default: tuple[str, ...]
) -> None:
    if needed not in _strings(document, key, default=default):
        raise DiscoveryFailed(f"does not support '{needed}' ('{key}')")
