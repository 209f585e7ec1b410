"""The driver-independent rules: what a sync changes, addresses, the walled garden, the error tree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from guestgate.gateways.base import (
    GatewayError,
    GatewayMisconfigured,
    GatewayRejected,
    GatewayUnreachable,
    GuestAccess,
    HeldGuest,
    active_guests,
    normalize_ip,
    plan_sync,
    remaining_seconds,
    session_of,
    session_tag,
    split_garden,
)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def guest(session: str, ip: str, minutes: float) -> GuestAccess:
    return GuestAccess(session_id=session, ip=ip, mac=None, until=NOW + timedelta(minutes=minutes))


def held(session: str, ip: str, minutes: float | None) -> HeldGuest:
    remaining = timedelta(minutes=minutes) if minutes is not None else None
    return HeldGuest(session_id=session, ip=ip, remaining=remaining, ref=f"ref-{session}")


def test_plan_adds_a_desired_guest_the_gateway_lacks() -> None:
    plan = plan_sync([], [guest("s1", "10.0.0.5", 60)], now=NOW)
    assert [g.session_id for g in plan.add] == ["s1"]
    assert plan.remove == []
    assert plan.update == []


def test_plan_removes_a_held_guest_that_is_not_desired() -> None:
    plan = plan_sync([held("gone", "10.0.0.6", 30)], [], now=NOW)
    assert [h.session_id for h in plan.remove] == ["gone"]
    assert plan.add == []


def test_plan_leaves_a_matching_entry_alone_within_the_drift_tolerance() -> None:
    plan = plan_sync([held("s1", "10.0.0.5", 60 - 4 / 60)], [guest("s1", "10.0.0.5", 60)], now=NOW)
    assert (plan.add, plan.update, plan.remove) == ([], [], [])


def test_plan_rewrites_an_entry_whose_timeout_drifted_beyond_the_tolerance() -> None:
    plan = plan_sync([held("s1", "10.0.0.5", 30)], [guest("s1", "10.0.0.5", 60)], now=NOW)
    assert [(h.ref, g.session_id) for h, g in plan.update] == [("ref-s1", "s1")]
    assert plan.add == []


def test_plan_rewrites_an_entry_that_outlives_the_session() -> None:
    plan = plan_sync([held("s1", "10.0.0.5", 120)], [guest("s1", "10.0.0.5", 60)], now=NOW)
    assert len(plan.update) == 1


def test_plan_rewrites_an_entry_of_another_session_on_the_same_address() -> None:
    plan = plan_sync([held("old", "10.0.0.5", 60)], [guest("new", "10.0.0.5", 60)], now=NOW)
    assert [(h.session_id, g.session_id) for h, g in plan.update] == [("old", "new")]
    assert plan.remove == []


def test_plan_rewrites_an_entry_without_a_timeout() -> None:
    plan = plan_sync([held("s1", "10.0.0.5", None)], [guest("s1", "10.0.0.5", 60)], now=NOW)
    assert len(plan.update) == 1


def test_plan_drops_an_expired_session_even_when_the_gateway_still_holds_it() -> None:
    plan = plan_sync([held("s1", "10.0.0.5", 10)], [guest("s1", "10.0.0.5", 0)], now=NOW)
    assert [h.session_id for h in plan.remove] == ["s1"]
    assert plan.add == []


def test_plan_keeps_the_later_ending_session_of_one_address() -> None:
    plan = plan_sync([], [guest("early", "10.0.0.5", 10), guest("late", "10.0.0.5/32", 50)], now=NOW)
    assert [g.session_id for g in plan.add] == ["late"]


def test_plan_does_not_add_an_address_held_by_a_foreign_entry() -> None:
    plan = plan_sync([], [guest("s1", "10.0.0.5", 60)], now=NOW, foreign=["10.0.0.5"])
    assert plan.add == []


def test_plan_matches_addresses_in_any_spelling() -> None:
    plan = plan_sync([held("s1", "2001:db8::5/128", 60)], [guest("s1", "2001:DB8:0::5", 60)], now=NOW)
    assert (plan.add, plan.update, plan.remove) == ([], [], [])


def test_active_guests_excludes_sessions_ending_at_now() -> None:
    assert active_guests([guest("s1", "10.0.0.5", 0)], now=NOW) == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10.0.0.5", "10.0.0.5"),
        ("10.0.0.5/32", "10.0.0.5"),
        (" 10.0.0.0/24 ", "10.0.0.0/24"),
        ("10.0.0.7/24", "10.0.0.0/24"),
        ("2001:DB8::5", "2001:db8::5"),
        ("2001:db8::5/128", "2001:db8::5"),
        ("2001:db8::/48", "2001:db8::/48"),
    ],
)
def test_normalize_ip_gives_one_spelling_per_address(value: str, expected: str) -> None:
    assert normalize_ip(value) == expected


def test_remaining_seconds_rounds_up_and_is_at_least_one() -> None:
    assert remaining_seconds(NOW + timedelta(seconds=10.2), now=NOW) == 11
    assert remaining_seconds(NOW + timedelta(seconds=10), now=NOW) == 10
    assert remaining_seconds(NOW - timedelta(seconds=5), now=NOW) == 1


def test_split_garden_separates_types_and_merges_overlaps() -> None:
    always, auth = split_garden(
        [
            ("192.0.2.0/24", "captive-portal"),
            ("192.0.2.7", "captive-portal"),
            ("198.51.100.7/32", "captive-auth"),
            ("203.0.113.9", None),
            ("2001:db8::1", "captive-portal"),
        ]
    )
    assert always == ["192.0.2.0/24", "2001:db8::1"]
    assert auth == ["198.51.100.7", "203.0.113.9"]


def test_session_tags_round_trip_and_foreign_comments_are_not_sessions() -> None:
    assert session_tag("abc") == "guestgate:abc"
    assert session_of("guestgate:abc") == "abc"
    assert session_of("guestgate:") is None
    assert session_of("vip printer") is None
    assert session_of(None) is None


@pytest.mark.parametrize("error", [GatewayUnreachable, GatewayRejected, GatewayMisconfigured])
def test_every_driver_error_is_a_gateway_error(error: type[GatewayError]) -> None:
    assert issubclass(error, GatewayError)
    assert not issubclass(GatewayError, error)
