"""An auth integration's test_url: the real sign-in flow, the identity shown, nothing created."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from guestgate.auth_integrations.service import signed_test_url
from guestgate.portal.routes import PortalApp
from tests.portal.oauth.fake_idp import FakeGitHub, FakeOIDC, query_of
from tests.utils.oauth import CALLBACK, IntegrationFactory, RecordingNotifier, callback
from tests.utils.portal import ClientFactory, World


@pytest.fixture
def operator(guest: ClientFactory, oauth_portal: PortalApp) -> TestClient:
    """An operator's browser, from an address no site knows."""
    return guest("192.0.2.10", portal=oauth_portal)


def signed_path(world: World, integration_id: str) -> str:
    url = signed_test_url(
        integration_id, signer=world.runtime.signer, public_url="http://testserver", now=world.clock()
    )
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_the_test_url_runs_the_flow_and_shows_the_identity_without_a_session(
    world: World,
    integration: IntegrationFactory,
    operator: TestClient,
    google: FakeOIDC,
    notifier: RecordingNotifier,
) -> None:
    integration_id = integration("google", attach=False)
    started = operator.get(signed_path(world, integration_id), follow_redirects=False)
    assert started.status_code == 303
    assert started.headers["cache-control"] == "no-store"
    assert started.headers["set-cookie"].startswith("gg_oauth=")
    location = started.headers["location"]
    assert query_of(location)["redirect_uri"] == CALLBACK
    done = callback(operator, google.authorize(location))
    assert done.status_code == 200, done.text
    html = done.text
    assert "Signing in with Google works." in html
    assert "<dd>google</dd>" in html and "<dd>108774532</dd>" in html
    assert "<dd>ada@example.test</dd>" in html and "<dd>Ada Lovelace</dd>" in html
    assert "no session was created" in html
    assert world.count_rows() == (0, 0)
    assert notifier.calls == []


def test_a_github_test_shows_the_verified_primary_address(
    world: World, integration: IntegrationFactory, operator: TestClient, github: FakeGitHub
) -> None:
    integration_id = integration("github", attach=False)
    started = operator.get(signed_path(world, integration_id), follow_redirects=False)
    done = callback(operator, github.authorize(started.headers["location"]))
    assert done.status_code == 200
    assert "<dd>octocat@github.test</dd>" in done.text and "<dd>583231</dd>" in done.text
    assert world.count_rows() == (0, 0)


def test_identity_values_are_shown_as_text(
    world: World, integration: IntegrationFactory, operator: TestClient, google: FakeOIDC
) -> None:
    integration_id = integration("google", attach=False)
    google.claims_patch = lambda claims: {**claims, "name": "<script>alert(1)</script>"}
    started = operator.get(signed_path(world, integration_id), follow_redirects=False)
    html = callback(operator, google.authorize(started.headers["location"])).text
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_failed_test_says_why_and_creates_nothing(
    world: World, integration: IntegrationFactory, operator: TestClient, google: FakeOIDC
) -> None:
    integration_id = integration("google", attach=False)
    google.token_error = "invalid_client"
    started = operator.get(signed_path(world, integration_id), follow_redirects=False)
    done = callback(operator, google.authorize(started.headers["location"]))
    assert done.status_code == 502
    assert world.count_rows() == (0, 0)


def test_a_changed_signature_is_a_clear_403(
    world: World, integration: IntegrationFactory, operator: TestClient
) -> None:
    integration_id = integration("google", attach=False)
    path = signed_path(world, integration_id)
    forged = path[:-4] + ("0000" if not path.endswith("0000") else "1111")
    response = operator.get(forged, follow_redirects=False)
    assert response.status_code == 403
    assert "This test link is invalid or has expired." in response.text
    assert "set-cookie" not in response.headers


def test_a_test_url_for_another_integration_is_a_403(
    world: World, integration: IntegrationFactory, operator: TestClient
) -> None:
    first = integration("google", attach=False)
    second = integration("github", attach=False)
    path = signed_path(world, first).replace(first, second)
    assert operator.get(path, follow_redirects=False).status_code == 403


def test_an_expired_test_url_is_a_403(
    world: World, integration: IntegrationFactory, operator: TestClient
) -> None:
    integration_id = integration("google", attach=False)
    path = signed_path(world, integration_id)
    world.clock.advance(3601)
    response = operator.get(path, follow_redirects=False)
    assert response.status_code == 403
    assert "This test link is invalid or has expired." in response.text


@pytest.mark.parametrize(
    "query", ["", "?expires=abc&signature=00", "?expires=99999999999999&signature=00", "?expires=1"]
)
def test_a_test_url_without_a_usable_signature_is_a_403(
    world: World, integration: IntegrationFactory, operator: TestClient, query: str
) -> None:
    integration_id = integration("google", attach=False)
    assert operator.get(f"/guest/oauth/test/{integration_id}{query}").status_code == 403


def test_a_deleted_integrations_test_url_is_a_404(
    world: World, integration: IntegrationFactory, operator: TestClient
) -> None:
    from guestgate.auth_integrations import service

    integration_id = integration("google", attach=False)
    path = signed_path(world, integration_id)
    with world.runtime.sessions() as session:
        service.delete(integration_id, org_id=world.org_id, session=session)
    assert operator.get(path, follow_redirects=False).status_code == 404
