"""Guest sign-in throughput: POST /guest/signin with distinct guests and valid codes.

    .venv/bin/python bench/signin.py [--db sqlite|postgresql|both] [--requests 20000] [--concurrency 64] [--workers 1]

Starts `guestgate` (uvicorn, `--workers` processes) on a fresh database seeded with one site, one
coupon instance and `--requests` coupons, then drives it from `--concurrency` keep-alive
connections of a small asyncio client, each request a different guest (sealed tokens made
here, as the entry page would) redeeming a different code. Prints sign-ins per second and
latency percentiles, and checks that every success left exactly one session row.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from pydantic import SecretStr
from sqlalchemy import func, insert, select

from guestgate.config import Settings
from guestgate.coupons.codes import ALPHABET
from guestgate.coupons.models import Coupon
from guestgate.db import make_engine, new_id
from guestgate.instances.models import Instance, InstanceSubnet
from guestgate.migrate import upgrade
from guestgate.orgs.models import Org
from guestgate.portal.tokens import GuestIdentity, TokenSealer
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_DB = "guestgate_bench_signin"
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
PORT = 8765


def settings_for(url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=url,
        data_dir=data_dir,
        public_url=f"http://127.0.0.1:{PORT}",
        jwt_secret=SecretStr("b" * 40),
        signing_key=SecretStr("s" * 40),
        encryption_key=SecretStr(base64.urlsafe_b64encode(b"k" * 32).decode()),
        scheduler_enabled=False,
        log_level="warning",
    )


def fresh_database(kind: str, workdir: Path) -> str:
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
    else:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {PG_DB}")
        url = PG_URL
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def seed(url: str, count: int, now: datetime) -> tuple[str, str, list[str]]:
    """One org, site, coupon instance on 10.0.0.0/8, and `count` distinct valid codes."""
    codes: set[str] = set()
    while len(codes) < count:
        codes.add("".join(secrets.choice(ALPHABET) for _ in range(6)))
    site_id, instance_id = new_id(), new_id()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Org), [{"id": "bench", "created_at": now}])
        conn.execute(
            insert(Site),
            [
                {
                    "id": site_id,
                    "org_id": "bench",
                    "name": "Bench",
                    "subnets": ["10.0.0.0/8"],
                    "created_at": now,
                }
            ],
        )
        conn.execute(
            insert(Instance),
            [
                {
                    "id": instance_id,
                    "org_id": "bench",
                    "name": "Bench",
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
            [{"instance_id": instance_id, "site_id": site_id, "subnet": "10.0.0.0/8", "position": 0}],
        )
        conn.execute(
            insert(Coupon),
            [
                {
                    "id": new_id(),
                    "org_id": "bench",
                    "instance_id": instance_id,
                    "code": code,
                    "expires_at": now + timedelta(days=1),
                    "created_at": now,
                }
                for code in codes
            ],
        )
    engine.dispose()
    return site_id, instance_id, sorted(codes)


def requests_for(
    settings: Settings, site_id: str, instance_id: str, codes: list[str], now: datetime
) -> list[bytes]:
    sealer = TokenSealer.from_settings(settings)
    expires = int(now.timestamp()) + 3600
    built = []
    for index, code in enumerate(codes):
        ip = f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"
        token = sealer.seal_guest(
            GuestIdentity(site_id=site_id, instance_id=instance_id, ip=ip, peer="127.0.0.1"), expires=expires
        )
        body = urlencode({"t": token, "code": code.lower(), "accept": "yes"}).encode()
        built.append(
            b"POST /guest/signin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    return built


async def drive(requests: list[bytes], concurrency: int) -> tuple[float, list[float], dict[int, int]]:
    queue = list(reversed(requests))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
        while queue:
            request = queue.pop()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(head.split(b" ", 2)[1])
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    started = time.perf_counter()
    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    print(f"  (the load generator itself used {time.process_time() - cpu:.1f} s of CPU in {elapsed:.1f} s)")
    return elapsed, latencies, statuses


def wait_for_server() -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            asyncio.run(asyncio.wait_for(asyncio.open_connection("127.0.0.1", PORT), 1))
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def server_env(url: str, workdir: Path) -> dict[str, str]:
    settings = settings_for(url, workdir)
    env = dict(os.environ)
    env.update(
        {
            "GUESTGATE_DATABASE_URL": url,
            "GUESTGATE_DATA_DIR": str(workdir),
            "GUESTGATE_PUBLIC_URL": settings.public_url,
            "GUESTGATE_JWT_SECRET": "b" * 40,
            "GUESTGATE_SIGNING_KEY": "s" * 40,
            "GUESTGATE_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode(),
            "GUESTGATE_SCHEDULER_ENABLED": "false",
            "GUESTGATE_LOG_LEVEL": "warning",
        }
    )
    return env


def run(kind: str, count: int, concurrency: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = fresh_database(kind, workdir)
        now = datetime.now(UTC)
        site_id, instance_id, codes = seed(url, count, now)
        settings = settings_for(url, workdir)
        requests = requests_for(settings, site_id, instance_id, codes, now)
        command = [
            sys.executable, "-m", "uvicorn", "guestgate.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(PORT), "--workers", str(workers),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        server = subprocess.Popen(command, env=server_env(url, workdir))
        try:
            wait_for_server()
            elapsed, latencies, statuses = asyncio.run(drive(requests, concurrency))
        finally:
            server.terminate()
            server.wait(timeout=30)
        engine = make_engine(url)
        with engine.connect() as conn:
            sessions = conn.scalar(select(func.count()).select_from(SiteUser))
        engine.dispose()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    print(
        f"{kind:<10} workers {workers}  {len(latencies)} sign-ins in {elapsed:.1f} s = {len(latencies) / elapsed:,.0f}/s  "
        f"p50 {pct(0.5):.1f} ms  p99 {pct(0.99):.1f} ms  max {latencies[-1] * 1000:.1f} ms  "
        f"statuses {statuses}  sessions {sessions}"
    )
    if statuses != {200: count} or sessions != count:
        raise SystemExit("every request should have succeeded with one session each")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()
    for kind in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        run(kind, args.requests, args.concurrency, args.workers)


if __name__ == "__main__":
    main()
