"""Operator API latency: creating 200-coupon batches, and listing the valid coupons of a big instance.

    .venv/bin/python bench/operator_api.py [--db sqlite|postgresql|both] [--coupons 100000]
        [--repeat 200] [--profile DIR]

For each database a real `guestgate serve` process (the CLI, as deployed: it migrates, then
serves with uvicorn) runs on a free loopback port against a fresh database (a new SQLite file,
or the PostgreSQL database `guestgate_bench_operator` recreated), with an operator token from
`guestgate token create` (the per-token rate limit raised above this client's pace). One client on loopback sends the requests one after another over a
keep-alive connection and times each from the request's first byte to the response's last:

- create: POST /captive/instances/{id}/coupons {"count": 200}, repeated until the instance
  holds `--coupons` coupons (500 batches for 100,000), so the batches run against an instance
  growing from empty to full; every answer must hold 200 new coupons.
- list first page: GET /captive/instances/{id}/coupons (default page, 100 coupons), `--repeat`
  times, on the full instance.
- list walk: every page once, following the `Link: rel="next"` cursor to the end; the walk
  must see each of the instance's coupons exactly once.
- list deep page: the page 90% of the way down the walk, requested again by its cursor,
  `--repeat` times.

Targets: p50 under 30 ms for a batch, under 20 ms for a page. The server's resident memory
(VmRSS, sampled every 100 ms) is shown too. `--profile DIR` records the server with py-spy
(DIR/<database>.svg and .txt), which slows it: profiled figures are not the ones to quote.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from _procs import Profiler, Usage, Watch, free_port, server_settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "guestgate_bench_operator"
BATCH = 200
TARGET_CREATE_MS = 30.0
TARGET_PAGE_MS = 20.0
GUESTGATE = Path(sys.executable).with_name("guestgate")


@dataclass(frozen=True)
class Timings:
    """Latencies of one kind of request, in milliseconds."""

    name: str
    samples: list[float]
    target_ms: float

    def pct(self, share: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


class Client:
    """One keep-alive HTTP/1.1 connection to the server, with the operator's token."""

    def __init__(self, port: int, token: str) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str], float]:
        """Status, decoded JSON, headers and milliseconds of one request."""
        headers = dict(self._headers)
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        self._conn.request(method, path, body=payload, headers=headers)
        response = self._conn.getresponse()
        raw = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        return response.status, json.loads(raw) if raw else None, dict(response.getheaders()), elapsed

    def close(self) -> None:
        self._conn.close()


def fresh_database(kind: str, workdir: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'operator.db'}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DB}")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"


def drop_pg_database() -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")


