"""Schedule runner throughput: N due schedules of C coupons each, on SQLite and PostgreSQL, 1 and 2 workers.

    .venv/bin/python bench/schedules.py [--schedules 10000] [--count 20] [--db sqlite|postgresql|both]
        [--profile DIR]

Each worker is a separate process running the real runner (`schedules.jobs.run_due`); the
table shows wall time from start to the last commit and coupons generated per second. Every
run must leave exactly schedules x count coupons. Target: PostgreSQL with 2 workers done in
under 60 s. PostgreSQL runs in the database `guestgate_bench_schedules`, dropped afterwards.
The workers log as `guestgate worker` does (JSON, info: a line per run), into a file.
`--profile DIR` records each worker with py-spy (DIR/<database>-<workers>-<n>.svg and .txt).
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from _procs import Profiler
from pydantic import SecretStr
from sqlalchemy import func, insert, select

from guestgate.config import Settings
from guestgate.coupons.models import Coupon
from guestgate.db import make_engine, new_id
from guestgate.instances.models import Instance
from guestgate.logs import configure_for
from guestgate.migrate import upgrade
from guestgate.notifications.models import NotificationGroup
from guestgate.orgs.models import Org
from guestgate.runtime import Runtime
from guestgate.schedules import jobs
from guestgate.schedules.models import CouponSchedule

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "guestgate_bench_schedules"
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
TARGET_SECONDS = 60.0


def settings_for(url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=url,
        data_dir=data_dir,
        jwt_secret=SecretStr("b" * 40),
        signing_key=SecretStr("s" * 40),
        encryption_key=SecretStr(base64.urlsafe_b64encode(b"k" * 32).decode()),
        scheduler_enabled=False,
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


def seed(url: str, *, schedules: int, count: int, now: datetime) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Org), [{"id": "bench", "created_at": now}])
        instance_id = new_id()
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
                    "locale": "en",
                    "created_at": now,
                }
            ],
        )
        group_id = "ng_" + secrets.token_hex(6)
        conn.execute(
            insert(NotificationGroup),
            [
                {
                    "id": group_id,
                    "org_id": "bench",
                    "name": "Desk",
                    "emails": ["desk@example.com"],
                    "webhooks": [],
                    "created_at": now,
                }
            ],
        )
        rows = [
            {
                "id": new_id(),
                "org_id": "bench",
                "instance_id": instance_id,
                "name": f"S{i}",
                "count": count,
                "recurrence_type": "daily",
                "time_of_day": "08:00",
                "valid_for_in_minutes": 480,
                "timezone": "UTC",
                "notification_group_id": group_id,
                "next_run_at": now - timedelta(minutes=1),
                "created_at": now,
            }
            for i in range(schedules)
        ]
        for start in range(0, len(rows), 1000):
            conn.execute(insert(CouponSchedule), rows[start : start + 1000])
    engine.dispose()


def worker(url: str, data_dir: str, now_iso: str) -> None:
    settings = settings_for(url, Path(data_dir))
    with (Path(data_dir) / "worker.log").open("a") as log:
        configure_for(settings, stream=log)
        runtime = Runtime.build(settings)
        jobs.run_due(runtime=runtime, now=datetime.fromisoformat(now_iso))
        runtime.close()


def measure(
    kind: str, workers: int, *, schedules: int, count: int, profile: Path | None = None
) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = fresh_database(kind, workdir)
        now = datetime.now(UTC)
        seed(url, schedules=schedules, count=count, now=now)
        started = time.perf_counter()
        procs = [
            multiprocessing.Process(target=worker, args=(url, str(workdir), now.isoformat()))
            for _ in range(workers)
        ]
        for proc in procs:
            proc.start()
        profilers = [
            Profiler(proc.pid or 0, profile / f"{kind}-{workers}-{n}")
            for n, proc in enumerate(procs, 1)
            if profile is not None
        ]
        for proc in procs:
            proc.join()
        elapsed = time.perf_counter() - started
        for profiler in profilers:
            profiler.stop()
        if any(proc.exitcode != 0 for proc in procs):
            sys.exit(f"{kind}/{workers}: a worker failed (exit codes {[proc.exitcode for proc in procs]})")
        engine = make_engine(url)
        with engine.connect() as conn:
            generated = conn.scalar(select(func.count()).select_from(Coupon)) or 0
        engine.dispose()
        if kind == "postgresql":
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        if generated != schedules * count:
            sys.exit(f"{kind}/{workers}: expected {schedules * count} coupons, found {generated}")
        return elapsed, generated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy each worker into DIR")
    args = parser.parse_args()
    print(
        f"{args.schedules} due schedules x {args.count} coupons, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    print(
        f"{'database':<12}{'workers':>8}{'seconds':>10}{'coupons/s':>12}{'schedules/s':>13}{'load avg':>10}"
    )
    pg_two = None
    for kind, workers in (("sqlite", 1), ("sqlite", 2), ("postgresql", 1), ("postgresql", 2)):
        if args.db not in (kind, "both"):
            continue
        busy = os.getloadavg()[0]
        elapsed, generated = measure(
            kind, workers, schedules=args.schedules, count=args.count, profile=args.profile
        )
        if (kind, workers) == ("postgresql", 2):
            pg_two = elapsed
        print(
            f"{kind:<12}{workers:>8}{elapsed:>10.1f}{generated / elapsed:>12.0f}"
            f"{args.schedules / elapsed:>13.0f}{busy:>10.2f}",
            flush=True,
        )
    if pg_two is not None:
        met = pg_two < TARGET_SECONDS
        print(f"postgresql, 2 workers: target (under {TARGET_SECONDS:.0f} s) {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
