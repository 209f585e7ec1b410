"""Background jobs: the schedule runner, deliveries, session expiry, the gateway reconciler and coupon housekeeping.

They run inside `guestgate serve` (unless GUESTGATE_SCHEDULER_ENABLED=false) and in
`guestgate worker` processes. Every job is safe to run in several processes at once; each takes
`now` and returns what it did. A failing job is logged and retried on the next tick; it never
stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from guestgate.coupons import jobs as coupon_jobs
from guestgate.db import utcnow
from guestgate.gateways import reconcile
from guestgate.gateways import service as gateway_service
from guestgate.notifications import delivery
from guestgate.runtime import Runtime
from guestgate.schedules import jobs as schedule_jobs
from guestgate.site_users import service as site_user_service

log = structlog.get_logger(__name__)
HOUSEKEEPING_EVERY_SECONDS = 3600.0
RECONCILE_EVERY_SECONDS = 5.0


@dataclass
class Job:
    """A named job and how often it runs."""

    name: str
    every_seconds: float
    tick: Callable[[Runtime, datetime], Awaitable[object]]
    last_run: float = field(default=0.0)


async def _run_schedules(runtime: Runtime, now: datetime) -> object:
    outcomes = await asyncio.to_thread(
        schedule_jobs.run_due, runtime=runtime, now=now, should_stop=runtime.draining.is_set
    )
    return len(outcomes)


async def _deliver(runtime: Runtime, now: datetime) -> object:
    return await delivery.deliver_due(runtime=runtime, now=now)


def _expire_sessions_sync(runtime: Runtime, now: datetime) -> int:
    with runtime.sessions() as session:
        return site_user_service.expire_sessions(now=now, session=session)


async def _expire_sessions(runtime: Runtime, now: datetime) -> object:
    return await asyncio.to_thread(_expire_sessions_sync, runtime, now)


def _purge_coupons_sync(runtime: Runtime, now: datetime) -> int:
    with runtime.sessions() as session:
        return coupon_jobs.purge_expired(
            now=now, retention_days=runtime.settings.coupon_retention_days, session=session
        )


async def _purge_coupons(runtime: Runtime, now: datetime) -> object:
    return await asyncio.to_thread(_purge_coupons_sync, runtime, now)


def _reconcile_gateways_sync(runtime: Runtime, now: datetime) -> int:
    outcomes = reconcile.reconcile_all(runtime=runtime, now=now, pool=runtime.gateways)
    gateway_service.mark_stale_agents(runtime, now=now)
    # What changed on gateways, so a quiet tick logs nothing.
    return sum(o.result.added + o.result.removed + o.result.updated for o in outcomes if o.result)


async def _reconcile_gateways(runtime: Runtime, now: datetime) -> object:
    return await asyncio.to_thread(_reconcile_gateways_sync, runtime, now)


def default_jobs(runtime: Runtime) -> list[Job]:
    """The jobs every serve/worker process runs."""
    poll = runtime.settings.worker_poll_seconds
    return [
        Job("schedules", poll, _run_schedules),
        Job("deliveries", poll, _deliver),
        Job("session_expiry", poll, _expire_sessions),
        # Every gateway holds exactly the database's sessions: re-adds what a reboot lost, removes
        # what ended even if the gateway's own timeout was lost.
        Job("gateway_reconcile", min(poll, RECONCILE_EVERY_SECONDS), _reconcile_gateways),
        Job("coupon_housekeeping", HOUSEKEEPING_EVERY_SECONDS, _purge_coupons),
    ]


async def run_jobs(runtime: Runtime, stop: asyncio.Event, jobs: list[Job] | None = None) -> None:
    """Tick every job on its interval until `stop` is set; the job in progress is finished first."""
    jobs = jobs if jobs is not None else default_jobs(runtime)
    log.info("jobs_started", jobs=[job.name for job in jobs])
    while not stop.is_set():
        for job in jobs:
            if stop.is_set():
                break
            if time.monotonic() - job.last_run < job.every_seconds:
                continue
            job.last_run = time.monotonic()
            try:
                result = await job.tick(runtime, utcnow())
            except Exception:  # a broken job must not stop the others; it runs again next tick
                log.exception("job_failed", job=job.name)
            else:
                if result:
                    log.info("job_done", job=job.name, result=str(result))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(job.every_seconds for job in jobs))
    log.info("jobs_stopped")
