"""Generic OpenID Connect integrations (`oidc`) against the real `oidc-provider` server on loopback:
discovery through the outbound policy and its checks, the API (both databases), nothing of the
remote's answer in an API error, and the sign-in host in the site's auth-window walled garden.
The browser journey of an `oidc` integration is in test_portal_browser.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from guestgate.auth_integrations import discovery
from guestgate.auth_integrations.discovery import Discoverer, DiscoveryFailed
from guestgate.config import Settings
from guestgate.gateways import service as gateway_service
from guestgate.gateways.base import GardenEntry
from guestgate.gateways.reconcile import names_of
from guestgate.instances.models import Instance, InstanceSubnet
from guestgate.outbound import OutboundPolicy
from guestgate.portal.oauth import Attempt, Endpoints, IdentityProviders, Integration, SignInFailed
from guestgate.runtime import Runtime
from guestgate.sites.models import Site
from tests.utils.browser import CLIENT_ID, CLIENT_SECRET, OpenIDProvider
from tests.utils.settings import make_settings

URL = "/captive/auth-integrations"
LOOPBACK = OutboundPolicy.from_settings("127.0.0.0/8", "")
MARKER = "REMOTE-SAYS-<b>pwned</b>"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """This deployment lets `oidc` issuers be http:// on loopback (the test provider)."""
    return make_settings(
        db_url, tmp_path / "var", outbound_allow_networks="127.0.0.0/8", oauth_oidc_allow_http=True
    )


def oidc_body(issuer: str, **config: Any) -> dict[str, Any]:
    return {
        "name": "Staff SSO",
        "type": "oidc",
        "config": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "issuer": issuer, **config},
    }


class _Marker(BaseHTTPRequestHandler):
    """A server that is no OpenID provider: every answer carries MARKER."""

    def do_GET(self) -> None:
        status, body = {
            "/500/.well-known/openid-configuration": (500, MARKER),
            "/html/.well-known/openid-configuration": (200, f"<html>{MARKER}</html>"),
            "/other/.well-known/openid-configuration": (200, f'{{"issuer": "{MARKER}"}}'),
        }.get(self.path, (404, MARKER))
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def marker_origin() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Marker)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_discovery_of_the_real_provider_names_its_endpoints_and_sign_in_host(
    oidc_provider: OpenIDProvider,
) -> None:
    found = Discoverer(LOOPBACK, allow_http=True, timeout=5).discover(oidc_provider.origin)
    assert found.issuer == oidc_provider.origin
    assert found.authorization_endpoint.startswith(f"{oidc_provider.origin}/")
    assert found.token_endpoint.startswith(f"{oidc_provider.origin}/")
    assert found.jwks_uri.startswith(f"{oidc_provider.origin}/")
    assert found.sign_in_host == "127.0.0.1"
    # oidc-provider announces both; guestgate prefers the form body, as for the other providers.
    assert found.token_auth_method == "client_secret_post"
    assert "RS256" in found.algorithms


def test_the_issuer_must_be_exactly_the_one_the_document_names(oidc_provider: OpenIDProvider) -> None:
    # Same document (the trailing slash is not doubled), but its issuer has no slash.
    with pytest.raises(DiscoveryFailed, match="for another issuer"):
        Discoverer(LOOPBACK, allow_http=True, timeout=5).discover(oidc_provider.origin + "/")


def test_the_issuer_is_refused_on_loopback_unless_the_deployment_allows_it(
    oidc_provider: OpenIDProvider,
) -> None:
    with pytest.raises(DiscoveryFailed, match=r"^is refused: 127\.0\.0\.1 is a loopback address"):
        Discoverer(OutboundPolicy(), allow_http=True, timeout=5).discover(oidc_provider.origin)


def test_http_is_refused_unless_the_deployment_allows_it(oidc_provider: OpenIDProvider) -> None:
    with pytest.raises(DiscoveryFailed, match="must be an https:// URL"):
        Discoverer(LOOPBACK, allow_http=False, timeout=5).discover(oidc_provider.origin)


