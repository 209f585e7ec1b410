"""The `nftables` driver: a Linux gateway that guestgate runs on (optionally in a network namespace).

Everything of one site lives in one table of its own, `inet guestgate_<site id without dashes>`
(`table_name`), and every script this driver writes creates, changes or deletes only that
table, so nothing else on the host is touched: not the host's own tables, not another site's.
The table name is never a tenant's choice; which org may use the driver at all, and on which
interfaces and namespaces, is the deployment's (`GUESTGATE_NFTABLES_ALLOW`, checked by
`guestgate.gateways.policy`). Sites made before tables were per site keep the table they have
(`inet guestgate`, or the name they gave) until they are edited.

    sets    allowed4/6      guests let through (flags timeout; comment "guestgate:<session id>")
            auth_window4/6  guests in their OAuth auth window (flags timeout)
            garden4/6       captive-portal destinations, open to everyone (flags interval)
            auth_garden4/6  captive-auth destinations, open to guests in their auth window (flags interval)
            name_garden4/6, name_auth_garden4/6
                            the addresses guestgate resolved for exact host-name entries (flags
                            timeout: each element lapses at its DNS TTL + a margin unless refreshed)
            dns_garden4/6, dns_auth_garden4/6
                            the addresses the gateway's dnsmasq answered for wildcard entries
                            (`nftset=`, see `dnsmasq_config`; flags timeout, 1h after the answer)
    chains  gg_prerouting   nat hook: tcp/80 from the guest interface -> gg_redirect
            gg_redirect     allowed guests, walled garden and auth window return; the rest is
                            sent to the portal (dnat to portal_address:port, or redirect to the
                            local port when the portal runs on the gateway itself)
            gg_forward      filter hook (policy accept): traffic from the guest interface -> gg_guest,
                            traffic to it -> gg_download
            gg_guest        drops what is over the guest's upload limit, counts the rest; accepts
                            allowed guests, DNS, the walled garden and the auth window; drops the rest
            gg_download     drops what is over the guest's download limit, counts the rest
    maps    up_limit4/6, down_limit4/6    guest address -> its `limit` object (guests with a limit)
            up_count4/6, down_count4/6    guest address -> its `counter` object (every allowed guest)
    objects lu_/ld_<address in hex>       `limit rate over <kbps * 125> bytes/second` per direction
            cu_/cd_<address in hex>       `counter` per direction: bytes from / to the guest

Limits and counters are named stateful objects, one per guest and direction, found through a map
keyed by the guest's address: four rules per family serve every guest (`limit name ip saddr map
@up_limit4 drop`, `counter name ip saddr map @up_count4`, and the same with daddr), so the
ruleset does not grow with the guests; an address missing from a map does not match. Objects
are named after the address, so an element always maps to the same name and a blind
add-then-delete is safe. A counter restarts at zero when a new session takes the address (and
when the table is rebuilt without it, like a gateway reboot); the reconciler adds its readings
up (`guestgate.site_users.usage`). A limit is replaced, not changed, since `add limit` leaves an
existing one as it is.

The auth window is two sets rather than one interval+timeout set of destinations: the timeout
belongs to the guest (its window closes), the destinations are shared, so a rule matches
`saddr @auth_window daddr @auth_garden`. Chains carry a `gg_` prefix because some nft words
(`fwd`, `forward`...) are keywords.

Every change is one `nft -f -` call, which the kernel applies as one transaction. A guest entry is
written as add (1s) + delete + add: the first add makes the delete safe when the element has just
expired, and the last add sets the new timeout and comment, since a plain add keeps the old comment.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from guestgate.gateways.base import (
    DRIFT_TOLERANCE,
    GARDEN_ALWAYS,
    GardenEntry,
    GardenName,
    Gateway,
    GatewayHealth,
    GatewayMisconfigured,
    GatewayRejected,
    GatewayUnreachable,
    GuestAccess,
    GuestCounters,
    HeldGuest,
    SyncResult,
    UsageCheck,
    active_guests,
    default_now,
    kbps_to_bytes,
    normalize_ip,
    plan_sync,
    remaining_seconds,
    session_of,
    session_tag,
    split_garden,
    with_fresh_counters,
    without,
)

# The one table of a site made before tables were per site (and the agent's default for such sites).
LEGACY_TABLE = "guestgate"
SITE_TABLE_PREFIX = "guestgate_"
NFT_TIMEOUT_SECONDS = 30.0
# Names end up inside nft scripts; anything outside these shapes is refused, not quoted.
_IFACE = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_NETNS = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DOMAIN = re.compile(r"[a-z0-9-]{1,63}(\.[a-z0-9-]{1,63})+")
_SESSION = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_MISSING = "No such file or directory"
# A site stored before tables were per site may name any table, the host's own `inet filter` too:
# guestgate replaces or deletes only a table it made.
_FOREIGN = (
    "the nft table inet {table} exists and guestgate did not make it, so it is left alone: edit the site"
)

ALLOWED = {4: "allowed4", 6: "allowed6"}
AUTH_WINDOW = {4: "auth_window4", 6: "auth_window6"}
GARDEN = {4: "garden4", 6: "garden6"}
AUTH_GARDEN = {4: "auth_garden4", 6: "auth_garden6"}
NAME_GARDEN = {4: "name_garden4", 6: "name_garden6"}
NAME_AUTH_GARDEN = {4: "name_auth_garden4", 6: "name_auth_garden6"}
DNS_GARDEN = {4: "dns_garden4", 6: "dns_garden6"}
DNS_AUTH_GARDEN = {4: "dns_auth_garden4", 6: "dns_auth_garden6"}
# How long an address dnsmasq answered for a wildcard stays open after the answer (dnsmasq
# adds elements without a timeout of their own, so the set's default applies).
DNS_SET_TIMEOUT = "1h"
_ADDR_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}
_MATCH = {4: "ip", 6: "ip6"}
UP_LIMIT = {4: "up_limit4", 6: "up_limit6"}
DOWN_LIMIT = {4: "down_limit4", 6: "down_limit6"}
UP_COUNT = {4: "up_count4", 6: "up_count6"}
DOWN_COUNT = {4: "down_count4", 6: "down_count6"}
# (map, family, object kind, object-name prefix) for every guest map.
GUEST_MAPS = [
    (maps[family], family, kind, prefix)
    for maps, kind, prefix in (
        (UP_LIMIT, "limit", "lu"),
        (DOWN_LIMIT, "limit", "ld"),
        (UP_COUNT, "counter", "cu"),
        (DOWN_COUNT, "counter", "cd"),
    )
    for family in (4, 6)
]
# A limit's bucket holds at least this much, or a large (GRO-merged) packet would never fit in
# the bucket of a slow limit and the guest would stall; otherwise an eighth of a second of the rate.
MIN_BURST_BYTES = 65536
_OBJECT_NAME = re.compile(r"(lu|ld|cu|cd)_[0-9a-f]{8,32}")


@dataclass
class _Element:
    value: str
    expires: int | None = None
    comment: str | None = None


@dataclass
class _Objects:
    """The guest maps (map -> address -> object name) and the objects they point to."""

    maps: dict[str, dict[str, str]] = field(default_factory=dict)
    # counter name -> (packets, bytes); limit name -> (bytes per second, burst bytes)
    counters: dict[str, tuple[int, int]] = field(default_factory=dict)
    limits: dict[str, tuple[int, int]] = field(default_factory=dict)

    def points(self, map_name: str, ip: str, name: str) -> bool:
        return self.maps.get(map_name, {}).get(ip) == name


@dataclass
class _TableState:
    sets: dict[str, tuple[str, tuple[str, ...], list[_Element]]] = field(default_factory=dict)
    rule_counts: dict[str, int] = field(default_factory=dict)
    marker: str | None = None
    map_types: dict[str, tuple[str, str]] = field(default_factory=dict)
    objects: _Objects = field(default_factory=_Objects)

    def elements(self, name: str) -> list[_Element]:
        found = self.sets.get(name)
        return found[2] if found is not None else []

    def made_by_guestgate(self) -> bool:
        """Whether guestgate made this table (its marker rule, or its guest sets if the rules are damaged)."""
        return self.marker is not None or any(name in self.sets for name in ALLOWED.values())


class NftablesGateway(Gateway):
    """Enforces access with one nft table on this host (or in a network namespace)."""

    driver = "nftables"

    def __init__(
        self,
        *,
        interface: str,
        portal_port: int,
        portal_address: str | None = None,
        netns: str | None = None,
        table: str = LEGACY_TABLE,
        nft: str = "nft",
        ip: str = "ip",
    ) -> None:
        if not _IFACE.fullmatch(interface):
            raise GatewayMisconfigured(f"'{interface}' is not a usable interface name")
        if not _TABLE.fullmatch(table):
            raise GatewayMisconfigured(f"'{table}' is not a usable nft table name")
        if netns is not None and not _NETNS.fullmatch(netns):
            raise GatewayMisconfigured(f"'{netns}' is not a usable network namespace name")
        if not 1 <= portal_port <= 65535:
            raise GatewayMisconfigured(f"portal port {portal_port} is out of range")
        if portal_address is not None:
            try:
                portal_address = str(ipaddress.ip_address(portal_address))
            except ValueError as exc:
                raise GatewayMisconfigured(f"portal address '{portal_address}' is not an IP address") from exc
        self.interface = interface
        self.portal_port = portal_port
        self.portal_address = portal_address
        self.netns = netns
        self.table = table
        self._nft, self._ip = nft, ip
        self._command = [ip, "netns", "exec", netns, nft] if netns else [nft]

    # -- the interface ---------------------------------------------------------------------

    def allow(self, guest: GuestAccess, *, now: datetime | None = None) -> None:
        """Add (or rewrite) the guest's element with the time left until `guest.until`."""
        lines = self._upsert_guest(guest, now=default_now(now))
        lines.extend(self._blind_objects(normalize_ip(guest.ip), guest))
        self._run_batch(lines, repair=True)

    def revoke(self, session_id: str, ip: str) -> None:
        """Delete the element of `ip` if it carries the session's tag."""
        key = normalize_ip(ip)
        name = ALLOWED[_family(key)]
        # One set is read, not the table; a missing table holds nobody, so there is nothing to revoke.
        state = self._read(["set", "inet", self.table, name])
        if state is None:
            return
        for element in state.elements(name):
            if normalize_ip(element.value) == key and session_of(element.comment) == session_id:
                self._run_batch([*self._delete(name, key), *self._blind_objects(key, None)])
                return

    def open_auth_window(self, ip: str, seconds: int) -> None:
        """Put `ip` in the auth-window set for `seconds`."""
        key = normalize_ip(ip)
        name = AUTH_WINDOW[_family(key)]
        self._run_batch(self._upsert(name, key, max(1, seconds), None), repair=True)

    def replace_walled_garden(
        self, entries: Sequence[GardenEntry | tuple[str, str | None]], names: Sequence[GardenName] = ()
    ) -> None:
        """Flush and refill the address and host-name walled-garden sets in one transaction."""
        always, auth = split_garden(entries)
        lines: list[str] = []
        for sets, values in ((GARDEN, always), (AUTH_GARDEN, auth)):
            for family, name in sets.items():
                lines.extend(self._refill(name, [v for v in values if _family(v) == family]))
        for name, wanted in name_elements(names, now=default_now(None)).items():
            lines.extend(self._refill(name, [f"{a} timeout {s}s" for a, s in sorted(wanted.items())]))
        self._run_batch(lines, repair=True)

    def list_allowed(self) -> list[HeldGuest]:
        """The tagged guest elements of both allowed sets, with the time they have left."""
        state = self._read()
        return self._held(state)[0] if state is not None else []

    def read_counters(self) -> dict[str, GuestCounters]:
        """The byte counters of the allowed guests, by session id."""
        state = self._read()
        return _usage(self._held(state)[0], state) if state is not None else {}

    def health(self) -> GatewayHealth:
        """Check nft answers and the table matches the settings."""
        state = self._read()
        if state is None:
            raise GatewayMisconfigured(
                f"the nft table inet {self.table} is missing; run `guestgate gateway apply`"
            )
        if not self._intact(state):
            raise GatewayMisconfigured(f"the nft table inet {self.table} differs from the site's settings")
        guests = len(self._held(state)[0])
        return GatewayHealth(
            state="ok", detail=f"nft table inet {self.table} in place, {guests} guests allowed"
        )

    def sync(
        self,
        desired_guests: Sequence[GuestAccess],
        walled_garden: Sequence[GardenEntry | tuple[str, str | None]],
        *,
        now: datetime,
        names: Sequence[GardenName] = (),
        check: UsageCheck | None = None,
    ) -> SyncResult:
        """Read the table once (counters too), then write the difference (or the whole table, if it is damaged) in one call.

        The sessions `check` picks from the counters just read are left out, so they are dropped
        in this same transaction.
        """
        state = self._read()
        ours, foreign = self._held(state) if state is not None else ([], [])
        usage = with_fresh_counters(_usage(ours, state) if state is not None else {}, desired_guests)
        dropped = frozenset(check(usage)) if check is not None else frozenset()
        desired = without(desired_guests, dropped)
        plan = plan_sync(ours, desired, now=now, foreign=[e.value for e in foreign])
        result = SyncResult(
            added=len(plan.add),
            removed=len(plan.remove),
            updated=len(plan.update),
            usage=usage,
            dropped=dropped,
        )
        if state is None or not self._intact(state):
            self._apply(desired, walled_garden, now=now, previous=state, names=names)
            return result
        lines: list[str] = []
        for held in plan.remove:
            lines.extend(self._delete(ALLOWED[_family(held.ip)], normalize_ip(held.ip)))
        for guest in [*plan.add, *(g for _, g in plan.update)]:
            lines.extend(self._upsert_guest(guest, now=now))
        taken = {normalize_ip(e.value) for e in foreign}
        wanted = {k: g for k, g in active_guests(desired, now=now).items() if k not in taken}
        # A new session on an address starts its counters at zero.
        renewed = {normalize_ip(h.ip) for h, g in plan.update if h.session_id != g.session_id}
        lines.extend(self._object_changes(state.objects, wanted, renewed))
        lines.extend(self._garden_changes(state, walled_garden))
        lines.extend(self._name_changes(state, names, now=now))
        if lines:
            self._run_batch(lines)
        return result

    # -- the whole table -------------------------------------------------------------------

    def apply(
        self,
        *,
        guests: Sequence[GuestAccess] | None = None,
        walled_garden: Sequence[GardenEntry | tuple[str, str | None]] | None = None,
        now: datetime | None = None,
        names: Sequence[GardenName] | None = None,
    ) -> None:
        """Install or repair the whole table in one transaction (`guestgate gateway apply`, server start).

        Guests, walled garden and resolved names default to what the table holds now, so a repair
        keeps them; auth windows, dnsmasq's answers and elements guestgate did not create are
        always kept.
        """
        self._apply(guests, walled_garden, now=default_now(now), previous=self._read(), names=names)

    def _apply(
        self,
        guests: Sequence[GuestAccess] | None,
        walled_garden: Sequence[GardenEntry | tuple[str, str | None]] | None,
        *,
        now: datetime,
        previous: _TableState | None,
        names: Sequence[GardenName] | None = None,
    ) -> None:
        if previous is not None and not previous.made_by_guestgate():
            raise GatewayMisconfigured(_FOREIGN.format(table=self.table))
        elements: dict[str, list[str]] = {}
        objects = previous.objects if previous is not None else _Objects()
        if guests is None:
            for name in ALLOWED.values():
                elements[name] = [_render_element(e) for e in previous.elements(name)] if previous else []
        else:
            # As in a delta sync: elements guestgate did not create stay, and keep their address.
            foreign = self._held(previous)[1] if previous is not None else []
            for element in foreign:
                elements.setdefault(ALLOWED[_family(element.value)], []).append(_render_element(element))
            taken = {normalize_ip(e.value) for e in foreign}
            held = {normalize_ip(h.ip): h.session_id for h in self._held(previous)[0]} if previous else {}
            kept: dict[str, GuestAccess] = {}
            for key, guest in active_guests(guests, now=now).items():
                if key not in taken:
                    elements.setdefault(ALLOWED[_family(key)], []).append(_guest_element(guest, now=now))
                    kept[key] = guest
            # A repair keeps the counters of the sessions it keeps, so it does not look like a reboot.
            objects = _wanted_objects(kept, previous.objects if previous else _Objects(), keep=held)
        if previous is not None:
            for name in [*AUTH_WINDOW.values(), *DNS_GARDEN.values(), *DNS_AUTH_GARDEN.values()]:
                elements[name] = [_render_element(e) for e in previous.elements(name)]
        if names is None:
            for name in [*NAME_GARDEN.values(), *NAME_AUTH_GARDEN.values()]:
                elements[name] = [_render_element(e) for e in previous.elements(name)] if previous else []
        else:
            for name, wanted in name_elements(names, now=now).items():
                elements[name] = [f"{a} timeout {s}s" for a, s in sorted(wanted.items())]
        if walled_garden is None:
            for sets in (GARDEN, AUTH_GARDEN):
                for name in sets.values():
                    elements[name] = [e.value for e in previous.elements(name)] if previous else []
        else:
            always, auth = split_garden(walled_garden)
            for sets, values in ((GARDEN, always), (AUTH_GARDEN, auth)):
                for family, name in sets.items():
                    elements[name] = [v for v in values if _family(v) == family]
        self._run(self.render(elements, objects))

    def render(self, elements: dict[str, list[str]] | None = None, objects: _Objects | None = None) -> str:
        """The nft script that replaces the table with a fresh one holding `elements` (set name -> items) and `objects`."""
        elements = elements or {}
        objects = objects or _Objects()
        out = [
            f"table inet {self.table} {{}}",
            f"delete table inet {self.table}",
            f"table inet {self.table} {{",
        ]
        for name, (packets, count) in sorted(objects.counters.items()):
            out.append(f"\tcounter {name} {{ packets {packets} bytes {count} }}")
        for name, (rate, burst) in sorted(objects.limits.items()):
            out.append(f"\tlimit {name} {{ {_limit_spec(rate, burst)} }}")
        for name, family, kind, _ in GUEST_MAPS:
            out.append(f"\tmap {name} {{")
            out.append(f"\t\ttype {_ADDR_TYPE[family]} : {kind}")
            pairs = sorted(objects.maps.get(name, {}).items())
            if pairs:
                rendered = ", ".join(f'{address} : "{obj}"' for address, obj in pairs)
                out.append(f"\t\telements = {{ {rendered} }}")
            out.append("\t}")
        for name, addr_type, flags in self._sets():
            out.append(f"\tset {name} {{")
            out.append(f"\t\ttype {addr_type}")
            out.append(f"\t\tflags {','.join(flags)}")
            if name in DNS_GARDEN.values() or name in DNS_AUTH_GARDEN.values():
                out.append(f"\t\ttimeout {DNS_SET_TIMEOUT}")
            items = elements.get(name) or []
            if items:
                out.append(f"\t\telements = {{ {', '.join(items)} }}")
            out.append("\t}")
        for name, header, rules in self._chains():
            out.append(f"\tchain {name} {{")
            if header:
                out.append(f"\t\t{header}")
            out.extend(f"\t\t{rule}" for rule in rules)
            out.append("\t}")
        out.append("}")
        return "\n".join(out) + "\n"

    def remove(self) -> None:
        """Delete this driver's table, if it exists (the site is gone, or moved to another table)."""
        remove_table(self.table, netns=self.netns, nft=self._nft, ip=self._ip)

    # -- the shape of the table ----------------------------------------------------------

    def _sets(self) -> list[tuple[str, str, tuple[str, ...]]]:
        found: list[tuple[str, str, tuple[str, ...]]] = []
        for family in (4, 6):
            found.append((ALLOWED[family], _ADDR_TYPE[family], ("timeout",)))
            found.append((AUTH_WINDOW[family], _ADDR_TYPE[family], ("timeout",)))
            found.append((GARDEN[family], _ADDR_TYPE[family], ("interval",)))
            found.append((AUTH_GARDEN[family], _ADDR_TYPE[family], ("interval",)))
            for sets in (NAME_GARDEN, NAME_AUTH_GARDEN, DNS_GARDEN, DNS_AUTH_GARDEN):
                found.append((sets[family], _ADDR_TYPE[family], ("timeout",)))
        return found

    def _chains(self) -> list[tuple[str, str | None, list[str]]]:
        iif = f'iifname "{self.interface}"'
        opens: list[str] = []
        for family in (4, 6):
            m = _MATCH[family]
            opens.append(f"{m} daddr @{GARDEN[family]}")
            opens.append(f"{m} saddr @{AUTH_WINDOW[family]} {m} daddr @{AUTH_GARDEN[family]}")
            for always, auth in ((NAME_GARDEN, NAME_AUTH_GARDEN), (DNS_GARDEN, DNS_AUTH_GARDEN)):
                opens.append(f"{m} daddr @{always[family]}")
                opens.append(f"{m} saddr @{AUTH_WINDOW[family]} {m} daddr @{auth[family]}")
        allowed = [f"{_MATCH[f]} saddr @{ALLOWED[f]}" for f in (4, 6)]
        redirect = [*(f"{m} return" for m in allowed), *(f"{m} return" for m in opens), self._redirect_rule()]
        guest = [
            *(f"limit name {_MATCH[f]} saddr map @{UP_LIMIT[f]} drop" for f in (4, 6)),
            *(f"counter name {_MATCH[f]} saddr map @{UP_COUNT[f]}" for f in (4, 6)),
            *(f"{m} accept" for m in allowed),
            "udp dport 53 accept",
            "tcp dport 53 accept",
            *(f"{m} accept" for m in opens),
        ]
        if self.portal_address is not None:
            # After dnat the forward hook sees the portal as destination: it must pass.
            m = _MATCH[_family(self.portal_address)]
            guest.append(f"{m} daddr {self.portal_address} tcp dport {self.portal_port} accept")
        guest.append("drop")
        marker = f'comment "guestgate {self._fingerprint()}"'
        return [
            (
                "gg_prerouting",
                "type nat hook prerouting priority dstnat; policy accept;",
                [f"{iif} tcp dport 80 jump gg_redirect {marker}"],
            ),
            ("gg_redirect", None, redirect),
            (
                "gg_forward",
                "type filter hook forward priority filter; policy accept;",
                [f"{iif} jump gg_guest", f'oifname "{self.interface}" jump gg_download'],
            ),
            ("gg_guest", None, guest),
            (
                "gg_download",
                None,
                [
                    *(f"limit name {_MATCH[f]} daddr map @{DOWN_LIMIT[f]} drop" for f in (4, 6)),
                    *(f"counter name {_MATCH[f]} daddr map @{DOWN_COUNT[f]}" for f in (4, 6)),
                ],
            ),
        ]

    def _redirect_rule(self) -> str:
        if self.portal_address is None:
            return f"tcp dport 80 redirect to :{self.portal_port}"
        if _family(self.portal_address) == 6:
            return f"meta nfproto ipv6 tcp dport 80 dnat ip6 to [{self.portal_address}]:{self.portal_port}"
        return f"meta nfproto ipv4 tcp dport 80 dnat ip to {self.portal_address}:{self.portal_port}"

    def _fingerprint(self) -> str:
        settings = f"{self.interface}|{self.portal_address}|{self.portal_port}|{self.table}|v3"
        return hashlib.sha256(settings.encode()).hexdigest()[:16]

    def _intact(self, state: _TableState) -> bool:
        for name, addr_type, flags in self._sets():
            found = state.sets.get(name)
            if found is None or found[0] != addr_type or set(found[1]) != set(flags):
                return False
        for name, _, rules in self._chains():
            if state.rule_counts.get(name) != len(rules):
                return False
        for name, family, kind, _ in GUEST_MAPS:
            if state.map_types.get(name) != (_ADDR_TYPE[family], kind):
                return False
        return state.marker == f"guestgate {self._fingerprint()}"

    # -- batches -------------------------------------------------------------------------

    def _upsert_guest(self, guest: GuestAccess, *, now: datetime) -> list[str]:
        if not _SESSION.fullmatch(guest.session_id):
            raise GatewayRejected(f"session id '{guest.session_id}' cannot be stored in an nft comment")
        key = normalize_ip(guest.ip)
        seconds = remaining_seconds(guest.until, now=now)
        return self._upsert(ALLOWED[_family(key)], key, seconds, session_tag(guest.session_id))

    def _blind_objects(self, ip: str, guest: GuestAccess | None) -> list[str]:
        """Give `ip` fresh counters and `guest`'s limits (None: remove its objects) without reading the table.

        Each object and element is first added (a no-op when it exists, and an element always
        maps to the same name), so the deletes that follow cannot fail.
        """
        t = self.table
        family = _family(ip)
        lines: list[str] = []
        for name, fam, kind, prefix in GUEST_MAPS:
            if fam != family:
                continue
            obj = object_name(prefix, ip)
            spec = "" if kind == "counter" else f" {{ {_limit_spec(1, MIN_BURST_BYTES)} }}"
            lines += [
                f"add {kind} inet {t} {obj}{spec}",
                f'add element inet {t} {name} {{ {ip} : "{obj}" }}',
                f"delete element inet {t} {name} {{ {ip} }}",
                f"delete {kind} inet {t} {obj}",
            ]
            if guest is None:
                continue
            if kind == "counter":
                lines.append(f"add counter inet {t} {obj}")
            else:
                limit = limit_of(guest.upload_kbps if prefix == "lu" else guest.download_kbps)
                if limit is None:
                    continue
                lines.append(f"add limit inet {t} {obj} {{ {_limit_spec(*limit)} }}")
            lines.append(f'add element inet {t} {name} {{ {ip} : "{obj}" }}')
        return lines

    def _object_changes(self, have: _Objects, wanted: dict[str, GuestAccess], renewed: set[str]) -> list[str]:
        """The lines that give every wanted guest its counters and limits, and remove the objects of the rest."""
        t = self.table
        lines: list[str] = []
        want = _wanted_objects(wanted, have, keep=None)
        for name, _, kind, _ in GUEST_MAPS:
            held = have.maps.get(name, {})
            wanted_map = want.maps.get(name, {})
            for ip, obj in held.items():
                stale = wanted_map.get(ip) != obj or ip in renewed
                if kind == "limit" and not stale:
                    stale = have.limits.get(obj) != want.limits.get(obj)
                if stale:
                    lines.append(f"delete element inet {t} {name} {{ {ip} }}")
        for name, _, kind, _ in GUEST_MAPS:
            held = have.maps.get(name, {})
            for ip, obj in want.maps.get(name, {}).items():
                present = obj in (have.counters if kind == "counter" else have.limits)
                fresh = held.get(ip) == obj and ip not in renewed
                if kind == "limit" and fresh:
                    fresh = have.limits.get(obj) == want.limits.get(obj)
                if fresh:
                    continue
                if present:
                    lines.append(f"delete {kind} inet {t} {obj}")
                if kind == "counter":
                    lines.append(f"add counter inet {t} {obj}")
                else:
                    lines.append(f"add limit inet {t} {obj} {{ {_limit_spec(*want.limits[obj])} }}")
                lines.append(f'add element inet {t} {name} {{ {ip} : "{obj}" }}')
        # Objects no wanted guest uses any more (their elements were deleted above).
        for obj in sorted(set(have.counters) - set(want.counters)):
            lines.append(f"delete counter inet {t} {obj}")
        for obj in sorted(set(have.limits) - set(want.limits)):
            lines.append(f"delete limit inet {t} {obj}")
        return lines

    def _upsert(self, name: str, value: str, seconds: int, comment: str | None) -> list[str]:
        note = f' comment "{comment}"' if comment else ""
        return [
            *self._delete(name, value),
            f"add element inet {self.table} {name} {{ {value} timeout {seconds}s{note} }}",
        ]

    def _delete(self, name: str, value: str) -> list[str]:
        return [
            f"add element inet {self.table} {name} {{ {value} timeout 1s }}",
            f"delete element inet {self.table} {name} {{ {value} }}",
        ]

    def _refill(self, name: str, values: list[str]) -> list[str]:
        lines = [f"flush set inet {self.table} {name}"]
        if values:
            lines.append(f"add element inet {self.table} {name} {{ {', '.join(values)} }}")
        return lines

    def _garden_changes(
        self, state: _TableState, walled_garden: Sequence[GardenEntry | tuple[str, str | None]]
    ) -> list[str]:
        always, auth = split_garden(walled_garden)
        lines: list[str] = []
        for sets, values in ((GARDEN, always), (AUTH_GARDEN, auth)):
            for family, name in sets.items():
                want = [v for v in values if _family(v) == family]
                have = _collapsed(e.value for e in state.elements(name))
                if sorted(want) != sorted(have):
                    lines.extend(self._refill(name, want))
        return lines

    def _name_changes(self, state: _TableState, names: Sequence[GardenName], *, now: datetime) -> list[str]:
        lines: list[str] = []
        tolerance = DRIFT_TOLERANCE.total_seconds()
        for name, wanted in name_elements(names, now=now).items():
            have = {normalize_ip(e.value): e.expires for e in state.elements(name)}
            stale = set(have) != set(wanted) or any(
                have[a] is None or abs(int(have[a] or 0) - s) > tolerance for a, s in wanted.items()
            )
            if stale:
                lines.extend(self._refill(name, [f"{a} timeout {s}s" for a, s in sorted(wanted.items())]))
        return lines

    def _held(self, state: _TableState) -> tuple[list[HeldGuest], list[_Element]]:
        ours: list[HeldGuest] = []
        foreign: list[_Element] = []
        for name in ALLOWED.values():
            for element in state.elements(name):
                session_id = session_of(element.comment)
                if session_id is None:
                    foreign.append(element)
                    continue
                remaining = timedelta(seconds=element.expires) if element.expires is not None else None
                ours.append(
                    HeldGuest(session_id=session_id, ip=normalize_ip(element.value), remaining=remaining)
                )
        return ours, foreign

    # -- running nft ---------------------------------------------------------------------

    def _run_batch(self, lines: list[str], *, repair: bool = False) -> None:
        if not lines:
            return
        script = "\n".join(lines) + "\n"
        try:
            self._run(script)
        except GatewayRejected as exc:
            if not repair or _MISSING not in str(exc):
                raise
            # The table (or a set) is gone, e.g. after `nft flush ruleset`: rebuild it, then retry.
            self.apply()
            self._run(script)

    def _read(self, what: list[str] | None = None) -> _TableState | None:
        try:
            out = self._exec(["-j", "list", *(what or ["table", "inet", self.table])], stdin=None)
        except GatewayRejected as exc:
            if _MISSING in str(exc):
                return None
            raise
        return _parse_table(json.loads(out))

    def _run(self, script: str) -> None:
        self._exec(["-f", "-"], stdin=script)

    def _exec(self, args: list[str], *, stdin: str | None) -> str:
        return _run_nft([*self._command, *args], stdin=stdin, netns=self.netns)


