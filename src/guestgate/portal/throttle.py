"""Throttling of failed sign-ins per client (IP, MAC) and per site, with growing lock-outs.

Each key counts failures inside a window; reaching the limit locks the key out for a time
that doubles with every lock-out (capped), and the lock-out level is remembered for a day,
so a patient guesser gets slower and slower. Counters live in process (`MemoryCounters`) or,
when several replicas serve one site, in Redis (`RedisCounters`, one Lua script per change so
concurrent replicas never lose a count). Times are passed in, never read here.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
import structlog
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from guestgate.portal.config import ThrottleLimits

log = structlog.get_logger(__name__)

SCOPE_CLIENT = "client"
SCOPE_SITE = "site"
# Past this many keys the in-process table is swept of keys nobody needs any more.
_SWEEP_THRESHOLD = 10_000


@dataclass(frozen=True)
class Lockout:
    """A key that is (or just became) locked out, until when, and at which level."""

    key: str
    until: float
    level: int = 0

    @property
    def scope(self) -> str:
        """`site` for a site-wide lock-out, `client` for an IP or MAC."""
        return SCOPE_SITE if self.key.startswith("site:") else SCOPE_CLIENT


class FailureCounters(Protocol):
    """Where failure counts and lock-outs are kept."""

    async def locked(self, keys: Sequence[str], now: float) -> Lockout | None:
        """The longest current lock-out among `keys`, if any."""

    async def record_failure(
        self, key: str, *, limit: int, limits: ThrottleLimits, now: float
    ) -> Lockout | None:
        """Count one failure; the lock-out it started, if it reached the limit."""

    async def close(self) -> None:
        """Release connections."""


@dataclass
class _State:
    failures: int = 0
    window_start: float = 0.0
    level: int = 0
    until: float = 0.0
    touched: float = 0.0


class MemoryCounters:
    """Counters in this process: right for a single server."""

    def __init__(self) -> None:
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._memory = 0.0

    async def locked(self, keys: Sequence[str], now: float) -> Lockout | None:
        """The longest current lock-out among `keys`, if any."""
        found: Lockout | None = None
        with self._lock:
            for key in keys:
                state = self._states.get(key)
                if state is not None and state.until > now and (found is None or state.until > found.until):
                    found = Lockout(key, state.until, state.level)
        return found

    async def record_failure(
        self, key: str, *, limit: int, limits: ThrottleLimits, now: float
    ) -> Lockout | None:
        """Count one failure; the lock-out it started, if it reached the limit."""
        with self._lock:
            self._memory = max(self._memory, float(limits.memory_seconds))
            state = self._states.get(key)
            if state is None or now - state.touched >= limits.memory_seconds:
                state = self._states[key] = _State(window_start=now)
            state.touched = now
            if state.until > now:
                return None
            if now - state.window_start >= limits.window_seconds:
                state.failures, state.window_start = 0, now
            state.failures += 1
            started: Lockout | None = None
            if state.failures >= limit:
                state.level += 1
                state.until = now + limits.lockout_for(state.level)
                state.failures, state.window_start = 0, now
                started = Lockout(key, state.until, state.level)
            if len(self._states) > _SWEEP_THRESHOLD:
                self._sweep(now)
            return started

    def _sweep(self, now: float) -> None:
        stale = [k for k, s in self._states.items() if now - s.touched >= self._memory and s.until <= now]
        for key in stale:
            del self._states[key]

    async def close(self) -> None:
        """Nothing to release."""


# Times in integer milliseconds: Lua numbers are doubles, and replies of numbers are truncated.
_RECORD_LUA = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local base = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])
local memory = tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'f', 'w', 'n', 'u', 't')
local f = tonumber(h[1]) or 0
local w = tonumber(h[2]) or now
local n = tonumber(h[3]) or 0
local u = tonumber(h[4]) or 0
local t = tonumber(h[5]) or now
if now - t >= memory then
  f = 0
  w = now
  n = 0
  u = 0
end
redis.call('HSET', KEYS[1], 't', string.format('%.0f', now))
if u > now then
  return {0, string.format('%.0f', u), n}
end
if now - w >= window then
  f = 0
  w = now
end
f = f + 1
local started = 0
if f >= limit then
  n = n + 1
  local e = n - 1
  if e > 30 then e = 30 end
  local d = base * 2 ^ e
  if d > cap then d = cap end
  u = now + d
  f = 0
  w = now
  started = 1
end
redis.call('HSET', KEYS[1], 'f', f, 'w', string.format('%.0f', w), 'n', n, 'u', string.format('%.0f', u))
-- Expiry only collects garbage (in Redis's own time); forgetting is decided above.
local keep = memory
if u - now + window > keep then keep = u - now + window end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', keep))
return {started, string.format('%.0f', u), n}
"""

