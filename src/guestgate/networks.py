"""IP networks: parsing to canonical CIDR and containment tests that mix IPv4 and IPv6 safely."""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Sequence

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


def span(network: Network) -> tuple[int, int, int]:
    """`(IP version, first address, last address)` of a network, as integers."""
    return network.version, int(network.network_address), int(network.broadcast_address)


def first_overlap(nets: Sequence[Network]) -> tuple[int, int] | None:
    """The indexes `(i, j)`, `i < j`, of two networks of `nets` that share an address, or None.

    Sorted by first address, a network overlaps an earlier one exactly when it starts before
    the furthest end seen so far: one sort and one pass, O(n log n), instead of every pair.
    """
    order = sorted(range(len(nets)), key=lambda i: span(nets[i]))
    furthest: tuple[int, int, int] | None = None  # (version, last address, index)
    for i in order:
        version, first, last = span(nets[i])
        if furthest is not None and furthest[0] == version and first <= furthest[1]:
            return (min(furthest[2], i), max(furthest[2], i))
        if furthest is None or furthest[0] != version or last > furthest[1]:
            furthest = (version, last, i)
    return None


def first_overlap_between(ours: Sequence[Network], theirs: Sequence[Network]) -> tuple[int, int] | None:
    """`(i, j)` such that `ours[i]` and `theirs[j]` share an address, or None. O(n log n).

    One sweep over both sorted by first address, keeping each side's furthest-reaching network:
    a network overlaps one of the other side that started before it exactly when it starts
    before that side's furthest end.
    """
    tagged = sorted(
        [(span(net), 0, i) for i, net in enumerate(ours)]
        + [(span(net), 1, j) for j, net in enumerate(theirs)]
    )
    furthest: list[tuple[int, int, int] | None] = [None, None]  # per side: (version, last, index)
    for (version, first, last), side, index in tagged:
        other = furthest[1 - side]
        if other is not None and other[0] == version and first <= other[1]:
            return (index, other[2]) if side == 0 else (other[2], index)
        mine = furthest[side]
        if mine is None or mine[0] != version or last > mine[1]:
            furthest[side] = (version, last, index)
    return None


class Cover:
    """Networks asked whether another lies within one of them: O(log n) a question.

    Two CIDR networks are nested or disjoint, so the networks not inside another form sorted,
    disjoint blocks; a network lies within one of the networks exactly when it lies within the
    last block starting at or before it.
    """

    def __init__(self, nets: Iterable[Network]) -> None:
        self._starts: dict[int, list[int]] = {4: [], 6: []}
        self._ends: dict[int, list[int]] = {4: [], 6: []}
        for version, first, last in sorted(span(net) for net in nets):
            ends = self._ends[version]
            if ends and last <= ends[-1]:
                continue  # inside the previous block
            self._starts[version].append(first)
            ends.append(last)

    def contains(self, net: Network) -> bool:
        """True if `net` lies within one of the networks."""
        version, first, last = span(net)
        k = bisect.bisect_right(self._starts[version], first) - 1
        return k >= 0 and last <= self._ends[version][k]
