"""A script of wrong guesses through the HTTP form: lock-out, 429 page, unlock, audit, site limit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from guestgate.portal.config import ThrottleLimits
from guestgate.portal.throttle import FailureCounters, MemoryCounters, RedisCounters
from tests.portal.conftest import ClientFactory, PortalFactory, World, fresh_token, sign_in

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest) -> Iterator[FailureCounters]:
    """In-process counters, and Redis counters under a prefix of this test's own."""
    if request.param == "memory":
        yield MemoryCounters()
        return
    prefix = f"guestgate:test:{uuid.uuid4().hex}:"
    yield RedisCounters(REDIS_URL, prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


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


def test_a_second_client_is_unaffected_until_the_site_limit(
    world: World, make_portal: PortalFactory, guest: ClientFactory, counters: FailureCounters
) -> None:
    limits = ThrottleLimits(client_max_failures=3, site_max_failures=5, lockout_seconds=60)
    portal = make_portal(counters=counters, throttle=limits)
    first, second, third = (guest(ip, portal=portal) for ip in ("10.0.1.10", "10.0.1.11", "10.0.1.12"))
    first_token, second_token = fresh_token(first, world), fresh_token(second, world)
    for _ in range(2):
        assert sign_in(first, first_token, "BAD234").status_code == 400
    assert sign_in(first, first_token, "BAD234").status_code == 429
    # The first client is locked out; the second still gets to guess...
    assert sign_in(second, second_token, "BAD234").status_code == 400
    # ...until the site's fifth failure locks the whole site.
    site_locked = sign_in(second, second_token, "BAD234")
    assert site_locked.status_code == 429
    assert "Too many wrong codes were entered on this network." in site_locked.text
    world.coupon("GUD234")
    third_try = sign_in(third, fresh_token(third, world), "GUD234")
    assert third_try.status_code == 429
    assert world.sessions() == []
    scopes = sorted(e.detail["scope"] for e in world.audit("guest.lockout"))
    assert scopes == ["client", "site"]
    world.clock.advance(60)
    assert sign_in(third, fresh_token(third, world), "GUD234").status_code == 200


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
