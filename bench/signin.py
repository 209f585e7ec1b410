"""Guest coupon sign-ins per second at 100 concurrent clients, next to a bare ASGI + sqlite3 baseline.

    .venv/bin/python bench/signin.py [--db sqlite|postgresql|both] [--duration 10] [--warmup 2]
        [--concurrency 100] [--workers 1] [--coupons 200000] [--generator auto|wrk|python]
        [--loop asyncio|uvloop] [--pg-pool N] [--profile DIR]

Three servers are measured one after the other in one run, each started here on a free
loopback port with the same uvicorn flags (`--workers`, httptools, no access log, no proxy
headers), on a fresh database holding the same `--coupons` valid coupons, and stopped after:

- bare-sqlite: a minimal ASGI handler (`bare_app` below) that reads the form and does the
  two statements of a redemption with the stdlib `sqlite3` module in one transaction: the
  conditional UPDATE of the coupon, the INSERT of the session. No token, no page.
- guestgate-sqlite / guestgate-postgresql: the real app (`guestgate.app:create_app`) and its
  full coupon path at POST /guest/signin: the sealed entry token opened and checked against
  the guest's address, the throttle check, the atomic redemption and session insert, the
  gateway call (`none` driver) and the rendered success page (checked once per server).

Every request is a different guest redeeming a different coupon. The deployment modelled is
guestgate behind a reverse proxy on 127.0.0.1 (`GUESTGATE_PORTAL_TRUSTED_PROXIES`): each
request carries the guest's address (inside the site's 10.0.0.0/8) in X-Forwarded-For, and
its entry token was sealed for that address, as GET /guest/entry through the proxy seals it.

The load comes from `wrk` (Debian package `wrk`, installed by `make system-deps`; the script
stops with that message when it is missing) with a Lua script that hands every request its
own pre-built form, or, with `--generator python`, from a raw HTTP/1.1 keep-alive asyncio
client in two processes (it costs more CPU than wrk, so figures come out lower). Each server
gets `--warmup` seconds, then `--duration` seconds measured. Afterwards the database must
hold one session per successful request (plus at most the requests still in flight when the
generator stopped), and every request must have succeeded; otherwise the script fails.

The event loop is asyncio's by default: at saturation with wrk on this machine, uvloop served
some connections far later than others (p99 of hundreds of ms even for the bare handler, at
the same throughput); `--loop uvloop` shows it. The table's last column is the machine's load
average as each measured run began: the machine is shared, and other work there shows up in
the figures.

Where the CPU went during the measured run: `srv CPU s` is the server's (all its processes),
`db CPU s` PostgreSQL's backends serving it, `gen CPU s` the load generator's. The memory
table shows the server's resident set (VmRSS of its processes, sampled every 100 ms during
the measured run): the peak, and the median of the second half (steady). Target: under
200 MB. `--profile DIR` records each guestgate server with py-spy during the measured run
(DIR/<server>.svg flame graph and DIR/<server>.txt collapsed stacks); the sampling costs the
server some throughput, so profiled figures are not the ones to quote.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from _procs import (
    Profiler,
    Usage,
    Watch,
    cpu_seconds,
    free_port,
    postgres_backends,
    require_tool,
    server_settings,
)

BENCH_DIR = Path(__file__).resolve().parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "guestgate_bench_signin"
SUBNET = "10.0.0.0/8"
TRUSTED_PROXY = "127.0.0.1"
ORG_ID = "bench"
TARGET_SHARE = 0.25
TARGET_P99_MS = 100.0
TARGET_RSS_MB = 200.0

# ---------------------------------------------------------------------------------------------
# The bare baseline: an ASGI callable and stdlib sqlite3, nothing else.

_BARE_UPDATE = (
    "UPDATE coupons SET redeemed_at = ? WHERE instance_id = ? AND code = ? "
    "AND redeemed_at IS NULL AND expires_at > ? RETURNING id"
)
_BARE_INSERT = (
    "INSERT INTO site_users (id, org_id, site_id, instance_id, ip_address, mac_address, strategy, "
    "coupon_id, identity, status, started_at, expires_at, ended_at, end_reason) "
    "VALUES (?, ?, ?, ?, ?, NULL, 'coupon', ?, NULL, 'active', ?, ?, NULL, NULL)"
)
_bare: dict[str, sqlite3.Connection] = {}


def _bare_connection() -> sqlite3.Connection:
    conn = _bare.get("conn")
    if conn is None:
        conn = sqlite3.connect(os.environ["BENCH_BARE_DB"], isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        _bare["conn"] = conn
    return conn


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST a form with `code`: redeem it and record a session for the X-Forwarded-For address."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    code = dict(parse_qsl(body.decode())).get("code", "").upper()
    ip = dict(scope["headers"]).get(b"x-forwarded-for", b"").decode()
    site_id, instance_id = os.environ["BENCH_SITE"], os.environ["BENCH_INSTANCE"]
    now = datetime.now(UTC).replace(tzinfo=None)
    stamp = now.isoformat(" ", "microseconds")
    conn = _bare_connection()
    conn.execute("BEGIN IMMEDIATE")
    won = conn.execute(_BARE_UPDATE, (stamp, instance_id, code, stamp)).fetchone()
    if won is not None:
        expires = (now + timedelta(hours=1)).isoformat(" ", "microseconds")
        conn.execute(
            _BARE_INSERT, (str(uuid.uuid4()), ORG_ID, site_id, instance_id, ip, won[0], stamp, expires)
        )
    conn.execute("COMMIT")
    status, page = (200, b"<!doctype html><p>connected</p>") if won else (409, b"<p>used</p>")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/html"), (b"content-length", str(len(page)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": page})


# ---------------------------------------------------------------------------------------------
# Databases and requests.


@dataclass(frozen=True)
class World:
    """The ids and coupons every server's database is seeded with, and the request lines."""

    site_id: str
    instance_id: str
    codes: list[str]
    lines: Path