def remove_table(table: str, *, netns: str | None = None, nft: str = "nft", ip: str = "ip") -> None:
    """Delete `inet <table>` (in `netns`) if it exists and guestgate made it; nothing else is touched."""
    if not _TABLE.fullmatch(table):
        raise GatewayMisconfigured(f"'{table}' is not a usable nft table name")
    if netns is not None and not _NETNS.fullmatch(netns):
        raise GatewayMisconfigured(f"'{netns}' is not a usable network namespace name")
    command = [ip, "netns", "exec", netns, nft] if netns else [nft]
    try:
        listed = _run_nft([*command, "-j", "list", "table", "inet", table], stdin=None, netns=netns)
    except GatewayRejected as exc:
        if _MISSING in str(exc):
            return
        raise
    if not _parse_table(json.loads(listed)).made_by_guestgate():
        raise GatewayMisconfigured(_FOREIGN.format(table=table))
    # Declaring it first makes the deletion succeed whether or not the table exists.
    _run_nft(
        [*command, "-f", "-"], stdin=f"table inet {table} {{}}\ndelete table inet {table}\n", netns=netns
    )


def _run_nft(command: list[str], *, stdin: str | None, netns: str | None) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=NFT_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError as exc:
        raise GatewayMisconfigured(f"'{command[0]}' is not installed on this host") from exc
    except subprocess.TimeoutExpired as exc:
        raise GatewayUnreachable(f"nft did not answer within {NFT_TIMEOUT_SECONDS:.0f}s") from exc
    if done.returncode == 0:
        return done.stdout
    error = done.stderr.strip() or f"exit status {done.returncode}"
    # Checked before the table-missing case: these messages also end in "No such file or directory".
    if netns and "network namespace" in error:
        raise GatewayMisconfigured(f"network namespace '{netns}': {_first_lines(error)}")
    if "exec of" in error:
        raise GatewayMisconfigured(f"nft is not installed in the namespace: {_first_lines(error)}")
    if "Operation not permitted" in error or "Permission denied" in error:
        raise GatewayMisconfigured(f"nft needs CAP_NET_ADMIN: {_first_lines(error)}")
    raise GatewayRejected(f"nft refused the change: {_first_lines(error)}")


