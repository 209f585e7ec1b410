"""Rate limits: a steady rate with a burst on top, per key (an operator's bearer token; a public
coupon link and the address asking for it, `guestgate.coupon_links.limits`).

The limit is a GCRA (the "generic cell rate algorithm", a token bucket kept as one timestamp):
each token has a theoretical arrival time `tat`; a request at `now` is allowed while
`tat - now <= (burst - 1) * interval`, and moves `tat` on by one `interval` (60 s / rate). So a
token may send `burst` requests at once, then one every `interval`. A request may cost more than
one (`cost`: a PDF export counts as several), moving `tat` on by `cost` intervals. A refused
request learns exactly when the next one will pass, which becomes `Retry-After`.

Counters live in process (`MemoryLimiter`) or, with several replicas, in Redis
(`RedisLimiter`, one Lua script per request so concurrent replicas never lose a count). If
Redis fails, requests are let through and the failure is logged: a broken limiter must not
take the API down. Tokens are keyed by a hash, never stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
import structlog
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from guestgate.config import Settings

log = structlog.get_logger(__name__)
# Past this many tokens the in-process table is swept of tokens whose bucket is full again.
_SWEEP_THRESHOLD = 10_000


@dataclass(frozen=True)
class Limit:
    """`per_minute` requests a minute per token, of which `burst` may come at once."""

    per_minute: int
    burst: int

    @property
    def interval(self) -> float:
        """Seconds between two requests at the steady rate."""
        return 60.0 / self.per_minute

    @property
    def tolerance(self) -> float:
        """How far ahead of now a token's arrival time may run: `burst` requests at once."""
        return (max(self.burst, 1) - 1) * self.interval


class Limiter(Protocol):
    """Decides whether a token may make a request now."""

    async def retry_after(self, key: str, now: float, cost: int = 1) -> float | None:
        """None if the request may go ahead (and count it), else the seconds until one would pass."""

    async def close(self) -> None:
        """Release connections."""


def token_key(token: str) -> str:
    """The counter key of a bearer token: a hash, so no token is kept in memory or Redis."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def gcra(tat: float, now: float, limit: Limit, cost: int = 1) -> tuple[float, float | None]:
    """The new arrival time and None if allowed, or the unchanged one and the seconds to wait.

    A request of `cost` passes when `cost` single requests in a row would.
    """
    tat = max(tat, now)
    wait = tat + (cost - 1) * limit.interval - now - limit.tolerance
    if wait > 0:
        return tat, wait
    return tat + cost * limit.interval, None


class MemoryLimiter:
    """Per-token arrival times in this process: right for a single server."""

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self._tat: dict[str, float] = {}
        self._lock = threading.Lock()

    async def retry_after(self, key: str, now: float, cost: int = 1) -> float | None:
        """None if the request may go ahead (and count it), else the seconds until one would pass."""
        with self._lock:
            tat, wait = gcra(self._tat.get(key, now), now, self.limit, cost)
            self._tat[key] = tat
            if len(self._tat) > _SWEEP_THRESHOLD:
                for stale in [k for k, v in self._tat.items() if v <= now]:
                    del self._tat[stale]
            return wait

    async def close(self) -> None:
        """Nothing to release."""


# Times in integer microseconds: Lua numbers are doubles, and number replies are truncated.
_GCRA_LUA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local cost = tonumber(ARGV[4]) or 1
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat + (cost - 1) * interval - now - tolerance
if wait > 0 then
  return string.format('%.0f', wait)
end
tat = tat + cost * interval
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return '0'
"""


class RedisLimiter:
    """Arrival times in Redis, shared by every replica."""

    def __init__(self, url: str, limit: Limit, *, prefix: str = "guestgate:ratelimit:") -> None:
        self.limit = limit
        self._url = url
        self._prefix = prefix
        self._client: aioredis.Redis | None = None
        self._script: AsyncScript | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _gcra(self) -> AsyncScript:
        # redis.asyncio connections belong to the event loop that opened them.
        loop = asyncio.get_running_loop()
        if self._client is None or self._script is None or self._loop is not loop:
            self._client = aioredis.Redis.from_url(self._url)
            self._script = self._client.register_script(_GCRA_LUA)
            self._loop = loop
        return self._script

    async def retry_after(self, key: str, now: float, cost: int = 1) -> float | None:
        """None if the request may go ahead (and count it), else the seconds until one would pass."""
        try:
            reply: Any = await self._gcra()(
                keys=[self._prefix + key],
                args=[_us(now), _us(self.limit.interval), _us(self.limit.tolerance), cost],
            )
        except RedisError as exc:
            log.warning("ratelimit.unavailable", error=str(exc))
            return None
        wait = int(reply.decode() if isinstance(reply, bytes) else reply)
        return wait / 1_000_000 if wait > 0 else None

    async def close(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RedisError, RuntimeError):
                await client.aclose()


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def build(settings: Settings) -> Limiter | None:
    """The operator API's limiter the settings ask for, or None when the limit is off."""
    return limiter_for(settings.rate_limit_per_minute, settings.rate_limit_burst, settings)


def limiter_for(per_minute: int, burst: int, settings: Settings) -> Limiter | None:
    """A limiter of `per_minute` with `burst`, in Redis when the settings name one; None when off."""
    if per_minute <= 0:
        return None
    limit = Limit(per_minute, max(burst, 0))
    if settings.redis_url:
        return RedisLimiter(settings.redis_url, limit, prefix=settings.rate_limit_redis_prefix)
    return MemoryLimiter(limit)


async def check(limiter: Limiter, token: str, *, now: float | None = None) -> int | None:
    """None if the token may make a request now, else the whole seconds of its `Retry-After`."""
    wait = await limiter.retry_after(token_key(token), time.time() if now is None else now)
    return None if wait is None else max(1, math.ceil(wait))
