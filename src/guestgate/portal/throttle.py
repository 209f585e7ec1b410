"""Throttling of failed sign-ins: per client (IP, MAC) lock-outs, and a site that is slowed
down under attack without being locked.

Each key counts failures inside a window; reaching the limit locks the key out for a time
that doubles with every lock-out (capped), and the lock-out level is remembered for a day,
so a patient guesser gets slower and slower. Counters live in process (`MemoryCounters`) or,
when several replicas serve one site, in Redis (`RedisCounters`, one Lua script per change so
concurrent replicas never lose a count). Times are passed in, never read here.

The keys of a guest at a site:

- `ip:<site>:<address>` and, when the gateway vouched for it, `mac:<site>:<mac>`: the client.
  `client_max_failures` wrong codes in the window lock it out; a locked client is refused
  (even with a valid code) until its lock-out ends.
- `site:<site>`: never refuses anyone. `site_max_failures` wrong codes in the window put the
  site *under attack* for a lock-out's time, renewed by every further failure (`sticky`).
  While it is, a client's first wrong code locks it out (`STRICT_CLIENT_MAX_FAILURES`), so a
  guesser rotating addresses gets one guess per address per lock-out, while a guest whose
  code is valid, on an address that has not failed, signs in as usual.
- `net:<site>:<IPv6 /64>`, IPv6 only: an IPv6 /64 offers any number of addresses, so for its
  guests the /64 is the scarce unit and is locked like a client at `site_max_failures`. IPv4
  addresses are scarce themselves (a guest LAN's pool) and have no prefix key: a /24 key
  would lock a one-/24 site's every guest.

README "Security model" gives the numbers: what the attacker can achieve, what it costs guests.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
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
SCOPE_NETWORK = "network"
# While a site is under attack, a client's first wrong code (in the window) locks it out.
STRICT_CLIENT_MAX_FAILURES = 1
# The IPv6 prefix that counts as one network (the usual LAN, and what one SLAAC host can fill).
IPV6_NETWORK_PREFIX = 64
# Past this many keys the in-process table is swept of keys nobody needs any more.
_SWEEP_THRESHOLD = 10_000


@dataclass(frozen=True)
class Lockout:
    """A key that is (or just became: `started`) locked out, until when, and at which level.

    For the site key, "locked out" means *under attack*: nobody is refused for it.
    """

    key: str
    until: float
    level: int = 0
    started: bool = True

    @property
    def scope(self) -> str:
        """`site` (under attack), `network` (an IPv6 /64), or `client` (an IP or MAC)."""
        if self.key.startswith("site:"):
            return SCOPE_SITE
        if self.key.startswith("net:"):
            return SCOPE_NETWORK
        return SCOPE_CLIENT


class FailureCounters(Protocol):
    """Where failure counts and lock-outs are kept."""

    async def locked(self, keys: Sequence[str], now: float) -> Lockout | None:
        """The longest current lock-out among `keys`, if any."""

    async def record_failure(
        self, key: str, *, limit: int, limits: ThrottleLimits, now: float, sticky: bool = False
    ) -> Lockout | None:
        """Count one failure; the key's lock-out if it has one now (`started` if this failure began it).

        A failure while the key is locked out counts for nothing, unless `sticky`: then it
        extends the lock-out to at least its level's length from now.
        """

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
        self, key: str, *, limit: int, limits: ThrottleLimits, now: float, sticky: bool = False
    ) -> Lockout | None:
        """Count one failure; the key's lock-out if it has one now (`started` if this failure began it)."""
        with self._lock:
            self._memory = max(self._memory, float(limits.memory_seconds))
            state = self._states.get(key)
            if state is None or now - state.touched >= limits.memory_seconds:
                state = self._states[key] = _State(window_start=now)
            state.touched = now
            if state.until > now:
                if sticky:
                    state.until = max(state.until, now + limits.lockout_for(state.level))
                return Lockout(key, state.until, state.level, started=False)
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
local sticky = tonumber(ARGV[7])
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
  if sticky == 1 then
    local e = n - 1
    if e < 0 then e = 0 end
    if e > 30 then e = 30 end
    local d = base * 2 ^ e
    if d > cap then d = cap end
    if now + d > u then
      u = now + d
      redis.call('HSET', KEYS[1], 'u', string.format('%.0f', u))
      local keep = memory
      if u - now + window > keep then keep = u - now + window end
      redis.call('PEXPIRE', KEYS[1], string.format('%.0f', keep))
    end
  end
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
        self, key: str, *, limit: int, limits: ThrottleLimits, now: float, sticky: bool = False
    ) -> Lockout | None:
        """Count one failure; the key's lock-out if it has one now (`started` if this failure began it)."""
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
                    1 if sticky else 0,
                ],
            )
        except RedisError as exc:
            log.warning("portal.throttle_unavailable", error=str(exc))
            return None
        until = int(_text(reply[1])) / 1000
        if int(reply[0]) != 1 and until <= now:
            return None
        return Lockout(key, until, int(reply[2]), started=int(reply[0]) == 1)

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
    """The sign-in throttle: which keys a guest has, which of them refuse, and their limits."""

    def __init__(self, counters: FailureCounters, limits: ThrottleLimits) -> None:
        self.counters = counters
        self.limits = limits

    @staticmethod
    def keys(site_id: str, ip: str, mac: str | None) -> list[tuple[str, str]]:
        """The (scope, key) pairs of a guest: its IP and MAC at the site, its IPv6 /64, the site."""
        found = [(SCOPE_CLIENT, f"ip:{site_id}:{ip}")]
        if mac:
            found.append((SCOPE_CLIENT, f"mac:{site_id}:{mac}"))
        network = ipv6_network(ip)
        if network is not None:
            found.append((SCOPE_NETWORK, f"net:{site_id}:{network}"))
        found.append((SCOPE_SITE, f"site:{site_id}"))
        return found

    async def check(self, site_id: str, ip: str, mac: str | None, now: float) -> Lockout | None:
        """The lock-out that stops this guest now, if any (a site under attack stops nobody)."""
        refusing = [key for scope, key in self.keys(site_id, ip, mac) if scope != SCOPE_SITE]
        return await self.counters.locked(refusing, now)

    async def failed(self, site_id: str, ip: str, mac: str | None, now: float) -> list[Lockout]:
        """Count a wrong code against the guest, its network and the site; the lock-outs it started.

        The site is counted first: if it is (or now becomes) under attack, this failure is
        held against the client with the strict allowance.
        """
        keys = self.keys(site_id, ip, mac)
        limits = self.limits
        started: list[Lockout] = []
        site_key = next(key for scope, key in keys if scope == SCOPE_SITE)
        site = await self.counters.record_failure(
            site_key, limit=limits.site_max_failures, limits=limits, now=now, sticky=True
        )
        if site is not None and site.started:
            started.append(site)
        client_limit = STRICT_CLIENT_MAX_FAILURES if site is not None else limits.client_max_failures
        for scope, key in keys:
            if scope == SCOPE_SITE:
                continue
            limit = limits.site_max_failures if scope == SCOPE_NETWORK else client_limit
            lockout = await self.counters.record_failure(key, limit=limit, limits=limits, now=now)
            if lockout is not None and lockout.started:
                started.append(lockout)
        return started


def ipv6_network(ip: str) -> str | None:
    """The /64 of an IPv6 address (`2001:db8:1:2::/64`), or None for IPv4."""
    if ":" not in ip:
        return None
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return None
    return str(ipaddress.IPv6Network((int(address) >> 64 << 64, IPV6_NETWORK_PREFIX)))
