"""Operator console page latency on an org with 200 sites and 100,000 coupons.

    .venv/bin/python bench/console.py [--sites 200] [--coupons 100000] [--repeat 50] [--db sqlite|postgresql]

A fresh database (a new SQLite file, or the PostgreSQL database `guestgate_bench_console`
recreated) gets one org with `--sites` sites (two guests online each), one coupon instance
holding `--coupons` valid coupons (inserted in bulk, as batches of 200 with their batch
records), a preset and an owner. The app runs in this process (Starlette's TestClient: the full
middleware stack, no network); the owner signs in through the login form, then each page is
requested `--repeat` times one after another. Printed: p50 and p95 per page, in milliseconds.
Target: p50 under 50 ms for every page.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from fastapi.testclient import TestClient
from pydantic import SecretStr

from guestgate.app import create_app
from guestgate.config import Settings
from guestgate.console import service
from guestgate.coupons import codes
from guestgate.coupons.models import Coupon
from guestgate.db import make_engine, new_id, utcnow
from guestgate.instances.models import Instance
from guestgate.migrate import upgrade
from guestgate.notifications import service as group_service
from guestgate.notifications.models import Delivery
from guestgate.notifications.schemas import NotificationGroupIn
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.schedules import service as schedule_service
from guestgate.schedules.models import ScheduleRun
from guestgate.schedules.schemas import CouponScheduleCreate
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site
from guestgate.walled_garden import service as garden_service
from guestgate.walled_garden.schemas import WalledGardenEntryIn

ORG = "org-bench"
PASSWORD = "bench password 123"
TARGET_MS = 50.0
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "guestgate_bench_console"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Ids in the printed paths, so each line names its page.
IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|ng_[0-9a-f]{12}")


def settings_for(url: str, data_dir: Path) -> Settings:
    return Settings.model_validate(
        {
            "database_url": url,
            "data_dir": data_dir,
            "public_url": "http://testserver",
            "jwt_secret": SecretStr("bench-jwt-secret-that-is-at-least-32-bytes"),
            "signing_key": SecretStr("bench-signing-key-that-is-at-least-32-bytes"),
            "encryption_key": SecretStr("a" * 43 + "="),
            "scheduler_enabled": False,
            "rate_limit_per_minute": 0,
            "log_level": "warning",
        }
    )


@dataclass(frozen=True)
class Populated:
    """The ids the pages are requested with."""

    site_id: str
    instance_id: str
    group_id: str
    schedule_id: str


def populate(runtime: Runtime, *, sites: int, coupons: int) -> Populated:
    now = utcnow()
    with runtime.sessions() as session:
        org_service.ensure(ORG, session=session)
        instance = Instance(
            org_id=ORG,
            name="Lobby",
            strategy="coupon",
            session_ttl=3600,
            auth_window_ttl=300,
            theme={},
            locale="en",
        )
        session.add(instance)
        session.flush()
        site_ids = []
        for i in range(sites):
            site = Site(org_id=ORG, name=f"Site {i:03d}", subnets=[f"10.{i // 250}.{i % 250}.0/24"])
            session.add(site)
            session.flush()
            site_ids.append(site.id)
            for g in range(2):
                session.add(
                    SiteUser(
                        org_id=ORG,
                        site_id=site.id,
                        instance_id=instance.id,
                        ip_address=f"10.{i // 250}.{i % 250}.{g + 2}",
                        strategy="coupon",
                        status="active",
                        started_at=now - timedelta(hours=g),
                        expires_at=now + timedelta(hours=1),
                    )
                )
        session.commit()
        drawn: set[str] = set()
        made = 0
        while made < coupons:
            size = min(200, coupons - made)
            run = ScheduleRun(
                org_id=ORG,
                instance_id=instance.id,
                kind="api",
                count=size,
                valid_for_in_minutes=1440,
                ran_at=now - timedelta(minutes=made // 200),
            )
            session.add(run)
            session.flush()
            rows = []
            while len(rows) < size:
                code = codes.generate()
                if code in drawn:
                    continue
                drawn.add(code)
                rows.append(
                    {
                        "id": new_id(),
                        "org_id": ORG,
                        "instance_id": instance.id,
                        "run_id": run.id,
                        "code": code,
                        "expires_at": now + timedelta(days=1),
                        "created_at": now - timedelta(seconds=made + len(rows)),
                    }
                )
            session.execute(Coupon.__table__.insert(), rows)
            made += size
        session.commit()
        service.create_preset(
            org_id=ORG,
            instance_id=instance.id,
            name="Day pass",
            count=20,
            minutes_valid=1440,
            paper="a4",
            session=session,
        )
        service.add_member(
            org_id=ORG,
            email="owner@bench.example.com",
            role="owner",
            now=now,
            settings=runtime.settings,
            session=session,
            password=PASSWORD,
        )
        group = group_service.create(
            NotificationGroupIn(name="Desk", emails=[f"desk{i}@bench.example.com" for i in range(10)]),
            org_id=ORG,
            box=runtime.box,
            outbound=runtime.outbound,
            session=session,
        )
        schedule = schedule_service.create(
            instance.id,
            CouponScheduleCreate(
                name="Daily",
                count=20,
                recurrence_type="weekly",
                day_of_week=1,
                time_of_day="08:00",
                valid_for_in_minutes=1440,
                timezone="Australia/Sydney",
                notification_group_id=group.id,
            ),
            org_id=ORG,
            session=session,
        ).schedule
        # A year of daily runs of that schedule, each delivered to the group's ten addresses.
        for day in range(365):
            run = ScheduleRun(
                org_id=ORG,
                instance_id=instance.id,
                schedule_id=schedule.id,
                slot_at=now - timedelta(days=day),
                kind="scheduled",
                count=20,
                valid_for_in_minutes=1440,
                ran_at=now - timedelta(days=day),
            )
            session.add(run)
            session.flush()
            session.execute(
                Delivery.__table__.insert(),
                [
                    {
                        "id": new_id(),
                        "run_id": run.id,
                        "channel": "email",
                        "target": f"desk{i}@bench.example.com",
                        "status": "sent",
                        "attempts": 1,
                        "next_attempt_at": run.ran_at,
                        "created_at": run.ran_at + timedelta(seconds=i),
                        "updated_at": run.ran_at,
                    }
                    for i in range(10)
                ],
            )
        for i in range(200):
            garden_service.create(
                site_ids[0],
                WalledGardenEntryIn(name=f"Entry {i}", ip_address=f"198.51.{i // 250}.{i % 250}"),
                org_id=ORG,
                now=now,
                session=session,
            )
        session.commit()
        return Populated(site_ids[0], instance.id, group.id, schedule.id)


def run(url: str, data_dir: Path, *, sites: int, coupons: int, repeat: int) -> bool:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    runtime = Runtime.build(settings_for(url, data_dir))
    started = time.perf_counter()
    ids = populate(runtime, sites=sites, coupons=coupons)
    print(f"populated {sites} sites, {coupons} coupons in {time.perf_counter() - started:.1f} s")
    ok = True
    with TestClient(create_app(runtime=runtime)) as client:
        page = client.get("/console/login")
        token = CSRF.search(page.text)
        assert token is not None
        signed = client.post(
            "/console/login",
            data={"email": "owner@bench.example.com", "password": PASSWORD, "csrf_token": token.group(1)},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text
        pages = [
            "/console",
            "/console/desk",
            "/console/sites",
            "/console/coupons",
            "/console/presets",
            f"/console/guests?site={ids.site_id}",
            f"/console/guests?site={ids.site_id}&identity=ada",
            "/console/audit",
            "/console/users",
            "/console/tokens",
            f"/console/sites/{ids.site_id}",
            "/console/sites/new",
            f"/console/sites/{ids.site_id}/walled-garden",
            f"/console/schedules?instance={ids.instance_id}",
            f"/console/schedules/{ids.instance_id}/{ids.schedule_id}",
            f"/console/schedules/new?instance={ids.instance_id}",
            "/console/notification-groups",
            f"/console/notification-groups/{ids.group_id}",
        ]
        print(f"{'page':<52} {'p50 ms':>8} {'p95 ms':>8}")
        for path in pages:
            samples = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                response = client.get(path)
                samples.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200, (path, response.status_code)
            samples.sort()
            p50 = statistics.median(samples)
            p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
            flag = "" if p50 < TARGET_MS else "  over target"
            ok = ok and p50 < TARGET_MS
            shown = IDS.sub("{id}", path)
            shown = shown if len(shown) < 50 else shown[:47] + "..."
            print(f"{shown:<52} {p50:>8.1f} {p95:>8.1f}{flag}")
        # A download, not a page: every valid coupon of the instance, timed once.
        t0 = time.perf_counter()
        export = client.get(f"/console/coupons.csv?instance={ids.instance_id}")
        rows = export.text.count("\r\n") - 1
        assert export.status_code == 200, export.status_code
        print(f"coupons CSV download: {rows} coupons in {(time.perf_counter() - t0) * 1000:.0f} ms")
    runtime.close()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--coupons", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.db == "sqlite":
            url = f"sqlite:///{tmp}/bench.db"
        else:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{PG_DB}"')
            url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
        print(f"== {args.db}")
        ok = run(url, Path(tmp) / "var", sites=args.sites, coupons=args.coupons, repeat=args.repeat)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