def name_elements(names: Sequence[GardenName], *, now: datetime) -> dict[str, dict[str, int]]:
    """The elements of the four host-name sets: address -> seconds left, for the exact names' addresses."""
    sets: dict[str, dict[str, int]] = {
        name: {} for name in [*NAME_GARDEN.values(), *NAME_AUTH_GARDEN.values()]
    }
    for entry in names:
        if entry.wildcard:
            continue
        chosen = NAME_GARDEN if entry.type == GARDEN_ALWAYS else NAME_AUTH_GARDEN
        for address, until in entry.addresses:
            if until <= now:
                continue
            key = normalize_ip(address)
            target = sets[chosen[_family(key)]]
            target[key] = max(target.get(key, 0), remaining_seconds(until, now=now))
    return sets


def dnsmasq_config(table: str, names: Sequence[GardenName]) -> str:
    """The dnsmasq configuration that adds the addresses of wildcard entries to the site's table.

    One `nftset=/<domain>/4#inet#<table>#<set>,6#inet#<table>#<set6>` line per wildcard (dnsmasq
    2.87 or later, built with nftset; `dnsmasq --version` lists it). dnsmasq matches the domain and
    every name below it, so `*.example.com` also admits `example.com` itself. The guests must use
    that dnsmasq as their DNS server (DHCP option 6), or nothing is added.
    """
    if not _TABLE.fullmatch(table):
        raise GatewayMisconfigured(f"'{table}' is not a usable nft table name")
    lines = [f"# guestgate walled garden of nft table inet {table}: wildcards through dnsmasq's nftset"]
    for entry in sorted(names, key=lambda n: (n.hostname, n.type or "")):
        if not entry.wildcard:
            continue
        domain = entry.hostname[2:]
        if not _DOMAIN.fullmatch(domain):
            raise GatewayRejected(f"'{entry.hostname}' cannot be written into a dnsmasq configuration")
        chosen = DNS_GARDEN if entry.type == GARDEN_ALWAYS else DNS_AUTH_GARDEN
        lines.append(f"nftset=/{domain}/4#inet#{table}#{chosen[4]},6#inet#{table}#{chosen[6]}")
    return "\n".join(lines) + "\n"


