"""The gateway driver interface: what every enforcement point (nftables, RouterOS, none) can do.

A driver holds, on one gateway, the guests allowed through (address + timeout, tagged with the
session id), the guests in their OAuth auth window, and the walled garden. Drivers raise typed
errors and never return False:

    GatewayError                 anything that kept the gateway from doing what was asked
    ├── GatewayUnreachable       cannot reach it (connection refused, timeout, 5xx after retries)
    ├── GatewayRejected          reached it, but it refused the change (bad value, nft error)
    └── GatewayMisconfigured     our settings are wrong (credentials, TLS, missing nft, namespace)

The reconciler maps them to the site's `gateway_status`: unreachable / misconfigured.
"""

from __future__ import annotations

import ipaddress
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import ClassVar, Literal, NamedTuple

from guestgate.db import utcnow

# The comment every guest entry carries, so a gateway's own entries are told from others.
SESSION_TAG = "guestgate:"
# Gateway timeouts tick in whole seconds and reads lag writes a little; closer than this is "equal".
DRIFT_TOLERANCE = timedelta(seconds=5)
GARDEN_ALWAYS = "captive-portal"
GARDEN_AUTH = "captive-auth"


class GatewayError(Exception):
    """The gateway did not do what was asked."""


class GatewayUnreachable(GatewayError):
    """The gateway cannot be reached (network, timeout, or server errors after retries)."""


class GatewayRejected(GatewayError):
    """The gateway was reached but refused the change."""


class GatewayMisconfigured(GatewayError):
    """The settings used to talk to the gateway are wrong (credentials, TLS, tools, names)."""


@dataclass(frozen=True)
class GuestAccess:
    """A guest to let through: the session, its address (MAC where known), until when, and its speed limits.

    `upload_kbps` (from the guest) and `download_kbps` (to it) are kilobits (1000 bits) per
    second; None is no limit.
    """

    session_id: str
    ip: str
    mac: str | None
    until: datetime
    download_kbps: int | None = None
    upload_kbps: int | None = None


@dataclass(frozen=True)
class GuestCounters:
    """A gateway's raw byte counters of one session's guest: from it (`bytes_in`) and to it (`bytes_out`).

    Raw: they start at 0 when the gateway starts counting the guest and restart at 0 when the
    gateway restarts, so usage is added up from them by `guestgate.site_users.usage`.
    """

    bytes_in: int
    bytes_out: int


# Given the counters a sync read (session id -> counters), the sessions to drop in the same sync
# (those over their data limit).
UsageCheck = Callable[[Mapping[str, GuestCounters]], Collection[str]]


@dataclass(frozen=True)
class HeldGuest:
    """A guest entry the gateway holds; `ref` is a driver handle valid only until the next change."""

    session_id: str
    ip: str
    remaining: timedelta | None
    ref: str | None = None


class GardenEntry(NamedTuple):
    """A walled-garden destination: a CIDR (or bare address) and its type."""

    cidr: str
    type: str | None


@dataclass(frozen=True)
class GardenName:
    """A walled-garden host name (exact, or a `*.` wildcard) and its type.

    `addresses` are what guestgate resolved for an exact name, each with until when the gateway
    may hold it (drivers that resolve names themselves, like RouterOS, ignore them).
    """

    hostname: str
    type: str | None
    addresses: tuple[tuple[str, datetime], ...] = ()

    @property
    def wildcard(self) -> bool:
        """Whether the name is a `*.` wildcard."""
        return self.hostname.startswith("*.")


@dataclass(frozen=True)
class GatewayHealth:
    """A gateway that answered: `ok`, or `not_enforcing` for the none driver."""

    state: Literal["ok", "not_enforcing"]
    detail: str


@dataclass
class SyncPlan:
    """What to change so the gateway holds exactly the desired guests."""

    add: list[GuestAccess] = field(default_factory=list)
    update: list[tuple[HeldGuest, GuestAccess]] = field(default_factory=list)
    remove: list[HeldGuest] = field(default_factory=list)


