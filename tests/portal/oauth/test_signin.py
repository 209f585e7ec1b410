"""OAuth2 sign-in through the portal's HTTP: button, auth window, callback, session, and every failure."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from guestgate.portal.routes import PortalApp
from tests.portal.oauth.fake_idp import TENANT, FakeOIDC, query_of
from tests.utils.oauth import (
    CALLBACK,
    IOS_CAPTIVE_SHEET,
    IntegrationFactory,
    RecordingNotifier,
    callback,
    press_button,
    provider_url,
)
from tests.utils.portal import GUEST_IP, ClientFactory, World, enter, fresh_token, token_of, vouched_orig


def signed_in_through(client: TestClient, world: World, idp: FakeOIDC, **authorize: Any) -> Any:
    """Press the button, consent at the provider, come back: the callback's response."""
    started = press_button(client, world)
    assert started.status_code == 200, started.text
    return callback(client, idp.authorize(provider_url(started.text), **authorize))


# -- the page ---------------------------------------------------------------------------------


def test_the_page_of_an_oauth2_instance_offers_the_providers_button(
    world: World, integration: IntegrationFactory, guest_client: TestClient
) -> None:
    integration("google")
    html = enter(guest_client, world.site_id).text
    assert '<button type="submit" formaction="/guest/oauth/start" class="provider"' in html
    assert "Sign in with Google</button>" in html
    assert 'name="code"' not in html
    # The terms are still required before the button does anything.
    assert 'name="accept" value="yes" required' in html


@pytest.mark.parametrize(
    ("kind", "tenant", "label"), [("azure", "common", "Microsoft"), ("github", None, "GitHub")]
)
def test_the_button_names_the_provider(
    world: World,
    integration: IntegrationFactory,
    guest_client: TestClient,
    kind: str,
    tenant: str | None,
    label: str,
) -> None:
    integration(kind, tenant=tenant)
    assert f"Sign in with {label}</button>" in enter(guest_client, world.site_id).text


def test_the_page_is_translated(
    world: World, integration: IntegrationFactory, guest_client: TestClient
) -> None:
    integration("github")
    html = guest_client.get(
        "/guest/entry", params={"site": world.site_id}, headers={"Accept-Language": "de"}
    ).text
    assert "Mit GitHub anmelden</button>" in html


def test_inside_a_captive_assistant_google_is_replaced_by_the_way_to_the_real_browser(
    world: World, integration: IntegrationFactory, guest: ClientFactory, oauth_portal: PortalApp
) -> None:
    integration("google")
    client = guest(GUEST_IP, portal=oauth_portal, **{"User-Agent": IOS_CAPTIVE_SHEET})
    html = enter(client, world.site_id).text
    assert "Sign in with Google" not in html and "/guest/oauth/start" not in html
    assert "Google does not allow signing in from this window." in html
    assert "open Safari and go to this address" in html
    assert '<label for="portal-url">Address to open</label>' in html
    assert f"readonly>http://testserver/guest/entry?site={world.site_id}</textarea>" in html


def test_inside_a_captive_assistant_other_providers_keep_their_button(
    world: World, integration: IntegrationFactory, guest: ClientFactory, oauth_portal: PortalApp
) -> None:
    integration("github")
    client = guest(GUEST_IP, portal=oauth_portal, **{"User-Agent": IOS_CAPTIVE_SHEET})
    assert "Sign in with GitHub</button>" in enter(client, world.site_id).text


def test_pressing_google_inside_a_captive_assistant_opens_nothing(
    world: World,
    integration: IntegrationFactory,
    guest: ClientFactory,
    oauth_portal: PortalApp,
    notifier: RecordingNotifier,
) -> None:
    integration("google")
    client = guest(GUEST_IP, portal=oauth_portal, **{"User-Agent": IOS_CAPTIVE_SHEET})
    response = press_button(client, world)
    assert response.status_code == 200
    assert "Continue in your browser" in response.text
    assert "set-cookie" not in response.headers
    assert notifier.calls == []


def test_an_oauth2_instance_without_an_integration_says_it_is_unavailable(
    world: World, guest_client: TestClient
) -> None:
    world.update_instance(strategy="oauth2")
    html = enter(guest_client, world.site_id).text
    assert "Signing in with an account is not available on this network yet." in html
    response = press_button(guest_client, world)
    assert response.status_code == 503
    assert "not set up correctly here" in response.text
    assert world.count_rows() == (0, 0)