_LOCKED_LUA = """
local now = tonumber(ARGV[1])
local best = 0
local best_key = ''
local best_level = 0
for i, key in ipairs(KEYS) do
  local h = redis.call('HMGET', key, 'u', 'n')
  local u = tonumber(h[1]) or 0
  if u > now and u > best then
    best = u
    best_key = key
    best_level = tonumber(h[2]) or 0
  end
end
return {best_key, string.format('%.0f', best), best_level}
"""


class RedisCounters:
    """Counters in Redis, shared by every replica; if Redis fails, sign-ins are not blocked."""

    def __init__(self, url: str, *, prefix: str = "guestgate:portal:") -> None:
        self._url = url
        self._prefix = prefix
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def _script(self, name: str) -> AsyncScript:
        # redis.asyncio connections belong to the event loop that opened them.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            client = aioredis.Redis.from_url(self._url)
            self._client, self._loop = client, loop
            self._scripts = {
                "record": client.register_script(_RECORD_LUA),
                "locked": client.register_script(_LOCKED_LUA),
            }
        return self._scripts[name]

    async def locked(self, keys: Sequence[str], now: float) -> Lockout | None:
        """The longest current lock-out among `keys`, if any."""
        if not keys:
            return None
        try:
            reply: Any = await self._script("locked")(keys=[self._prefix + k for k in keys], args=[_ms(now)])
        except RedisError as exc:
            log.warning("portal.throttle_unavailable", error=str(exc))
            return None
        key = _text(reply[0])
        if not key:
            return None
        return Lockout(key.removeprefix(self._prefix), int(_text(reply[1])) / 1000, int(reply[2]))

    async def record_failure(
        self, key: str, *, limit: int, limits: ThrottleLimits, now: float
    ) -> Lockout | None:
        """Count one failure; the lock-out it started, if it reached the limit."""
        try:
            reply: Any = await self._script("record")(
                keys=[self._prefix + key],
                args=[
                    _ms(now),
                    limit,
                    limits.window_seconds * 1000,
                    limits.lockout_seconds * 1000,
                    limits.lockout_max_seconds * 1000,
                    limits.memory_seconds * 1000,
                ],
            )
        except RedisError as exc:
            log.warning("portal.throttle_unavailable", error=str(exc))
            return None
        if int(reply[0]) != 1:
            return None
        return Lockout(key, int(_text(reply[1])) / 1000, int(reply[2]))

    async def close(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RedisError, RuntimeError):
                await client.aclose()


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Throttle:
    """The sign-in throttle: which keys a guest has and what their limits are."""

    def __init__(self, counters: FailureCounters, limits: ThrottleLimits) -> None:
        self.counters = counters
        self.limits = limits

    @staticmethod
    def keys(site_id: str, ip: str, mac: str | None) -> list[tuple[str, str]]:
        """The (scope, key) pairs of a guest: its IP and MAC at the site, and the site."""
        found = [(SCOPE_CLIENT, f"ip:{site_id}:{ip}")]
        if mac:
            found.append((SCOPE_CLIENT, f"mac:{site_id}:{mac}"))
        found.append((SCOPE_SITE, f"site:{site_id}"))
        return found

    async def check(self, site_id: str, ip: str, mac: str | None, now: float) -> Lockout | None:
        """The lock-out that stops this guest now, if any."""
        return await self.counters.locked([key for _, key in self.keys(site_id, ip, mac)], now)

    async def failed(self, site_id: str, ip: str, mac: str | None, now: float) -> list[Lockout]:
        """Count a failed sign-in against the guest and the site; the lock-outs it started."""
        started: list[Lockout] = []
        for scope, key in self.keys(site_id, ip, mac):
            limit = self.limits.site_max_failures if scope == SCOPE_SITE else self.limits.client_max_failures
            lockout = await self.counters.record_failure(key, limit=limit, limits=self.limits, now=now)
            if lockout is not None:
                started.append(lockout)
        return started