def table_name(site_id: str) -> str:
    """The nft table of a site: `guestgate_` and the site id's 32 hex digits (a valid nft identifier)."""
    return SITE_TABLE_PREFIX + site_id.replace("-", "").lower()


def _family(value: str) -> int:
    # An address or CIDR that parsed (every caller's has) is IPv6 exactly when it has a colon.
    return 6 if ":" in value else 4


def _guest_element(guest: GuestAccess, *, now: datetime) -> str:
    seconds = remaining_seconds(guest.until, now=now)
    if not _SESSION.fullmatch(guest.session_id):
        raise GatewayRejected(f"session id '{guest.session_id}' cannot be stored in an nft comment")
    return f'{normalize_ip(guest.ip)} timeout {seconds}s comment "{session_tag(guest.session_id)}"'


def _render_element(element: _Element) -> str:
    text = element.value
    if element.expires is not None:
        text += f" timeout {max(1, element.expires)}s"
    # A comment nft itself could not parse back (quotes, newlines) is dropped rather than escaped.
    if element.comment and '"' not in element.comment and "\n" not in element.comment:
        text += f' comment "{element.comment}"'
    return text


def _collapsed(values: Iterable[str]) -> list[str]:
    networks = [ipaddress.ip_network(v, strict=False) for v in values]
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    merged = [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]
    return [normalize_ip(str(n)) for n in merged]