# -- the happy paths -------------------------------------------------------------------------


def test_google_sign_in_opens_the_auth_window_first_then_starts_an_oauth2_session(
    world: World,
    integration: IntegrationFactory,
    guest_client: TestClient,
    google: FakeOIDC,
    notifier: RecordingNotifier,
) -> None:
    integration("google")
    started = press_button(guest_client, world)
    assert started.status_code == 200
    assert "Taking you to Google to sign in" in started.text
    # Before the guest goes anywhere, its address may reach the captive-auth walled garden.
    assert notifier.calls == [("open_auth_window", world.site_id, GUEST_IP, 240)]
    cookie = started.headers["set-cookie"]
    assert cookie.startswith("gg_oauth=")
    for attribute in ("Path=/guest/oauth", "Max-Age=600", "HttpOnly", "SameSite=Lax"):
        assert attribute in cookie
    assert "Secure" not in cookie  # http://testserver
    url = provider_url(started.text)
    assert query_of(url)["redirect_uri"] == CALLBACK
    assert world.count_rows() == (0, 0)

    done = callback(guest_client, google.authorize(url))
    assert done.status_code == 200, done.text
    assert "You&#39;re connected" in done.text and ">1 hour<" in done.text
    assert "Max-Age=0" in done.headers["set-cookie"]
    [session] = world.sessions()
    assert session.strategy == "oauth2"
    assert session.identity == {
        "provider": "google",
        "subject": "108774532",
        "email": "ada@example.test",
        "name": "Ada Lovelace",
    }
    assert session.coupon_id is None and session.status == "active"
    assert session.ip_address == GUEST_IP and session.site_id == world.site_id
    assert session.instance_id == world.instance_id and session.org_id == world.org_id
    assert session.expires_at == world.clock() + timedelta(seconds=3600)
    assert notifier.calls[-1] == ("allow", world.site_id, GUEST_IP, session.id)


def test_microsoft_multi_tenant_sign_in_records_the_work_account(
    world: World, integration: IntegrationFactory, guest_client: TestClient, azure: FakeOIDC
) -> None:
    integration("azure", tenant="organizations")
    done = signed_in_through(
        guest_client, world, azure, subject="AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ"
    )
    assert done.status_code == 200, done.text
    [session] = world.sessions()
    assert session.identity == {
        "provider": "azure",
        "subject": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "email": "ada@contoso.test",
        "name": "Ada Lovelace",
    }
    assert azure.requests[0].url.path == "/organizations/v2.0/.well-known/openid-configuration"


def test_microsoft_single_tenant_sign_in_uses_the_tenants_own_discovery(
    world: World, integration: IntegrationFactory, guest_client: TestClient, azure: FakeOIDC
) -> None:
    azure.templated_issuer = False
    integration("azure", tenant=TENANT)
    assert signed_in_through(guest_client, world, azure).status_code == 200
    assert azure.requests[0].url.path == f"/{TENANT}/v2.0/.well-known/openid-configuration"
    assert len(world.sessions()) == 1


def test_the_success_page_continues_to_the_original_url(
    world: World, integration: IntegrationFactory, guest_client: TestClient, google: FakeOIDC
) -> None:
    integration("google")
    response = guest_client.get(
        "/guest/entry", params={"site": world.site_id, **vouched_orig(world, "http://example.com/news")}
    )
    started = guest_client.post("/guest/oauth/start", data={"t": token_of(response.text), "accept": "yes"})
    done = callback(guest_client, google.authorize(provider_url(started.text)))
    assert '<a class="button" href="http://example.com/news">Continue</a>' in done.text


def test_a_guest_already_signed_in_sees_its_session_not_a_second_one(
    world: World,
    integration: IntegrationFactory,
    guest_client: TestClient,
    google: FakeOIDC,
    notifier: RecordingNotifier,
) -> None:
    integration("google")
    first = press_button(guest_client, world)
    second = press_button(guest_client, world)
    assert callback(guest_client, google.authorize(provider_url(second.text))).status_code == 200
    # The first flow's cookie was replaced by the second's: its callback cannot complete.
    stale = callback(guest_client, google.authorize(provider_url(first.text)))
    assert stale.status_code == 400
    assert len(world.sessions()) == 1
    assert [call[0] for call in notifier.calls].count("allow") == 1


