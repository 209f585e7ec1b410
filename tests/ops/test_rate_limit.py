"""Operator API rate limits per token: a burst, then the steady rate; 429 with Retry-After and the
error body; counters in process or in Redis (shared by replicas)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from guestgate.app import create_app
from guestgate.ops.ratelimit import Limit, Limiter, MemoryLimiter, RedisLimiter, check
from guestgate.runtime import Runtime
from guestgate.security import ALL_SCOPES, mint_token
from tests.utils.settings import make_settings

REDIS_URL = os.environ.get("GUESTGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in the shared Redis (a missing Redis fails the test)."""
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    prefix = f"guestgate-test:ratelimit:{uuid.uuid4().hex}:"
    yield prefix
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()


def _limiters(kind: str, limit: Limit, prefix: str) -> Limiter:
    return MemoryLimiter(limit) if kind == "memory" else RedisLimiter(REDIS_URL, limit, prefix=prefix)


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_burst_passes_then_one_request_per_interval(kind: str, redis_prefix: str) -> None:
    limiter = _limiters(kind, Limit(per_minute=60, burst=3), redis_prefix)

    async def run() -> list[int | None]:
        t0 = 1_000_000.0
        seen = [await check(limiter, "token-a", now=t0) for _ in range(4)]
        seen.append(await check(limiter, "token-b", now=t0))  # another token has its own budget
        seen.append(await check(limiter, "token-a", now=t0 + 0.5))
        seen.append(await check(limiter, "token-a", now=t0 + 1.0))
        seen.append(await check(limiter, "token-a", now=t0 + 1.0))
        seen.append(await check(limiter, "token-a", now=t0 + 60))  # a quiet minute refills the burst
        seen.append(await check(limiter, "token-a", now=t0 + 60))
        await limiter.close()
        return seen

    assert asyncio.run(run()) == [None, None, None, 1, None, 1, None, 1, None, None]


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_request_costing_more_takes_as_many_single_requests(kind: str, redis_prefix: str) -> None:
    limiter = _limiters(kind, Limit(per_minute=60, burst=10), redis_prefix)

    async def run() -> list[float | None]:
        t0 = 2_000_000.0
        seen = [
            await limiter.retry_after("k", t0, 4),  # 4 of the burst of 10
            await limiter.retry_after("k", t0, 4),  # 8
            await limiter.retry_after("k", t0, 4),  # 12 > 10: refused, nothing counted
            await limiter.retry_after("k", t0, 2),  # 10: still fits
            await limiter.retry_after("k", t0, 1),  # refused: the burst is spent
            await limiter.retry_after("k", t0 + 3, 3),  # three intervals later, three fit again
        ]
        await limiter.close()
        return seen

    seen = asyncio.run(run())
    assert [wait is None for wait in seen] == [True, True, False, True, False, True]
    assert seen[2] == pytest.approx(2.0)  # two more intervals were needed for a cost of 4
    assert seen[4] == pytest.approx(1.0)


def test_retry_after_is_the_wait_rounded_up(redis_prefix: str) -> None:
    limiter = MemoryLimiter(Limit(per_minute=2, burst=1))

    async def run() -> list[int | None]:
        return [
            await check(limiter, "t", now=100.0),
            await check(limiter, "t", now=100.0),
            await check(limiter, "t", now=129.5),
        ]

    assert asyncio.run(run()) == [None, 30, 1]


def test_an_unreachable_redis_lets_requests_through() -> None:
    limiter = RedisLimiter("redis://127.0.0.1:9/0", Limit(per_minute=1, burst=1))

    async def run() -> list[int | None]:
        seen = [await check(limiter, "t", now=0.0) for _ in range(3)]
        await limiter.close()
        return seen

    assert asyncio.run(run()) == [None, None, None]


def _app(db_url: str, tmp_path: Path, **overrides: object) -> tuple[TestClient, Runtime]:
    runtime = Runtime.build(make_settings(db_url, tmp_path, **overrides))
    return TestClient(create_app(runtime=runtime), raise_server_exceptions=False), runtime


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_token_over_its_limit_gets_429_with_retry_after_and_the_error_body(
    db_url: str, tmp_path: Path, backend: str, redis_prefix: str
) -> None:
    options: dict[str, object] = {"rate_limit_per_minute": 6, "rate_limit_burst": 2}
    if backend == "redis":
        options |= {"redis_url": REDIS_URL, "rate_limit_redis_prefix": redis_prefix}
    client, runtime = _app(db_url, tmp_path, **options)
    token = mint_token(runtime.settings, org="org-r", subject="r", scopes=ALL_SCOPES, ttl_seconds=600)
    other = mint_token(runtime.settings, org="org-r", subject="r2", scopes=ALL_SCOPES, ttl_seconds=600)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with client:
            statuses = [client.get("/captive/instances", headers=headers).status_code for _ in range(2)]
            limited = client.post("/captive/sites", headers=headers, json={"name": "x", "subnets": []})
            assert (
                client.get("/captive/instances", headers={"Authorization": f"Bearer {other}"}).status_code
                == 200
            )
            # Unauthenticated requests are refused before the limiter counts anything.
            assert client.get("/captive/instances").status_code == 401
            assert client.get("/healthz").status_code == 200
            sites = client.get("/captive/sites", headers={"Authorization": f"Bearer {other}"}).json()
    finally:
        runtime.close()
    assert statuses == [200, 200]
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "10"
    assert limited.json() == {
        "type": "rate_limit_error",
        "code": "rate_limited",
        "message": "Too many requests with this token. Retry after the number of seconds in Retry-After.",
        "doc_url": "http://testserver/errors/rate_limited",
    }
    assert sites == []  # the refused request did nothing


def test_replicas_share_the_budget_only_through_redis(db_url: str, tmp_path: Path, redis_prefix: str) -> None:
    results = {}
    for backend in ("memory", "redis"):
        options: dict[str, object] = {"rate_limit_per_minute": 6, "rate_limit_burst": 2}
        if backend == "redis":
            options |= {"redis_url": REDIS_URL, "rate_limit_redis_prefix": redis_prefix}
        first, first_runtime = _app(db_url, tmp_path / f"{backend}-a", **options)
        second, second_runtime = _app(db_url, tmp_path / f"{backend}-b", **options)
        token = mint_token(
            first_runtime.settings, org="org-r", subject=backend, scopes=ALL_SCOPES, ttl_seconds=600
        )
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with first, second:
                statuses = [first.get("/captive/instances", headers=headers).status_code for _ in range(2)]
                statuses += [second.get("/captive/instances", headers=headers).status_code for _ in range(2)]
        finally:
            first_runtime.close()
            second_runtime.close()
        results[backend] = statuses
    # In process each replica has its own burst of 2; in Redis the two replicas share one.
    assert results == {"memory": [200, 200, 200, 200], "redis": [200, 200, 429, 429]}


def test_the_limit_can_be_turned_off(db_url: str, tmp_path: Path) -> None:
    client, runtime = _app(db_url, tmp_path, rate_limit_per_minute=0, rate_limit_burst=1)
    token = mint_token(runtime.settings, org="org-r", subject="r", scopes=ALL_SCOPES, ttl_seconds=600)
    try:
        with client:
            statuses = {
                client.get("/captive/instances", headers={"Authorization": f"Bearer {token}"}).status_code
                for _ in range(20)
            }
    finally:
        runtime.close()
    assert statuses == {200}


def test_the_rate_limited_code_has_its_error_page(client: TestClient) -> None:
    page = client.get("/errors/rate_limited")
    assert page.status_code == 200
    assert "429" in page.text and "Retry-After" in page.text
