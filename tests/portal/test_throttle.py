"""Failure counters and lock-outs: in process and in Redis, with the same schedule."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis

from guestgate.portal.config import ThrottleLimits
from guestgate.portal.throttle import FailureCounters, MemoryCounters, RedisCounters, Throttle

REDIS_URL = "redis://127.0.0.1:6379/0"
LIMITS = ThrottleLimits(
    client_max_failures=3,
    site_max_failures=100,
    window_seconds=60,
    lockout_seconds=10,
    lockout_max_seconds=40,
    memory_seconds=3600,
)
T0 = 1_800_000_000.0


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"guestgate:test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


@pytest.fixture(params=["memory", "redis"])
def counters(request: pytest.FixtureRequest, redis_prefix: str) -> FailureCounters:
    """Both implementations of the counters."""
    if request.param == "memory":
        return MemoryCounters()
    return RedisCounters(REDIS_URL, prefix=redis_prefix)


def run(scenario: Callable[[], Awaitable[Any]], counters: FailureCounters) -> Any:
    async def main() -> Any:
        try:
            return await scenario()
        finally:
            await counters.close()

    return asyncio.run(main())


def test_a_client_is_locked_out_at_the_limit_and_let_back_on_schedule(counters: FailureCounters) -> None:
    throttle = Throttle(counters, LIMITS)

    async def scenario() -> None:
        assert await throttle.failed("s", "10.0.0.1", None, T0) == []
        assert await throttle.failed("s", "10.0.0.1", None, T0 + 1) == []
        assert await throttle.check("s", "10.0.0.1", None, T0 + 1) is None
        [lockout] = await throttle.failed("s", "10.0.0.1", None, T0 + 2)
        assert lockout.key == "ip:s:10.0.0.1"
        assert lockout.scope == "client"
        assert lockout.until == T0 + 12
        assert lockout.level == 1
        locked = await throttle.check("s", "10.0.0.1", None, T0 + 11.999)
        assert locked is not None and locked.until == T0 + 12
        assert await throttle.check("s", "10.0.0.1", None, T0 + 12) is None

    run(scenario, counters)


def test_each_lockout_doubles_up_to_the_cap(counters: FailureCounters) -> None:
    throttle = Throttle(counters, LIMITS)

    async def scenario() -> list[float]:
        now, lengths = T0, []
        for _ in range(4):
            started: list[Any] = []
            for _ in range(3):
                started = await throttle.failed("s", "10.0.0.1", None, now)
            lengths.append(started[0].until - now)
            now = started[0].until
        return lengths

    assert run(scenario, counters) == [10, 20, 40, 40]


def test_failures_older_than_the_window_no_longer_count(counters: FailureCounters) -> None:
    throttle = Throttle(counters, LIMITS)

    async def scenario() -> None:
        await throttle.failed("s", "10.0.0.1", None, T0)
        await throttle.failed("s", "10.0.0.1", None, T0 + 1)
        assert await throttle.failed("s", "10.0.0.1", None, T0 + 60) == []
        assert await throttle.failed("s", "10.0.0.1", None, T0 + 61) == []
        assert len(await throttle.failed("s", "10.0.0.1", None, T0 + 62)) == 1

    run(scenario, counters)


def test_the_lockout_level_is_forgotten_after_the_memory_time(counters: FailureCounters) -> None:
    throttle = Throttle(counters, LIMITS)

    async def scenario() -> None:
        for _ in range(3):
            await throttle.failed("s", "10.0.0.1", None, T0)
        later = T0 + 3600
        started: list[Any] = []
        for _ in range(3):
            started = await throttle.failed("s", "10.0.0.1", None, later)
        assert started[0].level == 1 and started[0].until == later + 10

    run(scenario, counters)


def test_a_mac_is_throttled_even_when_the_ip_changes(counters: FailureCounters) -> None:
    throttle = Throttle(counters, LIMITS)

    async def scenario() -> None:
        for index in range(2):
            await throttle.failed("s", f"10.0.0.{index}", "AA:BB:CC:DD:EE:FF", T0)
        [lockout] = await throttle.failed("s", "10.0.0.9", "AA:BB:CC:DD:EE:FF", T0)
        assert lockout.key == "mac:s:AA:BB:CC:DD:EE:FF"
        assert await throttle.check("s", "10.0.0.50", "AA:BB:CC:DD:EE:FF", T0 + 1) is not None
        assert await throttle.check("s", "10.0.0.50", None, T0 + 1) is None

    run(scenario, counters)


SITE_LIMITS = ThrottleLimits(client_max_failures=3, site_max_failures=5, lockout_seconds=10)


def test_a_site_under_attack_refuses_no_one_and_gives_each_client_one_wrong_guess(
    counters: FailureCounters,
) -> None:
    throttle = Throttle(counters, SITE_LIMITS)

    async def scenario() -> None:
        for index in range(4):
            assert await throttle.failed("s", f"10.0.0.{index}", None, T0) == []
        # The fifth wrong code at the site puts it under attack, and is its client's first: locked.
        started = await throttle.failed("s", "10.0.0.9", None, T0)
        assert sorted((x.scope, x.key) for x in started) == [("client", "ip:s:10.0.0.9"), ("site", "site:s")]
        # A client that has not failed is not stopped; its first wrong code now locks it.
        assert await throttle.check("s", "10.0.0.77", None, T0 + 1) is None
        [lockout] = await throttle.failed("s", "10.0.0.77", None, T0 + 1)
        assert lockout.key == "ip:s:10.0.0.77" and lockout.until == T0 + 11
        # A client with failures from before the attack gets one more, not its remaining two.
        [lockout] = await throttle.failed("s", "10.0.0.0", None, T0 + 2)
        assert lockout.key == "ip:s:10.0.0.0"
        assert await throttle.check("other-site", "10.0.0.77", None, T0 + 1) is None

    run(scenario, counters)


def test_a_site_stays_under_attack_while_wrong_codes_keep_coming(counters: FailureCounters) -> None:
    throttle = Throttle(counters, SITE_LIMITS)

    async def scenario() -> None:
        for index in range(5):
            await throttle.failed("s", f"10.0.1.{index}", None, T0)
        # The attack mode's 10 s are renewed by each failure: at T0 + 25 the site is still strict.
        for step in range(1, 6):
            [lockout] = await throttle.failed("s", f"10.0.2.{step}", None, T0 + 5 * step)
            assert lockout.scope == "client"
        # After a quiet lock-out's time it is not: a client has its usual three again.
        quiet = T0 + 25 + 10
        assert await throttle.failed("s", "10.0.3.1", None, quiet) == []
        assert await throttle.failed("s", "10.0.3.1", None, quiet) == []

    run(scenario, counters)


def test_an_ipv6_network_is_locked_at_the_site_limit_but_not_ipv4_or_another_network(
    counters: FailureCounters,
) -> None:
    throttle = Throttle(counters, SITE_LIMITS)

    async def scenario() -> None:
        started: list[Any] = []
        for index in range(5):
            started = await throttle.failed("s", f"2001:db8:1:2::{index + 1:x}", None, T0)
        assert ("network", "net:s:2001:db8:1:2::/64") in {(x.scope, x.key) for x in started}
        locked = await throttle.check("s", "2001:db8:1:2:aaaa::1", None, T0 + 1)
        assert locked is not None and locked.scope == "network"
        assert await throttle.check("s", "2001:db8:1:3::1", None, T0 + 1) is None
        assert await throttle.check("s", "10.0.0.1", None, T0 + 1) is None
        assert await throttle.check("s", "2001:db8:1:2:aaaa::1", None, T0 + 10) is None

    run(scenario, counters)


def test_an_unreachable_redis_does_not_block_sign_ins() -> None:
    counters = RedisCounters("redis://127.0.0.1:1/0", prefix="x:")
    throttle = Throttle(counters, LIMITS)

    async def scenario() -> None:
        assert await throttle.check("s", "10.0.0.1", None, T0) is None
        assert await throttle.failed("s", "10.0.0.1", None, T0) == []

    run(scenario, counters)


def test_limits_double_from_the_base_and_stop_at_the_cap() -> None:
    limits = ThrottleLimits(lockout_seconds=60, lockout_max_seconds=3600)
    assert [limits.lockout_for(level) for level in (1, 2, 3, 6, 7, 100)] == [60, 120, 240, 1920, 3600, 3600]
