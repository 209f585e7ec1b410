"""The store's interface: its blocking calls, and how the portal's event loop makes them.

As httpx separates `BaseTransport` from `AsyncBaseTransport`, the portal (`Portal`, on the
event loop) asks for an `AsyncGuestStore`: the blocking calls plus `call` (one of them, run
without holding up the loop, the store's own way) and `redeem_async` (the sign-in path). Both
stores implement all of it; nothing is probed for at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from guestgate.portal.store.records import (
    AuditRecord,
    Grant,
    GuestSession,
    InstanceInfo,
    RedeemResult,
    Redemption,
    SiteNetworks,
)

T = TypeVar("T")


class GuestStore(Protocol):
    """The portal's reads and writes; every call blocks its thread."""

    def site_networks(self, site_id: str) -> SiteNetworks | None:
        """The site's subnets and instance subnets, or None if there is no such site."""

    def instance(self, instance_id: str) -> InstanceInfo | None:
        """What the instance's page shows, or None if it is gone."""

    def subnet_claims(self) -> list[tuple[int, str, str, str, str]]:
        """Every instance subnet as `(row id, site id, org id, instance id, subnet)`: finding a guest's
        site from its address alone (`portal.resolution`)."""

    def active_session(self, site_id: str, ip: str, mac: str | None, now: datetime) -> GuestSession | None:
        """The guest's active, unexpired session at the site, if any."""

    def session(self, session_id: str, now: datetime) -> GuestSession | None:
        """The session by id if it is active and unexpired."""

    def redeem(self, attempt: Redemption, now: datetime) -> RedeemResult:
        """Redeem a code atomically: a new session, the guest's existing one, or why not."""

    def audit(self, records: list[AuditRecord], now: datetime) -> None:
        """Write audit events."""

    def grant(self, grant: Grant, now: datetime) -> RedeemResult:
        """Start a session for a guest signed in without a coupon, or find its active one."""

    def close(self) -> None:
        """Release connections (the store reconnects if used again)."""


class AsyncGuestStore(GuestStore, Protocol):
    """A store the event loop can use: what `Portal` takes."""

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)`, one of this store's blocking methods, without blocking the event loop.

        SQLite runs it inline (microseconds) and, if another process holds the write lock,
        awaits and tries again; PostgreSQL runs it in a worker thread (network round trips).
        """

    async def redeem_async(self, attempt: Redemption, now: datetime) -> RedeemResult:
        """`redeem` from the event loop: the sign-in path's way in."""
