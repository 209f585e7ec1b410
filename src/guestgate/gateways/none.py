"""The `none` driver: records what it is told and enforces nothing (the embedded default)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from guestgate.db import utcnow
from guestgate.gateways.base import (
    GardenEntry,
    Gateway,
    GatewayHealth,
    GuestAccess,
    HeldGuest,
    normalize_ip,
    split_garden,
)


@dataclass
class _Held:
    session_id: str
    until: datetime


@dataclass
class NoneGateway(Gateway):
    """Keeps guests, auth windows and the walled garden in memory, so callers can see what was asked."""

    driver = "none"
    enforcing = False

    clock: Callable[[], datetime] = utcnow
    guests: dict[str, _Held] = field(default_factory=dict)
    auth_windows: dict[str, datetime] = field(default_factory=dict)
    garden_always: list[str] = field(default_factory=list)
    garden_auth: list[str] = field(default_factory=list)
    calls: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)

    def allow(self, guest: GuestAccess, *, now: datetime | None = None) -> None:
        """Record the guest as allowed until `guest.until`."""
        self.calls.append(("allow", (guest,)))
        self.guests[normalize_ip(guest.ip)] = _Held(guest.session_id, guest.until)

    def revoke(self, session_id: str, ip: str) -> None:
        """Forget the session's entry for `ip`."""
        self.calls.append(("revoke", (session_id, ip)))
        key = normalize_ip(ip)
        held = self.guests.get(key)
        if held is not None and held.session_id == session_id:
            del self.guests[key]

    def open_auth_window(self, ip: str, seconds: int) -> None:
        """Record the auth window."""
        self.calls.append(("open_auth_window", (ip, seconds)))
        self.auth_windows[normalize_ip(ip)] = self.clock() + timedelta(seconds=seconds)

    def replace_walled_garden(self, entries: Sequence[GardenEntry | tuple[str, str | None]]) -> None:
        """Record the walled garden."""
        self.calls.append(("replace_walled_garden", (list(entries),)))
        self.garden_always, self.garden_auth = split_garden(entries)

    def list_allowed(self) -> list[HeldGuest]:
        """The recorded guests whose time has not run out by the driver's clock."""
        moment = self.clock()
        return [
            HeldGuest(session_id=held.session_id, ip=ip, remaining=held.until - moment)
            for ip, held in self.guests.items()
            if held.until > moment
        ]

    def health(self) -> GatewayHealth:
        """Always answers, and says plainly that nothing is enforced."""
        return GatewayHealth(
            state="not_enforcing", detail="driver 'none' records sessions only; the network is not controlled"
        )
