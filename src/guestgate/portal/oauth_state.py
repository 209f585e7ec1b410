"""An OAuth2 sign-in between the redirect to the provider and its callback.

What the callback needs (the integration, the PKCE verifier, the nonce, and the guest from the
sealed entry token, or nothing for an operator's test run) travels in a cookie of the guest's
own browser, sealed like the portal's tokens (AES-GCM, its own kind) and expiring after
`GUESTGATE_OAUTH_STATE_TTL_SECONDS`. The `state` parameter is random and must equal the one
sealed in the cookie, so a callback only completes in the browser that started it. Each state
is spent once: a ledger (Redis when configured, so every replica sees it; in process
otherwise) remembers spent states until they would have expired anyway, so a replayed
callback URL is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from guestgate.portal.oauth import Attempt
from guestgate.portal.tokens import GuestIdentity, TokenInvalid, TokenSealer, guest_of

KIND_OAUTH = "oauth"
COOKIE = "gg_oauth"
# Past this many entries the in-process ledger drops the expired ones.
_SWEEP_THRESHOLD = 10_000


class LedgerUnavailable(Exception):
    """The shared ledger cannot be reached, so a state cannot be known to be unspent."""


@dataclass(frozen=True)
class Flow:
    """One sign-in in progress: which integration, its secrets, and for whom.

    No guest means an operator's test run of the integration: no session, no gateway.
    """

    integration_id: str
    attempt: Attempt
    guest: GuestIdentity | None
    expires: int


def seal(sealer: TokenSealer, flow: Flow) -> str:
    """The cookie value carrying `flow`."""
    claims: dict[str, Any] = {
        "ai": flow.integration_id,
        "st": flow.attempt.state,
        "cv": flow.attempt.code_verifier,
        "no": flow.attempt.nonce,
        "g": None if flow.guest is None else _guest_claims(flow.guest),
    }
    return sealer.seal(KIND_OAUTH, claims, expires=flow.expires)


def unseal(sealer: TokenSealer, value: str, *, now: float) -> Flow:
    """The flow in a cookie value; TokenInvalid or TokenExpired (from the sealer) otherwise."""
    claims = sealer.open(value, KIND_OAUTH, now=now)
    integration_id, state, verifier, nonce = (claims.get(key) for key in ("ai", "st", "cv", "no"))
    guest = claims.get("g")
    if not (
        isinstance(integration_id, str)
        and isinstance(state, str)
        and isinstance(verifier, str)
        and isinstance(nonce, str)
        and (guest is None or isinstance(guest, dict))
    ):
        raise TokenInvalid("unknown layout")
    return Flow(
        integration_id=integration_id,
        attempt=Attempt(state=state, code_verifier=verifier, nonce=nonce),
        guest=None if guest is None else guest_of(guest),
        expires=int(claims["exp"]),
    )


def state_matches(flow: Flow, state: str) -> bool:
    """True if the callback's `state` is the one this browser's flow was started with."""
    if not state or not state.isascii():
        return False
    return hmac.compare_digest(flow.attempt.state.encode(), state.encode())


def _guest_claims(guest: GuestIdentity) -> dict[str, Any]:
    # The same short keys as a sign-in token, so `guest_of` reads both.
    return {
        "s": guest.site_id,
        "i": guest.instance_id,
        "ip": guest.ip,
        "m": guest.mac,
        "o": guest.orig,
        "ov": guest.orig_vouched,
        "p": guest.peer,
    }


class SpentStates(Protocol):
    """Remembers which states have been used."""

    async def spend(self, state: str, *, until: float, now: float) -> bool:
        """Mark `state` used until `until`; True only for the first call with that state."""

    async def close(self) -> None:
        """Release connections."""


class MemorySpentStates:
    """The ledger in this process: right for a single server."""

    def __init__(self) -> None:
        self._spent: dict[str, float] = {}
        self._lock = threading.Lock()

    async def spend(self, state: str, *, until: float, now: float) -> bool:
        """Mark `state` used until `until`; True only for the first call with that state."""
        with self._lock:
            known = self._spent.get(state)
            if known is not None and known > now:
                return False
            if len(self._spent) >= _SWEEP_THRESHOLD:
                self._spent = {key: end for key, end in self._spent.items() if end > now}
            self._spent[state] = until
            return True

    async def close(self) -> None:
        """Nothing to release."""


class RedisSpentStates:
    """The ledger in Redis, shared by every replica (`SET NX` with an expiry)."""

    def __init__(self, url: str, *, prefix: str = "guestgate:portal:") -> None:
        self._url = url
        self._prefix = prefix + "oauth-state:"
        self._client: aioredis.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _redis(self) -> aioredis.Redis:
        # redis.asyncio connections belong to the event loop that opened them.
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client, self._loop = aioredis.Redis.from_url(self._url), loop
        return self._client

    async def spend(self, state: str, *, until: float, now: float) -> bool:
        """Mark `state` used until `until`; True only for the first call with that state."""
        milliseconds = max(1, round((until - now) * 1000))
        try:
            created = await self._redis().set(self._prefix + state, b"1", nx=True, px=milliseconds)
        except RedisError as exc:
            # Unlike the throttle, this fails closed: a replay must not slip through an outage.
            raise LedgerUnavailable(str(exc)) from exc
        return bool(created)

    async def close(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RedisError, RuntimeError):
                await client.aclose()