def make_world(count: int, workdir: Path, now: datetime) -> World:
    """Draw `count` distinct codes and write one request line (address, form) per code."""
    from guestgate.coupons import codes as coupon_codes
    from guestgate.portal.tokens import GuestIdentity, TokenSealer

    drawn: set[str] = set()
    while len(drawn) < count:
        drawn.add(coupon_codes.generate())
    world = World(str(uuid.uuid4()), str(uuid.uuid4()), sorted(drawn), workdir / "requests.txt")
    sealer = TokenSealer.from_settings(guestgate_settings("sqlite://", workdir, 0))
    expires = int(now.timestamp()) + 3600
    with world.lines.open("w") as out:
        for index, code in enumerate(world.codes):
            ip = guest_ip(index)
            token = sealer.seal_guest(
                GuestIdentity(
                    site_id=world.site_id,
                    instance_id=world.instance_id,
                    ip=ip,
                    orig="http://example.com/news",
                    peer=ip,
                ),
                expires=expires,
            )
            form = urlencode({"t": token, "code": code.lower(), "accept": "yes"})
            out.write(f"{ip}\t{form}\n")
    return world


def guest_ip(index: int) -> str:
    """A distinct guest address inside the site's 10.0.0.0/8 for each request."""
    n = index + 1
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def guestgate_settings(url: str, data_dir: Path, port: int) -> Any:
    from pydantic import SecretStr

    from guestgate.config import Settings

    return Settings(
        database_url=url,
        data_dir=data_dir,
        public_url=f"http://127.0.0.1:{port}",
        jwt_secret=SecretStr("b" * 40),
        signing_key=SecretStr("s" * 40),
        encryption_key=SecretStr(base64.urlsafe_b64encode(b"k" * 32).decode()),
        scheduler_enabled=False,
        log_level="warning",
    )


