"""How the portal tells a site's gateway to let a guest through.

The gateway drivers (none, nftables, routeros) plug in here; until a site has one, the
session is only recorded in the database, which is exactly what the `none` driver does.
"""

from __future__ import annotations

from typing import Protocol

from guestgate.portal.store import GuestSession


class GatewayNotifier(Protocol):
    """Asks the site's gateway to allow a guest until its session ends."""

    async def allow(self, session: GuestSession) -> None:
        """Allow the session's IP (and MAC where known) until `session.expires_at`."""


class RecordOnly:
    """The `none` gateway: the session row is the whole record; nothing is pushed anywhere."""

    async def allow(self, session: GuestSession) -> None:
        """Nothing to do: the session is already recorded."""
