"""Reconciling sessions with access-plan limits on nftables: objects, counters, usage and quota ends.

    .venv/bin/python bench/reconcile_limits.py [--sessions 10000] [--database sqlite|postgresql]

Real nftables in a network namespace (`gg-bench-<random>`, deleted afterwards; needs root and
nft), through the real job (`reconcile_all`). Every session has a download and an upload limit
and a data limit, so each guest has two limit objects, two counter objects and four map elements.
Passes, each timed as a whole (database read, `nft -j list table`, the nft transaction, usage
written):

1. empty gateway: every guest, its limits and counters added in one transaction;
2. nothing to change: counters read, nothing moved, nothing written (the steady state);
3. every counter moved: the counters are bumped in the kernel (the table is rewritten with
   larger values, as traffic would leave them), so every session's usage is written;
4. a tenth of the guests past their data limit: ended `quota_exceeded` (audit events) and dropped
   in the same transaction;
5. after `nft flush ruleset` (a reboot): everything rebuilt, fresh counters reported as 0.

The target for 10,000 sessions is under 2 s per pass.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select, update

from gateways import seed, settings_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guestgate.db import utcnow
from guestgate.gateways import registry
from guestgate.gateways.nftables import NftablesGateway, _render_element, table_name
from guestgate.gateways.reconcile import SiteOutcome, reconcile_all
from guestgate.logs import configure
from guestgate.migrate import upgrade
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites.schemas import GatewayIn

DATA_LIMIT_MB = 100
TARGET_SECONDS = 2.0


def limits(n: int) -> dict[str, int]:
    """The n-th session's download and upload limits and its data limit."""
    return {"download_kbps": 10_000 + n % 7, "upload_kbps": 2_000 + n % 5, "data_limit_mb": DATA_LIMIT_MB}


def bump_counters(netns: str, table: str, *, every: int, by: int, over: int, over_every: int) -> None:
    """Rewrite the table with each counter `by` bytes larger (a tenth: `over` larger), as traffic would."""
    gateway = NftablesGateway(interface="guest0", portal_port=8080, netns=netns, table=table)
    state = gateway._read()
    assert state is not None
    counters = state.objects.counters
    for index, name in enumerate(sorted(counters)):
        packets, count = counters[name]
        extra = (
            over if name.startswith("cd_") and index % over_every == 0 else by if index % every == 0 else 0
        )
        counters[name] = (packets + 1, count + extra)
    # Guests keep their timeouts and tags: render them back as they were read.
    elements = {name: [_render_element(e) for e in found[2]] for name, found in state.sets.items()}
    subprocess.run(
        ["ip", "netns", "exec", netns, "nft", "-f", "-"],
        input=gateway.render(elements, state.objects),
        text=True,
        check=True,
    )


def run(sessions: int, database: str, workdir: Path) -> list[tuple[str, str, str]]:
    netns = f"gg-bench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    if database == "postgresql":
        url = os.environ.get(
            "GUESTGATE_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/guestgate_bench"
        )
    else:
        url = f"sqlite:///{workdir / 'limits.db'}"
    runtime = Runtime.build(settings_for(url, workdir, netns=netns))
    upgrade(runtime.engine)
    pool = registry.GatewayPool(box=runtime.box, outbound=runtime.outbound)
    rows: list[tuple[str, str, str]] = []
    try:
        site_id = seed(
            runtime,
            GatewayIn(driver="nftables", interface="guest0", portal_port=8080, netns=netns),
            sessions,
            limits,
        )
        table = table_name(site_id)

        def once(label: str) -> SiteOutcome:
            started = time.perf_counter()
            [outcome] = reconcile_all(runtime=runtime, now=utcnow(), pool=pool)
            took = time.perf_counter() - started
            assert outcome.status == "ok", outcome
            result = outcome.result
            assert result is not None
            detail = (
                f"+{result.added} -{result.removed} ~{result.updated}, "
                f"usage {result.usage_written}, quota ends {result.quota_ended}"
            )
            rows.append((label, f"{took:.2f} s", detail))
            return outcome

        once(f"{sessions:,} sessions with limits, empty gateway")
        once("nothing to change (counters read)")
        bump_counters(netns, table, every=1, by=1500, over=0, over_every=sessions + 1)
        once("every counter moved (usage written)")
        bump_counters(netns, table, every=sessions + 1, by=0, over=DATA_LIMIT_MB * 1_000_000, over_every=10)
        ended = once("a tenth past their data limit")
        assert ended.result is not None
        assert ended.result.quota_ended >= sessions // 10 - 1
        subprocess.run(["ip", "netns", "exec", netns, "nft", "flush", "ruleset"], check=True)
        once("after `nft flush ruleset` (reboot)")
        with runtime.sessions() as session:
            quota = session.scalar(select(func.count()).where(SiteUser.status == "quota_exceeded"))
        rows.append(("sessions ended quota_exceeded", str(quota), ""))
    finally:
        pool.close()
        if database == "postgresql":
            with runtime.engine.begin() as conn:
                conn.execute(update(SiteUser).values(status="disconnected"))
        runtime.close()
        subprocess.run(["ip", "netns", "del", netns], check=False)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None:
        print("reconcile_limits: skipped (needs root, nft and ip)")
        return
    configure("warning", json=False)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args.sessions, args.database, Path(tmp))
    header = ("pass", "time", "what it did")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"target: each pass under {TARGET_SECONDS:.0f} s for 10,000 sessions")


if __name__ == "__main__":
    main()
