"""Fixtures of the OAuth2 sign-in tests: fake providers on a mock transport, an oauth2 instance, a guest."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
from typing import Any

import pytest
from starlette.testclient import TestClient

from guestgate.auth_integrations import service as integration_service
from guestgate.auth_integrations.schemas import AuthIntegrationCreate
from guestgate.portal.oauth import Endpoints, IdentityProviders
from guestgate.portal.routes import PortalApp, build
from guestgate.portal.store import GuestSession
from guestgate.portal.throttle import MemoryCounters
from guestgate.runtime import Runtime
from tests.portal.conftest import GUEST_IP, ClientFactory, Clock, World, fresh_token
from tests.portal.oauth.fake_idp import CLIENT_ID, CLIENT_SECRET, TENANT, FakeGitHub, FakeOIDC, transport

CALLBACK = "http://testserver/guest/oauth/callback"
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
IOS_CAPTIVE_SHEET = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"


class RecordingNotifier:
    """A gateway that records what the portal asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def allow(self, session: GuestSession) -> bool:
        self.calls.append(("allow", session.site_id, session.ip, session.id))
        return True

    async def open_auth_window(self, site_id: str, ip: str, seconds: int) -> None:
        self.calls.append(("open_auth_window", site_id, ip, seconds))

    async def pending(self, session: GuestSession) -> bool:
        return False


@pytest.fixture
def google() -> FakeOIDC:
    return FakeOIDC()


@pytest.fixture
def azure() -> FakeOIDC:
    return FakeOIDC(base="https://login.microsoft.test", tenant=TENANT, templated_issuer=True)


@pytest.fixture
def github() -> FakeGitHub:
    return FakeGitHub()


@pytest.fixture
def endpoints(google: FakeOIDC, azure: FakeOIDC, github: FakeGitHub) -> Endpoints:
    return Endpoints(
        google_discovery_url=f"{google.base}/.well-known/openid-configuration",
        azure_authority=azure.base,
        github_base_url=github.base,
        github_api_url=github.api,
    )


@pytest.fixture
def providers(
    endpoints: Endpoints, google: FakeOIDC, azure: FakeOIDC, github: FakeGitHub
) -> IdentityProviders:
    return IdentityProviders(endpoints, transport=transport(google, azure, github))


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def oauth_portal(
    runtime: Runtime, clock: Clock, notifier: RecordingNotifier, providers: IdentityProviders
) -> PortalApp:
    return build(
        runtime, counters=MemoryCounters(), clock=clock, notifier=notifier, identity_providers=providers
    )


IntegrationFactory = Callable[..., str]


@pytest.fixture
def integration(world: World) -> IntegrationFactory:
    """`integration(kind, tenant=None, attach=True)` -> the id of a new auth integration (the world's instance uses it)."""

    def make(kind: str = "google", *, tenant: str | None = None, attach: bool = True) -> str:
        body = AuthIntegrationCreate.model_validate(
            {
                "name": f"Guests via {kind}",
                "type": kind,
                "config": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "tenant": tenant},
            }
        )
        with world.runtime.sessions() as session:
            row = integration_service.create(
                body, org_id=world.org_id, box=world.runtime.box, session=session
            )
            integration_id = row.id
        if attach:
            world.update_instance(strategy="oauth2", auth_integration_id=integration_id, auth_window_ttl=240)
        return integration_id

    return make


@pytest.fixture
def guest_client(guest: ClientFactory, oauth_portal: PortalApp) -> TestClient:
    """The guest at GUEST_IP on the OAuth-enabled portal, in a phone's real browser."""
    return guest(GUEST_IP, portal=oauth_portal, **{"User-Agent": CHROME_ANDROID})


def press_button(client: TestClient, world: World, *, accept: bool = True, **headers: str) -> Any:
    """Open the portal and press "Sign in with ..." (terms accepted unless `accept` is False)."""
    form = {"t": fresh_token(client, world)}
    if accept:
        form["accept"] = "yes"
    return client.post("/guest/oauth/start", data=form, headers=headers)


def provider_url(html: str) -> str:
    """Where the redirect page sends the guest (its meta refresh)."""
    match = re.search(r'<meta http-equiv="refresh" content="0;url=([^"]+)">', html)
    assert match, html
    return unescape(match.group(1))


def callback(client: TestClient, params: dict[str, str]) -> Any:
    """The provider sends the guest back to the one callback URL."""
    return client.get("/guest/oauth/callback", params=params)