@dataclass(frozen=True)
class SyncResult:
    """How many guest entries a sync added, removed and rewrote; the counters it read; whom it dropped."""

    added: int
    removed: int
    updated: int
    # What was read, not what was changed: two syncs that changed the same compare equal.
    usage: Mapping[str, GuestCounters] = field(default_factory=dict, compare=False)
    dropped: frozenset[str] = field(default=frozenset(), compare=False)


class Gateway(ABC):
    """One site's enforcement point. Methods raise GatewayError subclasses on failure."""

    driver: ClassVar[str]
    enforcing: ClassVar[bool] = True
    # A remote driver only announces changes; the gateway applies them when its agent pulls.
    remote: ClassVar[bool] = False

    @abstractmethod
    def allow(self, guest: GuestAccess, *, now: datetime | None = None) -> None:
        """Let the guest through until `guest.until` (replaces an entry for the same address)."""

    @abstractmethod
    def revoke(self, session_id: str, ip: str) -> None:
        """Remove the session's entry for `ip`; an entry of another session is left alone."""

    @abstractmethod
    def open_auth_window(self, ip: str, seconds: int) -> None:
        """Let `ip` reach the captive-auth walled garden for `seconds`."""

    @abstractmethod
    def replace_walled_garden(
        self, entries: Sequence[GardenEntry | tuple[str, str | None]], names: Sequence[GardenName] = ()
    ) -> None:
        """Make the walled-garden sets hold exactly `entries` and `names`."""

    @abstractmethod
    def list_allowed(self) -> list[HeldGuest]:
        """The guest entries this driver created that the gateway holds now."""

    @abstractmethod
    def health(self) -> GatewayHealth:
        """Check the gateway answers and is set up; raises a GatewayError when it is not."""

    def close(self) -> None:  # noqa: B027 - most drivers hold nothing to release
        """Release connections; the driver is not used afterwards."""

    def read_counters(self) -> dict[str, GuestCounters]:
        """The byte counters of the guests this driver holds, by session id (none for drivers that do not count)."""
        return {}

    def sync(
        self,
        desired_guests: Sequence[GuestAccess],
        walled_garden: Sequence[GardenEntry | tuple[str, str | None]],
        *,
        now: datetime,
        names: Sequence[GardenName] = (),
        check: UsageCheck | None = None,
    ) -> SyncResult:
        """Make the gateway hold exactly `desired_guests`, `walled_garden` and `names`, in as few calls as it can.

        The counters are read first; the sessions `check` returns for them are dropped in the
        same sync (they are left out of `desired_guests`).
        """
        usage = self.read_counters()
        dropped = frozenset(check(usage)) if check is not None else frozenset()
        desired = without(desired_guests, dropped)
        plan = plan_sync(self.list_allowed(), desired, now=now)
        self.replace_walled_garden(walled_garden, names)
        for held in plan.remove:
            self.revoke(held.session_id, held.ip)
        for guest in plan.add:
            self.allow(guest, now=now)
        for _, guest in plan.update:
            self.allow(guest, now=now)
        return SyncResult(
            added=len(plan.add),
            removed=len(plan.remove),
            updated=len(plan.update),
            usage=usage,
            dropped=dropped,
        )


def with_fresh_counters(
    usage: Mapping[str, GuestCounters], desired: Iterable[GuestAccess]
) -> dict[str, GuestCounters]:
    """`usage`, plus a reading of 0 for each desired session the gateway holds no counters of.

    Those counters are created in this sync, at 0: reporting it tells the usage arithmetic that
    the counter started again (a reboot, a flushed table), so the next reading is added whole even
    when it is larger than the last one before.
    """
    found = dict(usage)
    for guest in desired:
        found.setdefault(guest.session_id, GuestCounters(0, 0))
    return found


def without(guests: Sequence[GuestAccess], dropped: Collection[str]) -> list[GuestAccess]:
    """`guests` less the sessions in `dropped`."""
    if not dropped:
        return list(guests)
    return [g for g in guests if g.session_id not in dropped]