def fresh_database(kind: str, workdir: Path, name: str) -> str:
    """A migrated, empty database: a new SQLite file, or PostgreSQL's bench database recreated."""
    import psycopg

    from guestgate.db import make_engine
    from guestgate.migrate import upgrade

    if kind == "sqlite":
        path = workdir / f"{name}.db"
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {PG_DB}")
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def drop_pg_database() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")


def seed(url: str, world: World, now: datetime) -> None:
    """One org, site, coupon instance on 10.0.0.0/8 (with terms), and the world's coupons."""
    from sqlalchemy import insert

    from guestgate.coupons.models import Coupon
    from guestgate.db import make_engine, new_id
    from guestgate.instances.models import Instance, InstanceSubnet
    from guestgate.orgs.models import Org
    from guestgate.sites.models import Site

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Org), [{"id": ORG_ID, "created_at": now}])
        conn.execute(
            insert(Site),
            [
                {
                    "id": world.site_id,
                    "org_id": ORG_ID,
                    "name": "Bench",
                    "subnets": [SUBNET],
                    "created_at": now,
                }
            ],
        )
        conn.execute(
            insert(Instance),
            [
                {
                    "id": world.instance_id,
                    "org_id": ORG_ID,
                    "name": "Bench Café",
                    "strategy": "coupon",
                    "session_ttl": 3600,
                    "auth_window_ttl": 300,
                    "theme": {},
                    "terms_text": "Be nice.",
                    "locale": "en",
                    "created_at": now,
                }
            ],
        )
        conn.execute(
            insert(InstanceSubnet),
            [{"instance_id": world.instance_id, "site_id": world.site_id, "subnet": SUBNET, "position": 0}],
        )
        expires = now + timedelta(days=1)
        for start in range(0, len(world.codes), 20_000):
            conn.execute(
                insert(Coupon),
                [
                    {
                        "id": new_id(),
                        "org_id": ORG_ID,
                        "instance_id": world.instance_id,
                        "code": code,
                        "expires_at": expires,
                        "created_at": now,
                    }
                    for code in world.codes[start : start + 20_000]
                ],
            )
    engine.dispose()


def session_count(url: str) -> int:
    from sqlalchemy import func, select

    from guestgate.db import make_engine
    from guestgate.site_users.models import SiteUser

    engine = make_engine(url)
    with engine.connect() as conn:
        count = conn.scalar(select(func.count()).select_from(SiteUser)) or 0
    engine.dispose()
    return count


# ---------------------------------------------------------------------------------------------
# Servers.


def start_server(
    kind: str, url: str, world: World, workdir: Path, port: int, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    """uvicorn serving the bare app or guestgate on `port`, both with the same flags."""
    env = dict(os.environ)
    flags = [
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers),
        "--loop", args.loop, "--http", "httptools", "--no-access-log", "--no-proxy-headers",
        "--log-level", "warning",
    ]  # fmt: skip
    if kind == "bare":
        env.update(
            {
                "BENCH_BARE_DB": url.removeprefix("sqlite:///"),
                "BENCH_SITE": world.site_id,
                "BENCH_INSTANCE": world.instance_id,
            }
        )
        command = [sys.executable, "-m", "uvicorn", "signin:bare_app", "--app-dir", str(BENCH_DIR), *flags]
    else:
        env.update(server_settings(url, workdir, port))
        env["GUESTGATE_PORTAL_TRUSTED_PROXIES"] = TRUSTED_PROXY
        env.pop("GUESTGATE_REDIS_URL", None)
        if args.pg_pool is not None:
            env["GUESTGATE_PORTAL_PG_POOL_SIZE"] = str(args.pg_pool)
        command = [sys.executable, "-m", "uvicorn", "guestgate.app:create_app", "--factory", *flags]
    server = subprocess.Popen(command, env=env, cwd=workdir)
    deadline = time.time() + 60
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the {kind} server exited with {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.2)
    stop_server(server)
    raise SystemExit(f"the {kind} server did not start")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def probe(port: int, line: str, *, full: bool) -> None:
    """One sign-in by hand: it must succeed, and guestgate's answer must be the success page."""
    import http.client

    ip, form = line.rstrip("\n").split("\t", 1)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(
        "POST",
        "/guest/signin",
        body=form,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": ip},
    )
    response = conn.getresponse()
    page = response.read().decode()
    conn.close()
    if response.status != 200 or (full and ("Time remaining" not in page or "/guest/status?t=" not in page)):
        raise SystemExit(f"the probe sign-in did not reach the success page: {response.status}\n{page[:500]}")