def _parse_table(document: dict[str, Any]) -> _TableState:
    state = _TableState()
    for item in document.get("nftables", []):
        if "set" in item:
            data = item["set"]
            elements: list[_Element] = []
            for raw in data.get("elem", []):
                elements.extend(_parse_element(raw))
            flags = tuple(data.get("flags", []))
            state.sets[data["name"]] = (str(data.get("type")), flags, elements)
        elif "map" in item:
            data = item["map"]
            state.map_types[data["name"]] = (str(data.get("type")), str(data.get("map")))
            state.objects.maps[data["name"]] = {
                normalize_ip(str(raw[0])): str(raw[1])
                for raw in data.get("elem", [])
                if isinstance(raw, list) and len(raw) == 2
            }
        elif "counter" in item:
            data = item["counter"]
            if _OBJECT_NAME.fullmatch(str(data.get("name"))):
                state.objects.counters[data["name"]] = (
                    int(data.get("packets", 0)),
                    int(data.get("bytes", 0)),
                )
        elif "limit" in item:
            data = item["limit"]
            if _OBJECT_NAME.fullmatch(str(data.get("name"))) and data.get("per") == "second":
                state.objects.limits[data["name"]] = (
                    int(data["rate"]) * _BYTE_UNITS.get(str(data.get("rate_unit", "bytes")), 0),
                    int(data.get("burst", 0)) * _BYTE_UNITS.get(str(data.get("burst_unit", "bytes")), 0),
                )
        elif "chain" in item:
            state.rule_counts.setdefault(item["chain"]["name"], 0)
        elif "rule" in item:
            rule = item["rule"]
            state.rule_counts[rule["chain"]] = state.rule_counts.get(rule["chain"], 0) + 1
            if rule["chain"] == "gg_prerouting" and rule.get("comment", "").startswith("guestgate "):
                state.marker = rule["comment"]
    return state


