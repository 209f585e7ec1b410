"""Exactly once across processes and crashes: runners race over due schedules, one is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from guestgate.coupons.models import Coupon
from guestgate.notifications.models import Delivery
from guestgate.runtime import Runtime
from guestgate.schedules import jobs
from guestgate.schedules.models import CouponSchedule, ScheduleRun
from tests.schedules import factory

ROOT = Path(__file__).resolve().parents[2]


def seed(runtime: Runtime, *, schedules: int, count: int, now: datetime) -> dict[str, datetime]:
    """`schedules` due schedules of `count` coupons; returns each one's due slot."""
    slots = {}
    with runtime.sessions() as session:
        instance_id, group_id = factory.base_rows(session, emails=["desk@example.com"])
        for _ in range(schedules):
            row = factory.schedule(
                session,
                instance_id=instance_id,
                group_id=group_id,
                after=now - timedelta(days=1),
                count=count,
                next_run_at=now - timedelta(minutes=1),
            )
            slots[row.id] = row.next_run_at
        session.commit()
    return slots  # type: ignore[return-value]


def start_runner(url: str, now: datetime, data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.schedules.runner_process", url, now.isoformat(), str(data_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def runs_committed(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(ScheduleRun)) or 0


def assert_each_slot_ran_exactly_once(
    runtime: Runtime, slots: dict[str, datetime], count: int, now: datetime
) -> None:
    with runtime.sessions() as session:
        runs = list(session.scalars(select(ScheduleRun)))
        assert sorted(r.schedule_id for r in runs) == sorted(slots)  # type: ignore[type-var]
        for run in runs:
            assert run.slot_at == slots[run.schedule_id]  # type: ignore[index]
        per_run = dict(session.execute(select(Coupon.run_id, func.count()).group_by(Coupon.run_id)).all())
        assert per_run == {run.id: count for run in runs}, "a batch is missing or half-written"
        assert session.scalar(select(func.count()).select_from(Coupon).where(Coupon.run_id.is_(None))) == 0
        deliveries = dict(
            session.execute(select(Delivery.run_id, func.count()).group_by(Delivery.run_id)).all()
        )
        assert deliveries == {run.id: 1 for run in runs}
        for schedule in session.scalars(select(CouponSchedule)):
            assert schedule.next_run_at is not None and schedule.next_run_at > now
            assert schedule.last_run_id in per_run


@pytest.mark.slow
def test_runners_racing_with_one_killed_run_every_slot_once(
    db_url: str, runtime: Runtime, tmp_path: Path
) -> None:
    postgres = db_url.startswith("postgresql")
    processes, schedules, count = (3, 500, 20) if postgres else (2, 200, 20)
    now = datetime.now(UTC).replace(microsecond=0)
    slots = seed(runtime, schedules=schedules, count=count, now=now)
    runners = [start_runner(db_url, now, tmp_path / f"var{i}") for i in range(processes)]
    deadline = time.monotonic() + 120
    while runs_committed(runtime) < schedules // 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    victim = runners[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    assert runs_committed(runtime) < schedules, "the kill came after all the work was done"
    for runner in runners[1:]:
        _out, err = runner.communicate(timeout=180)
        assert runner.returncode == 0, err
    # Whatever the killed runner held was rolled back; the next pass (a restarted worker) runs it.
    jobs.run_due(runtime=runtime, now=now)
    assert_each_slot_ran_exactly_once(runtime, slots, count, now)
    assert jobs.run_due(runtime=runtime, now=now) == []