# -- failures: a clear page and nothing written ----------------------------------------------


def test_terms_must_be_accepted_before_going_to_the_provider(
    world: World, integration: IntegrationFactory, guest_client: TestClient, notifier: RecordingNotifier
) -> None:
    integration("google")
    response = press_button(guest_client, world, accept=False)
    assert response.status_code == 400
    assert "Please accept the terms and conditions to continue." in response.text
    assert 'aria-invalid="true"' in response.text
    assert "set-cookie" not in response.headers
    assert notifier.calls == []
    assert world.count_rows() == (0, 0)


def test_cancelling_consent_at_the_provider_says_so(
    world: World,
    integration: IntegrationFactory,
    guest_client: TestClient,
    google: FakeOIDC,
    notifier: RecordingNotifier,
) -> None:
    integration("google")
    response = signed_in_through(guest_client, world, google, deny=True)
    assert response.status_code == 403
    assert "Sign-in was cancelled." in response.text
    assert f'href="/guest/entry?site={world.site_id}">Start again</a>' in response.text
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert world.oauth_failures() == ["err_oauth_denied"]
    assert [call[0] for call in notifier.calls] == ["open_auth_window"]


def test_another_provider_error_is_a_failure_page(
    world: World, integration: IntegrationFactory, guest_client: TestClient, google: FakeOIDC
) -> None:
    integration("google")
    started = press_button(guest_client, world)
    state = query_of(provider_url(started.text))["state"]
    response = callback(guest_client, {"error": "server_error", "state": state})
    assert response.status_code == 502
    assert "could not confirm who you are" in response.text
    assert world.oauth_failures() == ["err_oauth_failed"]


def test_a_callback_with_another_state_is_refused(
    world: World, integration: IntegrationFactory, guest_client: TestClient, google: FakeOIDC
) -> None:
    integration("google")
    started = press_button(guest_client, world)
    params = google.authorize(provider_url(started.text))
    response = callback(guest_client, {**params, "state": "forged-" + params["state"][7:]})
    assert response.status_code == 400
    assert "This sign-in could not be verified. Please start again." in response.text
    assert world.count_rows() == (0, 0)


def test_a_callback_in_a_browser_that_did_not_start_the_flow_is_refused(
    world: World,
    integration: IntegrationFactory,
    guest_client: TestClient,
    guest: ClientFactory,
    oauth_portal: PortalApp,
    google: FakeOIDC,
) -> None:
    integration("google")
    started = press_button(guest_client, world)
    params = google.authorize(provider_url(started.text))
    # Login CSRF: the victim's browser is handed the attacker's callback URL, without its cookie.
    other = guest(GUEST_IP, portal=oauth_portal)
    response = callback(other, params)
    assert response.status_code == 400
    assert world.count_rows() == (0, 0)


def test_a_callback_without_a_state_or_a_code_is_refused(
    world: World, integration: IntegrationFactory, guest_client: TestClient, google: FakeOIDC
) -> None:
    integration("google")
    started = press_button(guest_client, world)
    state = query_of(provider_url(started.text))["state"]
    assert callback(guest_client, {"code": "abc"}).status_code == 400
    assert callback(guest_client, {"state": state}).status_code == 400
    assert callback(guest_client, {"state": state * 200, "code": "x"}).status_code == 400
    assert world.count_rows() == (0, 0)


def test_a_replayed_callback_is_refused_and_makes_no_second_session(
    world: World, integration: IntegrationFactory, guest_client: TestClient, google: FakeOIDC
) -> None:
    integration("google")
    started = press_button(guest_client, world)
    cookie = started.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    params = google.authorize(provider_url(started.text))
    assert callback(guest_client, params).status_code == 200
    # The cookie was cleared by the first callback; the replay brings it back.
    guest_client.cookies.set("gg_oauth", cookie)
    replay = callback(guest_client, params)
    assert replay.status_code == 409
    assert "This sign-in has already been used." in replay.text
    assert len(world.sessions()) == 1