def _parse_element(raw: Any) -> list[_Element]:
    if isinstance(raw, dict) and "elem" in raw:
        data = raw["elem"]
        expires = data.get("expires")
        if expires is None and "timeout" in data:
            expires = data["timeout"]
        values = _values(data["val"])
        return [_Element(value=v, expires=expires, comment=data.get("comment")) for v in values]
    return [_Element(value=v) for v in _values(raw)]


def _values(raw: Any) -> list[str]:
    if isinstance(raw, str):
        return [normalize_ip(raw)]
    if isinstance(raw, dict) and "prefix" in raw:
        return [normalize_ip(f"{raw['prefix']['addr']}/{raw['prefix']['len']}")]
    if isinstance(raw, dict) and "range" in raw:
        low, high = (ipaddress.ip_address(v) for v in raw["range"])
        return [normalize_ip(str(n)) for n in ipaddress.summarize_address_range(low, high)]
    raise GatewayRejected(f"unexpected element in nft output: {raw!r}")


_BYTE_UNITS = {"bytes": 1, "kbytes": 1024, "mbytes": 1024**2, "gbytes": 1024**3}


def object_name(prefix: str, ip: str) -> str:
    """The name of a guest's limit or counter object: `lu`/`ld`/`cu`/`cd`, `_`, the address in hex."""
    return f"{prefix}_{_hex(ip)}"


