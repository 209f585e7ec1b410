"""Printable coupon sheets: time to render N codes as PDF cards (cold QR cache, then warm), and what
one request to a public coupon link costs when its schedule holds many valid codes.

.venv/bin/python bench/exports.py [--codes 500] [--link-codes 20000]

The second table serves the link in process (the ASGI app on a SQLite file, no network), so it
measures guestgate's own work per request: the capped page of each format, with a logo, the
instance's language and a Sydney time zone.
"""

from __future__ import annotations

import argparse
import base64
import io
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from guestgate.coupons import codes, export


@dataclass(frozen=True)
class Row:
    id: str
    code: str
    expires_at: datetime
    created_at: datetime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--link-codes", type=int, default=20_000, help="valid codes behind the link (0: skip)"
    )
    args = parser.parse_args()
    sheets(args.codes, args.rounds)
    if args.link_codes:
        link(args.link_codes, args.rounds)


def sheets(count: int, rounds: int) -> None:
    now = datetime.now(UTC)
    drawn = {codes.generate() for _ in range(count * 2)}
    rows = [
        Row(f"id-{i}", code, now + timedelta(hours=8), now) for i, code in enumerate(sorted(drawn)[:count])
    ]
    print(f"{count} codes, A4, {rounds} rounds each")
    print(f"{'cache':<8}{'best s':>9}{'median s':>10}{'pages':>7}{'KiB':>8}")
    for label in ("cold", "warm"):
        timings, size = [], 0
        for _ in range(rounds):
            if label == "cold":
                export._qr_operators.cache_clear()
                export._best_mask.cache_clear()
            started = time.perf_counter()
            pdf = export.to_pdf(
                rows,
                instance_name="Lobby Wi-Fi",
                accent_color="#0396d5",
                portal_url="https://wifi.example.com/guest/entry",
            )
            timings.append(time.perf_counter() - started)
            size = len(pdf)
        timings.sort()
        pages = -(-count // (export.COLUMNS * export.ROWS))
        print(f"{label:<8}{timings[0]:>9.3f}{timings[len(timings) // 2]:>10.3f}{pages:>7}{size / 1024:>8.0f}")


def link(count: int, rounds: int) -> None:
    from fastapi.testclient import TestClient
    from PIL import Image
    from pydantic import SecretStr

    from guestgate.app import create_app
    from guestgate.config import Settings
    from guestgate.instances.models import Image as ImageRow
    from guestgate.instances.models import Instance
    from guestgate.migrate import upgrade
    from guestgate.notifications.models import NotificationGroup
    from guestgate.orgs import service as org_service
    from guestgate.runtime import Runtime
    from guestgate.schedules import jobs
    from guestgate.schedules.models import CouponSchedule
    from guestgate.schedules.service import link as schedule_link

    with tempfile.TemporaryDirectory() as workdir:
        settings = Settings(
            database_url=f"sqlite:///{Path(workdir) / 'bench.db'}",
            data_dir=Path(workdir),
            public_url="http://bench",
            jwt_secret=SecretStr("b" * 40),
            signing_key=SecretStr("s" * 40),
            encryption_key=SecretStr(base64.urlsafe_b64encode(b"k" * 32).decode()),
            scheduler_enabled=False,
            log_level="warning",
            public_link_rate_per_minute=0,
        )
        runtime = Runtime.build(settings)
        upgrade(runtime.engine)
        logo = io.BytesIO()
        Image.new("RGB", (240, 120), (3, 150, 213)).save(logo, "PNG")
        now = datetime.now(UTC)
        with runtime.sessions() as session:
            org_service.ensure("bench", session=session)
            instance = Instance(
                org_id="bench",
                name="Harbour Café",
                strategy="coupon",
                session_ttl=3600,
                theme={},
                locale="fr",
                network_name="Harbour-Guest",
                timezone="Australia/Sydney",
            )
            group = NotificationGroup(
                id="ng_be0c4be0c4be", org_id="bench", name="Desk", emails=[], webhooks=[]
            )
            session.add_all([instance, group])
            session.flush()
            session.add(
                ImageRow(
                    instance_id=instance.id,
                    kind="logo",
                    content_type="image/png",
                    width=240,
                    height=120,
                    sha256="0" * 64,
                    data=logo.getvalue(),
                )
            )
            schedule = CouponSchedule(
                org_id="bench",
                instance_id=instance.id,
                name="Daily Guest Passes",
                count=500,
                recurrence_type="daily",
                valid_for_in_minutes=1440,
                timezone="Australia/Sydney",
                notification_group_id=group.id,
            )
            session.add(schedule)
            session.commit()
            runs = -(-count // 500)
            for run in range(runs):  # a batch a minute, the newest now
                at = now - timedelta(minutes=runs - 1 - run)
                jobs.run_now(schedule.id, instance_id=instance.id, org_id="bench", now=at, session=session)
            url = schedule_link(schedule, signer=runtime.signer, public_url="", now=now).url
        cases = [
            ("json (page of 100)", ""),
            ("json (limit=1000)", "&limit=1000"),
            ("csv (cap 5000)", "&format=csv"),
            ("html page (cap 500)", "&format=html"),
            ("pdf cards (cap 500)", "&format=pdf"),
        ]
        print()
        print(f"public link of a schedule with {count:,} valid codes, in process, {rounds} requests each")
        print(f"{'request':<22}{'codes':>7}{'KiB':>7}{'median ms':>11}{'max ms':>9}")
        with TestClient(create_app(runtime=runtime)) as client:
            for label, extra in cases:
                timings, body, shown = [], b"", 0
                for round_ in range(rounds):
                    if extra == "&format=pdf" and round_ == 0:
                        export._qr_operators.cache_clear()  # the first PDF is cold
                    started = time.perf_counter()
                    response = client.get(url + extra)
                    timings.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, response.text
                    body = response.content
                shown = _codes_in(body, extra)
                print(
                    f"{label:<22}{shown:>7}{len(body) / 1024:>7.0f}"
                    f"{statistics.median(timings):>11.1f}{max(timings):>9.1f}"
                )
        runtime.close()


def _codes_in(body: bytes, extra: str) -> int:
    if extra == "&format=pdf":
        return len(re.findall(rb"/Type /Page[^s]", body)) * export.CARDS_PER_PAGE
    if extra == "&format=csv":
        return body.count(b"\r\n") - 1
    if extra == "&format=html":
        return body.count(b'class="code"')
    return body.count(b'"code":')


if __name__ == "__main__":
    main()