# ---------------------------------------------------------------------------------------------
# Load generators: wrk with a Lua script, or a raw asyncio client.

_WRK_LUA = r"""
-- args: request-lines file, first line, end line (exclusive), thread count
local counter = 0
local threads = {}
local reqs = {}
local n, i = 0, 0
exhausted = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local first, last, step = tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  local line_no = 0
  for line in io.lines(args[1]) do
    if line_no >= first and line_no < last and (line_no - first) % step == tid then
      local tab = line:find("\t", 1, true)
      local body = line:sub(tab + 1)
      n = n + 1
      reqs[n] = "POST /guest/signin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        .. "Content-Type: application/x-www-form-urlencoded\r\n"
        .. "X-Forwarded-For: " .. line:sub(1, tab - 1) .. "\r\n"
        .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
    end
    line_no = line_no + 1
  end
end

function request()
  i = i + 1
  if i > n then
    -- Never send a coupon twice: out of coupons, this thread stops.
    exhausted = 1
    wrk.thread:stop()
    return reqs[n]
  end
  return reqs[i]
end

function done(summary, latency, requests)
  local out = 0
  for _, thread in ipairs(threads) do
    out = out + (thread:get("exhausted") or 0)
  end
  io.write(string.format(
    "BENCH {\"requests\":%d,\"duration_us\":%d,\"status_errors\":%d,\"connect\":%d,\"read\":%d," ..
    "\"write\":%d,\"timeout\":%d,\"p50_us\":%d,\"p99_us\":%d,\"max_us\":%d,\"exhausted\":%d}\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, out))
end
"""


@dataclass(frozen=True)
class Load:
    """What a load generator measured."""

    requests: int
    failed: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    generator_cpu: float | None = None

    @property
    def rate(self) -> float:
        return (self.requests - self.failed) / self.seconds


def run_wrk(
    port: int,
    lines: Path,
    first: int,
    last: int,
    *,
    seconds: float,
    concurrency: int,
    threads: int,
    workdir: Path,
) -> Load:
    script = workdir / "signin.lua"
    script.write_text(_WRK_LUA)
    command = [
        "wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{max(1, round(seconds))}s", "--timeout", "10s",
        "-s", str(script), f"http://127.0.0.1:{port}/guest/signin",
        "--", str(lines), str(first), str(last), str(threads),
    ]  # fmt: skip
    started = os.times()
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=seconds + 120)
    ended = os.times()
    report = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if done.returncode != 0 or report is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(report.removeprefix("BENCH "))
    if data["exhausted"]:
        raise SystemExit("wrk ran out of coupons: raise --coupons")
    failed = data["status_errors"] + data["connect"] + data["read"] + data["write"] + data["timeout"]
    return Load(
        requests=data["requests"],
        failed=failed,
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        generator_cpu=(ended.children_user + ended.children_system)
        - (started.children_user + started.children_system),
    )


