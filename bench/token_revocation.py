"""What the API-token revocation check costs: requests/s of an authenticated GET with and without it.

    .venv/bin/python bench/token_revocation.py [--db sqlite|postgresql|both] [--requests 3000]
        [--rounds 5]

For each database a real `guestgate serve` process runs on a free loopback port against a fresh
database (a new SQLite file, or the PostgreSQL database `guestgate_bench_tokens` recreated).
Two tokens of the same org and scopes are used:

- checked: minted by `guestgate token create` (registered, with a `jti`): every request passes
  the revocation check (in memory; the database is asked once per token every
  GUESTGATE_API_TOKEN_REVOCATION_SECONDS, default 5).
- unchecked: the same claims without `jti`, signed with the same secret (a token of before):
  no check.

One client on loopback sends GET /captive/instances (an empty org: the cheapest authenticated
request, so the check's share is as large as it can be) back to back over a keep-alive
connection, `--requests` with one token then `--requests` with the other, `--rounds` times
(alternating, so drift in the machine's load falls on both). It prints requests/s of each
(median of the rounds) and the difference. Every answer must be 200.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jwt
import psycopg
from _procs import free_port, server_settings

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "guestgate_bench_tokens"
GUESTGATE = Path(sys.executable).with_name("guestgate")
PATH = "/captive/instances"


def fresh_database(kind: str, workdir: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'tokens.db'}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DB}")
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"


def drop_pg_database() -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")


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


def rate(port: int, token: str, count: int) -> float:
    """Requests/s of `count` authenticated GETs back to back on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    started = time.perf_counter()
    for _ in range(count):
        conn.request("GET", PATH, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"GET {PATH} answered {response.status}")
    elapsed = time.perf_counter() - started
    conn.close()
    return count / elapsed


def measure(kind: str, args: argparse.Namespace) -> tuple[float, float]:
    """Median requests/s with the checked and with the unchecked token on a fresh `kind` database."""
    with tempfile.TemporaryDirectory(prefix="guestgate-bench-") as tmp:
        workdir = Path(tmp)
        url = fresh_database(kind, workdir)
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("GUESTGATE_")}
        env.update(server_settings(url, workdir, port))
        # The per-token limit stays on (its check is part of every request's cost), above this pace.
        env.update({"GUESTGATE_RATE_LIMIT_PER_MINUTE": "10000000", "GUESTGATE_RATE_LIMIT_BURST": "100000"})
        server = start_server(env, workdir, port)
        try:
            checked = subprocess.run(
                [str(GUESTGATE), "token", "create", "--org", "bench", "--create-org", "--name", "bench"],
                env=env, cwd=workdir, check=True, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
            claims = jwt.decode(checked, options={"verify_signature": False})
            if "jti" not in claims:
                raise SystemExit("guestgate token create minted a token without jti")
            del claims["jti"]
            unchecked = jwt.encode(claims, env["GUESTGATE_JWT_SECRET"], algorithm="HS256")
            rate(port, checked, 200)  # warm-up: connections, caches, the first database answer
            rate(port, unchecked, 200)
            with_check, without = [], []
            for _ in range(args.rounds):
                with_check.append(rate(port, checked, args.requests))
                without.append(rate(port, unchecked, args.requests))
        finally:
            stop_server(server)
        if kind == "postgresql":
            drop_pg_database()
        return statistics.median(with_check), statistics.median(without)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--requests", type=int, default=3000, help="requests per token per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(f"GET {PATH}, {args.requests} requests per token per round, median of {args.rounds} rounds")
    print(f"{'database':<11} {'with check':>12} {'without':>12} {'difference':>11}")
    for kind in kinds:
        with_check, without = measure(kind, args)
        diff = (with_check - without) / without * 100
        print(f"{kind:<11} {with_check:>10.0f}/s {without:>10.0f}/s {diff:>+10.1f}%")


if __name__ == "__main__":
    main()
