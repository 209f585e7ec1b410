"""Graceful shutdown: SIGTERM to `serve` finishes the requests in flight, SIGTERM to `worker` the batch it holds.

Real processes on free loopback ports, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import func, select

from guestgate.coupon_links import signing
from guestgate.coupons.models import Coupon
from guestgate.gateways.agent import agent_key
from guestgate.notifications.models import Delivery
from guestgate.runtime import Runtime
from guestgate.schedules import jobs
from guestgate.schedules.models import CouponSchedule, ScheduleRun
from guestgate.sites.models import Site
from tests.replicas import cluster
from tests.schedules import factory
from tests.utils.settings import TEST_KEYS

pytestmark = pytest.mark.slow
PDF_CODES = 2000
WORKER_SCHEDULES = 300
WORKER_COUNT = 200


def serve(db_url: str, tmp_path: Path, **settings: str) -> cluster.Process:
    """A started, answering `guestgate serve` on the test's database."""
    env = cluster.environment(db_url, tmp_path / "serve", scheduler_enabled="false", **settings)
    process = cluster.start("serve", "serve", env, tmp_path / "logs", port=cluster.free_port())
    cluster.wait_ready(process)
    return process


def schedule_with_codes(runtime: Runtime, codes: int) -> str:
    """A schedule whose run-now batches hold `codes` valid coupons; its id."""
    now = datetime.now(UTC)
    with runtime.sessions() as session:
        instance_id, group_id = factory.base_rows(session)
        row = factory.schedule(
            session,
            instance_id=instance_id,
            group_id=group_id,
            after=now,
            count=500,
            valid_for_in_minutes=600,
        )
        session.commit()
        for _ in range(codes // 500):
            jobs.run_now(row.id, instance_id=instance_id, org_id=factory.ORG, now=now, session=session)
        return row.id


def test_sigterm_lets_a_big_pdf_export_in_flight_finish_refuses_new_connections_and_exits_0(
    db_url: str, runtime: Runtime, tmp_path: Path
) -> None:
    schedule_id = schedule_with_codes(runtime, PDF_CODES)
    # One PDF of every code, above the default cap (500 codes), so that the export takes seconds.
    process = serve(db_url, tmp_path, public_link_pdf_max_codes=str(PDF_CODES))
    url = signing.coupons_url(
        schedule_id, signer=runtime.signer, public_url=process.url, now=datetime.now(UTC)
    )
    answers: list[httpx2.Response] = []
    export = threading.Thread(
        target=lambda: answers.append(httpx2.get(url + "&format=pdf", timeout=120)), daemon=True
    )
    try:
        export.start()
        time.sleep(0.5)  # the request is in; rendering 200 pages of QR cards takes seconds
        assert export.is_alive(), "the export finished before the signal: it proves nothing"
        process.popen.send_signal(signal.SIGTERM)
        refused_at = _wait(lambda: cluster.refuses_connections(process.port or 0), seconds=5)
        assert refused_at is not None, "new connections were still accepted after SIGTERM"
        assert export.is_alive(), "the export was over before new connections were refused"
        export.join(timeout=120)
        assert process.popen.wait(timeout=60) == 0, process.output()
    finally:
        process.kill()
    [answer] = answers
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/pdf"
    body = answer.content
    assert body.startswith(b"%PDF") and body.rstrip().endswith(b"%%EOF")
    # Whole: every card of every code is in it (ten to a page).
    assert len(re.findall(rb"/Type /Page[^s]", body)) == PDF_CODES // 10


def test_sigterm_answers_a_waiting_agent_long_poll_at_once_instead_of_holding_the_shutdown(
    db_url: str, runtime: Runtime, tmp_path: Path
) -> None:
    with runtime.sessions() as session:
        factory.base_rows(session)
        site = Site(org_id=factory.ORG, name="Kiosk", subnets=["10.30.0.0/16"], gateway_driver="agent")
        session.add(site)
        session.commit()
        site_id = site.id
    process = serve(db_url, tmp_path)
    headers = {"Authorization": f"Bearer {agent_key(TEST_KEYS['signing_key'], site_id)}"}
    state = process.url + "/agent/v1/state"
    try:
        version = httpx2.get(state, params={"site": site_id}, headers=headers).json()["version"]
        answers: list[Any] = []

        def long_poll() -> None:
            params = {"site": site_id, "since": version, "wait": "60"}
            answers.append(httpx2.get(state, params=params, headers=headers, timeout=90))

        waiting = threading.Thread(target=long_poll, daemon=True)
        waiting.start()
        time.sleep(1.0)
        assert waiting.is_alive()
        signalled = time.monotonic()
        process.popen.send_signal(signal.SIGTERM)
        waiting.join(timeout=90)
        answered = time.monotonic() - signalled
        assert process.popen.wait(timeout=60) == 0, process.output()
        exited = time.monotonic() - signalled
    finally:
        process.kill()
    [answer] = answers
    assert answer.status_code == 304
    # Without Redis, a server on PostgreSQL (a replica deployment) names what stays per process.
    assert ("replicas.state_in_process" in process.output()) == db_url.startswith("postgresql")
    assert answered < 3 and exited < 10, (answered, exited)


def test_sigterm_to_a_worker_commits_the_batch_it_holds_and_leaves_the_rest_due(
    db_url: str, runtime: Runtime, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    slot = now - timedelta(minutes=1)
    with runtime.sessions() as session:
        instance_id, group_id = factory.base_rows(session, emails=["desk@example.com"])
        for _ in range(WORKER_SCHEDULES):
            factory.schedule(
                session,
                instance_id=instance_id,
                group_id=group_id,
                after=now - timedelta(days=1),
                count=WORKER_COUNT,
                next_run_at=slot,
            )
        session.commit()
    # `schedule_ran` is logged inside the batch's transaction, before its commit.
    env = cluster.environment(db_url, tmp_path / "worker", worker_poll_seconds="0.5", log_level="info")
    worker = cluster.start("worker", "worker", env, tmp_path / "logs")
    committed: list[int] = []

    def holding_a_batch() -> bool:
        # Logged before committed is read, so more logged than committed means a batch was still
        # open when `committed` was read: the signal below lands with that batch (or a later one) held.
        logged = worker.output().count("schedule_ran")
        committed.append(_runs(runtime))
        return committed[-1] >= jobs.CLAIM_BATCH and logged > committed[-1]

    try:
        assert _wait(holding_a_batch, seconds=120) is not None, worker.output()
        at_signal = committed[-1]
        worker.popen.send_signal(signal.SIGTERM)
        assert worker.popen.wait(timeout=120) == 0, worker.output()
    finally:
        worker.kill()
    done = _runs(runtime)
    assert done > at_signal, "no batch was in progress at the signal"
    assert done < WORKER_SCHEDULES, "the worker ran everything instead of stopping"
    assert done % jobs.CLAIM_BATCH == 0, "a batch was cut short"
    with runtime.sessions() as session:
        runs = list(session.scalars(select(ScheduleRun)))
        per_run = dict(session.execute(select(Coupon.run_id, func.count()).group_by(Coupon.run_id)).all())
        assert per_run == {run.id: WORKER_COUNT for run in runs}
        assert dict(
            session.execute(select(Delivery.run_id, func.count()).group_by(Delivery.run_id)).all()
        ) == {run.id: 1 for run in runs}
        ran = {run.schedule_id for run in runs}
        for schedule in session.scalars(select(CouponSchedule)):
            if schedule.id in ran:
                assert schedule.next_run_at is not None and schedule.next_run_at > now
            else:
                assert schedule.next_run_at == slot, "a schedule left behind is no longer due"
    # What the stopped worker left is run by the next one, each slot still once.
    jobs.run_due(runtime=runtime, now=now)
    assert _runs(runtime) == WORKER_SCHEDULES


def _runs(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(ScheduleRun)) or 0


def _wait(check: Any, *, seconds: float) -> float | None:
    """Poll `check` until true; the time it took, or None after `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    return None
