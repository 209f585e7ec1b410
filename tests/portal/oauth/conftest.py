"""Fixtures of the OAuth2 sign-in tests: fake providers on a mock transport, an oauth2 instance, a guest."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from guestgate.auth_integrations import service as integration_service
from guestgate.auth_integrations.schemas import AuthIntegrationCreate
from guestgate.portal.oauth import Endpoints, IdentityProviders
from guestgate.portal.routes import PortalApp, build
from guestgate.portal.throttle import MemoryCounters
from guestgate.runtime import Runtime
from tests.portal.oauth.fake_idp import CLIENT_ID, CLIENT_SECRET, TENANT, FakeGitHub, FakeOIDC, transport
from tests.utils.oauth import (
    CHROME_ANDROID,
    IntegrationFactory,
    RecordingNotifier,
)
from tests.utils.portal import GUEST_IP, ClientFactory, Clock, World


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