def _client_process(port: int, requests: list[bytes], connections: int, seconds: float, results: Any) -> None:
    """One load process: `connections` keep-alive connections sharing `requests` until the deadline."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> tuple[list[float], int, int, float]:
        pending = list(reversed(requests))
        latencies: list[float] = []
        failed = 0
        exhausted = 0
        deadline = time.perf_counter() + seconds

        async def connection() -> None:
            nonlocal failed, exhausted
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            while time.perf_counter() < deadline:
                if not pending:
                    exhausted = 1
                    break
                request = pending.pop()
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.0 2")):
                    failed += 1
            writer.close()

        begun = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(connections)))
        return latencies, failed, exhausted, time.perf_counter() - begun

    latencies, failed, exhausted, elapsed = asyncio.run(main())
    results.put((latencies, failed, exhausted, elapsed, time.process_time()))


def run_python(
    port: int, lines: Path, first: int, last: int, *, seconds: float, concurrency: int, processes: int
) -> Load:
    built: list[list[bytes]] = [[] for _ in range(processes)]
    with lines.open() as source:
        for number, line in enumerate(source):
            if first <= number < last:
                ip, form = line.rstrip("\n").split("\t", 1)
                body = form.encode()
                built[(number - first) % processes].append(
                    b"POST /guest/signin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/x-www-form-urlencoded\r\n"
                    + f"X-Forwarded-For: {ip}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    shares = [concurrency // processes + (1 if k < concurrency % processes else 0) for k in range(processes)]
    workers = [
        context.Process(target=_client_process, args=(port, built[k], shares[k], seconds, results))
        for k in range(processes)
    ]
    for worker in workers:
        worker.start()
    gathered = [results.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join()
    latencies = sorted(x for got in gathered for x in got[0])
    if any(got[2] for got in gathered):
        raise SystemExit("the load generator ran out of coupons: raise --coupons")

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    return Load(
        requests=len(latencies),
        failed=sum(got[1] for got in gathered),
        seconds=max(got[3] for got in gathered),
        p50_ms=pct(0.5),
        p99_ms=pct(0.99),
        max_ms=latencies[-1] * 1000,
        generator_cpu=sum(got[4] for got in gathered),
    )


# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One server's line of the table."""

    name: str
    load: Load
    sessions: int
    # The machine's 1-minute load average as the measured run began (other work on it shows here).
    busy: float
    server: Usage
    # CPU seconds of the PostgreSQL backends serving this server (None on SQLite).
    db_cpu: float | None


