"""The `none` driver: records what it is told and enforces nothing (the embedded default)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from guestgate.db import utcnow
from guestgate.gateways.base import (
    GardenEntry,
    GardenName,
    Gateway,
    GatewayHealth,
    GuestAccess,
    HeldGuest,
    normalize_ip,
    split_garden,
)

# What the recording driver keeps in memory before it forgets the oldest calls / expired guests.
MAX_CALLS = 1000
MAX_HELD = 10_000


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
    garden_names: list[str] = field(default_factory=list)
    garden_auth: list[str] = field(default_factory=list)
    calls: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)
    # The table size that triggers the next sweep of expired entries (see `_forget_expired`).
    sweep_at: int = field(default=MAX_HELD, repr=False)

    def allow(self, guest: GuestAccess, *, now: datetime | None = None) -> None:
        """Record the guest as allowed until `guest.until`."""
        self._record("allow", (guest,))
        if len(self.guests) >= self.sweep_at:
            self._forget_expired()
        self.guests[normalize_ip(guest.ip)] = _Held(guest.session_id, guest.until)

    def revoke(self, session_id: str, ip: str) -> None:
        """Forget the session's entry for `ip`."""
        self._record("revoke", (session_id, ip))
        key = normalize_ip(ip)
        held = self.guests.get(key)
        if held is not None and held.session_id == session_id:
            del self.guests[key]

    def open_auth_window(self, ip: str, seconds: int) -> None:
        """Record the auth window."""
        self._record("open_auth_window", (ip, seconds))
        if len(self.auth_windows) >= self.sweep_at:
            self._forget_expired()
        self.auth_windows[normalize_ip(ip)] = self.clock() + timedelta(seconds=seconds)

    def replace_walled_garden(
        self, entries: Sequence[GardenEntry | tuple[str, str | None]], names: Sequence[GardenName] = ()
    ) -> None:
        """Record the walled garden (its host names in `garden_names`)."""
        self._record("replace_walled_garden", (list(entries),))
        self.garden_always, self.garden_auth = split_garden(entries)
        self.garden_names = [n.hostname for n in names]

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

    def _record(self, name: str, args: tuple[object, ...]) -> None:
        # A long-running embedded server signs in guests for months: keep only the latest calls.
        if len(self.calls) >= MAX_CALLS:
            del self.calls[: MAX_CALLS // 2]
        self.calls.append((name, args))

    def _forget_expired(self) -> None:
        moment = self.clock()
        self.guests = {ip: held for ip, held in self.guests.items() if held.until > moment}
        self.auth_windows = {ip: until for ip, until in self.auth_windows.items() if until > moment}
        # Live entries stay; the next sweep waits until the table has doubled, so a full table of
        # guests still within their time is not rescanned on every sign-in (that was O(n) per call).
        self.sweep_at = max(MAX_HELD, 2 * max(len(self.guests), len(self.auth_windows)))
