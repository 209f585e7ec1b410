"""The outbox: delivery rows and every move of their status (`guestgate.notifications.states`).

- Enqueue: one `pending` row per target, in the run's own transaction.
- Claim: a conditional UPDATE (pending or expired-lease sending -> sending, WHERE id=? AND the
  row is still due), checked by rowcount: on SQLite and PostgreSQL alike, two workers never hold
  the same delivery. The claim sets `next_attempt_at` to the end of a lease; a worker that dies
  mid-send leaves a `sending` row that becomes claimable again when the lease runs out.
- Settle: record a `DeliveryAttempt` and move the row to sent; or pending again with exponential
  backoff (30 s doubling, capped at 1 h); or failed after `delivery_max_attempts`. Settling is
  fenced by the attempt number, so a worker whose lease ran out cannot overwrite the next
  worker's outcome.
- Give up: due rows already out of attempts go to failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from guestgate.config import Settings
from guestgate.coupons import export
from guestgate.notifications.models import Delivery, DeliveryAttempt, NotificationGroup
from guestgate.notifications.states import (
    METRIC_RESULTS,
    Channel,
    DeliveryStatus,
    after_attempt,
    sources_of,
)
from guestgate.ops import metrics
from guestgate.runtime import Runtime

log = structlog.get_logger(__name__)

BACKOFF_FIRST_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
# Time beyond the send deadline a lease allows for preparing the message and recording the result.
LEASE_MARGIN_SECONDS = 120


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
class Claim:
    """A delivery this worker holds for its `attempt`-th attempt (until the lease ends)."""

    delivery_id: str
    run_id: str
    channel: str
    target: str
    attempt: int


@dataclass(frozen=True)
class Outcome:
    """How one attempt went; `error` is already fit for the log (secrets blanked, length bounded)."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: int = 0
    permanent: bool = False


def enqueue(run_id: str, group: NotificationGroup, *, now: datetime, session: Session) -> list[Delivery]:
    """One pending delivery per address and webhook of the group; flushed, the caller commits."""
    targets = [(Channel.EMAIL, address) for address in group.emails or []]
    targets += [(Channel.WEBHOOK, hook["url"]) for hook in group.webhooks or []]
    rows = [
        Delivery(
            run_id=run_id,
            channel=channel,
            target=target,
            status=DeliveryStatus.PENDING,
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


def give_up_abandoned(runtime: Runtime, now: datetime) -> DeliveryReport:
    """Fail due deliveries out of attempts (a worker died in the last one, or the limit was lowered)."""
    max_attempts = runtime.settings.delivery_max_attempts
    reasons = {
        DeliveryStatus.SENDING: "the last allowed attempt did not finish (the worker stopped while sending)",
        DeliveryStatus.PENDING: f"gave up: delivery_max_attempts ({max_attempts}) reached",
    }
    count = 0
    with runtime.sessions() as session:
        # A read first: the common case finds nothing and then takes no write lock (SQLite) at all.
        found = set(
            session.scalars(
                select(Delivery.status)
                .where(
                    Delivery.status.in_(sources_of(DeliveryStatus.FAILED)),
                    Delivery.next_attempt_at <= now,
                    Delivery.attempts >= max_attempts,
                )
                .distinct()
            )
        )
        session.rollback()
        for status in sources_of(DeliveryStatus.FAILED):
            if status not in found:
                continue
            result = session.execute(
                update(Delivery)
                .where(
                    Delivery.status == status,
                    Delivery.next_attempt_at <= now,
                    Delivery.attempts >= max_attempts,
                )
                .values(status=DeliveryStatus.FAILED, last_error=reasons[status], updated_at=now)
                .execution_options(synchronize_session=False)
            )
            session.commit()
            count += result.rowcount  # type: ignore[attr-defined]
    if count:
        log.error("deliveries_abandoned", count=count)
    return DeliveryReport(failed=count)


def claim(runtime: Runtime, now: datetime, limit: int) -> list[Claim]:
    """Claim up to `limit` due deliveries for this worker, oldest due first."""
    max_attempts = runtime.settings.delivery_max_attempts
    due = (Delivery.status.in_(sources_of(DeliveryStatus.SENDING)), Delivery.next_attempt_at <= now)
    lease_end = now + lease_duration(runtime.settings)
    claimed: list[Claim] = []
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
                    status=DeliveryStatus.SENDING,
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
                claimed.append(Claim(delivery_id, row.run_id, row.channel, row.target, row.attempts))
            session.commit()
            if len(claimed) == limit:
                break
    return claimed


def settle(runtime: Runtime, results: Sequence[tuple[Claim, Outcome]], now: datetime) -> DeliveryReport:
    """Record every attempt and move each delivery to sent, pending (with backoff) or failed."""
    max_attempts = runtime.settings.delivery_max_attempts
    sent = retried = failed = 0
    with runtime.sessions() as session:
        for job, outcome in results:
            session.add(
                DeliveryAttempt(
                    delivery_id=job.delivery_id,
                    attempt=job.attempt,
                    ok=outcome.ok,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                    at=now,
                )
            )
            status = after_attempt(
                ok=outcome.ok, permanent=outcome.permanent, attempt=job.attempt, max_attempts=max_attempts
            )
            next_attempt_at = now + backoff(job.attempt) if status == DeliveryStatus.PENDING else None
            values: dict[str, object] = {"updated_at": now, "last_error": outcome.error, "status": status}
            if next_attempt_at is not None:
                values["next_attempt_at"] = next_attempt_at
            # Fenced by the attempt number: if this worker's lease ran out and another worker claimed
            # the delivery meanwhile, that worker's outcome stands.
            result = session.execute(
                update(Delivery)
                .where(
                    Delivery.id == job.delivery_id,
                    Delivery.status == DeliveryStatus.SENDING,
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
            metrics.delivery_attempted(job.channel, METRIC_RESULTS[status])
            if status == DeliveryStatus.SENT:
                sent += 1
                log.info("delivery_sent", status_code=outcome.status_code, **fields)
            elif status == DeliveryStatus.FAILED:
                failed += 1
                log.error("delivery_failed", error=outcome.error, **fields)
            else:
                assert next_attempt_at is not None
                retried += 1
                log.warning(
                    "delivery_retry_scheduled",
                    error=outcome.error,
                    next_attempt_at=export.timestamp(next_attempt_at),
                    **fields,
                )
    return DeliveryReport(sent, retried, failed)