def measure(
    name: str, kind: str, world: World, args: argparse.Namespace, workdir: Path, now: datetime
) -> Row:
    """Seed a fresh database, start the server, warm it up, measure, check the rows, stop it."""
    database = "sqlite" if kind == "bare" else name.split("-", 1)[1]
    url = fresh_database(database, workdir, name)
    seed(url, world, now)
    port = free_port()
    server = start_server(kind, url, world, workdir, port, args)
    total = len(world.codes)
    # Line 0 is the probe, then warm-up coupons, then the measured run's: disjoint slices.
    warm_end = 1 + min(total // 4, int(args.warmup * 20_000))
    try:
        with world.lines.open() as source:
            probe(port, source.readline(), full=kind != "bare")
        if args.warmup > 0:
            generate(args, port, world.lines, 1, warm_end, args.warmup, workdir)
            time.sleep(0.5)
        before = session_count(url)
        busy = os.getloadavg()[0]
        backends = postgres_backends(PG_ADMIN, PG_DB) if database == "postgresql" else []
        db_before = cpu_seconds(backends)
        profiler = Profiler(server.pid, args.profile / name) if args.profile and kind != "bare" else None
        try:
            with Watch(server.pid) as watch:
                load = generate(args, port, world.lines, warm_end, total, args.duration, workdir)
        finally:
            if profiler is not None:
                profiler.stop()
        db_cpu = cpu_seconds(backends) - db_before if backends else None
        time.sleep(0.5)
    finally:
        stop_server(server)
    sessions = session_count(url) - before
    ok = load.requests - load.failed
    # Requests still in flight when the generator stopped were served, but not counted.
    if load.failed or not ok <= sessions <= ok + args.concurrency:
        raise SystemExit(
            f"{name}: {load.requests} requests, {load.failed} failed, {sessions} new sessions: "
            "every request should have succeeded with exactly one session"
        )
    return Row(name, load, sessions, busy, watch.usage(), db_cpu)


def generate(
    args: argparse.Namespace, port: int, lines: Path, first: int, last: int, seconds: float, workdir: Path
) -> Load:
    if args.generator == "wrk":
        return run_wrk(
            port, lines, first, last,
            seconds=seconds, concurrency=args.concurrency, threads=args.threads, workdir=workdir,
        )  # fmt: skip
    return run_python(port, lines, first, last, seconds=seconds, concurrency=args.concurrency, processes=2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per server")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per server first")
    parser.add_argument("--concurrency", type=int, default=100, help="keep-alive connections")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (every server)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--coupons", type=int, default=200_000, help="distinct coupons (one per request)")
    parser.add_argument(
        "--generator", choices=["wrk", "python"], default="wrk", help="python: no wrk, lower figures"
    )
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="uvicorn's event loop for every server (uvloop: far worse p99 at saturation here)",
    )
    parser.add_argument(
        "--pg-pool", type=int, default=None, help="GUESTGATE_PORTAL_PG_POOL_SIZE (default: the app's)"
    )
    parser.add_argument("--profile", type=Path, default=None, help="py-spy each guestgate server into DIR")
    args = parser.parse_args()
    if args.generator == "wrk":
        require_tool("wrk", "wrk")
    targets = [("bare-sqlite", "bare")]
    if args.db in ("sqlite", "both"):
        targets.append(("guestgate-sqlite", "guestgate"))
    if args.db in ("postgresql", "both"):
        targets.append(("guestgate-postgresql", "guestgate"))
    now = datetime.now(UTC)
    print(
        f"coupon sign-ins: {args.concurrency} connections, {args.workers} uvicorn worker(s) "
        f"(--loop {args.loop} --http httptools), {args.warmup:g} s warm-up + {args.duration:g} s "
        f"per server, PostgreSQL pool {args.pg_pool or 'default'}, load from "
        f"{'wrk -t' + str(args.threads) if args.generator == 'wrk' else 'a Python asyncio client (2 processes)'}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="guestgate-bench-") as tmp:
        workdir = Path(tmp)
        world = make_world(args.coupons, workdir, now)
        try:
            for name, kind in targets:
                rows.append(measure(name, kind, world, args, workdir, now))
                print(f"  {name}: done", flush=True)
        finally:
            if any(name.endswith("postgresql") for name, _ in targets):
                drop_pg_database()
    bare = rows[0].load.rate
    print(
        f"\n{'server':<22}{'sign-ins/s':>11}{'vs bare':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'requests':>10}{'srv CPU s':>10}{'db CPU s':>9}{'gen CPU s':>10}{'load avg':>9}"
    )
    for row in rows:
        load = row.load
        cpu = f"{load.generator_cpu:.1f}" if load.generator_cpu is not None else "-"
        db_cpu = f"{row.db_cpu:.1f}" if row.db_cpu is not None else "-"
        print(
            f"{row.name:<22}{load.rate:>11,.0f}{load.rate / bare:>8.0%} {load.p50_ms:>8.1f} {load.p99_ms:>8.1f}"
            f"{load.max_ms:>9.1f}{load.requests:>10}{row.server.cpu_s:>10.1f}{db_cpu:>9}{cpu:>10}{row.busy:>9.2f}"
        )
    print(f"\n{'server':<22}{'RSS peak MB':>12}{'RSS steady MB':>14}  (under the load above)")
    for row in rows:
        print(f"{row.name:<22}{row.server.peak_mb:>12.1f}{row.server.steady_mb:>14.1f}")
    for row in rows[1:]:
        met = row.load.rate >= TARGET_SHARE * bare and row.load.p99_ms < TARGET_P99_MS
        print(
            f"{row.name}: target (>= {TARGET_SHARE:.0%} of bare = {TARGET_SHARE * bare:,.0f}/s, "
            f"p99 < {TARGET_P99_MS:.0f} ms) {'met' if met else 'MISSED'}"
        )
    for row in rows[1:]:
        met = row.server.peak_mb < TARGET_RSS_MB
        print(f"{row.name}: memory target (peak RSS < {TARGET_RSS_MB:.0f} MB) {'met' if met else 'MISSED'}")
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
