"""Delivery of coupon batches to a schedule's notification group (contract §6.3).

A run enqueues one `Delivery` per e-mail address and per webhook URL, in the run's own
transaction, so a batch and its deliveries commit together. `deliver_due` then works them off:

- Claim: a conditional UPDATE (pending or expired-lease sending -> sending, WHERE id=? AND the
  row is still due), checked by rowcount: on SQLite and PostgreSQL alike, two workers never hold
  the same delivery. The claim sets `next_attempt_at` to the end of a lease; a worker that dies
  mid-send leaves a `sending` row that becomes claimable again when the lease runs out.
- Send, bounded by a deadline shorter than the lease, then record a `DeliveryAttempt` and settle
  the row: sent; or pending again with exponential backoff (30 s doubling, capped at 1 h); or
  failed after `delivery_max_attempts`. Settling is fenced by the attempt number, so a worker
  whose lease ran out cannot overwrite the next worker's outcome.
- A failure is recorded, never raised: it does not touch the batch's coupons, and it does not
  stop other deliveries or the next runs. Receivers can drop the rare repeat (a worker killed
  after sending but before recording) by the delivery id each message carries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from email.message import EmailMessage
from typing import Any

import httpx2
import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from guestgate import local_time
from guestgate.config import Settings
from guestgate.coupon_links import service as link_service
from guestgate.coupons import batches, export
from guestgate.coupons.models import Coupon
from guestgate.coupons.words import Words
from guestgate.db import utcnow
from guestgate.errors import NotFound
from guestgate.instances.models import Instance
from guestgate.instances.schemas import DEFAULT_THEME
from guestgate.notifications import email, webhooks
from guestgate.notifications.models import Delivery, DeliveryAttempt, NotificationGroup
from guestgate.ops import metrics
from guestgate.plans.service import DEFAULT as DEFAULT_PLAN
from guestgate.plans.service import Plan
from guestgate.runtime import Runtime
from guestgate.schedules.models import CouponSchedule, ScheduleRun

log = structlog.get_logger(__name__)

EMAIL = "email"
WEBHOOK = "webhook"
PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
# An attempt's result as the deliveries metric names it, by the status it left the delivery in.
_RESULTS = {SENT: "sent", PENDING: "retry", FAILED: "failed"}
BACKOFF_FIRST_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
# Deliveries sent at once by one worker; every claimed delivery is sent right away (none waits
# in a queue while its lease runs down).
CONCURRENCY = 10
# Time beyond the send deadline a lease allows for preparing the message and recording the result.
LEASE_MARGIN_SECONDS = 120
ERROR_MAX_CHARS = 500


@dataclass(frozen=True)
class DeliveryReport:
    """What one `deliver_due` call did: sent, scheduled for a retry, given up."""

    sent: int = 0
    retried: int = 0
    failed: int = 0

    def __bool__(self) -> bool:
        return bool(self.sent or self.retried or self.failed)

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(
            self.sent + other.sent, self.retried + other.retried, self.failed + other.failed
        )


@dataclass(frozen=True)
class BatchCoupon:
    """One coupon of a batch, as delivered."""

    id: str
    code: str
    expires_at: datetime
    created_at: datetime
    # What the code buys (its card's plan line, its CSV row's plan columns).
    plan: Plan = DEFAULT_PLAN


@dataclass(frozen=True)
class BatchPayload:
    """A generated batch as its recipients see it; `link` is None once the schedule is deleted."""

    run_id: str
    schedule_id: str | None
    schedule_name: str | None
    instance_id: str
    instance_name: str
    accent_color: str
    count: int
    valid_for_in_minutes: int
    generated_at: datetime
    expires_at: datetime
    coupons: tuple[BatchCoupon, ...]
    link: str | None
    link_expires_at: datetime | None
    # How the front desk reads it: the zone of its times, the portal's language, the network's name
    # and the logo on the cards (guestgate.local_time, guestgate.coupons.words).
    timezone: str = "UTC"
    locale: str = "en"
    network_name: str | None = None
    logo: bytes | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The webhook body."""
        body: dict[str, Any] = {
            "event": webhooks.EVENT,
            "run_id": self.run_id,
            "schedule_id": self.schedule_id,
            "schedule_name": self.schedule_name,
            "instance_id": self.instance_id,
            "instance_name": self.instance_name,
            "count": self.count,
            "valid_for_in_minutes": self.valid_for_in_minutes,
            "generated_at": export.timestamp(self.generated_at),
            "expires_at": export.timestamp(self.expires_at),
            "coupons": [
                {"id": c.id, "code": c.code, "expires_at": export.timestamp(c.expires_at)}
                for c in self.coupons
            ],
        }
        if self.link is not None and self.link_expires_at is not None:
            body["coupons_url"] = self.link
            body["coupons_url_expires_at"] = export.timestamp(self.link_expires_at)
        return body

    @property
    def zone(self) -> tzinfo:
        """The time zone its times are shown in (the schedule's, else the instance's, else UTC)."""
        return local_time.zone(self.timezone)

    @property
    def file_stem(self) -> str:
        """The attachment name without extension: the schedule and the local date and time,
        `daily-guest-passes-2026-11-25-2100`."""
        return link_service.file_stem(self.schedule_name, self.generated_at, self.zone, with_time=True)


