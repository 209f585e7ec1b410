"""The portal's `GatewayNotifier` backed by the site's real gateway driver (from the runtime's pool).

Sign-in: the guest is allowed at once (drivers are blocking, so in a worker thread). If the
gateway cannot be reached, or it is an agent that applies the change when it next pulls, the
session stands and `allow` answers False: the portal shows the "activating" page, which
refreshes until `pending` turns False, i.e. until the reconciler (or the agent) has applied it.
A site with the `none` driver records only: nothing ever waits there.

Sites are looked up by id and kept a few seconds, so a burst of sign-ins at one site costs one
query; a site whose gateway settings change is picked up at the next look-up, and the pool
rebuilds its driver then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from guestgate.db import utcnow
from guestgate.gateways import service
from guestgate.gateways.base import GuestAccess
from guestgate.portal.store import GuestSession
from guestgate.runtime import Runtime
from guestgate.sites.models import Site

SITE_CACHE_SECONDS = 5.0
_CACHE_MAX = 10_000


class PoolNotifier:
    """Tells the site's gateway (nftables, RouterOS, agent or none) about the portal's guests."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        clock: Callable[[], datetime] = utcnow,
        cache_seconds: float = SITE_CACHE_SECONDS,
    ) -> None:
        self.runtime = runtime
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._sites: dict[str, tuple[float, Site | None]] = {}

    async def allow(self, session: GuestSession) -> bool:
        """Allow the guest until its session ends; False when the gateway has not applied it yet."""
        site = await self._site(session.site_id)
        if site is None:
            return False
        guest = GuestAccess(
            session_id=session.id,
            ip=session.ip,
            mac=session.mac,
            until=session.expires_at,
            # The session's speed limits, copied from its code at sign-in (access plans).
            download_kbps=session.download_kbps,
            upload_kbps=session.upload_kbps,
        )
        if site.gateway_driver == "none":
            # In-memory only: no thread, no query on the sign-in path of the embedded default.
            return service.allow(self.runtime, site, guest, now=self.clock())
        return await asyncio.to_thread(service.allow, self.runtime, site, guest, now=self.clock())

    async def open_auth_window(self, site_id: str, ip: str, seconds: int) -> None:
        """Let `ip` reach the site's captive-auth destinations for `seconds` (failures are logged)."""
        site = await self._site(site_id)
        if site is None:
            return
        if site.gateway_driver == "none":
            service.open_auth_window(self.runtime, site, ip, seconds)
            return
        await asyncio.to_thread(service.open_auth_window, self.runtime, site, ip, seconds)

    async def pending(self, session: GuestSession) -> bool:
        """True while the site's gateway has not let the session's guest through yet."""
        site = await self._site(session.site_id)
        if site is None or site.gateway_driver == "none":
            return False
        return await asyncio.to_thread(service.site_pending, session.id, runtime=self.runtime)

    async def _site(self, site_id: str) -> Site | None:
        hit = self._sites.get(site_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        site = await asyncio.to_thread(self._load, site_id)
        if self.cache_seconds > 0:
            if len(self._sites) >= _CACHE_MAX:
                self._sites.clear()
            self._sites[site_id] = (time.monotonic() + self.cache_seconds, site)
        return site

    def _load(self, site_id: str) -> Site | None:
        with self.runtime.sessions() as session:
            return session.get(Site, site_id)
