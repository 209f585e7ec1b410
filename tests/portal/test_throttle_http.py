"""A script of wrong guesses through the HTTP form: lock-out, 429 page, unlock, audit, site limit."""

from __future__ import annotations

from guestgate.portal.config import ThrottleLimits
from guestgate.portal.throttle import FailureCounters
from tests.utils.portal import ClientFactory, PortalFactory, World, fresh_token, sign_in


def test_wrong_guesses_lock_the_client_out_on_schedule_and_the_lock_ends_on_schedule(
    world: World, make_portal: PortalFactory, guest: ClientFactory, counters: FailureCounters
) -> None:
    client = guest("10.0.1.10", portal=make_portal(counters=counters))
    good = world.coupon("GUD234", minutes=600)
    token = fresh_token(client, world)
    for guess in ("BAD234", "BAD235", "BAD236", "BAD237"):
        assert sign_in(client, token, guess).status_code == 400
    locked = sign_in(client, token, "BAD238")
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == "60"
    assert "Too many wrong codes were entered from this device. Please try again in 1 min." in locked.text
    failed = world.audit("guest.signin_failed")
    assert len(failed) == 5
    [lockout] = world.audit("guest.lockout")
    assert lockout.org_id == world.org_id
    assert lockout.ip_address == "10.0.1.10"
    assert lockout.target_type == "site" and lockout.target_id == world.site_id
    assert lockout.detail["scope"] == "client" and lockout.detail["seconds"] == 60
    assert lockout.detail["level"] == 1

    # Even the right code waits for the lock-out to end, and the attempt spends nothing.
    world.clock.advance(59)
    still = sign_in(client, token, "GUD234")
    assert still.status_code == 429
    assert still.headers["retry-after"] == "1"
    assert world.coupon_row(good).redeemed_at is None
    assert world.count_rows() == (0, 6)

    world.clock.advance(1)
    assert sign_in(client, token, "GUD234").status_code == 200


def test_the_second_lockout_lasts_twice_as_long(
    world: World, make_portal: PortalFactory, guest: ClientFactory, counters: FailureCounters
) -> None:
    client = guest("10.0.1.10", portal=make_portal(counters=counters, token_ttl_seconds=3600))
    token = fresh_token(client, world)
    for _ in range(5):
        sign_in(client, token, "BAD234")
    world.clock.advance(60)
    for _ in range(4):
        assert sign_in(client, token, "BAD234").status_code == 400
    second = sign_in(client, token, "BAD234")
    assert second.status_code == 429
    assert second.headers["retry-after"] == "120"
    assert "2 min" in second.text
    assert [e.detail["seconds"] for e in world.audit("guest.lockout")] == [60, 120]


def test_a_site_under_attack_still_signs_in_a_guest_with_a_valid_code(
    world: World, make_portal: PortalFactory, guest: ClientFactory, counters: FailureCounters
) -> None:
    limits = ThrottleLimits(client_max_failures=3, site_max_failures=5, lockout_seconds=60)
    portal = make_portal(counters=counters, throttle=limits)
    guessers = [guest(f"10.0.1.{20 + index}", portal=portal) for index in range(6)]
    for client in guessers[:4]:
        assert sign_in(client, fresh_token(client, world), "BAD234").status_code == 400
    # The fifth wrong code at the site: the site is under attack, its guesser locked out at once.
    locked = sign_in(guessers[4], fresh_token(guessers[4], world), "BAD234")
    assert locked.status_code == 429
    assert "Too many wrong codes were entered from this device." in locked.text
    [attack] = world.audit("guest.site_under_attack")
    assert attack.target_id == world.site_id and attack.detail["scope"] == "site"
    # Another guest with a valid code signs in as usual.
    world.coupon("GUD234")
    newcomer = guest("10.0.1.12", portal=portal)
    assert sign_in(newcomer, fresh_token(newcomer, world), "GUD234").status_code == 200
    assert len(world.sessions()) == 1
    scopes = sorted(e.detail["scope"] for e in world.audit("guest.lockout"))
    assert scopes == ["client"]


def test_malformed_and_incomplete_forms_do_not_count_as_guesses(
    world: World, make_portal: PortalFactory, guest: ClientFactory
) -> None:
    client = guest("10.0.1.10", portal=make_portal())
    token = fresh_token(client, world)
    for _ in range(10):
        assert sign_in(client, token, "x").status_code == 400
        assert sign_in(client, token, "").status_code == 400
        assert sign_in(client, token, "ABC234", accept=False).status_code == 400
    world.coupon("GUD234")
    assert sign_in(client, token, "GUD234").status_code == 200


def test_reopening_the_entry_while_locked_out_shows_the_venue_and_when_to_retry(
    world: World, make_portal: PortalFactory, guest: ClientFactory, counters: FailureCounters
) -> None:
    client = guest("10.0.1.10", portal=make_portal(counters=counters))
    token = fresh_token(client, world)
    for _ in range(5):
        last = sign_in(client, token, "BAD234")
    assert last.status_code == 429
    assert "<h1>Lobby Wi-Fi</h1>" in last.text and "<h2>Too many attempts</h2>" in last.text
    world.clock.advance(20)
    again = client.get("/guest/entry", params={"site": world.site_id, "code": "GUD234"})
    assert again.status_code == 429
    assert again.headers["retry-after"] == "40"
    assert "<h1>Lobby Wi-Fi</h1>" in again.text
    assert "Please try again in 1 min." in again.text
    assert 'name="code"' not in again.text and 'name="t"' not in again.text  # no form it could not use
    # It reloads itself (and links) to the entry, code kept, when the lock-out ends.
    retry = f"/guest/entry?site={world.site_id}&amp;code=GUD234"
    assert f'<meta http-equiv="refresh" content="40;url={retry}">' in again.text
    assert f'href="{retry}"' in again.text
    world.clock.advance(40)
    form = client.get("/guest/entry", params={"site": world.site_id, "code": "GUD234"})
    assert form.status_code == 200 and 'name="code"' in form.text and 'value="GUD234"' in form.text
