"""The delivery state machine: a delivery's statuses, its channels and the moves allowed between them.

    pending --claim--> sending --settle--> sent | pending (retry, with backoff) | failed
    sending --claim--> sending     (the lease ran out: another worker takes it over)
    pending | sending --give up--> failed   (out of attempts)

`sent` and `failed` are final. Every UPDATE of `deliveries.status` (`guestgate.notifications.outbox`)
takes its WHERE from `sources_of`, so a move not in `TRANSITIONS` cannot happen.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class DeliveryStatus(StrEnum):
    """Where a delivery stands (the `deliveries.status` column)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Channel(StrEnum):
    """How a delivery reaches its target (the `deliveries.channel` column)."""

    EMAIL = "email"
    WEBHOOK = "webhook"


TRANSITIONS: Mapping[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.PENDING: frozenset({DeliveryStatus.SENDING, DeliveryStatus.FAILED}),
    DeliveryStatus.SENDING: frozenset(
        {DeliveryStatus.SENDING, DeliveryStatus.SENT, DeliveryStatus.PENDING, DeliveryStatus.FAILED}
    ),
    DeliveryStatus.SENT: frozenset(),
    DeliveryStatus.FAILED: frozenset(),
}

# An attempt's result as the deliveries metric names it, by the status the attempt left.
METRIC_RESULTS: Mapping[DeliveryStatus, str] = {
    DeliveryStatus.SENT: "sent",
    DeliveryStatus.PENDING: "retry",
    DeliveryStatus.FAILED: "failed",
}


class TransitionRefused(ValueError):
    """A move the state machine does not allow (a bug in the caller, never a tenant's doing)."""


def can_move(source: DeliveryStatus, target: DeliveryStatus) -> bool:
    """True if a delivery in `source` may move to `target`."""
    return target in TRANSITIONS[source]


def sources_of(target: DeliveryStatus) -> tuple[DeliveryStatus, ...]:
    """The statuses a delivery may move to `target` from, in declaration order."""
    return tuple(status for status in DeliveryStatus if can_move(status, target))


def check_move(source: DeliveryStatus, target: DeliveryStatus) -> DeliveryStatus:
    """`target`, or TransitionRefused if a delivery in `source` may not move there."""
    if not can_move(source, target):
        raise TransitionRefused(f"a delivery cannot move from {source} to {target}")
    return target


def after_attempt(*, ok: bool, permanent: bool, attempt: int, max_attempts: int) -> DeliveryStatus:
    """The status a `sending` delivery settles in after its `attempt`-th attempt."""
    if ok:
        target = DeliveryStatus.SENT
    elif permanent or attempt >= max_attempts:
        target = DeliveryStatus.FAILED
    else:
        target = DeliveryStatus.PENDING
    return check_move(DeliveryStatus.SENDING, target)
