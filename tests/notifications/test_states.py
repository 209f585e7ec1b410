"""The delivery state machine (guestgate.notifications.states): the allowed moves and the settle rule."""

from __future__ import annotations

import pytest

from guestgate.notifications.states import (
    TRANSITIONS,
    DeliveryStatus,
    TransitionRefused,
    after_attempt,
    can_move,
    check_move,
    sources_of,
)

PENDING, SENDING, SENT, FAILED = (
    DeliveryStatus.PENDING,
    DeliveryStatus.SENDING,
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
)


def test_the_statuses_are_the_strings_the_deliveries_table_holds() -> None:
    assert [str(s) for s in DeliveryStatus] == ["pending", "sending", "sent", "failed"]
    assert DeliveryStatus("sending") is SENDING


def test_every_status_has_its_row_in_the_transition_table() -> None:
    assert set(TRANSITIONS) == set(DeliveryStatus)


@pytest.mark.parametrize("final", [SENT, FAILED])
def test_sent_and_failed_are_final(final: DeliveryStatus) -> None:
    assert not any(can_move(final, target) for target in DeliveryStatus)


@pytest.mark.parametrize(
    ("target", "sources"),
    [
        (SENDING, (PENDING, SENDING)),  # a claim: a due pending row, or a sending row whose lease ran out
        (SENT, (SENDING,)),
        (PENDING, (SENDING,)),  # only a retry goes back to pending
        (FAILED, (PENDING, SENDING)),  # settled, or given up when out of attempts
    ],
)
def test_a_status_is_reached_only_from_its_sources(
    target: DeliveryStatus, sources: tuple[DeliveryStatus, ...]
) -> None:
    assert sources_of(target) == sources


@pytest.mark.parametrize(("source", "target"), [(PENDING, SENT), (SENT, PENDING), (FAILED, SENDING)])
def test_a_move_outside_the_table_is_refused(source: DeliveryStatus, target: DeliveryStatus) -> None:
    with pytest.raises(TransitionRefused, match=f"from {source} to {target}"):
        check_move(source, target)


@pytest.mark.parametrize(
    ("ok", "permanent", "attempt", "max_attempts", "expected"),
    [
        (True, False, 1, 3, SENT),
        (True, False, 3, 3, SENT),  # the last attempt that works is a success
        (False, False, 1, 3, PENDING),
        (False, False, 2, 3, PENDING),
        (False, False, 3, 3, FAILED),  # out of attempts
        (False, False, 4, 3, FAILED),  # the limit was lowered meanwhile
        (False, True, 1, 3, FAILED),  # permanent: not retried
    ],
)
def test_after_an_attempt_a_delivery_is_sent_retried_or_failed(
    ok: bool, permanent: bool, attempt: int, max_attempts: int, expected: DeliveryStatus
) -> None:
    assert after_attempt(ok=ok, permanent=permanent, attempt=attempt, max_attempts=max_attempts) is expected