def kbps_to_bytes(kbps: int) -> int:
    """A rate in kilobits (1000 bits) per second as bytes per second."""
    return kbps * 125


def plan_sync(
    held: Iterable[HeldGuest],
    desired: Iterable[GuestAccess],
    *,
    now: datetime,
    foreign: Iterable[str] = (),
    tolerance: timedelta = DRIFT_TOLERANCE,
) -> SyncPlan:
    """The changes that turn `held` into `desired` at `now`.

    Expired guests are not desired; of two sessions on one address the later-ending wins. An
    address held by an entry we did not create (`foreign`) is left to that entry.
    """
    wanted = active_guests(desired, now=now)
    foreign_ips = {normalize_ip(ip) for ip in foreign}
    plan = SyncPlan()
    held_by_ip: dict[str, HeldGuest] = {}
    for entry in held:
        key = normalize_ip(entry.ip)
        if key in wanted and key not in held_by_ip:
            held_by_ip[key] = entry
        else:
            plan.remove.append(entry)
    for key, guest in wanted.items():
        found = held_by_ip.get(key)
        if found is None:
            if key not in foreign_ips:
                plan.add.append(guest)
            continue
        entry = found
        want = timedelta(seconds=remaining_seconds(guest.until, now=now))
        if (
            entry.session_id != guest.session_id
            or entry.remaining is None
            or abs(entry.remaining - want) > tolerance
        ):
            plan.update.append((entry, guest))
    return plan


def active_guests(desired: Iterable[GuestAccess], *, now: datetime) -> dict[str, GuestAccess]:
    """The guests still inside their session at `now`, one per address (the later-ending one)."""
    wanted: dict[str, GuestAccess] = {}
    for guest in desired:
        if guest.until <= now:
            continue
        key = normalize_ip(guest.ip)
        current = wanted.get(key)
        if current is None or guest.until > current.until:
            wanted[key] = guest
    return wanted


def remaining_seconds(until: datetime, *, now: datetime) -> int:
    """Whole seconds from `now` to `until`, rounded up, at least 1 (gateways reject a zero timeout)."""
    return max(1, math.ceil((until - now).total_seconds()))


# Pure and called for every guest a gateway is told about (each sign-in, and several times per
# guest in each reconcile pass): parsed once per address, for up to a large site's guests.
@lru_cache(maxsize=65536)
def normalize_ip(value: str) -> str:
    """The canonical text of an address; a host prefix (/32, /128) becomes the bare address."""
    text = value.strip()
    if "/" not in text:
        # A bare address (what the portal passes): the same text, in half the time of ip_network.
        return str(ipaddress.ip_address(text))
    network = ipaddress.ip_network(text, strict=False)
    if network.num_addresses == 1:
        return str(network.network_address)
    return str(network)


def session_tag(session_id: str) -> str:
    """The comment that marks a guest entry as this session's."""
    return SESSION_TAG + session_id


def session_of(comment: str | None) -> str | None:
    """The session id in a guest entry's comment, or None when guestgate did not create it."""
    if comment and comment.startswith(SESSION_TAG) and len(comment) > len(SESSION_TAG):
        return comment[len(SESSION_TAG) :]
    return None


def split_garden(
    entries: Iterable[GardenEntry | tuple[str, str | None]],
) -> tuple[list[str], list[str]]:
    """The always-open and the auth-window destinations, normalized and merged (overlaps collapsed)."""
    always: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    auth: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for cidr, kind in entries:
        network = ipaddress.ip_network(cidr.strip(), strict=False)
        (always if kind == GARDEN_ALWAYS else auth).append(network)
    return _collapse(always), _collapse(auth)


def _collapse(networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> list[str]:
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    merged = [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]
    return [normalize_ip(str(n)) for n in merged]


def is_ipv6(value: str) -> bool:
    """Whether an address or CIDR is IPv6."""
    return ipaddress.ip_network(value.strip(), strict=False).version == 6


def default_now(now: datetime | None) -> datetime:
    """`now`, or the current time when the caller has none."""
    return now if now is not None else utcnow()
