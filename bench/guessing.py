"""How fast can an attacker guess coupon codes at one site, and what does it cost the guests?

    .venv/bin/python bench/guessing.py [--hours 24] [--addresses 253]

Drives the portal's real throttle (`guestgate.portal.throttle`, in-process counters, default
limits from `Settings`) with a simulated clock, for each attacker's best strategy:

- paced: just under the site's threshold (`GUESTGATE_PORTAL_SITE_MAX_FAILURES` - 1 wrong codes
  a window), from fresh addresses, so the site never counts as under attack;
- IPv4 /24 at full speed: `--addresses` addresses of one /24 (a guest LAN's whole pool), each
  guessing again the moment its lock-out ends, MACs rotating;
- IPv6 /64 at full speed: a fresh address of one /64 for every guess.

For each it prints the wrong codes the throttle let through (each one a code looked up), the
attacker's rate, the expected time to a first hit for 100,000 / 10,000 / 1,000 valid codes of
the instance (the code space is 31^6, `guestgate.coupons.codes`), and the share of the time a
guest arriving with a valid code is refused: on a fresh IPv4 address, on a fresh IPv6 address
of the attacked /64, and on another /64.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import random

from guestgate.config import Settings
from guestgate.coupons import codes
from guestgate.portal.config import PortalConfig, ThrottleLimits
from guestgate.portal.throttle import MemoryCounters, Throttle

SITE = "site"
CODE_SPACE = len(codes.ALPHABET) ** codes.LENGTH
VALID = (100_000, 10_000, 1_000)
PROBE_EVERY = 10.0  # seconds between the simulated newcomers' checks


class Probe:
    """A guest with a valid code checking in every PROBE_EVERY seconds: how often is it refused?"""

    def __init__(self, throttle: Throttle, ip: str) -> None:
        self.throttle, self.ip, self.next, self.asked, self.refused = throttle, ip, 0.0, 0, 0

    async def until(self, now: float) -> None:
        while self.next <= now:
            self.asked += 1
            if await self.throttle.check(SITE, self.ip, None, self.next) is not None:
                self.refused += 1
            self.next += PROBE_EVERY

    @property
    def share(self) -> float:
        return self.refused / self.asked if self.asked else 0.0


async def paced(limits: ThrottleLimits, seconds: float) -> tuple[int, list[Probe]]:
    """site_max - 1 wrong codes a window, each from a fresh address: never under attack."""
    throttle = Throttle(MemoryCounters(), limits)
    probes = [Probe(throttle, "10.0.255.250")]
    per_window = limits.site_max_failures - 1
    guesses, address = 0, itertools.count(1)
    for start in itertools.count(0.0, limits.window_seconds):
        if start >= seconds:
            break
        for i in range(per_window):
            now = start + i * limits.window_seconds / (per_window + 1)
            n = next(address)
            ip = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
            await probes[0].until(now)
            if await throttle.check(SITE, ip, None, now) is None:
                await throttle.failed(SITE, ip, None, now)
                guesses += 1
    return guesses, probes


async def ipv4_full_speed(limits: ThrottleLimits, seconds: float, addresses: int) -> tuple[int, list[Probe]]:
    """Every address of a /24 guesses again as soon as its lock-out ends (MACs rotating)."""
    throttle = Throttle(MemoryCounters(), limits)
    probes = [Probe(throttle, "10.0.0.254")]
    rng = random.Random(1)
    ready = [(0.0, i) for i in range(1, addresses + 1)]
    heapq.heapify(ready)
    guesses = 0
    while ready:
        now, host = heapq.heappop(ready)
        if now >= seconds:
            break
        await probes[0].until(now)
        ip, mac = f"10.0.0.{host}", ":".join(f"{rng.randrange(256):02X}" for _ in range(6))
        locked = await throttle.check(SITE, ip, mac, now)
        if locked is not None:
            heapq.heappush(ready, (locked.until, host))
            continue
        guesses += 1
        started = [x for x in await throttle.failed(SITE, ip, mac, now) if x.key == f"ip:{SITE}:{ip}"]
        heapq.heappush(ready, (started[0].until if started else now + 0.01, host))
    return guesses, probes


async def ipv6_full_speed(limits: ThrottleLimits, seconds: float) -> tuple[int, list[Probe]]:
    """A fresh address of one /64 for every guess; when the /64 is locked, wait for it."""
    throttle = Throttle(MemoryCounters(), limits)
    probes = [
        Probe(throttle, "2001:db8:1:2:ffff::1"),
        Probe(throttle, "2001:db8:1:3::1"),
        Probe(throttle, "10.0.0.254"),
    ]
    guesses, now = 0, 0.0
    for n in itertools.count(1):
        if now >= seconds:
            break
        for probe in probes:
            await probe.until(now)
        ip = f"2001:db8:1:2:{n >> 48 & 0xFFFF:x}:{n >> 32 & 0xFFFF:x}:{n >> 16 & 0xFFFF:x}:{n & 0xFFFF:x}"
        locked = await throttle.check(SITE, ip, None, now)
        if locked is not None:
            now = locked.until
            continue
        await throttle.failed(SITE, ip, None, now)
        guesses += 1
        now += 0.01
    return guesses, probes


def human(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} d"


async def run(hours: float, addresses: int) -> None:
    limits = PortalConfig.from_settings(Settings(_env_file=None)).throttle  # type: ignore[call-arg]
    seconds = hours * 3600
    print(
        f"limits: {limits.client_max_failures} wrong codes per client, {limits.site_max_failures} per site "
        f"(and per IPv6 /64) in {limits.window_seconds} s; lock-outs {limits.lockout_seconds} s doubling "
        f"to {limits.lockout_max_seconds} s; simulated {hours:g} h"
    )
    print(
        f"code space {CODE_SPACE:,}; guesses expected before a hit: "
        + ", ".join(f"{CODE_SPACE / v:,.0f} ({v:,} valid)" for v in VALID)
    )
    print()
    header = f"{'attacker':<26}{'guesses':>9}{'per day':>9}" + "".join(
        f"{'to hit, ' + format(v, ','):>17}" for v in VALID
    )
    print(header + "   newcomer with a valid code refused")
    rows = [
        ("paced under the threshold", *(await paced(limits, seconds)), ("fresh IPv4",)),
        (
            f"IPv4 /24, {addresses} addresses",
            *(await ipv4_full_speed(limits, seconds, addresses)),
            ("fresh IPv4",),
        ),
        (
            "IPv6 /64, any addresses",
            *(await ipv6_full_speed(limits, seconds)),
            ("same /64", "other /64", "IPv4"),
        ),
    ]
    for name, guesses, probes, labels in rows:
        per_day = guesses / seconds * 86400
        cells = "".join(f"{human(CODE_SPACE / v / (guesses / seconds)):>17}" for v in VALID)
        refused = ", ".join(f"{label} {probe.share:.0%}" for label, probe in zip(labels, probes, strict=True))
        print(f"{name:<26}{guesses:>9,}{per_day:>9,.0f}{cells}   {refused}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--addresses", type=int, default=253)
    args = parser.parse_args()
    asyncio.run(run(args.hours, args.addresses))


if __name__ == "__main__":
    main()
