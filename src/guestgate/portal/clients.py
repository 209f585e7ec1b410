"""Who is asking: the guest's address (behind trusted proxies), MAC and original URL."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import urlsplit

from guestgate import networks

MAX_ORIG_CHARS = 2048
_MAC_HEX = re.compile(r"[0-9a-f]{12}")


def parse_ip(value: str | None) -> str | None:
    """The canonical text of an IP address (IPv4-mapped IPv6 as IPv4), or None if it is not one."""
    if not value or len(value) > 64:
        return None
    return _canonical_ip(value)


# A proxy's address comes with every request and a guest's with each of its requests:
# parsing each once per process keeps the `ipaddress` work off most requests.
@lru_cache(maxsize=4096)
def _canonical_ip(value: str) -> str | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def parse_mac(value: str | None) -> str | None:
    """A MAC address as `AA:BB:CC:DD:EE:FF`, or None if it is not one (colons, dashes or dots)."""
    if not value or len(value) > 32:
        return None
    digits = re.sub(r"[:\-.]", "", value.strip().lower())
    if not _MAC_HEX.fullmatch(digits):
        return None
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2)).upper()


def safe_orig(value: str | None) -> str | None:
    """The original URL if it is a plain http(s) URL the continue button may link to, else None."""
    if not value or len(value) > MAX_ORIG_CHARS:
        return None
    text = value.strip()
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return text


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Iterable[networks.Network]
) -> str | None:
    """The guest's IP: the peer, or, when the peer is a trusted proxy, the nearest untrusted hop.

    X-Forwarded-For is read right to left because only the entries our own proxies appended
    can be believed; anything further left was written by the client.
    """
    address = parse_ip(peer)
    trusted = tuple(trusted)
    if address is None or not trusted or not _is_trusted(address, trusted):
        return address
    if not forwarded_for:
        return address
    for hop in reversed(forwarded_for.split(",")):
        candidate = parse_ip(hop)
        if candidate is None:
            return None
        if not _is_trusted(candidate, trusted):
            return candidate
        address = candidate
    return address


@lru_cache(maxsize=4096)
def _is_trusted(address: str, trusted: tuple[networks.Network, ...]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in trusted)
