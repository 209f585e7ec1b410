"""POST /guest/signin: coupon redemption, its distinct failures, and hostile input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.testclient import TestClient

from guestgate.portal.config import PortalConfig
from guestgate.portal.tokens import GuestIdentity, TokenSealer
from tests.utils.portal import (
    GUEST_IP,
    ClientFactory,
    PortalFactory,
    World,
    enter,
    fresh_token,
    sign_in,
    token_of,
    vouched_orig,
)


@pytest.fixture
def client(guest: ClientFactory) -> TestClient:
    return guest(GUEST_IP)


def test_a_valid_code_creates_an_active_session_for_session_ttl(world: World, client: TestClient) -> None:
    coupon_id = world.coupon("ABC234")
    response = sign_in(client, fresh_token(client, world), "ABC234")
    assert response.status_code == 200
    assert "You&#39;re connected" in response.text
    assert "Time remaining" in response.text and ">1 hour<" in response.text
    [session] = world.sessions()
    now = world.clock()
    assert session.strategy == "coupon"
    assert session.coupon_id == coupon_id
    assert session.status == "active"
    assert session.ip_address == GUEST_IP
    assert session.mac_address is None
    assert session.site_id == world.site_id and session.instance_id == world.instance_id
    assert session.org_id == world.org_id
    assert session.started_at == now
    assert session.expires_at == now + timedelta(seconds=3600)
    assert session.identity is None and session.ended_at is None
    # The ORM reads back what the raw SQL wrote, timezone and all.
    assert world.coupon_row(coupon_id).redeemed_at == now


@pytest.mark.parametrize("typed", ["abc234", "AbC234", "  abc234 ", "abc-234", "ABC 234"])
def test_codes_are_matched_case_insensitively_ignoring_spaces_and_dashes(
    world: World, client: TestClient, typed: str
) -> None:
    world.coupon("ABC234")
    assert sign_in(client, fresh_token(client, world), typed).status_code == 200
    assert len(world.sessions()) == 1


def test_an_unknown_code_says_so_and_is_audited(world: World, client: TestClient) -> None:
    world.coupon("ABC234")
    response = sign_in(client, fresh_token(client, world), "ZZZ999")
    assert response.status_code == 400
    assert "We don&#39;t recognise that code." in response.text
    assert 'aria-invalid="true"' in response.text
    assert world.sessions() == []
    [event] = world.audit("guest.signin_failed")
    assert event.org_id == world.org_id
    assert event.ip_address == GUEST_IP
    assert event.actor == f"guest:{GUEST_IP}"
    assert event.target_type == "instance" and event.target_id == world.instance_id
    assert event.detail == {
        "reason": "unknown",
        "code_hash": PortalConfig.from_settings(world.runtime.settings).code_hash("ZZZ999"),
        "site_id": world.site_id,
        "mac_address": None,
    }


def test_an_expired_code_says_so(world: World, client: TestClient) -> None:
    world.coupon("ABC234", minutes=-1)
    response = sign_in(client, fresh_token(client, world), "ABC234")
    assert response.status_code == 410
    assert "This code has expired." in response.text
    assert world.sessions() == []
    assert [e.detail["reason"] for e in world.audit("guest.signin_failed")] == ["expired"]


def test_a_code_expiring_this_very_moment_is_expired(world: World, client: TestClient) -> None:
    world.coupon("ABC234", minutes=0)
    assert sign_in(client, fresh_token(client, world), "ABC234").status_code == 410


def test_a_used_code_says_so(world: World, client: TestClient) -> None:
    world.coupon("ABC234", redeemed=True)
    response = sign_in(client, fresh_token(client, world), "ABC234")
    assert response.status_code == 409
    assert "This code has already been used." in response.text
    assert [e.detail["reason"] for e in world.audit("guest.signin_failed")] == ["used"]


def test_a_redeemed_and_expired_code_is_reported_as_used(world: World, client: TestClient) -> None:
    world.coupon("ABC234", minutes=-5, redeemed=True)
    assert sign_in(client, fresh_token(client, world), "ABC234").status_code == 409


def test_the_three_failure_messages_are_distinct(world: World, guest: ClientFactory) -> None:
    world.coupon("EXP234", minutes=-1)
    world.coupon("USE234", redeemed=True)
    bodies = []
    for ip, code in (("10.0.1.10", "NOP234"), ("10.0.1.11", "EXP234"), ("10.0.1.12", "USE234")):
        client = guest(ip)
        text = sign_in(client, fresh_token(client, world), code).text
        bodies.append(text[text.index('class="error"') : text.index("</p>", text.index('class="error"'))])
    assert len(set(bodies)) == 3


def test_a_code_of_another_instance_is_unknown_here(world: World, client: TestClient) -> None:
    from guestgate.instances.models import Instance

    with world.runtime.sessions() as session:
        other = Instance(
            org_id="org-a", name="Other", strategy="coupon", session_ttl=1200, theme={}, locale="en"
        )
        session.add(other)
        session.commit()
        other_id = other.id
    world.coupon("ABC234", instance_id=other_id)
    assert sign_in(client, fresh_token(client, world), "ABC234").status_code == 400


def test_the_code_works_only_once_across_guests(world: World, guest: ClientFactory) -> None:
    world.coupon("ABC234")
    first, second = guest("10.0.1.10"), guest("10.0.1.11")
    assert sign_in(first, fresh_token(first, world), "ABC234").status_code == 200
    assert sign_in(second, fresh_token(second, world), "ABC234").status_code == 409
    assert len(world.sessions()) == 1


def test_a_double_submit_by_the_same_guest_shows_its_session_and_spends_nothing_more(
    world: World, client: TestClient
) -> None:
    world.coupon("ABC234")
    other = world.coupon("XYZ234")
    token = fresh_token(client, world)
    assert sign_in(client, token, "ABC234").status_code == 200
    again = sign_in(client, token, "XYZ234")
    assert again.status_code == 200
    assert "Your connection" in again.text
    assert len(world.sessions()) == 1
    assert world.coupon_row(other).redeemed_at is None


def test_the_success_page_continues_to_the_original_http_url(world: World, client: TestClient) -> None:
    world.coupon("ABC234")
    token = token_of(
        enter(client, world.site_id, **vouched_orig(world, "https://example.com/a?b=1&c=2")).text
    )
    response = sign_in(client, token, "ABC234")
    assert 'class="button" href="https://example.com/a?b=1&amp;c=2"' in response.text
    assert "Continue" in response.text


@pytest.mark.parametrize(
    "orig", ["javascript:alert(1)", "data:text/html,hi", "ftp://example.com/", "//example.com/", "http://"]
)
def test_an_original_url_that_is_not_http_gets_no_continue_button(
    world: World, client: TestClient, orig: str
) -> None:
    world.coupon("ABC234")
    token = token_of(enter(client, world.site_id, orig=orig).text)
    response = sign_in(client, token, "ABC234")
    assert response.status_code == 200
    assert "Continue" not in response.text
    assert orig not in response.text


def test_terms_must_be_accepted(world: World, client: TestClient) -> None:
    world.coupon("ABC234")
    response = sign_in(client, fresh_token(client, world), "ABC234", accept=False)
    assert response.status_code == 400
    assert "Please accept the terms and conditions to continue." in response.text
    assert world.count_rows() == (0, 0)
    assert world.coupon_row(world.coupon("XYZ234")).redeemed_at is None


def test_without_terms_no_acceptance_is_asked(world: World, client: TestClient) -> None:
    world.update_instance(terms_text=None)
    world.coupon("ABC234")
    page = enter(client, world.site_id).text
    assert 'name="accept"' not in page
    assert sign_in(client, token_of(page), "ABC234", accept=False).status_code == 200


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "Please enter your access code."),
        ("   ", "Please enter your access code."),
        ("ABC23", "An access code has 6 letters and digits."),
        ("ABC2345", "An access code has 6 letters and digits."),
        ("ABC23Ø", "An access code has 6 letters and digits."),
        ("\uff21\uff22\uff23\uff12\uff13\uff14", "An access code has 6 letters and digits."),
        ("ABC23ß", "An access code has 6 letters and digits."),
        ("A" * 5000, "An access code has 6 letters and digits."),
        ("ABC2'4", "An access code has 6 letters and digits."),
        ("ABC0O1", "An access code has 6 letters and digits."),
    ],
)
def test_malformed_codes_get_a_clear_page_and_nothing_is_written(
    world: World, client: TestClient, code: str, message: str
) -> None:
    world.coupon("ABC234")
    response = sign_in(client, fresh_token(client, world), code)
    assert response.status_code == 400
    assert message in response.text
    assert world.count_rows() == (0, 0)


def test_a_missing_code_field_gets_a_clear_page(world: World, client: TestClient) -> None:
    response = sign_in(client, fresh_token(client, world), None)
    assert response.status_code == 400
    assert "Please enter your access code." in response.text
    assert world.count_rows() == (0, 0)


def test_the_typed_code_is_echoed_escaped(world: World, client: TestClient) -> None:
    response = sign_in(client, fresh_token(client, world), '"><b>x')
    assert response.status_code == 400
    assert '"><b>x' not in response.text
    assert "&#34;&gt;&lt;b&gt;x" in response.text


def test_a_missing_token_gets_a_clear_page(world: World, client: TestClient) -> None:
    world.coupon("ABC234")
    response = client.post("/guest/signin", data={"code": "ABC234", "accept": "yes"})
    assert response.status_code == 400
    assert "This form is incomplete." in response.text
    assert world.count_rows() == (0, 0)


@pytest.mark.parametrize("token", ["garbage", "A" * 80, "é" * 30, "x" * 5000])
def test_a_forged_token_gets_a_clear_page_and_nothing_is_written(
    world: World, client: TestClient, token: str
) -> None:
    world.coupon("ABC234")
    response = sign_in(client, token, "ABC234")
    assert response.status_code == 403
    assert "could not be verified" in response.text
    assert world.count_rows() == (0, 0)


def test_a_token_with_a_flipped_bit_is_refused(world: World, client: TestClient) -> None:
    world.coupon("ABC234")
    token = fresh_token(client, world)
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    assert sign_in(client, flipped, "ABC234").status_code == 403
    assert world.count_rows() == (0, 0)


def test_a_token_sealed_with_another_key_is_refused(world: World, client: TestClient) -> None:
    world.coupon("ABC234")
    forged = TokenSealer([b"k" * 32]).seal_guest(
        GuestIdentity(world.site_id, world.instance_id, GUEST_IP, peer=GUEST_IP),
        expires=int(world.clock().timestamp()) + 600,
    )
    assert sign_in(client, forged, "ABC234").status_code == 403
    assert world.count_rows() == (0, 0)


def test_a_status_token_cannot_be_used_to_sign_in(world: World, client: TestClient) -> None:
    world.coupon("ABC234")
    world.coupon("XYZ234")
    page = sign_in(client, fresh_token(client, world), "ABC234").text
    status_token = page.split("/guest/status?t=")[1].split('"')[0]
    assert sign_in(client, status_token, "XYZ234").status_code == 403


def test_an_expired_token_gets_a_page_to_start_again(world: World, client: TestClient) -> None:
    world.coupon("ABC234", minutes=120)
    token = fresh_token(client, world)
    world.clock.advance(1800)
    response = sign_in(client, token, "ABC234")
    assert response.status_code == 403
    assert "This sign-in page has expired." in response.text
    assert f"/guest/entry?site={world.site_id}" in response.text
    assert world.count_rows() == (0, 0)


def test_a_token_replayed_from_another_address_is_refused(world: World, guest: ClientFactory) -> None:
    world.coupon("ABC234")
    token = fresh_token(guest("10.0.1.10"), world)
    thief = guest("10.0.1.99")
    response = sign_in(thief, token, "ABC234")
    assert response.status_code == 403
    assert world.count_rows() == (0, 0)


def test_a_token_replayed_after_success_creates_no_second_session(world: World, client: TestClient) -> None:
    world.coupon("ABC234")
    token = fresh_token(client, world)
    assert sign_in(client, token, "ABC234").status_code == 200
    replay = sign_in(client, token, "ABC234")
    assert replay.status_code == 200 and "Your connection" in replay.text
    assert len(world.sessions()) == 1
    assert world.audit() == []


def test_a_form_that_is_not_urlencoded_gets_a_clear_page(world: World, client: TestClient) -> None:
    response = client.post("/guest/signin", json={"t": "x", "code": "ABC234"})
    assert response.status_code == 400
    assert "This form is incomplete." in response.text


def test_an_oversized_form_is_refused(world: World, client: TestClient) -> None:
    response = client.post(
        "/guest/signin",
        content=b"t=" + b"a" * 20_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
    assert "The form sent was too large." in response.text


def test_get_on_the_sign_in_url_is_a_405_page(world: World, client: TestClient) -> None:
    response = client.get("/guest/signin")
    assert response.status_code == 405
    assert "text/html" in response.headers["content-type"]


def test_an_unknown_portal_path_is_a_404_page(world: World, client: TestClient) -> None:
    response = client.get("/guest/nothing-here")
    assert response.status_code == 404
    assert "There is no page at this address." in response.text


def test_an_oauth2_instance_does_not_take_codes(
    world: World, make_portal: PortalFactory, guest: ClientFactory
) -> None:
    client = guest(GUEST_IP, portal=make_portal(cache_seconds=0))
    world.coupon("ABC234")
    token = fresh_token(client, world)
    world.update_instance(strategy="oauth2")
    response = sign_in(client, token, "ABC234")
    assert response.status_code == 400
    assert world.count_rows() == (0, 0)


def test_the_gateway_is_told_about_a_new_session(world: World, guest: ClientFactory) -> None:
    from guestgate.portal.routes import build
    from guestgate.portal.store import GuestSession
    from guestgate.portal.throttle import MemoryCounters

    allowed: list[GuestSession] = []

    class Recorder:
        async def allow(self, session: GuestSession) -> None:
            allowed.append(session)

    portal = build(world.runtime, counters=MemoryCounters(), notifier=Recorder(), clock=world.clock)
    client = guest(GUEST_IP, portal=portal)
    world.coupon("ABC234")
    assert sign_in(client, fresh_token(client, world), "ABC234").status_code == 200
    [session] = allowed
    assert session.ip == GUEST_IP and session.expires_at == world.clock() + timedelta(seconds=3600)


def test_a_failing_gateway_does_not_undo_the_session(world: World, guest: ClientFactory) -> None:
    from guestgate.portal.routes import build
    from guestgate.portal.store import GuestSession
    from guestgate.portal.throttle import MemoryCounters

    class Broken:
        async def allow(self, session: GuestSession) -> None:
            raise ConnectionError("gateway unreachable")

    portal = build(world.runtime, counters=MemoryCounters(), notifier=Broken(), clock=world.clock)
    client = guest(GUEST_IP, portal=portal)
    world.coupon("ABC234")
    assert sign_in(client, fresh_token(client, world), "ABC234").status_code == 200
    assert len(world.sessions()) == 1