def enqueue(run_id: str, group: NotificationGroup, *, now: datetime, session: Session) -> list[Delivery]:
    """One pending delivery per address and webhook of the group; flushed, the caller commits."""
    targets = [(EMAIL, address) for address in group.emails or []]
    targets += [(WEBHOOK, hook["url"]) for hook in group.webhooks or []]
    rows = [
        Delivery(
            run_id=run_id,
            channel=channel,
            target=target,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        for channel, target in targets
    ]
    session.add_all(rows)
    session.flush()
    return rows


def backoff(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failed attempt: 30 s, 60 s, 120 s ... at most 1 hour."""
    seconds = BACKOFF_FIRST_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, BACKOFF_CAP_SECONDS))


def send_deadline(settings: Settings) -> float:
    """Seconds one send may take in all (an SMTP exchange is several commands, each timed)."""
    return 4 * max(settings.smtp_timeout_seconds, settings.webhook_timeout_seconds) + 30


def lease_duration(settings: Settings) -> timedelta:
    """How long a claim holds a delivery: the send deadline plus time to prepare and record."""
    return timedelta(seconds=send_deadline(settings) + LEASE_MARGIN_SECONDS)


def batch_payload(
    run_id: str, *, runtime: Runtime, session: Session, now: datetime | None = None
) -> BatchPayload:
    """The batch of run `run_id` with its coupons, the instance's branding and the batch's signed 24 h
    link (`guestgate.coupon_links`)."""
    run = session.get(ScheduleRun, run_id)
    if run is None:
        raise NotFound("schedule run", run_id)
    instance = session.get(Instance, run.instance_id)
    schedule = session.get(CouponSchedule, run.schedule_id) if run.schedule_id else None
    coupons = session.scalars(select(Coupon).where(Coupon.run_id == run_id).order_by(Coupon.code)).all()
    link = batches.link(
        run,
        signer=runtime.signer,
        public_url=runtime.settings.public_url,
        now=now or utcnow(),
        session=session,
    )
    brand = link_service.branding(instance, session=session, with_logo=True) if instance else None
    zone_name = (schedule.timezone if schedule else None) or (brand.timezone if brand else None) or "UTC"
    return BatchPayload(
        run_id=run.id,
        schedule_id=schedule.id if schedule else None,
        schedule_name=schedule.name if schedule else None,
        instance_id=run.instance_id,
        instance_name=instance.name if instance else "",
        accent_color=brand.accent_color if brand else DEFAULT_THEME["accent_color"],
        count=run.count,
        valid_for_in_minutes=run.valid_for_in_minutes,
        generated_at=run.ran_at,
        expires_at=run.ran_at + timedelta(minutes=run.valid_for_in_minutes),
        coupons=tuple(BatchCoupon(c.id, c.code, c.expires_at, c.created_at, c.plan) for c in coupons),
        link=link.url,
        link_expires_at=link.expires_at,
        timezone=zone_name,
        locale=brand.locale if brand else "en",
        network_name=brand.network_name if brand else None,
        logo=brand.logo if brand else None,
    )


def render_pdf(batch: BatchPayload, *, public_url: str) -> bytes:
    """The batch's printable cards; each QR code opens the portal with its code filled in."""
    return export.to_pdf(
        batch.coupons,
        instance_name=batch.instance_name,
        accent_color=batch.accent_color,
        portal_url=export.portal_url(public_url, batch.instance_id),
        words=Words(batch.locale),
        zone=batch.zone,
        network_name=batch.network_name,
        logo=batch.logo,
    )


def deliver_due_sync(*, runtime: Runtime, now: datetime, limit: int = 50) -> DeliveryReport:
    """`deliver_due` for callers without an event loop."""
    return asyncio.run(deliver_due(runtime=runtime, now=now, limit=limit))


async def deliver_due(*, runtime: Runtime, now: datetime, limit: int = 50) -> DeliveryReport:
    """Send up to `limit` due deliveries; never raises (failures are recorded and retried)."""
    report = DeliveryReport()
    started = time.monotonic()
    client: httpx2.AsyncClient | None = None
    try:
        report += await asyncio.to_thread(_give_up_abandoned, runtime, now)
        remaining = limit
        while remaining > 0:
            # `now` moves on with the real time spent (whole seconds), so the leases of later rounds
            # are measured from when they begin.
            at = now + timedelta(seconds=int(time.monotonic() - started))
            jobs = await asyncio.to_thread(_claim, runtime, at, min(remaining, CONCURRENCY))
            if not jobs:
                break
            remaining -= len(jobs)
            works = await asyncio.to_thread(_prepare, runtime, jobs, at)
            if client is None and any(w.job.channel == WEBHOOK for w in works):
                client = httpx2.AsyncClient(transport=runtime.outbound.async_transport("webhook"))
            outcomes = await asyncio.gather(*(_send(w, runtime.settings, client, at) for w in works))
            settled = await asyncio.to_thread(_settle, runtime, list(zip(works, outcomes, strict=True)), at)
            report += settled
    except Exception:  # the database or a bug: logged, and the next tick tries again
        log.exception("deliveries_failed")
    finally:
        if client is not None:
            await client.aclose()
    return report


@dataclass(frozen=True)
class _Job:
    delivery_id: str
    run_id: str
    channel: str
    target: str
    attempt: int


@dataclass
class _Work:
    job: _Job
    message: EmailMessage | None = None
    body: bytes | None = None
    secret: str | None = None
    error: str | None = None
    permanent: bool = False


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0
    permanent: bool = False


def _give_up_abandoned(runtime: Runtime, now: datetime) -> DeliveryReport:
    """Fail due deliveries out of attempts (a worker died in the last one, or the limit was lowered)."""
    max_attempts = runtime.settings.delivery_max_attempts
    reasons = {
        SENDING: "the last allowed attempt did not finish (the worker stopped while sending)",
        PENDING: f"gave up: delivery_max_attempts ({max_attempts}) reached",
    }
    count = 0
    with runtime.sessions() as session:
        # A read first: the common case finds nothing and then takes no write lock (SQLite) at all.
        found = set(
            session.scalars(
                select(Delivery.status)
                .where(
                    Delivery.status.in_(tuple(reasons)),
                    Delivery.next_attempt_at <= now,
                    Delivery.attempts >= max_attempts,
                )
                .distinct()
            )
        )
        session.rollback()
        for status, reason in reasons.items():
            if status not in found:
                continue
            result = session.execute(
                update(Delivery)
                .where(
                    Delivery.status == status,
                    Delivery.next_attempt_at <= now,
                    Delivery.attempts >= max_attempts,
                )
                .values(status=FAILED, last_error=reason, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            session.commit()
            count += result.rowcount  # type: ignore[attr-defined]
    if count:
        log.error("deliveries_abandoned", count=count)
    return DeliveryReport(failed=count)


def _claim(runtime: Runtime, now: datetime, limit: int) -> list[_Job]:
    """Claim up to `limit` due deliveries for this worker, oldest due first."""
    max_attempts = runtime.settings.delivery_max_attempts
    due = (Delivery.status.in_((PENDING, SENDING)), Delivery.next_attempt_at <= now)
    lease_end = now + lease_duration(runtime.settings)
    claimed: list[_Job] = []
    with runtime.sessions() as session:
        candidates = session.scalars(
            select(Delivery.id)
            .where(*due, Delivery.attempts < max_attempts)
            .order_by(Delivery.next_attempt_at, Delivery.id)
            .limit(limit * 2)
        ).all()
        # End the read before writing: on SQLite a write inside an older read snapshot fails at once.
        session.rollback()
        for delivery_id in candidates:
            # One short transaction per claim, the UPDATE first: it waits for a competing claim of the
            # same row and then finds it no longer due (rowcount 0).
            result = session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, *due, Delivery.attempts < max_attempts)
                .values(
                    status=SENDING,
                    attempts=Delivery.attempts + 1,
                    next_attempt_at=lease_end,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                row = session.execute(
                    select(Delivery.run_id, Delivery.channel, Delivery.target, Delivery.attempts).where(
                        Delivery.id == delivery_id
                    )
                ).one()
                claimed.append(_Job(delivery_id, row.run_id, row.channel, row.target, row.attempts))
            session.commit()
            if len(claimed) == limit:
                break
    return claimed


def _prepare(runtime: Runtime, jobs: Iterable[_Job], now: datetime) -> list[_Work]:
    """Build each claimed delivery's message; a batch's payload and files are built once."""
    works: list[_Work] = []
    batches: dict[str, BatchPayload] = {}
    files: dict[str, tuple[str, bytes]] = {}
    with runtime.sessions() as session:
        for job in jobs:
            work = _Work(job)
            works.append(work)
            try:
                batch = batches.get(job.run_id)
                if batch is None:
                    batch = batches[job.run_id] = batch_payload(
                        job.run_id, runtime=runtime, session=session, now=now
                    )
                if job.channel == EMAIL:
                    if job.run_id not in files:
                        files[job.run_id] = (
                            export.to_csv(batch.coupons, zone=batch.zone),
                            render_pdf(batch, public_url=runtime.settings.public_url),
                        )
                    csv_text, pdf = files[job.run_id]
                    work.message = email.build_message(
                        batch,
                        to=job.target,
                        sender=runtime.settings.smtp_from,
                        delivery_id=job.delivery_id,
                        now=now,
                        csv_text=csv_text,
                        pdf=pdf,
                        file_stem=batch.file_stem,
                    )
                elif job.channel == WEBHOOK:
                    work.secret = _webhook_secret(job.run_id, job.target, runtime=runtime, session=session)
                    if work.secret is None:
                        work.error = (
                            "no signing secret: the URL is no longer a webhook of a notification group"
                        )
                        work.permanent = True
                    work.body = webhooks.body_of(batch.to_json())
                else:
                    work.error = f"unknown channel {job.channel!r}"
                    work.permanent = True
            except Exception as exc:  # recorded as a failed attempt and retried; never blocks the others
                log.exception("delivery_prepare_failed", delivery_id=job.delivery_id)
                work.error = f"could not prepare the message: {type(exc).__name__}: {exc}"
    return works


def _webhook_secret(run_id: str, url: str, *, runtime: Runtime, session: Session) -> str | None:
    """The signing secret of `url`: from the schedule's group, else the one secret the org has for it."""
    run = session.get(ScheduleRun, run_id)
    if run is None:
        return None
    schedule = session.get(CouponSchedule, run.schedule_id) if run.schedule_id else None
    if schedule is not None:
        group = session.get(NotificationGroup, schedule.notification_group_id)
        for hook in (group.webhooks if group else None) or []:
            if hook.get("url") == url and hook.get("secret_sealed"):
                return runtime.box.open(hook["secret_sealed"])
    # The schedule was deleted (or its group changed) after the run: a batch's delivery lives on, so
    # look the URL up among the org's groups, and sign only if that gives exactly one secret.
    found = {
        runtime.box.open(hook["secret_sealed"])
        for group in session.scalars(select(NotificationGroup).where(NotificationGroup.org_id == run.org_id))
        for hook in group.webhooks or []
        if hook.get("url") == url and hook.get("secret_sealed")
    }
    return found.pop() if len(found) == 1 else None


async def _send(
    work: _Work, settings: Settings, client: httpx2.AsyncClient | None, now: datetime
) -> _Outcome:
    """One attempt of one delivery; every failure becomes an outcome, none is raised."""
    if work.error is not None:
        return _Outcome(False, error=work.error, permanent=work.permanent)
    started = time.monotonic()
    status: int | None = None
    try:
        async with asyncio.timeout(send_deadline(settings)):
            if work.message is not None:
                status = await email.send(
                    work.message, settings=settings, delivery_id=work.job.delivery_id, now=now
                )
            else:
                assert work.body is not None
                assert work.secret is not None
                assert client is not None
                status = await webhooks.post(
                    work.job.target,
                    work.body,
                    secret=work.secret,
                    delivery_id=work.job.delivery_id,
                    timeout=settings.webhook_timeout_seconds,
                    client=client,
                )
    except (email.EmailFailed, webhooks.WebhookFailed) as exc:
        return _Outcome(False, exc.status_code, str(exc), _ms_since(started))
    except TimeoutError:
        error = f"gave up after {send_deadline(settings):g} s"
        return _Outcome(False, None, error, _ms_since(started))
    except Exception as exc:
        log.exception("delivery_send_crashed", delivery_id=work.job.delivery_id)
        return _Outcome(False, None, f"{type(exc).__name__}: {exc}", _ms_since(started))
    return _Outcome(True, status, None, _ms_since(started))


def _settle(runtime: Runtime, results: list[tuple[_Work, _Outcome]], now: datetime) -> DeliveryReport:
    """Record every attempt and move each delivery to sent, pending (with backoff) or failed."""
    max_attempts = runtime.settings.delivery_max_attempts
    password = runtime.settings.smtp_password
    smtp_password = password.get_secret_value() if password else None
    sent = retried = failed = 0
    with runtime.sessions() as session:
        for work, outcome in results:
            job = work.job
            error = _clean(outcome.error, secrets=(work.secret, smtp_password))
            session.add(
                DeliveryAttempt(
                    delivery_id=job.delivery_id,
                    attempt=job.attempt,
                    ok=outcome.ok,
                    status_code=outcome.status_code,
                    error=error,
                    duration_ms=outcome.duration_ms,
                    at=now,
                )
            )
            values: dict[str, Any] = {"updated_at": now, "last_error": error}
            if outcome.ok:
                values["status"] = SENT
            elif outcome.permanent or job.attempt >= max_attempts:
                values["status"] = FAILED
            else:
                values["status"] = PENDING
                values["next_attempt_at"] = now + backoff(job.attempt)
            # Fenced by the attempt number: if this worker's lease ran out and another worker claimed
            # the delivery meanwhile, that worker's outcome stands.
            result = session.execute(
                update(Delivery)
                .where(
                    Delivery.id == job.delivery_id,
                    Delivery.status == SENDING,
                    Delivery.attempts == job.attempt,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            session.commit()
            if result.rowcount != 1:  # type: ignore[attr-defined]
                log.warning("delivery_lease_lost", delivery_id=job.delivery_id, attempt=job.attempt)
                continue
            fields = {
                "delivery_id": job.delivery_id,
                "run_id": job.run_id,
                "channel": job.channel,
                "attempt": job.attempt,
            }
            metrics.delivery_attempted(job.channel, _RESULTS[values["status"]])
            if values["status"] == SENT:
                sent += 1
                log.info("delivery_sent", status_code=outcome.status_code, **fields)
            elif values["status"] == FAILED:
                failed += 1
                log.error("delivery_failed", error=error, **fields)
            else:
                retried += 1
                log.warning(
                    "delivery_retry_scheduled",
                    error=error,
                    next_attempt_at=export.timestamp(values["next_attempt_at"]),
                    **fields,
                )
    return DeliveryReport(sent, retried, failed)


def _clean(error: str | None, *, secrets: Iterable[str | None]) -> str | None:
    """The error text for the log, with any secret blanked out and its length bounded."""
    if error is None:
        return None
    for secret in secrets:
        if secret:
            error = error.replace(secret, "[redacted]")
    return error if len(error) <= ERROR_MAX_CHARS else error[: ERROR_MAX_CHARS - 3] + "..."


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
