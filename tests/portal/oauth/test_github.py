"""GitHub sign-in against its documented endpoints on a mock transport.

`/login/oauth/authorize` and `/login/oauth/access_token` on github.com, then `GET /user` and
`GET /user/emails` on the API with the token; the address recorded is the primary one, and
only if GitHub has verified it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.testclient import TestClient

from guestgate.portal.oauth import Attempt, Endpoints, Identity, IdentityProviders, Integration, SignInFailed
from tests.portal.oauth.fake_idp import CLIENT_ID, CLIENT_SECRET, FakeGitHub, query_of, s256, transport
from tests.utils.oauth import (
    IntegrationFactory,
    RecordingNotifier,
    callback,
    press_button,
    provider_url,
)
from tests.utils.portal import World

CALLBACK = "https://portal.example/guest/oauth/callback"
GITHUB = Integration(
    id="i-1", org_id="org-a", type="github", client_id=CLIENT_ID, client_secret=CLIENT_SECRET
)


def sign_in(github: FakeGitHub, **authorize: Any) -> Identity:
    """The whole flow against the fake: authorization URL, consent, code exchange, user."""
    providers = IdentityProviders(
        Endpoints(github_base_url=github.base, github_api_url=github.api), transport=transport(github)
    )
    attempt = Attempt.new()

    async def flow() -> Identity:
        url = await providers.authorization_url(GITHUB, redirect_uri=CALLBACK, attempt=attempt)
        params = github.authorize(url, **authorize)
        assert params["state"] == attempt.state
        try:
            return await providers.identify(
                GITHUB, code=params["code"], redirect_uri=CALLBACK, attempt=attempt
            )
        finally:
            await providers.aclose()

    return asyncio.run(flow())


def test_the_user_and_its_verified_primary_address_make_the_identity() -> None:
    github = FakeGitHub()
    identity = sign_in(github)
    assert identity == Identity(
        provider="github", subject="583231", email="octocat@github.test", name="The Octocat"
    )


def test_the_authorization_url_follows_githubs_documentation() -> None:
    github = FakeGitHub()
    providers = IdentityProviders(Endpoints(github_base_url=github.base), transport=transport(github))
    attempt = Attempt.new()
    url = asyncio.run(providers.authorization_url(GITHUB, redirect_uri=CALLBACK, attempt=attempt))
    params = query_of(url)
    assert url.startswith("https://github.test/login/oauth/authorize?")
    assert params == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "scope": "read:user user:email",
        "state": attempt.state,
        "code_challenge": s256(attempt.code_verifier),
        "code_challenge_method": "S256",
    }


def test_the_code_exchange_sends_the_secret_the_verifier_and_asks_for_json() -> None:
    github = FakeGitHub()
    sign_in(github)
    exchange = github.requests[0]
    assert exchange.url.path == "/login/oauth/access_token" and exchange.method == "POST"
    assert exchange.headers["accept"] == "application/json"
    body = dict(pair.split("=", 1) for pair in exchange.content.decode().split("&"))
    assert body["client_secret"] == CLIENT_SECRET and body["client_id"] == CLIENT_ID
    assert body["grant_type"] == "authorization_code" and len(body["code_verifier"]) >= 43
    assert [request.url.path for request in github.requests[1:]] == ["/user", "/user/emails"]
    assert github.requests[1].headers["x-github-api-version"] == "2022-11-28"


def test_an_unverified_primary_address_is_not_recorded() -> None:
    github = FakeGitHub(
        emails=[
            {
                "email": "octocat@unverified.example",
                "primary": True,
                "verified": False,
                "visibility": "public",
            },
            {"email": "octocat@verified.example", "primary": False, "verified": True, "visibility": None},
        ]
    )
    assert sign_in(github).email is None


def test_a_user_without_a_name_is_named_by_its_login() -> None:
    github = FakeGitHub(user={"id": 7, "login": "hubber", "name": None})
    identity = sign_in(github)
    assert identity.name == "hubber" and identity.subject == "7"


def test_a_refused_code_is_a_failed_exchange() -> None:
    github = FakeGitHub()
    providers = IdentityProviders(
        Endpoints(github_base_url=github.base, github_api_url=github.api), transport=transport(github)
    )
    with pytest.raises(SignInFailed) as caught:
        asyncio.run(
            providers.identify(GITHUB, code="never-issued", redirect_uri=CALLBACK, attempt=Attempt.new())
        )
    assert caught.value.reason == SignInFailed.EXCHANGE
    assert "bad_verification_code" in caught.value.detail


def test_a_wrong_client_secret_is_a_failed_exchange() -> None:
    github = FakeGitHub()
    wrong = Integration(id="i", org_id="o", type="github", client_id=CLIENT_ID, client_secret="wrong")
    providers = IdentityProviders(
        Endpoints(github_base_url=github.base, github_api_url=github.api), transport=transport(github)
    )
    attempt = Attempt.new()

    async def flow() -> None:
        url = await providers.authorization_url(wrong, redirect_uri=CALLBACK, attempt=attempt)
        code = github.authorize(url)["code"]
        await providers.identify(wrong, code=code, redirect_uri=CALLBACK, attempt=attempt)

    with pytest.raises(SignInFailed) as caught:
        asyncio.run(flow())
    assert "incorrect_client_credentials" in caught.value.detail


def test_an_api_failure_is_a_failed_user_lookup() -> None:
    github = FakeGitHub(user_status=500)
    with pytest.raises(SignInFailed) as caught:
        sign_in(github)
    assert caught.value.reason == SignInFailed.USER


def test_the_verifier_must_be_the_one_the_challenge_was_made_from() -> None:
    github = FakeGitHub()
    providers = IdentityProviders(
        Endpoints(github_base_url=github.base, github_api_url=github.api), transport=transport(github)
    )
    attempt = Attempt.new()

    async def flow() -> None:
        url = await providers.authorization_url(GITHUB, redirect_uri=CALLBACK, attempt=attempt)
        code = github.authorize(url)["code"]
        other = Attempt(state=attempt.state, code_verifier=Attempt.new().code_verifier, nonce=attempt.nonce)
        await providers.identify(GITHUB, code=code, redirect_uri=CALLBACK, attempt=other)

    with pytest.raises(SignInFailed):
        asyncio.run(flow())


# -- through the portal ----------------------------------------------------------------------


def test_a_guest_signs_in_with_github(
    world: World,
    integration: IntegrationFactory,
    guest_client: TestClient,
    github: FakeGitHub,
    notifier: RecordingNotifier,
) -> None:
    integration("github")
    started = press_button(guest_client, world)
    assert "Taking you to GitHub to sign in" in started.text
    assert notifier.calls[0][0] == "open_auth_window"
    done = callback(guest_client, github.authorize(provider_url(started.text)))
    assert done.status_code == 200, done.text
    [session] = world.sessions()
    assert session.strategy == "oauth2"
    assert session.identity == {
        "provider": "github",
        "subject": "583231",
        "email": "octocat@github.test",
        "name": "The Octocat",
    }
    assert notifier.calls[-1][0] == "allow"


def test_a_guest_who_cancels_at_github_gets_the_cancel_page(
    world: World, integration: IntegrationFactory, guest_client: TestClient, github: FakeGitHub
) -> None:
    integration("github")
    started = press_button(guest_client, world)
    response = callback(guest_client, github.authorize(provider_url(started.text), deny=True))
    assert response.status_code == 403
    assert "Sign-in was cancelled." in response.text
    assert world.oauth_failures() == ["err_oauth_denied"]


def test_a_github_api_failure_writes_only_its_audit_event(
    world: World, integration: IntegrationFactory, guest_client: TestClient, github: FakeGitHub
) -> None:
    integration("github")
    github.user_status = 502
    started = press_button(guest_client, world)
    response = callback(guest_client, github.authorize(provider_url(started.text)))
    assert response.status_code == 502
    assert world.oauth_failures() == ["err_oauth_failed"]
