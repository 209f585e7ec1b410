"""The sending job: delivery of coupon batches to a schedule's notification group (contract §6.3).

A run enqueues one delivery per e-mail address and per webhook URL (`outbox.enqueue`), in the
run's own transaction, so a batch and its deliveries commit together. `deliver_due` then works
them off in rounds: claim (`outbox.claim`), build each claimed delivery's job (an `EmailJob` with
its message, a `WebhookJob` with its signed body, or `Unsendable` with the reason), send them all
at once, each bounded by a deadline shorter than the lease, and settle (`outbox.settle`).

A failure is recorded, never raised: it does not touch the batch's coupons, and it does not stop
other deliveries or the next runs. Receivers can drop the rare repeat (a worker killed after
sending but before recording) by the delivery id each message carries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from email.message import EmailMessage

import httpx2
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from guestgate.config import Settings
from guestgate.coupons import export
from guestgate.db import new_id
from guestgate.notifications import email, outbox, payload, webhooks
from guestgate.notifications import service as group_service
from guestgate.notifications.models import NotificationGroup
from guestgate.notifications.outbox import Claim, DeliveryReport, Outcome
from guestgate.notifications.states import Channel
from guestgate.runtime import Runtime
from guestgate.schedules.models import CouponSchedule, ScheduleRun

log = structlog.get_logger(__name__)

# Deliveries sent at once by one worker; every claimed delivery is sent right away (none waits
# in a queue while its lease runs down).
CONCURRENCY = 10
ERROR_MAX_CHARS = 500


@dataclasses.dataclass(frozen=True)
class EmailJob:
    """A claimed e-mail delivery with its message built."""

    claim: Claim
    message: EmailMessage


@dataclasses.dataclass(frozen=True)
class WebhookJob:
    """A claimed webhook delivery with its body and the secret that signs it."""

    claim: Claim
    body: bytes
    secret: str


@dataclasses.dataclass(frozen=True)
class Unsendable:
    """A claimed delivery whose message could not be built; `permanent` ones are not retried."""

    claim: Claim
    error: str
    permanent: bool = False


Job = EmailJob | WebhookJob | Unsendable


def deliver_due_sync(*, runtime: Runtime, now: datetime, limit: int = 50) -> DeliveryReport:
    """`deliver_due` for callers without an event loop."""
    return asyncio.run(deliver_due(runtime=runtime, now=now, limit=limit))


async def deliver_due(*, runtime: Runtime, now: datetime, limit: int = 50) -> DeliveryReport:
    """Send up to `limit` due deliveries; never raises (failures are recorded and retried)."""
    report = DeliveryReport()
    started = time.monotonic()
    client: httpx2.AsyncClient | None = None
    try:
        report += await asyncio.to_thread(outbox.give_up_abandoned, runtime, now)
        remaining = limit
        while remaining > 0:
            # `now` moves on with the real time spent (whole seconds), so the leases of later rounds
            # are measured from when they begin.
            at = now + timedelta(seconds=int(time.monotonic() - started))
            claims = await asyncio.to_thread(outbox.claim, runtime, at, min(remaining, CONCURRENCY))
            if not claims:
                break
            remaining -= len(claims)
            jobs = await asyncio.to_thread(_prepare, runtime, claims, at)
            if client is None and any(isinstance(job, WebhookJob) for job in jobs):
                client = httpx2.AsyncClient(transport=runtime.outbound.async_transport("webhook"))
            outcomes = await asyncio.gather(*(_send(job, runtime.settings, client, at) for job in jobs))
            results = [
                (job.claim, _redacted(outcome, job, runtime.settings))
                for job, outcome in zip(jobs, outcomes, strict=True)
            ]
            report += await asyncio.to_thread(outbox.settle, runtime, results, at)
    except Exception:  # the database or a bug: logged, and the next tick tries again
        log.exception("deliveries_failed")
    finally:
        if client is not None:
            await client.aclose()
    return report


def _prepare(runtime: Runtime, claims: Iterable[Claim], now: datetime) -> list[Job]:
    """Build each claimed delivery's job; a batch's payload and files are built once."""
    jobs: list[Job] = []
    batches: dict[str, payload.BatchPayload] = {}
    files: dict[str, tuple[str, bytes]] = {}
    with runtime.sessions() as session:
        for claim in claims:
            try:
                batch = batches.get(claim.run_id)
                if batch is None:
                    batch = batches[claim.run_id] = payload.batch_payload(
                        claim.run_id, runtime=runtime, session=session, now=now
                    )
                jobs.append(_job(claim, batch, files, runtime=runtime, session=session, now=now))
            except Exception as exc:  # recorded as a failed attempt and retried; never blocks the others
                log.exception("delivery_prepare_failed", delivery_id=claim.delivery_id)
                jobs.append(Unsendable(claim, f"could not prepare the message: {type(exc).__name__}: {exc}"))
    return jobs


def _job(
    claim: Claim,
    batch: payload.BatchPayload,
    files: dict[str, tuple[str, bytes]],
    *,
    runtime: Runtime,
    session: Session,
    now: datetime,
) -> Job:
    if claim.channel == Channel.EMAIL:
        if claim.run_id not in files:
            files[claim.run_id] = payload.attachments(batch, public_url=runtime.settings.public_url)
        csv_text, pdf = files[claim.run_id]
        message = email.build_message(
            batch,
            to=claim.target,
            sender=runtime.settings.smtp_from,
            delivery_id=claim.delivery_id,
            now=now,
            csv_text=csv_text,
            pdf=pdf,
            file_stem=batch.file_stem,
        )
        return EmailJob(claim, message)
    if claim.channel == Channel.WEBHOOK:
        secret = _webhook_secret(claim.run_id, claim.target, runtime=runtime, session=session)
        body = webhooks.body_of(batch.to_json())
        if secret is None:
            error = "no signing secret: the URL is no longer a webhook of a notification group"
            return Unsendable(claim, error, permanent=True)
        return WebhookJob(claim, body, secret)
    return Unsendable(claim, f"unknown channel {claim.channel!r}", permanent=True)


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


async def _send(job: Job, settings: Settings, client: httpx2.AsyncClient | None, now: datetime) -> Outcome:
    """One attempt of one delivery; every failure becomes an outcome, none is raised."""
    if isinstance(job, Unsendable):
        return Outcome(False, error=job.error, permanent=job.permanent)
    deadline = outbox.send_deadline(settings)
    started = time.monotonic()
    status: int | None = None
    try:
        async with asyncio.timeout(deadline):
            match job:
                case EmailJob():
                    status = await email.send(
                        job.message, settings=settings, delivery_id=job.claim.delivery_id, now=now
                    )
                case WebhookJob():
                    assert client is not None
                    status = await webhooks.post(
                        job.claim.target,
                        job.body,
                        secret=job.secret,
                        delivery_id=job.claim.delivery_id,
                        timeout=settings.webhook_timeout_seconds,
                        client=client,
                    )
    except (email.EmailFailed, webhooks.WebhookFailed) as exc:
        return Outcome(False, exc.status_code, str(exc), _ms_since(started))
    except TimeoutError:
        return Outcome(False, None, f"gave up after {deadline:g} s", _ms_since(started))
    except Exception as exc:
        log.exception("delivery_send_crashed", delivery_id=job.claim.delivery_id)
        return Outcome(False, None, f"{type(exc).__name__}: {exc}", _ms_since(started))
    return Outcome(True, status, None, _ms_since(started))


@dataclasses.dataclass(frozen=True)
class TestOutcome:
    """What a notification group's test message did, in our words (never the receiver's)."""

    ok: bool
    words: str


async def send_test(
    group: NotificationGroup, *, channel: str, target: str, runtime: Runtime, now: datetime
) -> TestOutcome:
    """Send a test message to one of the group's targets, as a delivery would send it.

    The e-mail goes through `email.send` (the SMTP server, or the outbox without one), the
    webhook through `webhooks.post` on the outbound policy's transport, signed with the stored
    secret of that URL, with the event `notifications.test`. Only a target the group holds can
    be sent to. A failure is told by its status code or what failed: a receiver's words (an SMTP
    reply text, a response body) are never repeated.
    """
    settings = runtime.settings
    delivery_id = new_id()
    started = time.monotonic()
    deadline = outbox.send_deadline(settings)
    try:
        async with asyncio.timeout(deadline):
            if channel == Channel.EMAIL and target in (group.emails or []):
                message = email.build_test_message(
                    group_name=group.name,
                    to=target,
                    sender=settings.smtp_from,
                    delivery_id=delivery_id,
                    now=now,
                )
                status = await email.send(message, settings=settings, delivery_id=delivery_id, now=now)
                if status is None:
                    return TestOutcome(
                        True,
                        f"No SMTP server is set up: the test message to {target} was written to the outbox folder.",
                    )
                return TestOutcome(
                    True, f"The SMTP server accepted the test message to {target} (reply code {status})."
                )
            secrets = dict(group_service.webhook_targets(group, box=runtime.box))
            if channel == Channel.WEBHOOK and target in secrets:
                body = webhooks.body_of(
                    {
                        "event": webhooks.TEST_EVENT,
                        "notification_group_id": group.id,
                        "sent_at": export.timestamp(now),
                    }
                )
                async with httpx2.AsyncClient(transport=runtime.outbound.async_transport("webhook")) as client:
                    code = await webhooks.post(
                        target,
                        body,
                        secret=secrets[target],
                        delivery_id=delivery_id,
                        timeout=settings.webhook_timeout_seconds,
                        client=client,
                        event=webhooks.TEST_EVENT,
                    )
                return TestOutcome(True, f"The webhook answered HTTP {code}.")
    except email.EmailFailed as exc:
        if exc.status_code is not None:
            return TestOutcome(False, f"The SMTP server refused the test message (reply code {exc.status_code}).")
        cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "no answer"
        return TestOutcome(False, f"The SMTP server could not be reached ({cause}).")
    except webhooks.WebhookFailed as exc:
        return TestOutcome(False, f"The webhook failed: {exc}.")
    except TimeoutError:
        return TestOutcome(False, f"Gave up after {deadline:g} s.")
    finally:
        log.info("notification_test", group_id=group.id, channel=channel, ms=_ms_since(started))
    return TestOutcome(False, "That address or URL is not one of this group's.")


def _redacted(outcome: Outcome, job: Job, settings: Settings) -> Outcome:
    """The outcome with its error fit for the log: every secret blanked out, its length bounded."""
    if outcome.error is None:
        return outcome
    password = settings.smtp_password
    secrets = (
        job.secret if isinstance(job, WebhookJob) else None,
        password.get_secret_value() if password else None,
    )
    error = outcome.error
    for secret in secrets:
        if secret:
            error = error.replace(secret, "[redacted]")
    if len(error) > ERROR_MAX_CHARS:
        error = error[: ERROR_MAX_CHARS - 3] + "..."
    return dataclasses.replace(outcome, error=error)


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
