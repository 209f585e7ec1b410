"""Which site a guest's address belongs to when the request names none, without one org's
subnets ever deciding for another org's guests.

Most requests name their site (`site=`, a gateway-signed entry) and never come here. Three do
not: the QR code of a printed card, guestgate's own captive redirect, and `/guest/capport`
without `site`. For those the address is looked up among every instance subnet of every org
(a *claim*: one row of `instance_subnets`). Tenants may legitimately reuse the same private
range behind NAT, so overlapping claims of different orgs are allowed, and the look-up settles
them without letting the later one matter:

- A scope hint (`instance=<id>`, which printed cards carry) confines the look-up to that
  instance's claims, whatever anyone else holds.
- Otherwise, of the claims containing the address, the one registered first (the lowest row
  id: a row keeps its id while its instance keeps that subnet) names the org that owns the
  address; only that org's claims are considered further. A later org can thus neither take
  over an address another org already serves (a broader or a more specific subnet, or the same
  one) nor make it ambiguous; its own guests in the overlap reach it with `site=` or a signed
  entry.
- Within the owning org (or the hinted instance) the address must lie in one site's subnets;
  an org that gives two of its sites the same range has made its own bare links ambiguous.

Claims are indexed by prefix length: a look-up costs one dictionary probe per distinct prefix
length in use (at most 33 for IPv4, 129 for IPv6), whatever the number of claims.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from guestgate import networks

_BITS = {4: 32, 6: 128}


@dataclass(frozen=True)
class Claim:
    """One instance subnet of one site: who holds it, and when it was registered (`order`)."""

    order: int
    site_id: str
    org_id: str
    instance_id: str
    network: networks.Network


class ClaimIndex:
    """Claims by (IP version, prefix length, network address): the claims containing an address."""

    def __init__(self, claims: Iterable[Claim]) -> None:
        self._table: dict[tuple[int, int], dict[int, list[Claim]]] = defaultdict(lambda: defaultdict(list))
        for claim in claims:
            net = claim.network
            self._table[(net.version, net.prefixlen)][int(net.network_address)].append(claim)
        # Longest prefixes first: `containing` lists the most specific claims first.
        self._lengths = {
            version: sorted((length for v, length in self._table if v == version), reverse=True)
            for version in _BITS
        }

    @classmethod
    def of_rows(cls, rows: Iterable[tuple[int, str, str, str, str]]) -> ClaimIndex:
        """The index of `(order, site id, org id, instance id, subnet)` rows."""
        return cls(
            Claim(order, site_id, org_id, instance_id, networks.parse(subnet))
            for order, site_id, org_id, instance_id, subnet in rows
        )

    def containing(self, ip: str) -> list[Claim]:
        """Every claim whose subnet contains the address, most specific first."""
        address = ipaddress.ip_address(ip)
        version, value, bits = address.version, int(address), _BITS[address.version]
        found: list[Claim] = []
        for length in self._lengths[version]:
            key = (value >> (bits - length)) << (bits - length) if length else 0
            found.extend(self._table[(version, length)].get(key, ()))
        return found


def site_of(index: ClaimIndex, ip: str, *, instance_id: str | None = None) -> str | None:
    """The site a bare look-up of `ip` finds, or None (no claim, or ambiguous within the owner)."""
    claims = index.containing(ip)
    if instance_id is not None:
        claims = [claim for claim in claims if claim.instance_id == instance_id]
    if not claims:
        return None
    owner = min(claims, key=lambda claim: claim.order).org_id
    sites = {claim.site_id for claim in claims if claim.org_id == owner}
    return sites.pop() if len(sites) == 1 else None