def test_a_document_with_http_endpoints_is_refused_for_an_https_deployment(
    oidc_provider: OpenIDProvider,
) -> None:
    document = {
        "issuer": "https://idp.example.org",
        "authorization_endpoint": f"{oidc_provider.origin}/auth",
        "token_endpoint": "https://idp.example.org/token",
        "jwks_uri": "https://idp.example.org/jwks",
    }
    with pytest.raises(DiscoveryFailed, match="'authorization_endpoint' is not an https:// URL"):
        discovery.parse(document, issuer="https://idp.example.org", allow_http=False)
    ok = discovery.parse(
        {**document, "authorization_endpoint": "https://Login.Example.org/auth"},
        issuer="https://idp.example.org",
        allow_http=False,
    )
    assert ok.sign_in_host == "login.example.org"
    # No client authentication we speak, no PKCE S256, only symmetric signatures: refused.
    for extra, reason in (
        ({"token_endpoint_auth_methods_supported": ["private_key_jwt"]}, "client authentication"),
        ({"code_challenge_methods_supported": ["plain"]}, "'S256'"),
        ({"id_token_signing_alg_values_supported": ["HS256"]}, "no algorithm"),
    ):
        with pytest.raises(DiscoveryFailed, match=reason):
            discovery.parse(
                {**document, **extra, "authorization_endpoint": "https://idp.example.org/a"},
                issuer="https://idp.example.org",
                allow_http=False,
            )


def test_the_api_creates_an_oidc_integration_and_other_types_read_as_before(
    client: TestClient, headers: dict[str, str], oidc_provider: OpenIDProvider, runtime: Runtime
) -> None:
    response = client.post(URL, json=oidc_body(oidc_provider.origin), headers=headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["type"] == "oidc"
    assert created["config"] == {"client_id": CLIENT_ID, "tenant": None, "issuer": oidc_provider.origin}
    assert CLIENT_SECRET not in response.text
    fetched = client.get(f"{URL}/{created['id']}", headers=headers).json()
    assert fetched["config"]["issuer"] == oidc_provider.origin
    google = client.post(
        URL,
        json={"name": "G", "type": "google", "config": {"client_id": "g", "client_secret": "s"}},
        headers=headers,
    )
    # Altostrat's shape for its own types: no `issuer` key at all.
    assert google.json()["config"] == {"client_id": "g", "tenant": None}

    # The secret follows its issuer: another issuer without a secret is refused.
    other = oidc_body(oidc_provider.origin + "/")
    del other["config"]["client_secret"]
    refused = client.put(f"{URL}/{created['id']}", json=other, headers=headers)
    assert refused.status_code == 400 and "config.issuer" in refused.json()["message"]
    same = oidc_body(oidc_provider.origin, client_id=CLIENT_ID)
    del same["config"]["client_secret"]
    kept = client.put(f"{URL}/{created['id']}", json={**same, "name": "Renamed"}, headers=headers)
    assert kept.status_code == 200, kept.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"name": "S", "type": "oidc", "config": {"client_id": "c", "client_secret": "s"}},
            "The 'config.issuer' parameter is required for this request.",
        ),
        (
            {
                "name": "G",
                "type": "google",
                "config": {"client_id": "g", "client_secret": "s", "issuer": "https://idp.example.org"},
            },
            "The 'config.issuer' parameter must be null unless 'type' is 'oidc'.",
        ),
        (
            oidc_body("ftp://idp.example.org"),
            "The 'config.issuer' parameter must be an https:// or http:// URL.",
        ),
        (
            oidc_body("https://idp.example.org/?tenant=1"),
            "The 'config.issuer' parameter must be the issuer URL without a query or fragment.",
        ),
    ],
)
def test_bad_issuers_are_refused_with_the_parameter_named(
    client: TestClient, headers: dict[str, str], body: dict[str, Any], message: str
) -> None:
    response = client.post(URL, json=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["message"] == message


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/500", "its discovery document was not served (the answer was not 200 OK)"),
        ("/html", "did not serve a discovery document (not JSON)"),
        ("/other", "serves a discovery document for another issuer (its 'issuer' differs)"),
        ("/missing", "its discovery document was not served (the answer was not 200 OK)"),
    ],
)
def test_nothing_the_remote_answered_is_echoed_into_the_error(
    client: TestClient, headers: dict[str, str], marker_origin: str, path: str, reason: str
) -> None:
    response = client.post(URL, json=oidc_body(marker_origin + path), headers=headers)
    assert response.status_code == 400, response.text
    assert MARKER not in response.text and "pwned" not in response.text
    assert reason in response.json()["message"]


def test_an_unreachable_issuer_is_described_in_our_words(client: TestClient, headers: dict[str, str]) -> None:
    with_nothing = "http://127.0.0.1:9"  # discard: nothing listens
    response = client.post(URL, json=oidc_body(with_nothing), headers=headers)
    assert response.status_code == 400
    assert response.json()["message"] == (
        "The 'config.issuer' parameter could not be used: its discovery document could not be "
        "fetched (could not connect (Connection refused))."
    )


