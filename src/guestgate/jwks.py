"""The signing keys of `GUESTGATE_JWT_JWKS_URL`: fetched off the event loop, cached, refreshed sparingly.

A bearer token names its key by `kid`, and anyone can send a token naming a `kid` that does not
exist. So a fetch is never made on a request's behalf more than once per cooldown, never
blocks the event loop (the HTTP client is asynchronous), and is shared: every request waiting
for the keys awaits the same fetch.

- A known `kid` answers from the cache. Once the keys are older than `cache_seconds` they are
  still used, and a refresh starts in the background (so a key the provider withdrew stops
  working within moments, and no request waits for it).
- An unknown `kid` waits for a refresh (at most `timeout_seconds`), unless one was tried less
  than `cooldown_seconds` ago: then it is refused at once.
- A failed fetch keeps the keys already known.

The URL is the deployment's own identity provider, so it does not pass through the tenant
outbound policy (`guestgate.outbound`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import httpx2
import jwt
import structlog

log = structlog.get_logger(__name__)
# A JWKS document is a few kilobytes; more than this is not one.
MAX_DOCUMENT_BYTES = 1024 * 1024


class JwksKeys:
    """The keys of one JWKS URL (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float,
        cooldown_seconds: float,
        timeout_seconds: float,
        transport: httpx2.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.cooldown_seconds = cooldown_seconds
        self.timeout_seconds = timeout_seconds
        self._transport = transport
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._inflight: tuple[asyncio.AbstractEventLoop, asyncio.Task[None]] | None = None
        # How many fetches were started (tests and the log read it).
        self.fetches = 0

    def cached(self, kid: str | None) -> jwt.PyJWK | None:
        """The key named `kid` among those fetched, without fetching."""
        if kid is None and len(self._keys) == 1:
            # A token without `kid` is accepted when the set has exactly one key.
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key named `kid`, fetching the set if the rules above allow it; None if there is none."""
        now = self._clock()
        found = self.cached(kid)
        if found is not None:
            if self._stale(now) and self._may_fetch(now):
                self._refresh()  # in the background: this request goes on with the key it has
            return found
        if self._may_fetch(now) or self._running():
            await asyncio.shield(self._refresh())
        return self.cached(kid)

    def _stale(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self.cache_seconds

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self.cooldown_seconds

    def _running(self) -> bool:
        held = self._inflight
        return held is not None and not held[1].done() and held[0] is asyncio.get_running_loop()

    def _refresh(self) -> asyncio.Task[None]:
        """The fetch in progress on this loop, or a new one."""
        loop = asyncio.get_running_loop()
        held = self._inflight
        if held is not None and held[0] is loop and not held[1].done():
            return held[1]
        self._attempted_at = self._clock()
        self.fetches += 1
        task = loop.create_task(self._fetch())
        self._inflight = (loop, task)
        return task

    async def _fetch(self) -> None:
        try:
            async with httpx2.AsyncClient(
                transport=self._transport, timeout=self.timeout_seconds, follow_redirects=True
            ) as client:
                async with asyncio.timeout(self.timeout_seconds):
                    async with client.stream(
                        "GET", self.url, headers={"Accept": "application/json"}
                    ) as answer:
                        answer.raise_for_status()
                        body = bytearray()
                        async for chunk in answer.aiter_bytes():
                            body += chunk
                            if len(body) > MAX_DOCUMENT_BYTES:
                                raise ValueError(f"the JWKS is larger than {MAX_DOCUMENT_BYTES} bytes")
            keys = parse_keys(json.loads(body))
        except (httpx2.HTTPError, TimeoutError, ValueError) as exc:
            log.warning("jwks.fetch_failed", url=self.url, error=f"{type(exc).__name__}: {exc}")
            return
        self._keys = keys
        self._fetched_at = self._clock()
        log.info("jwks.fetched", url=self.url, keys=len(keys))


def parse_keys(document: Any) -> dict[str | None, jwt.PyJWK]:
    """The signing keys of a JWKS document by `kid`; keys that cannot sign (or be read) are left out."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the JWKS has no 'keys' list")
    keys: dict[str | None, jwt.PyJWK] = {}
    for data in document["keys"]:
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(data)
        except jwt.PyJWTError:
            continue
        keys[key.key_id] = key
    return keys
