"""How the portal tells a site's gateway to let a guest through.

The app passes `guestgate.gateways.notifier.PoolNotifier`, which drives the site's gateway
(none, nftables, routeros or agent). `RecordOnly` is the stand-in for tests and for a portal
built without a runtime's gateways: the session row is the whole record.
"""

from __future__ import annotations

from typing import Protocol

from guestgate.portal.store import GuestSession


class GatewayNotifier(Protocol):
    """Asks the site's gateway to allow a guest until its session ends, or to open its auth window."""

    async def allow(self, session: GuestSession) -> bool:
        """Allow the session's IP (and MAC where known) until `session.expires_at`.

        True when the gateway lets the guest through now; False when it will later (the gateway
        was unreachable, or an agent applies it on its next pull): the guest sees "activating".
        """

    async def open_auth_window(self, site_id: str, ip: str, seconds: int) -> None:
        """Let `ip` reach the site's captive-auth walled garden for `seconds` (OAuth sign-in)."""

    async def pending(self, session: GuestSession) -> bool:
        """True while the gateway has not let the session's guest through yet."""


class RecordOnly:
    """The `none` gateway: the session row is the whole record; nothing is pushed anywhere."""

    async def allow(self, session: GuestSession) -> bool:
        """Nothing to do: the session is already recorded."""
        return True

    async def open_auth_window(self, site_id: str, ip: str, seconds: int) -> None:
        """Nothing to open: nothing is enforced."""

    async def pending(self, session: GuestSession) -> bool:
        """Never: nothing is enforced."""
        return False
