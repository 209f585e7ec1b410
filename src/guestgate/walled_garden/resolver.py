"""Resolving walled-garden host names for gateways that hold addresses (nftables, agent).

Exact names (`accounts.google.com`) are resolved by guestgate with dnspython, A and AAAA, and
each answer is kept for its TTL (clamped to MIN_TTL..MAX_TTL seconds); the addresses go to the
gateway as nft set elements whose `timeout` is the TTL plus MARGIN_SECONDS, so they outlive the
next refresh and lapse by themselves if guestgate stops refreshing. A name is resolved again
when its TTL has run out (the reconciler asks every few seconds, in a worker thread; never on the
event loop). Wildcards are not resolved here: the gateway's dnsmasq adds what it answers
(`nftset=`, see `guestgate.gateways.nftables.dnsmasq_config`).

Every address passes the outbound policy (purpose `walled-garden`): a name that resolves to a
loopback, private, link-local or other special-purpose address is not admitted unless the
deployment opened that range (`GUESTGATE_OUTBOUND_ALLOW_NETWORKS`), so a tenant cannot open the
controller's networks to guests. Bounds: MAX_ADDRESSES_PER_NAME per name, the names of a site are
capped by the API (`MAX_HOSTNAMES_PER_SITE`), and a failed lookup keeps the previous answer until
its elements lapse and is retried after FAILURE_RETRY_SECONDS.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import dns.exception
import dns.resolver
import structlog

from guestgate.outbound import OutboundPolicy

log = structlog.get_logger(__name__)

MIN_TTL = 5
MAX_TTL = 3600
MARGIN_SECONDS = 60
MAX_ADDRESSES_PER_NAME = 16
FAILURE_RETRY_SECONDS = 30
LOOKUP_SECONDS = 3.0


@dataclass(frozen=True)
class Answer:
    """The addresses a name resolved to (A and AAAA) and the TTL of the answer, in seconds."""

    addresses: tuple[str, ...]
    ttl: int


class LookupFailed(Exception):
    """The name could not be resolved (no such name, no answer, timeout)."""


# name -> Answer; raises LookupFailed.
Query = Callable[[str], Answer]


def dns_query(nameservers: Iterable[str] = (), *, port: int = 53) -> Query:
    """A dnspython query of A and AAAA records (the host's resolv.conf, or these nameservers)."""
    servers = list(nameservers)

    def query(name: str) -> Answer:
        resolver = dns.resolver.Resolver(configure=not servers)
        if servers:
            resolver.nameservers = servers
            resolver.port = port
        resolver.lifetime = LOOKUP_SECONDS
        addresses: list[str] = []
        ttls: list[int] = []
        failure = "has no address records"
        for rdtype in ("A", "AAAA"):
            try:
                found = resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
            except dns.resolver.NXDOMAIN as exc:
                raise LookupFailed(f"'{name}' does not exist") from exc
            except dns.exception.DNSException as exc:
                # One record type failing (a server refusing AAAA) leaves the other's answer usable.
                failure = f"did not resolve ({type(exc).__name__})"
                continue
            if found.rrset is not None:
                ttls.append(int(found.rrset.ttl))
                addresses.extend(str(item) for item in found.rrset)
        if not addresses:
            raise LookupFailed(f"'{name}' {failure}")
        return Answer(addresses=tuple(addresses), ttl=min(ttls))

    return query


@dataclass(frozen=True)
class _Cached:
    addresses: tuple[tuple[str, datetime], ...]
    refresh_at: float


class GardenResolver:
    """Resolves exact walled-garden names with their TTL; thread-safe, one per process."""

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        query: Query | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.query = query or dns_query()
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, _Cached] = {}

    def addresses(self, name: str, *, now: datetime) -> tuple[tuple[str, datetime], ...]:
        """The admitted addresses of `name`, each with until when the gateway may hold it.

        Resolves when the last answer's TTL has run out (blocking: call from a worker thread).
        """
        tick = self.clock()
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and tick < cached.refresh_at:
            return tuple((a, until) for a, until in cached.addresses if until > now)
        try:
            answer = self.query(name)
        except LookupFailed as exc:
            log.warning("walled_garden.lookup_failed", name=name, error=str(exc))
            kept = tuple((a, u) for a, u in (cached.addresses if cached else ()) if u > now)
            with self._lock:
                self._cache[name] = _Cached(kept, tick + FAILURE_RETRY_SECONDS)
            return kept
        ttl = min(MAX_TTL, max(MIN_TTL, answer.ttl))
        until = now + timedelta(seconds=ttl + MARGIN_SECONDS)
        admitted = tuple((a, until) for a in self._admitted(name, answer.addresses))
        with self._lock:
            self._cache[name] = _Cached(admitted, tick + ttl)
        return admitted

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the cached answers of names no longer in any walled garden."""
        wanted = set(keep)
        with self._lock:
            for name in [n for n in self._cache if n not in wanted]:
                del self._cache[name]

    def _admitted(self, name: str, found: Iterable[str]) -> list[str]:
        admitted: list[str] = []
        for text in dict.fromkeys(found):
            address = ipaddress.ip_address(text)
            why = self.policy.refusal(address, "walled-garden")
            if why is not None:
                log.warning("walled_garden.address_refused", name=name, address=text, reason=why)
                continue
            admitted.append(str(address))
            if len(admitted) == MAX_ADDRESSES_PER_NAME:
                break
        return admitted