def environment(url: str, workdir: Path, port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GUESTGATE_")}
    env.update(server_settings(url, workdir, port))
    env.update(
        {
            # The per-token limit stays on (its check is part of every request's cost), set
            # above what one client sends back to back.
            "GUESTGATE_RATE_LIMIT_PER_MINUTE": "1000000",
            "GUESTGATE_RATE_LIMIT_BURST": "10000",
        }
    )
    return env


def start_server(env: dict[str, str], workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """`guestgate serve` on 127.0.0.1:`port`, once it answers."""
    server = subprocess.Popen(
        [str(GUESTGATE), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=workdir
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"guestgate serve exited with {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/openapi.json")
            if conn.getresponse().status == 200:
                conn.close()
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("guestgate serve did not start")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def measure(kind: str, args: argparse.Namespace) -> tuple[list[Timings], Usage]:
    """Start a server on a fresh `kind` database, run the four request series, stop it."""
    with tempfile.TemporaryDirectory(prefix="guestgate-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(kind, workdir)
        port = free_port()
        env = environment(url, workdir, port)
        server = start_server(env, workdir, port)
        profiler = None
        try:
            token = subprocess.run(
                [str(GUESTGATE), "token", "create", "--org", "bench", "--create-org", "--scope",
                 "captive:read", "--scope", "captive:write"],
                env=env, cwd=workdir, check=True, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
            client = Client(port, token)
            status, instance, _, _ = client.call(
                "POST", "/captive/instances", {"name": "Bench", "strategy": "coupon", "session_ttl": 3600}
            )
            if status != 201:
                raise SystemExit(f"creating the instance answered {status}: {instance}")
            path = f"/captive/instances/{instance['id']}/coupons"
            if args.profile:
                profiler = Profiler(server.pid, args.profile / kind)
            with Watch(server.pid) as watch:
                series = run_series(client, path, args)
            client.close()
        finally:
            if profiler is not None:
                profiler.stop()
            stop_server(server)
        if kind == "postgresql":
            drop_pg_database()
        return series, watch.usage()


def run_series(client: Client, path: str, args: argparse.Namespace) -> list[Timings]:
    create: list[float] = []
    for _ in range(args.coupons // BATCH):
        status, body, _, elapsed = client.call("POST", path, {"count": BATCH, "minutes_valid": 1440})
        if status != 201 or len(body) != BATCH:
            raise SystemExit(f"creating a batch answered {status}: {str(body)[:300]}")
        create.append(elapsed)
    first = []
    for _ in range(args.repeat):
        status, body, _, elapsed = client.call("GET", path)
        if status != 200 or len(body) != 100:
            raise SystemExit(f"the first page answered {status} with {len(body)} coupons")
        first.append(elapsed)
    walk, seen, cursors = [], set(), []
    next_path: str | None = path
    while next_path is not None:
        cursors.append(next_path)
        status, body, headers, elapsed = client.call("GET", next_path)
        if status != 200:
            raise SystemExit(f"a page answered {status}: {body}")
        walk.append(elapsed)
        seen.update(coupon["id"] for coupon in body)
        next_path = _next_link(headers)
    if len(seen) != args.coupons:
        raise SystemExit(f"the walk saw {len(seen)} distinct coupons, expected {args.coupons}")
    deep_path = cursors[int(len(cursors) * 0.9)]
    deep = []
    for _ in range(args.repeat):
        status, body, _, elapsed = client.call("GET", deep_path)
        if status != 200 or len(body) != 100:
            raise SystemExit(f"the deep page answered {status}")
        deep.append(elapsed)
    return [
        Timings(f"create {BATCH} coupons", create, TARGET_CREATE_MS),
        Timings("list: first page", first, TARGET_PAGE_MS),
        Timings(f"list: walk {len(walk)} pages", walk, TARGET_PAGE_MS),
        Timings(f"list: page {int(len(cursors) * 0.9) + 1}", deep, TARGET_PAGE_MS),
    ]


def _next_link(headers: dict[str, str]) -> str | None:
    link = headers.get("link") or headers.get("Link")
    if not link or 'rel="next"' not in link:
        return None
    url = link[link.index("<") + 1 : link.index(">")]
    return url[url.index("/captive/") :]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--coupons", type=int, default=100_000, help=f"coupons created, in batches of {BATCH}"
    )
    parser.add_argument("--repeat", type=int, default=200, help="requests of the first and the deep page")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the server into DIR")
    args = parser.parse_args()
    if args.coupons % BATCH or args.coupons < BATCH:
        parser.error(f"--coupons must be a multiple of {BATCH}")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(
        f"operator API: one keep-alive client on loopback, `guestgate serve` (1 process), "
        f"{args.coupons:,} coupons in one instance, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = []
    for kind in kinds:
        results.append((kind, *measure(kind, args)))
        print(f"  {kind}: done", flush=True)
    print(
        f"\n{'database':<12}{'request':<26}{'count':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'mean ms':>9}  target"
    )
    missed = []
    for kind, series, _ in results:
        for timings in series:
            p50 = timings.pct(0.5)
            met = p50 < timings.target_ms
            if not met:
                missed.append(f"{kind} {timings.name}")
            print(
                f"{kind:<12}{timings.name:<26}{len(timings.samples):>7}{p50:>9.1f}{timings.pct(0.99):>9.1f}"
                f"{max(timings.samples):>9.1f}{statistics.fmean(timings.samples):>9.1f}"
                f"  p50 < {timings.target_ms:.0f} ms {'met' if met else 'MISSED'}"
            )
    print(f"\n{'database':<12}{'RSS peak MB':>12}{'RSS steady MB':>14}{'server CPU s':>13}")
    for kind, _, usage in results:
        print(f"{kind:<12}{usage.peak_mb:>12.1f}{usage.steady_mb:>14.1f}{usage.cpu_s:>13.1f}")
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")
    if missed:
        print(f"targets missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
