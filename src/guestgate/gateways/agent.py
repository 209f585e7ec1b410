"""The controller's side of `agent` sites: per-site keys, the desired state, and the remote driver.

A Linux gateway behind NAT runs `guestgate agent`, which long-polls
`GET /agent/v1/state?site=<id>&since=<version>` with `Authorization: Bearer <agent key>` and
applies what it gets with the nftables driver. The controller never connects to it.

- The key of a site is HMAC-SHA256(signing key, "guestgate-agent:" + site id), URL-safe base64,
  until the site's key is rotated; then the site's random `agent_key_salt` is mixed in
  (`... + site id + ":" + salt`), and each rotation replaces the salt, so the old key stops
  working at the next request while every other site keeps its own. Only the salt is stored,
  never a key: rotating the signing key still rotates every agent key (the previous signing
  key's keys stay valid while it is set). `guestgate gateway agent-key <siteId>` prints the
  current key.
- The state is what the gateway must hold: guests with the seconds they have left, the walled
  garden, the open auth windows, and the nft settings of the site. Its `version` is a hash of
  that content (absolute expiry times, not seconds left), so it only changes when the state does.
- `AgentGateway` is the registry's driver for such sites. It cannot push; allow, revoke and the
  rest wake the site's long-polls (`AgentFeed`), and auth windows (which have no table) are kept
  in the feed until they close. A session counts as applied when the agent comes back with the
  version that holds it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from guestgate.config import Settings
from guestgate.gateways.agent_protocol import iso, state_document
from guestgate.gateways.base import (
    GardenEntry,
    GardenName,
    Gateway,
    GatewayHealth,
    GatewayUnreachable,
    GuestAccess,
    HeldGuest,
    SyncResult,
    UsageCheck,
    active_guests,
    default_now,
    normalize_ip,
)
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site
from guestgate.walled_garden.models import WalledGardenEntry

AGENT_DRIVER = "agent"
# Agent settings the controller hands over; the agent's own command-line options win.
GATEWAY_FIELDS = ("interface", "portal_address", "portal_port", "table")
# An agent silent for longer than this (several long-polls) is reported unreachable.
AGENT_STALE_SECONDS = 120
_KEY_CONTEXT = b"guestgate-agent:"


def agent_key(signing_key: str | bytes, site_id: str, salt: str | None = None) -> str:
    """The key an agent of `site_id` authenticates with, derived from a signing key (and the site's salt)."""
    key = signing_key.encode() if isinstance(signing_key, str) else signing_key
    message = _KEY_CONTEXT + site_id.encode() + (b":" + salt.encode() if salt else b"")
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def agent_keys(settings: Settings, site_id: str, salt: str | None = None) -> list[str]:
    """The site's agent key and, during a signing-key rotation, the previous one."""
    configured = [settings.signing_key, settings.signing_key_previous]
    return [agent_key(k.get_secret_value(), site_id, salt) for k in configured if k is not None]


def agent_key_valid(settings: Settings, site_id: str, given: str, salt: str | None = None) -> bool:
    """True if `given` is one of the site's agent keys (for its current `salt`)."""
    return any(
        hmac.compare_digest(key.encode(), given.strip().encode())
        for key in agent_keys(settings, site_id, salt)
    )


def new_salt() -> str:
    """A fresh agent-key salt (256 bits, URL-safe): the site's key after a rotation."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class FeedChange:
    """One change to an agent site: its state may differ, or an auth window opened until a time."""

    site_id: str
    window: tuple[str, datetime] | None = None


class AgentFeed:
    """Per-site change counters (to wake long-polls) and the auth windows of agent sites.

    In process; `publish`, when set (see `guestgate.gateways.bus`), carries each change to the
    other processes, whose feeds `receive` it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: dict[str, int] = {}
        self._epoch = 0
        self._windows: dict[str, dict[str, datetime]] = {}
        self.publish: Callable[[FeedChange], None] | None = None

    def bump(self, site_id: str) -> None:
        """Note that the site's desired state may have changed."""
        self._share(FeedChange(site_id))

    def generation(self, site_id: str) -> int:
        """How many changes the site has seen in this process (a poll waits for it to move)."""
        with self._lock:
            return self._generation.get(site_id, 0) + self._epoch

    def open_window(self, site_id: str, ip: str, until: datetime) -> None:
        """Keep `ip` in the site's auth window until `until`."""
        self._share(FeedChange(site_id, (normalize_ip(ip), until)))

    def receive(self, change: FeedChange) -> None:
        """Apply a change another process made."""
        with self._lock:
            if change.window is not None:
                ip, until = change.window
                self._windows.setdefault(change.site_id, {})[ip] = until
            self._generation[change.site_id] = self._generation.get(change.site_id, 0) + 1

    def wake_all(self) -> None:
        """Wake every poll once (changes may have been missed)."""
        with self._lock:
            self._epoch += 1

    def windows(self, site_id: str, *, now: datetime) -> dict[str, datetime]:
        """The site's open auth windows (ip -> until); closed ones are forgotten."""
        with self._lock:
            held = self._windows.get(site_id)
            if not held:
                return {}
            for ip in [ip for ip, until in held.items() if until <= now]:
                del held[ip]
            return dict(held)

    def open_windows(self, *, now: datetime) -> list[FeedChange]:
        """Every site's open auth windows, as the changes that opened them."""
        with self._lock:
            return [
                FeedChange(site_id, (ip, until))
                for site_id, held in self._windows.items()
                for ip, until in held.items()
                if until > now
            ]

    def _share(self, change: FeedChange) -> None:
        self.receive(change)
        publish = self.publish
        if publish is not None:
            publish(change)


@dataclass
class AgentGateway(Gateway):
    """The driver of an `agent` site: every change wakes the agent, which pulls and applies it."""

    driver = AGENT_DRIVER
    remote = True

    site_id: str
    feed: AgentFeed = field(default_factory=AgentFeed)

    def allow(self, guest: GuestAccess, *, now: datetime | None = None) -> None:
        """Wake the agent: the new session is in the state it pulls."""
        self.feed.bump(self.site_id)

    def revoke(self, session_id: str, ip: str) -> None:
        """Wake the agent: the ended session has left the state it pulls."""
        self.feed.bump(self.site_id)

    def open_auth_window(self, ip: str, seconds: int) -> None:
        """Add the window to the state the agent pulls."""
        until = default_now(None) + timedelta(seconds=max(1, seconds))
        self.feed.open_window(self.site_id, ip, until)

    def replace_walled_garden(
        self, entries: Sequence[GardenEntry | tuple[str, str | None]], names: Sequence[GardenName] = ()
    ) -> None:
        """Wake the agent: the walled garden is read from the database when it pulls."""
        self.feed.bump(self.site_id)

    def list_allowed(self) -> list[HeldGuest]:
        """Unknown here: the agent's gateway holds them; the controller sees only its reports."""
        return []

    def health(self) -> GatewayHealth:
        """The controller cannot reach an agent; its status comes from the agent's polls."""
        raise GatewayUnreachable("an agent site is checked through its agent's polls, not from here")

    def sync(
        self,
        desired_guests: Sequence[GuestAccess],
        walled_garden: Sequence[GardenEntry | tuple[str, str | None]],
        *,
        now: datetime,
        names: Sequence[GardenName] = (),
        check: UsageCheck | None = None,
    ) -> SyncResult:
        """Wake the agent, which syncs itself (and counts nothing the controller could read)."""
        self.feed.bump(self.site_id)
        return SyncResult(added=0, removed=0, updated=0)


@dataclass(frozen=True)
class AgentState:
    """What one agent site's gateway must hold, and the version naming it."""

    site_id: str
    version: str
    gateway: dict[str, Any]
    guests: list[GuestAccess]
    walled_garden: list[GardenEntry]
    auth_windows: dict[str, datetime]
    pending: list[str]
    walled_garden_names: list[GardenName] = field(default_factory=list)

    def document(self, *, now: datetime) -> dict[str, Any]:
        """The JSON body an agent receives (`agent_protocol.state_document`)."""
        return state_document(
            site_id=self.site_id,
            version=self.version,
            gateway=self.gateway,
            guests=self.guests,
            walled_garden=self.walled_garden,
            walled_garden_names=self.walled_garden_names,
            auth_windows=self.auth_windows,
            now=now,
        )


def desired_state(
    site: Site,
    *,
    feed: AgentFeed,
    default_portal_port: int,
    now: datetime,
    session: Session,
    names: Sequence[GardenName] = (),
) -> AgentState:
    """The state the site's agent must apply at `now`, read from the database and the feed."""
    rows = session.execute(
        select(
            SiteUser.id,
            SiteUser.ip_address,
            SiteUser.mac_address,
            SiteUser.expires_at,
            SiteUser.gateway_applied_at,
            SiteUser.download_kbps,
            SiteUser.upload_kbps,
        ).where(SiteUser.site_id == site.id, SiteUser.live_at(now))
    ).all()
    guests = [
        GuestAccess(session_id=r[0], ip=r[1], mac=r[2], until=r[3], download_kbps=r[5], upload_kbps=r[6])
        for r in rows
    ]
    kept = active_guests(guests, now=now)
    chosen = sorted(kept.values(), key=lambda g: (g.ip, g.session_id))
    chosen_ids = {g.session_id for g in chosen}
    pending = sorted(r[0] for r in rows if r[4] is None and r[0] in chosen_ids)
    garden = sorted(
        GardenEntry(e.ip_address, e.type)
        for e in session.scalars(select(WalledGardenEntry).where(WalledGardenEntry.site_id == site.id))
        if e.ip_address is not None
    )
    config = dict(site.gateway_config or {})
    gateway = {name: config.get(name) for name in GATEWAY_FIELDS}
    gateway["portal_port"] = gateway["portal_port"] or default_portal_port
    windows = feed.windows(site.id, now=now)
    content = {
        "gateway": gateway,
        "guests": [
            [g.session_id, normalize_ip(g.ip), g.mac, iso(g.until), g.download_kbps, g.upload_kbps]
            for g in chosen
        ],
        "garden": [[e.cidr, e.type] for e in garden],
        "windows": sorted([ip, iso(until)] for ip, until in windows.items()),
        "names": [[n.hostname, n.type, [[a, iso(u)] for a, u in n.addresses]] for n in names],
    }
    version = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:32]
    return AgentState(
        site_id=site.id,
        version=version,
        gateway=gateway,
        guests=chosen,
        walled_garden=garden,
        auth_windows=windows,
        pending=pending,
        walled_garden_names=list(names),
    )
