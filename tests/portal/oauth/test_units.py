"""The parts of OAuth2 sign-in without a database: state, nonce, PKCE, replay, id_tokens, assistants."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest
import redis
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from guestgate.portal import assistants, oauth_state
from guestgate.portal.oauth import (
    Attempt,
    Endpoints,
    IdentityProviders,
    Integration,
    SignInFailed,
)
from guestgate.portal.oauth_state import Flow, MemorySpentStates, RedisSpentStates, SpentStates
from guestgate.portal.tokens import GuestIdentity, TokenExpired, TokenInvalid, TokenSealer, derive_key
from tests.portal.oauth.fake_idp import (
    CLIENT_ID,
    CLIENT_SECRET,
    TENANT,
    Authorization,
    FakeOIDC,
    query_of,
    s256,
    transport,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
CALLBACK = "https://portal.example/guest/oauth/callback"
GUEST = GuestIdentity(
    site_id="5d0c6a3e-0000-4000-8000-000000000001",
    instance_id="5d0c6a3e-0000-4000-8000-000000000002",
    ip="10.0.1.5",
    mac="AA:BB:CC:DD:EE:FF",
    orig="http://example.com/",
    peer="10.0.1.5",
)


def run(coroutine: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coroutine

    return asyncio.run(main())


@pytest.fixture
def sealer() -> TokenSealer:
    return TokenSealer([derive_key("k" * 44)])


# -- state, nonce, PKCE ----------------------------------------------------------------------


def test_each_attempt_has_fresh_url_safe_state_nonce_and_a_verifier_inside_rfc_7636_bounds() -> None:
    attempts = [Attempt.new() for _ in range(50)]
    for attempt in attempts:
        assert 43 <= len(attempt.code_verifier) <= 128
        assert re.fullmatch(r"[A-Za-z0-9_-]+", attempt.code_verifier + attempt.state + attempt.nonce)
        assert len(attempt.state) >= 43 and len(attempt.nonce) >= 32
    for name in ("state", "code_verifier", "nonce"):
        assert len({getattr(attempt, name) for attempt in attempts}) == 50


def test_the_authorization_url_carries_state_nonce_and_the_s256_challenge_of_the_verifier() -> None:
    google = FakeOIDC()
    providers = IdentityProviders(
        Endpoints(google_discovery_url=f"{google.base}/.well-known/openid-configuration"),
        transport=transport(google),
    )
    attempt = Attempt.new()
    url = run(providers.authorization_url(integration("google"), redirect_uri=CALLBACK, attempt=attempt))
    params = query_of(url)
    assert url.startswith("https://accounts.google.test/authorize?")
    assert params["state"] == attempt.state
    assert params["nonce"] == attempt.nonce
    assert params["code_challenge"] == s256(attempt.code_verifier)
    assert params["code_challenge_method"] == "S256"
    assert params["redirect_uri"] == CALLBACK
    assert params["response_type"] == "code"
    assert attempt.code_verifier not in url


def test_a_flow_survives_its_cookie_and_nothing_of_it_is_readable(sealer: TokenSealer) -> None:
    flow = Flow("integration-1", Attempt.new(), GUEST, expires=2_000_000_000)
    value = oauth_state.seal(sealer, flow)
    assert flow.attempt.code_verifier not in value and GUEST.ip not in value
    assert oauth_state.unseal(sealer, value, now=1_900_000_000) == flow


def test_a_test_flow_has_no_guest(sealer: TokenSealer) -> None:
    flow = Flow("integration-1", Attempt.new(), None, expires=2_000_000_000)
    opened = oauth_state.unseal(sealer, oauth_state.seal(sealer, flow), now=1_900_000_000)
    assert opened.guest is None and opened == flow


def test_a_tampered_flow_cookie_is_invalid(sealer: TokenSealer) -> None:
    value = oauth_state.seal(sealer, Flow("i", Attempt.new(), GUEST, expires=2_000_000_000))
    flipped = value[:20] + ("A" if value[20] != "A" else "B") + value[21:]
    with pytest.raises(TokenInvalid):
        oauth_state.unseal(sealer, flipped, now=1_900_000_000)


def test_a_sign_in_token_is_not_a_flow_cookie(sealer: TokenSealer) -> None:
    token = sealer.seal_guest(GUEST, expires=2_000_000_000)
    with pytest.raises(TokenInvalid):
        oauth_state.unseal(sealer, token, now=1_900_000_000)


def test_an_expired_flow_cookie_still_tells_its_site(sealer: TokenSealer) -> None:
    value = oauth_state.seal(sealer, Flow("i", Attempt.new(), GUEST, expires=1_900_000_000))
    with pytest.raises(TokenExpired) as caught:
        oauth_state.unseal(sealer, value, now=1_900_000_000)
    assert caught.value.claims["g"]["s"] == GUEST.site_id


@pytest.mark.parametrize("given", ["", "x", "é" * 43])
def test_only_the_exact_state_matches(given: str) -> None:
    flow = Flow("i", Attempt.new(), GUEST, expires=0)
    assert oauth_state.state_matches(flow, flow.attempt.state)
    assert not oauth_state.state_matches(flow, given)
    assert not oauth_state.state_matches(flow, flow.attempt.state[:-1])


# -- replay ----------------------------------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"guestgate:test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.fixture(params=["memory", "redis"])
def spent(request: pytest.FixtureRequest, redis_prefix: str) -> SpentStates:
    if request.param == "memory":
        return MemorySpentStates()
    return RedisSpentStates(REDIS_URL, prefix=redis_prefix)


def test_a_state_can_be_spent_once(spent: SpentStates) -> None:
    async def scenario() -> list[bool]:
        now = time.time()
        try:
            return [
                await spent.spend("state-a", until=now + 60, now=now),
                await spent.spend("state-a", until=now + 60, now=now),
                await spent.spend("state-b", until=now + 60, now=now),
            ]
        finally:
            await spent.close()

    assert run(scenario()) == [True, False, True]


def test_concurrent_callbacks_with_one_state_let_exactly_one_through(spent: SpentStates) -> None:
    async def scenario() -> list[bool]:
        now = time.time()
        try:
            return list(
                await asyncio.gather(*(spent.spend("same", until=now + 60, now=now) for _ in range(20)))
            )
        finally:
            await spent.close()

    assert sorted(run(scenario())) == [False] * 19 + [True]


def test_the_in_process_ledger_forgets_states_once_their_flow_has_expired() -> None:
    spent = MemorySpentStates()
    assert run(spent.spend("s", until=100.0, now=50.0))
    assert not run(spent.spend("s", until=100.0, now=99.0))
    # By then the flow's cookie has expired too, so nothing can be replayed with it.
    assert run(spent.spend("s", until=200.0, now=100.0))


def test_an_unreachable_redis_refuses_rather_than_risk_a_replay() -> None:
    spent = RedisSpentStates("redis://127.0.0.1:1/0", prefix="x:")
    with pytest.raises(oauth_state.LedgerUnavailable):
        run(spent.spend("s", until=time.time() + 60, now=time.time()))


# -- id_token validation ---------------------------------------------------------------------


def integration(kind: str, tenant: str | None = None) -> Integration:
    return Integration(
        id="i-1", org_id="org-a", type=kind, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, tenant=tenant
    )


def providers_for(idp: FakeOIDC, **endpoints: str) -> IdentityProviders:
    defaults = {
        "google_discovery_url": f"{idp.base}/.well-known/openid-configuration",
        "azure_authority": idp.base,
    }
    return IdentityProviders(Endpoints(**{**defaults, **endpoints}), transport=transport(idp))


def base_claims(idp: FakeOIDC, nonce: str = "n-1") -> dict[str, Any]:
    return idp.claims_for(Authorization(CALLBACK, None, None, nonce, "108774532"))


def verify(
    idp: FakeOIDC, token: str, *, kind: str = "google", tenant: str | None = None, nonce: str = "n-1"
) -> Any:
    return run(providers_for(idp).verify_id_token(integration(kind, tenant), token, nonce=nonce))


def test_a_genuine_id_token_gives_its_claims() -> None:
    idp = FakeOIDC()
    claims = verify(idp, idp.id_token(base_claims(idp)))
    assert claims["sub"] == "108774532" and claims["email"] == "ada@example.test"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"iss": "https://evil.test"}, "iss"),
        ({"aud": "someone-else"}, "aud"),
        ({"aud": ["someone-else", "another"]}, "aud"),
        ({"nonce": "other-nonce"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"sub": None}, "sub"),
        ({"exp": int(time.time()) - 3600}, "exp"),
        ({"iat": int(time.time()) + 3600}, "iat"),
        ({"exp": None}, "exp"),
    ],
)
def test_an_id_token_with_a_wrong_claim_is_refused(change: dict[str, Any], why: str) -> None:
    idp = FakeOIDC()
    claims = {**base_claims(idp), **change}
    claims = {key: value for key, value in claims.items() if value is not None}
    with pytest.raises(SignInFailed) as caught:
        verify(idp, idp.id_token(claims))
    assert caught.value.reason == SignInFailed.VERIFY
    assert why in caught.value.detail


def test_an_expiry_within_the_clock_leeway_is_accepted() -> None:
    idp = FakeOIDC()
    claims = {**base_claims(idp), "exp": int(time.time()) - 30}
    assert verify(idp, idp.id_token(claims))["sub"] == "108774532"


def test_several_audiences_need_an_authorized_party_naming_us() -> None:
    idp = FakeOIDC()
    claims = {**base_claims(idp), "aud": [CLIENT_ID, "other-app"]}
    with pytest.raises(SignInFailed):
        verify(idp, idp.id_token(claims))
    assert verify(idp, idp.id_token({**claims, "azp": CLIENT_ID}))["azp"] == CLIENT_ID


def test_an_id_token_signed_by_another_key_under_the_same_kid_is_refused() -> None:
    idp = FakeOIDC()
    forger = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(SignInFailed) as caught:
        verify(idp, idp.id_token(base_claims(idp), key=forger))
    assert "bad_signature" in caught.value.detail


def test_an_id_token_signed_with_the_client_secret_hs256_is_refused() -> None:
    idp = FakeOIDC()
    secret = OctKey.import_key(CLIENT_SECRET)
    token = jwt.encode({"alg": "HS256"}, base_claims(idp), secret, algorithms=["HS256"])
    with pytest.raises(SignInFailed):
        verify(idp, token)


def test_an_unsigned_id_token_is_refused() -> None:
    idp = FakeOIDC()
    good = idp.id_token(base_claims(idp))
    header, payload, _ = good.split(".")
    none_header = "eyJhbGciOiJub25lIn0"  # {"alg":"none"}
    for token in (f"{none_header}.{payload}.", f"{header}.{payload}.", "not-a-jwt"):
        with pytest.raises(SignInFailed):
            verify(idp, token)


def test_a_rotated_key_is_fetched_once_and_then_accepted() -> None:
    idp = FakeOIDC()
    providers = providers_for(idp)
    run(providers.metadata(integration("google")))
    first = run(providers.verify_id_token(integration("google"), idp.id_token(base_claims(idp)), nonce="n-1"))
    assert first["sub"]
    # The provider rotates: a new key with a new kid, published in its JWKS.
    idp.key = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    fetches = len([r for r in idp.requests if str(r.url).endswith("/keys")])
    claims = run(
        providers.verify_id_token(integration("google"), idp.id_token(base_claims(idp)), nonce="n-1")
    )
    assert claims["sub"] == "108774532"
    assert len([r for r in idp.requests if str(r.url).endswith("/keys")]) == fetches + 1


def test_discovery_documents_and_keys_are_cached_between_sign_ins() -> None:
    idp = FakeOIDC()
    providers = providers_for(idp)
    for _ in range(3):
        run(providers.verify_id_token(integration("google"), idp.id_token(base_claims(idp)), nonce="n-1"))
    assert [str(r.url).rsplit("/", 1)[-1] for r in idp.requests] == ["openid-configuration", "keys"]


def test_microsoft_multi_tenant_issuer_template_is_filled_from_the_tokens_tenant() -> None:
    idp = FakeOIDC(base="https://login.microsoft.test", tenant=TENANT, templated_issuer=True)
    claims = verify(idp, idp.id_token(base_claims(idp)), kind="azure", tenant="organizations")
    assert claims["tid"] == TENANT
    assert idp.requests[0].url.path == "/organizations/v2.0/.well-known/openid-configuration"


@pytest.mark.parametrize(
    "change",
    [
        {"tid": None},
        {"tid": "not-a-guid"},
        # A token of another tenant must name that tenant's issuer too.
        {"tid": "0b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3"},
        {"iss": "https://login.microsoft.test/{tenantid}/v2.0"},
    ],
)
def test_microsoft_template_mismatches_are_refused(change: dict[str, Any]) -> None:
    idp = FakeOIDC(base="https://login.microsoft.test", tenant=TENANT, templated_issuer=True)
    claims = {key: value for key, value in {**base_claims(idp), **change}.items() if value is not None}
    with pytest.raises(SignInFailed):
        verify(idp, idp.id_token(claims), kind="azure", tenant="common")


def test_a_single_tenant_microsoft_issuer_is_compared_as_is() -> None:
    idp = FakeOIDC(base="https://login.microsoft.test", tenant=TENANT)
    assert verify(idp, idp.id_token(base_claims(idp)), kind="azure", tenant=TENANT)["tid"] == TENANT
    other = {
        **base_claims(idp),
        "iss": "https://login.microsoft.test/0b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3/v2.0",
    }
    with pytest.raises(SignInFailed):
        verify(idp, idp.id_token(other), kind="azure", tenant=TENANT)


def test_an_unreachable_discovery_document_is_reported_as_unreachable() -> None:
    idp = FakeOIDC(discovery_status=503)
    with pytest.raises(SignInFailed) as caught:
        verify(idp, "x.y.z")
    assert caught.value.reason == SignInFailed.UNREACHABLE


# -- captive-network assistants --------------------------------------------------------------

IOS_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
IOS_CHROME = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1"
)
IOS_SHEET = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
IPAD_SHEET = (
    "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
)
APPLE_PROBE = "CaptiveNetworkSupport-481.100.1 wispr"
MAC_ASSISTANT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
MAC_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)
MAC_CHROME = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
ANDROID_CAPTIVE_APP = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240605.024; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.71 Mobile Safari/537.36"
)
ANDROID_CHROME = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
WINDOWS_PROBE = "Microsoft NCSI"
WINDOWS_EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"


@pytest.mark.parametrize(
    ("user_agent", "platform", "browser"),
    [
        (IOS_SHEET, "ios", "Safari"),
        (IPAD_SHEET, "ios", "Safari"),
        (APPLE_PROBE, "ios", "Safari"),
        (MAC_ASSISTANT, "macos", "Safari"),
        (ANDROID_CAPTIVE_APP, "android", "Chrome"),
        (WINDOWS_PROBE, "windows", None),
    ],
)
def test_captive_network_assistants_are_recognised(
    user_agent: str, platform: str, browser: str | None
) -> None:
    assert assistants.detect(user_agent) == assistants.Assistant(platform, browser)


@pytest.mark.parametrize(
    "user_agent",
    [
        IOS_SAFARI,
        IOS_CHROME,
        MAC_SAFARI,
        MAC_CHROME,
        ANDROID_CHROME,
        WINDOWS_EDGE,
        FIREFOX,
        "",
        None,
        "x" * 5000,
    ],
)
def test_real_browsers_are_not_assistants(user_agent: str | None) -> None:
    assert assistants.detect(user_agent) is None