@lru_cache(maxsize=65536)
def _hex(ip: str) -> str:
    return ipaddress.ip_address(ip).packed.hex()


def limit_of(kbps: int | None) -> tuple[int, int] | None:
    """The (bytes per second, burst bytes) of a limit object for `kbps`, or None for no limit."""
    if kbps is None or kbps <= 0:
        return None
    rate = kbps_to_bytes(kbps)
    return rate, max(rate // 8, MIN_BURST_BYTES)


def _limit_spec(rate: int, burst: int) -> str:
    return f"rate over {rate} bytes/second burst {burst} bytes"


def _wanted_objects(
    wanted: dict[str, GuestAccess], have: _Objects, *, keep: dict[str, str] | None
) -> _Objects:
    """The maps and objects the wanted guests need; with `keep` (address -> session held before),
    counters of an address still held by the same session keep their values."""
    out = _Objects(maps={name: {} for name, *_ in GUEST_MAPS})
    for ip, guest in wanted.items():
        family = _family(ip)
        for name, fam, kind, prefix in GUEST_MAPS:
            if fam != family:
                continue
            obj = object_name(prefix, ip)
            if kind == "counter":
                kept = keep is not None and keep.get(ip) == guest.session_id and have.points(name, ip, obj)
                out.counters[obj] = have.counters.get(obj, (0, 0)) if kept else (0, 0)
            else:
                limit = limit_of(guest.upload_kbps if prefix == "lu" else guest.download_kbps)
                if limit is None:
                    continue
                out.limits[obj] = limit
            out.maps[name][ip] = obj
    return out


def _usage(ours: Sequence[HeldGuest], state: _TableState) -> dict[str, GuestCounters]:
    """The counters of the guests held, by session id (guests whose counters are missing are left out)."""
    found: dict[str, GuestCounters] = {}
    objects = state.objects
    for held in ours:
        ip = normalize_ip(held.ip)
        family = _family(ip)
        up, down = object_name("cu", ip), object_name("cd", ip)
        if not (objects.points(UP_COUNT[family], ip, up) and objects.points(DOWN_COUNT[family], ip, down)):
            continue
        found[held.session_id] = GuestCounters(
            bytes_in=objects.counters.get(up, (0, 0))[1], bytes_out=objects.counters.get(down, (0, 0))[1]
        )
    return found


def _first_lines(text: str, count: int = 4) -> str:
    return " | ".join(line.strip() for line in text.splitlines()[:count])
