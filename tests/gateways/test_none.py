"""The none driver records what it is told and says it does not enforce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from guestgate.gateways.base import GuestAccess, SyncResult
from guestgate.gateways.none import NoneGateway

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def make() -> NoneGateway:
    return NoneGateway(clock=lambda: NOW)


def test_none_health_reports_not_enforcing() -> None:
    health = make().health()
    assert health.state == "not_enforcing"
    assert "not controlled" in health.detail


def test_none_records_allowed_guests_with_their_remaining_time() -> None:
    gateway = make()
    gateway.allow(GuestAccess("s1", "10.0.0.5", "aa:bb:cc:dd:ee:ff", NOW + timedelta(hours=1)))
    [entry] = gateway.list_allowed()
    assert (entry.session_id, entry.ip, entry.remaining) == ("s1", "10.0.0.5", timedelta(hours=1))
    assert gateway.calls[0][0] == "allow"


def test_none_revoke_of_another_session_keeps_the_entry() -> None:
    gateway = make()
    gateway.allow(GuestAccess("s1", "10.0.0.5", None, NOW + timedelta(hours=1)))
    gateway.revoke("other", "10.0.0.5")
    assert [e.session_id for e in gateway.list_allowed()] == ["s1"]
    gateway.revoke("s1", "10.0.0.5")
    assert gateway.list_allowed() == []


def test_none_forgets_guests_whose_time_ran_out() -> None:
    gateway = make()
    gateway.allow(GuestAccess("s1", "10.0.0.5", None, NOW))
    assert gateway.list_allowed() == []


def test_none_records_walled_garden_and_auth_windows() -> None:
    gateway = make()
    gateway.replace_walled_garden([("192.0.2.0/24", "captive-portal"), ("198.51.100.1", "captive-auth")])
    gateway.open_auth_window("10.0.0.5", 120)
    assert gateway.garden_always == ["192.0.2.0/24"]
    assert gateway.garden_auth == ["198.51.100.1"]
    assert gateway.auth_windows == {"10.0.0.5": NOW + timedelta(seconds=120)}


def test_none_sync_through_the_generic_implementation_converges() -> None:
    gateway = make()
    gateway.allow(GuestAccess("stale", "10.0.0.9", None, NOW + timedelta(hours=1)))
    desired = [GuestAccess("s1", "10.0.0.5", None, NOW + timedelta(hours=1))]
    assert gateway.sync(desired, [], now=NOW) == SyncResult(added=1, removed=1, updated=0)
    assert gateway.sync(desired, [], now=NOW) == SyncResult(added=0, removed=0, updated=0)
    assert [e.session_id for e in gateway.list_allowed()] == ["s1"]