def test_a_callback_from_another_address_is_refused(
    world: World,
    integration: IntegrationFactory,
    guest_client: TestClient,
    guest: ClientFactory,
    oauth_portal: PortalApp,
    google: FakeOIDC,
) -> None:
    integration("google")
    started = press_button(guest_client, world)
    cookie = started.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    params = google.authorize(provider_url(started.text))
    thief = guest("10.0.1.99", portal=oauth_portal)
    thief.cookies.set("gg_oauth", cookie)
    response = callback(thief, params)
    assert response.status_code == 403
    assert world.oauth_failures() == ["err_token_invalid"]


def test_a_flow_older_than_its_ttl_has_expired(
    world: World, integration: IntegrationFactory, guest_client: TestClient, google: FakeOIDC
) -> None:
    integration("google")
    started = press_button(guest_client, world)
    params = google.authorize(provider_url(started.text))
    world.clock.advance(601)
    response = callback(guest_client, params)
    assert response.status_code == 400
    assert "This sign-in took too long. Please start again." in response.text
    assert f"/guest/entry?site={world.site_id}" in response.text
    assert world.count_rows() == (0, 0)


def test_a_failed_code_exchange_is_a_failure_page(
    world: World, integration: IntegrationFactory, guest_client: TestClient, google: FakeOIDC
) -> None:
    integration("google")
    google.token_error = "invalid_grant"
    response = signed_in_through(guest_client, world, google)
    assert response.status_code == 502
    assert "The sign-in service could not confirm who you are." in response.text
    assert world.oauth_failures() == ["err_oauth_failed"]


@pytest.mark.parametrize(
    "patch",
    [
        {"nonce": "not-the-one-we-sent"},
        {"aud": "another-client"},
        {"iss": "https://accounts.evil.test"},
        {"exp": 1_000_000_000},
    ],
)
def test_an_invalid_id_token_is_a_failure_page(
    world: World,
    integration: IntegrationFactory,
    guest_client: TestClient,
    google: FakeOIDC,
    patch: dict[str, Any],
) -> None:
    integration("google")
    google.claims_patch = lambda claims: {**claims, **patch}
    response = signed_in_through(guest_client, world, google)
    assert response.status_code == 502
    assert world.oauth_failures() == ["err_oauth_failed"]


def test_a_token_response_without_an_id_token_is_a_failure_page(
    world: World, integration: IntegrationFactory, guest_client: TestClient, google: FakeOIDC
) -> None:
    integration("google")
    google.omit_id_token = True
    assert signed_in_through(guest_client, world, google).status_code == 502
    assert world.oauth_failures() == ["err_oauth_failed"]


def test_an_unreachable_provider_is_said_before_the_guest_leaves(
    world: World,
    integration: IntegrationFactory,
    guest_client: TestClient,
    google: FakeOIDC,
    notifier: RecordingNotifier,
) -> None:
    integration("google")
    google.discovery_status = 500
    response = press_button(guest_client, world)
    assert response.status_code == 502
    assert "cannot be reached right now" in response.text
    assert notifier.calls == []
    assert world.count_rows() == (0, 0)


def test_an_integration_changed_during_the_flow_does_not_complete_it(
    world: World, integration: IntegrationFactory, guest_client: TestClient, google: FakeOIDC
) -> None:
    integration("google")
    started = press_button(guest_client, world)
    params = google.authorize(provider_url(started.text))
    integration("google")  # the operator switches the instance to another integration
    response = callback(guest_client, params)
    assert response.status_code == 503
    assert world.oauth_failures() == ["err_oauth_unavailable"]


def test_a_forged_or_foreign_token_cannot_start_a_flow(
    world: World,
    integration: IntegrationFactory,
    guest_client: TestClient,
    guest: ClientFactory,
    oauth_portal: PortalApp,
    notifier: RecordingNotifier,
) -> None:
    integration("google")
    token = fresh_token(guest_client, world)
    assert guest_client.post("/guest/oauth/start", data={"t": "forged", "accept": "yes"}).status_code == 403
    other = guest("10.0.1.77", portal=oauth_portal)
    assert other.post("/guest/oauth/start", data={"t": token, "accept": "yes"}).status_code == 403
    assert guest_client.post("/guest/oauth/start", data={"accept": "yes"}).status_code == 400
    assert notifier.calls == []


def test_a_coupon_instance_has_no_oauth_button_to_press(world: World, guest_client: TestClient) -> None:
    response = press_button(guest_client, world)
    assert response.status_code == 400
    assert world.count_rows() == (0, 0)
