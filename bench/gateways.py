"""Gateway timings: allowing one guest, and reconciling N sessions, for nftables and RouterOS.

    .venv/bin/python bench/gateways.py [--sessions 10000] [--allows 50]

nftables is real: a network namespace is created (`gg-bench-<random>`, deleted afterwards; needs
root and nft) and the driver runs `nft` in it. RouterOS is the fake REST server of the tests
(`tests/gateways/fake_routeros.py`, HTTPS on 127.0.0.1), so its times are this machine's Python
server, not a router's; the request counts are what a real router would receive.

The reconciliations go through the real job (`reconcile_all`: sessions read from a SQLite
database, the gateway read, the difference written): first against an empty gateway (every
session added: a new gateway, or one after a reboot), then with nothing to change (the steady
state, every few seconds), then after the gateway lost everything (`nft flush ruleset` / reboot).
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.gateways.fake_routeros import FakeClock, FakeRouterOS, make_tls

from guestgate.config import Settings
from guestgate.db import new_id, utcnow
from guestgate.gateways import registry
from guestgate.gateways.base import Gateway, GuestAccess
from guestgate.gateways.nftables import NftablesGateway
from guestgate.gateways.reconcile import SiteOutcome, reconcile_all
from guestgate.gateways.routeros import RouterOSGateway
from guestgate.logs import configure
from guestgate.migrate import upgrade
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites import service as site_service
from guestgate.sites.models import Site
from guestgate.sites.schemas import GatewayIn, SiteIn

Row = tuple[str, str, str, str]


class RealClock(FakeClock):
    """Seconds that move with the wall clock."""

    def __call__(self) -> float:
        return time.monotonic()


def settings_for(url: str, data_dir: Path, *, netns: str | None = None) -> Settings:
    # As a deployment would: the fake router on loopback and the namespace's nftables allowed.
    return Settings(
        database_url=url,
        data_dir=data_dir,
        jwt_secret=SecretStr("b" * 40),
        signing_key=SecretStr("s" * 40),
        encryption_key=SecretStr(base64.urlsafe_b64encode(b"k" * 32).decode()),
        scheduler_enabled=False,
        outbound_gateway_networks="127.0.0.0/8",
        nftables_allow={"bench": [f"{netns}/guest0"]} if netns else {},
    )


def guest_ips(count: int) -> list[str]:
    network = ipaddress.ip_network("10.64.0.0/10")
    return [str(network[i + 1]) for i in range(count)]


def seed(
    runtime: Runtime,
    gateway: GatewayIn,
    sessions: int,
    limits: Callable[[int], dict[str, int]] | None = None,
) -> str:
    """A site on `gateway` with `sessions` active guests; `limits(n)` adds columns to the n-th."""
    now = utcnow()
    with runtime.sessions() as session:
        org_service.ensure("bench", session=session)
        site = site_service.create(
            SiteIn(name="Bench", subnets=["10.64.0.0/10"], gateway=gateway),
            org_id="bench",
            box=runtime.box,
            rules=runtime.gateway_rules,
            session=session,
        )
        site_id = site.id
    rows = [
        {
            "id": new_id(),
            "org_id": "bench",
            "site_id": site_id,
            "instance_id": new_id(),
            "ip_address": ip,
            "strategy": "coupon",
            "status": "active",
            "started_at": now,
            "expires_at": now + timedelta(hours=2),
            **(limits(n) if limits is not None else {}),
        }
        for n, ip in enumerate(guest_ips(sessions))
    ]
    with runtime.engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            conn.execute(insert(SiteUser), rows[start : start + 1000])
    return site_id


def reconcile_once(runtime: Runtime, pool: registry.GatewayPool) -> tuple[float, SiteOutcome]:
    started = time.perf_counter()
    [outcome] = reconcile_all(runtime=runtime, now=utcnow(), pool=pool)
    return time.perf_counter() - started, outcome


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def median_allow(gateway: Gateway, count: int) -> float:
    now = utcnow()
    samples = []
    for index, ip in enumerate(guest_ips(count)):
        guest = GuestAccess(f"bench-{index}", ip.replace("10.", "172.", 1), None, now + timedelta(hours=1))
        samples.append(timed(lambda guest=guest: gateway.allow(guest, now=now)))
    return statistics.median(samples)


def bench_nftables(workdir: Path, *, sessions: int, allows: int) -> list[Row]:
    if os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None:
        return [("nftables", "skipped", "-", "needs root, nft and ip")]
    netns = f"gg-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    calls = [0]

    def counting(site: Site, **kwargs: Any) -> Gateway:
        gateway = registry.build(site, **kwargs)
        assert isinstance(gateway, NftablesGateway)
        run = gateway._exec

        def exec_counted(args: list[str], *, stdin: str | None) -> str:
            calls[0] += 1
            return run(args, stdin=stdin)

        gateway._exec = exec_counted  # type: ignore[method-assign]
        return gateway

    runtime = Runtime.build(settings_for(f"sqlite:///{workdir / 'nft.db'}", workdir, netns=netns))
    upgrade(runtime.engine)
    pool = registry.GatewayPool(box=runtime.box, outbound=runtime.outbound, builder=counting)
    rows: list[Row] = []
    try:
        single = NftablesGateway(interface="guest0", portal_port=8080, netns=netns, table="gg_allow")
        single.apply()
        rows.append(
            (
                "nftables",
                f"allow one guest (median of {allows})",
                seconds(median_allow(single, allows)),
                "1 nft call",
            )
        )
        seed(
            runtime, GatewayIn(driver="nftables", interface="guest0", portal_port=8080, netns=netns), sessions
        )
        for label, prepare in (
            (f"reconcile {sessions:,} sessions, empty gateway", lambda: None),
            (f"reconcile {sessions:,} sessions, nothing to change", lambda: None),
            (
                f"reconcile {sessions:,} sessions after `nft flush ruleset`",
                lambda: subprocess.run(["ip", "netns", "exec", netns, "nft", "flush", "ruleset"], check=True),
            ),
        ):
            prepare()
            calls[0] = 0
            took, outcome = reconcile_once(runtime, pool)
            assert outcome.status == "ok", outcome
            rows.append(
                ("nftables", label, seconds(took), f"{calls[0]} nft call{'' if calls[0] == 1 else 's'}")
            )
    finally:
        pool.close()
        runtime.close()
        subprocess.run(["ip", "netns", "del", netns], check=False)
    return rows


def bench_routeros(workdir: Path, *, sessions: int, allows: int) -> list[Row]:
    tls = make_tls(workdir / "tls")
    router = FakeRouterOS(tls)
    # Timeouts run down in real time here, as on a router (the tests' clock only moves by hand).
    router.clock = RealClock()
    router.start()
    runtime = Runtime.build(settings_for(f"sqlite:///{workdir / 'ros.db'}", workdir))
    upgrade(runtime.engine)
    pool = registry.GatewayPool(box=runtime.box, outbound=runtime.outbound)
    rows: list[Row] = []
    try:
        single = RouterOSGateway(
            host="127.0.0.1",
            port=router.port,
            username=router.username,
            password=router.password,
            outbound=runtime.outbound,
            ca_pem=tls.ca_pem,
        )
        before = router.count()
        took = median_allow(single, allows)
        rows.append(
            (
                "routeros",
                f"allow one guest (median of {allows})",
                seconds(took),
                f"{(router.count() - before) / allows:g} request",
            )
        )
        single.close()
        # The reconciler would remove those guests (tagged, but not in the database): start empty.
        for entries in router.lists.values():
            entries.clear()
        gateway = router.site_gateway()
        seed(runtime, gateway, sessions)
        for label, prepare in (
            (f"reconcile {sessions:,} sessions, empty router", lambda: None),
            (f"reconcile {sessions:,} sessions, nothing to change", lambda: None),
            (f"reconcile {sessions:,} sessions after a reboot", router.reboot),
        ):
            prepare()
            before = router.count()
            took, outcome = reconcile_once(runtime, pool)
            assert outcome.status == "ok", outcome
            rows.append(("routeros", label, seconds(took), f"{router.count() - before:,} requests"))
    finally:
        pool.close()
        runtime.close()
        router.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--allows", type=int, default=50)
    args = parser.parse_args()
    configure("warning", json=False)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rows = bench_nftables(workdir, sessions=args.sessions, allows=args.allows)
        rows += bench_routeros(workdir, sessions=args.sessions, allows=args.allows)
    widths = [
        max(len(row[i]) for row in [("driver", "operation", "time", "gateway calls"), *rows])
        for i in range(4)
    ]
    header = ("driver", "operation", "time", "gateway calls")
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
