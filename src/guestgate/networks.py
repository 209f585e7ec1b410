"""IP networks: parsing to canonical CIDR and containment tests that mix IPv4 and IPv6 safely."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalize(value: str) -> str:
    """A CIDR string in canonical form; a bare address becomes /32 or /128. ValueError if invalid."""
    text = value.strip()
    if not text or len(text) > 64:
        raise ValueError(value)
    return ipaddress.ip_network(text, strict=True).with_prefixlen


def parse(value: str) -> Network:
    """The network of a canonical CIDR string."""
    return ipaddress.ip_network(value)


def within(inner: Network, outer: Network) -> bool:
    """True if `inner` lies inside `outer` (False across IP versions)."""
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


def within_any(inner: Network, outers: Iterable[Network]) -> bool:
    """True if `inner` lies inside one of `outers`."""
    return any(within(inner, outer) for outer in outers)


def overlaps(first: Network, second: Network) -> bool:
    """True if the two networks share an address (False across IP versions)."""
    return first.version == second.version and first.overlaps(second)
