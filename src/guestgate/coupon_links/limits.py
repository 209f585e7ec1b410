"""Rate limits of the public coupon links: per client address and per link, before any work.

Two buckets of `GUESTGATE_PUBLIC_LINK_RATE_PER_MINUTE` with `..._BURST` (the GCRA of
`guestgate.ops.ratelimit`, in Redis when `GUESTGATE_REDIS_URL` is set): one per client address
(an IPv6 client's whole /64, which one host can spread itself over), counted for every request
before its signature is checked, and one per link (what it grants, however it is spelt),
counted once the signature holds. A PDF counts as `PDF_COST` requests: it is the expensive one.
"""

from __future__ import annotations

import ipaddress
import math
import time
from dataclasses import dataclass

from guestgate.config import Settings
from guestgate.coupon_links.signing import LinkScope
from guestgate.errors import RateLimited
from guestgate.ops import ratelimit

PDF_COST = 10
_MESSAGE = "Too many requests for coupon links. Retry after the number of seconds in Retry-After."


@dataclass(frozen=True)
class PublicLimits:
    """The limiter of the public coupon links (None: off) and its burst."""

    limiter: ratelimit.Limiter | None
    burst: int

    async def admit_address(self, address: str | None, *, cost: int = 1) -> None:
        """Count a request from `address`; RateLimited when its bucket is empty."""
        await self._admit(f"public:addr:{address_bucket(address)}", cost)

    async def admit_link(self, scope: LinkScope, *, cost: int = 1) -> None:
        """Count a request for the link `scope`; RateLimited when its bucket is empty."""
        await self._admit(f"public:link:{scope.key}", cost)

    async def close(self) -> None:
        """Release the limiter's connections."""
        if self.limiter is not None:
            await self.limiter.close()

    async def _admit(self, key: str, cost: int) -> None:
        if self.limiter is None:
            return
        # A cost above the burst could never pass; it takes the whole burst instead.
        wait = await self.limiter.retry_after(key, time.time(), max(1, min(cost, self.burst)))
        if wait is not None:
            raise RateLimited(_MESSAGE, retry_after=max(1, math.ceil(wait)))


def build(settings: Settings) -> PublicLimits:
    """The public links' limits the settings ask for."""
    limiter = ratelimit.limiter_for(
        settings.public_link_rate_per_minute, settings.public_link_rate_burst, settings
    )
    return PublicLimits(limiter, max(settings.public_link_rate_burst, 1))


def address_bucket(address: str | None) -> str:
    """The bucket of a client address: an IPv4 address, the /64 of an IPv6 one."""
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)