def test_the_sign_in_host_joins_the_auth_window_of_the_instances_sites(
    client: TestClient, headers: dict[str, str], oidc_provider: OpenIDProvider, runtime: Runtime
) -> None:
    created = client.post(URL, json=oidc_body(oidc_provider.origin), headers=headers).json()
    with runtime.sessions() as session:
        site = Site(org_id=created_org(runtime, created["id"]), name="Lobby", subnets=["10.0.0.0/24"])
        session.add(site)
        session.flush()
        assert GardenEntry("127.0.0.1", "captive-auth") not in gateway_service.garden_of(
            site.id, session=session
        )
        instance = Instance(
            org_id=site.org_id,
            name="Guests",
            strategy="oauth2",
            auth_integration_id=created["id"],
            session_ttl=3600,
        )
        session.add(instance)
        session.flush()
        session.add(InstanceSubnet(instance_id=instance.id, site_id=site.id, subnet="10.0.0.0/24"))
        session.commit()
        # The authorization endpoint is on 127.0.0.1: an address entry of the auth window, no name.
        assert GardenEntry("127.0.0.1", "captive-auth") in gateway_service.garden_of(site.id, session=session)
        assert names_of(site.id, session=session) == []


def created_org(runtime: Runtime, integration_id: str) -> str:
    from guestgate.auth_integrations.models import AuthIntegration

    with runtime.sessions() as session:
        row = session.get(AuthIntegration, integration_id)
        assert row is not None and row.sign_in_host == "127.0.0.1"
        return row.org_id


def _providers(policy: OutboundPolicy) -> IdentityProviders:
    return IdentityProviders(Endpoints(timeout_seconds=5, oidc_allow_http=True), outbound=policy)


def _integration(issuer: str) -> Integration:
    return Integration(
        id="i", org_id="o", type="oidc", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, issuer=issuer
    )


def test_sign_in_sends_the_guest_to_the_discovered_authorization_endpoint(
    oidc_provider: OpenIDProvider,
) -> None:
    attempt = Attempt.new()

    async def run() -> str:
        providers = _providers(LOOPBACK)
        try:
            return await providers.authorization_url(
                _integration(oidc_provider.origin), redirect_uri="http://127.0.0.1/cb", attempt=attempt
            )
        finally:
            await providers.aclose()

    url = asyncio.run(run())
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{oidc_provider.origin}/")
    assert query["client_id"] == [CLIENT_ID] and query["nonce"] == [attempt.nonce]
    assert query["code_challenge_method"] == ["S256"] and query["state"] == [attempt.state]


@pytest.mark.parametrize(
    ("policy", "issuer_suffix", "detail"),
    [
        # At sign-in the issuer is reached through the outbound policy too (a name may have rebound).
        (OutboundPolicy(), "", "127.0.0.1 is a loopback address"),
        # A document that names another issuer is refused at sign-in as when it was saved.
        (LOOPBACK, "/", "for another issuer"),
    ],
)
def test_sign_in_refuses_what_the_api_would_have_refused(
    oidc_provider: OpenIDProvider, policy: OutboundPolicy, issuer_suffix: str, detail: str
) -> None:
    async def run() -> str:
        providers = _providers(policy)
        try:
            return await providers.authorization_url(
                _integration(oidc_provider.origin + issuer_suffix),
                redirect_uri="http://127.0.0.1/cb",
                attempt=Attempt.new(),
            )
        finally:
            await providers.aclose()

    with pytest.raises(SignInFailed) as failed:
        asyncio.run(run())
    assert failed.value.reason == SignInFailed.UNREACHABLE and detail in failed.value.detail


def test_a_provider_whose_login_host_moved_since_it_was_saved_is_logged(
    oidc_provider: OpenIDProvider,
) -> None:
    moved = dataclasses.replace(_integration(oidc_provider.origin), sign_in_host="login.old.example.org")

    async def run() -> None:
        providers = _providers(LOOPBACK)
        try:
            await providers.authorization_url(
                moved, redirect_uri="http://127.0.0.1/cb", attempt=Attempt.new()
            )
            await providers.authorization_url(
                dataclasses.replace(moved, sign_in_host="127.0.0.1"),
                redirect_uri="http://127.0.0.1/cb",
                attempt=Attempt.new(),
            )
        finally:
            await providers.aclose()

    with capture_logs() as logs:
        asyncio.run(run())
    [warning] = [entry for entry in logs if entry["event"] == "portal.oauth_sign_in_host_moved"]
    assert warning["saved"] == "login.old.example.org" and warning["discovered"] == "127.0.0.1"
