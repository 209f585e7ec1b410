"""The RouterOS driver against a fake RouterOS v7 REST server over HTTPS."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from guestgate.gateways.base import (
    GatewayMisconfigured,
    GatewayRejected,
    GatewayUnreachable,
    GuestAccess,
    SyncResult,
)
from guestgate.gateways.routeros import format_duration, parse_duration
from tests.gateways.fake_routeros import MENUS, FakeRouterOS, Tls, make_tls
from tests.utils.gateways import RouterOSFactory

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
V4, V6 = MENUS
ALLOWED = "guestgate-allowed"


def guest(session: str, ip: str, *, seconds: int) -> GuestAccess:
    return GuestAccess(session_id=session, ip=ip, mac=None, until=NOW + timedelta(seconds=seconds))


def allowed(router: FakeRouterOS, menu: str = V4) -> dict[str, dict[str, str]]:
    return {e["address"]: e for e in router.entries(ALLOWED, menu)}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- guests -------------------------------------------------------------------------------


def test_allow_adds_an_address_list_entry_with_timeout_and_session_comment(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    routeros().allow(guest("s1", "10.0.0.5", seconds=5405), now=NOW)
    entry = allowed(router)["10.0.0.5"]
    assert entry["timeout"] == "1h30m5s"
    assert entry["comment"] == "guestgate:s1"
    assert entry["dynamic"] == "true"
    assert entry[".id"].startswith("*")


def test_allow_of_a_listed_address_updates_the_existing_entry(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    gateway = routeros()
    gateway.allow(guest("s1", "10.0.0.5", seconds=600), now=NOW)
    gateway.allow(guest("s2", "10.0.0.5", seconds=3600), now=NOW)
    [entry] = router.entries(ALLOWED)
    assert (entry["comment"], entry["timeout"]) == ("guestgate:s2", "1h")
    # The second add was refused as a duplicate, found by list + address, and patched.
    assert [m for m, p in router.requests if p.startswith("ip/")] == ["PUT", "PUT", "GET", "PATCH"]
    # Each session got its own queue (the reconciler removes the one no longer wanted).
    assert sorted(q["comment"] for q in router.queue_entries()) == ["guestgate:s1", "guestgate:s2"]


def test_allow_leaves_an_entry_guestgate_did_not_create_alone(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    router.add(list=ALLOWED, address="10.0.0.9", comment="front desk printer")
    routeros().allow(guest("s1", "10.0.0.9", seconds=600), now=NOW)
    [entry] = router.entries(ALLOWED)
    assert entry["comment"] == "front desk printer"
    assert "timeout" not in entry


def test_revoke_removes_only_the_sessions_entry(router: FakeRouterOS, routeros: RouterOSFactory) -> None:
    gateway = routeros()
    gateway.allow(guest("s1", "10.0.0.5", seconds=600), now=NOW)
    gateway.allow(guest("s2", "10.0.0.6", seconds=600), now=NOW)
    gateway.revoke("s1", "10.0.0.5")
    assert sorted(allowed(router)) == ["10.0.0.6"]


def test_revoke_with_another_session_id_keeps_the_entry(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    gateway = routeros()
    gateway.allow(guest("new", "10.0.0.5", seconds=600), now=NOW)
    gateway.revoke("old", "10.0.0.5")
    assert allowed(router)["10.0.0.5"]["comment"] == "guestgate:new"


def test_revoke_of_an_absent_entry_does_nothing(router: FakeRouterOS, routeros: RouterOSFactory) -> None:
    routeros().revoke("s1", "10.0.0.5")
    assert router.count("DELETE") == 0


def test_list_allowed_returns_only_tagged_entries_with_their_remaining_time(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    gateway = routeros()
    gateway.allow(guest("s1", "10.0.0.5", seconds=3600), now=NOW)
    router.add(list=ALLOWED, address="10.0.0.9", comment="vip")
    router.add(list="blocklist", address="203.0.113.1", comment="guestgate:not-ours-list")
    router.clock.advance(60)
    [entry] = gateway.list_allowed()
    assert (entry.session_id, entry.ip, entry.remaining) == ("s1", "10.0.0.5", timedelta(minutes=59))


def test_entries_disappear_when_their_timeout_runs_out(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    gateway = routeros()
    gateway.allow(guest("s1", "10.0.0.5", seconds=30), now=NOW)
    router.clock.advance(31)
    assert gateway.list_allowed() == []


def test_an_ipv6_guest_goes_to_the_ipv6_address_list(router: FakeRouterOS, routeros: RouterOSFactory) -> None:
    gateway = routeros()
    gateway.allow(guest("s1", "2001:db8::5", seconds=600), now=NOW)
    gateway.allow(guest("s2", "2001:DB8::5", seconds=1200), now=NOW)
    [entry] = router.entries(ALLOWED, V6)
    assert (entry["address"], entry["comment"], entry["timeout"]) == (
        "2001:db8::5/128",
        "guestgate:s2",
        "20m",
    )
    assert [(e.session_id, e.ip) for e in gateway.list_allowed()] == [("s2", "2001:db8::5")]
    gateway.revoke("s2", "2001:db8::5")
    assert router.entries(ALLOWED, V6) == []


def test_open_auth_window_adds_a_timed_entry(router: FakeRouterOS, routeros: RouterOSFactory) -> None:
    gateway = routeros()
    gateway.open_auth_window("10.0.0.5", 300)
    gateway.open_auth_window("10.0.0.5", 120)
    [entry] = router.entries("guestgate-auth-window")
    assert (entry["address"], entry["timeout"], entry["comment"]) == (
        "10.0.0.5",
        "2m",
        "guestgate:auth-window",
    )


# -- walled garden ------------------------------------------------------------------------


def test_replace_walled_garden_fills_both_lists_and_keeps_foreign_entries(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    router.add(list="guestgate-walled-garden", address="192.0.2.200", comment="the portal, by hand")
    gateway = routeros()
    gateway.replace_walled_garden(
        [
            ("198.51.100.0/24", "captive-portal"),
            ("198.51.100.7", "captive-portal"),
            ("203.0.113.10/32", "captive-auth"),
            ("2001:db8:1::/48", None),
        ]
    )
    assert sorted(e["address"] for e in router.entries("guestgate-walled-garden")) == [
        "192.0.2.200",
        "198.51.100.0/24",
    ]
    assert [e["address"] for e in router.entries("guestgate-walled-garden-auth")] == ["203.0.113.10"]
    assert [e["address"] for e in router.entries("guestgate-walled-garden-auth", V6)] == ["2001:db8:1::/48"]

    gateway.replace_walled_garden([("203.0.113.10", "captive-portal")])
    assert sorted(e["address"] for e in router.entries("guestgate-walled-garden")) == [
        "192.0.2.200",
        "203.0.113.10",
    ]
    assert router.entries("guestgate-walled-garden-auth") == []
    assert router.entries("guestgate-walled-garden-auth", V6) == []


# -- sync: what the reconciler calls --------------------------------------------------------


def test_sync_adds_removes_and_updates_in_one_pass(router: FakeRouterOS, routeros: RouterOSFactory) -> None:
    gateway = routeros()
    gateway.allow(guest("stale", "10.0.0.7", seconds=600), now=NOW)
    gateway.allow(guest("s2", "10.0.0.6", seconds=600), now=NOW)
    desired = [guest("s1", "10.0.0.5", seconds=3600), guest("s2", "10.0.0.6", seconds=7200)]
    result = gateway.sync(desired, [("198.51.100.1", "captive-portal")], now=NOW)
    assert result == SyncResult(added=1, removed=1, updated=1)
    assert {a: (e["comment"], e["timeout"]) for a, e in allowed(router).items()} == {
        "10.0.0.5": ("guestgate:s1", "1h"),
        "10.0.0.6": ("guestgate:s2", "2h"),
    }


def test_sync_twice_changes_nothing_the_second_time(router: FakeRouterOS, routeros: RouterOSFactory) -> None:
    gateway = routeros()
    desired = [guest("s1", "10.0.0.5", seconds=3600), guest("s2", "2001:db8::6", seconds=3600)]
    garden = [("198.51.100.1", "captive-portal"), ("203.0.113.0/24", "captive-auth")]
    gateway.sync(desired, garden, now=NOW)
    writes = router.count() - router.count("GET")
    assert gateway.sync(desired, garden, now=NOW + timedelta(seconds=2)) == SyncResult(0, 0, 0)
    assert router.count() - router.count("GET") == writes


def test_sync_after_a_reboot_readds_guests_with_the_time_they_have_left(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    gateway = routeros()
    desired = [guest("s1", "10.0.0.5", seconds=3600), guest("s2", "10.0.0.6", seconds=7200)]
    gateway.sync(desired, [("198.51.100.1", "captive-portal")], now=NOW)
    ids_before = {e[".id"] for e in router.entries(ALLOWED)}
    router.add(list=ALLOWED, address="10.0.0.99", comment="permanent, by hand")

    router.clock.advance(600)
    router.reboot()
    assert [e["address"] for e in router.entries(ALLOWED)] == ["10.0.0.99"]

    later = NOW + timedelta(minutes=10)
    assert gateway.sync(desired, [("198.51.100.1", "captive-portal")], now=later) == SyncResult(2, 0, 0)
    entries = allowed(router)
    assert (entries["10.0.0.5"]["timeout"], entries["10.0.0.6"]["timeout"]) == ("50m", "1h50m")
    assert entries["10.0.0.99"]["comment"] == "permanent, by hand"
    assert not ids_before & {e[".id"] for e in entries.values()}
    assert [e["address"] for e in router.entries("guestgate-walled-garden")] == ["198.51.100.1"]


def test_sync_removes_expired_and_ended_sessions_but_never_foreign_entries(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    gateway = routeros()
    gateway.allow(guest("ended", "10.0.0.5", seconds=3600), now=NOW)
    gateway.allow(guest("expired", "10.0.0.6", seconds=3600), now=NOW)
    router.add(list=ALLOWED, address="10.0.0.99")
    router.add(list="other-list", address="10.0.0.5", timeout="1h", comment="guestgate:ended")
    desired = [guest("expired", "10.0.0.6", seconds=0)]
    assert gateway.sync(desired, [], now=NOW) == SyncResult(added=0, removed=2, updated=0)
    assert sorted(allowed(router)) == ["10.0.0.99"]
    assert [e["address"] for e in router.entries("other-list")] == ["10.0.0.5"]


def test_sync_leaves_an_address_listed_by_hand_to_that_entry(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    router.add(list=ALLOWED, address="10.0.0.5", comment="by hand")
    assert routeros().sync([guest("s1", "10.0.0.5", seconds=60)], [], now=NOW) == SyncResult(0, 0, 0)
    assert allowed(router)["10.0.0.5"]["comment"] == "by hand"


def test_sync_updates_an_entry_that_expired_between_read_and_write_by_adding_it(
    router: FakeRouterOS, routeros: RouterOSFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = routeros()
    gateway.allow(guest("s1", "10.0.0.5", seconds=60), now=NOW)
    # The router is read before the entry expires, written after.
    read = gateway._held()
    monkeypatch.setattr(gateway, "_held", lambda: read)
    router.clock.advance(61)
    assert gateway.sync([guest("s1", "10.0.0.5", seconds=3600)], [], now=NOW) == SyncResult(0, 0, 1)
    assert allowed(router)["10.0.0.5"]["timeout"] == "1h"


# -- failures -----------------------------------------------------------------------------


def test_bad_credentials_are_a_misconfiguration(router: FakeRouterOS, routeros: RouterOSFactory) -> None:
    with pytest.raises(GatewayMisconfigured, match="answered HTTP 401: check username and password"):
        routeros(password="wrong").allow(guest("s1", "10.0.0.5", seconds=60), now=NOW)
    assert router.entries(ALLOWED) == []


def test_an_unreachable_router_is_retried_with_backoff_then_reported(routeros: RouterOSFactory) -> None:
    pauses: list[float] = []
    gateway = routeros(port=closed_port(), retries=3, backoff=0.5, sleep=pauses.append)
    with pytest.raises(GatewayUnreachable, match="after 4 attempts"):
        gateway.allow(guest("s1", "10.0.0.5", seconds=60), now=NOW)
    assert pauses == [0.5, 1.0, 2.0]


def test_server_errors_are_retried_until_the_router_answers(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    pauses: list[float] = []
    router.fail_next(503, count=2)
    routeros(sleep=pauses.append, backoff=0.25).allow(guest("s1", "10.0.0.5", seconds=60), now=NOW)
    assert pauses == [0.25, 0.5]
    assert sorted(allowed(router)) == ["10.0.0.5"]


def test_server_errors_that_persist_make_the_router_unreachable(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    router.fail_next(500, count=3)
    with pytest.raises(GatewayUnreachable, match="HTTP 500"):
        routeros(retries=2).list_allowed()


def test_a_refused_change_is_a_rejection(router: FakeRouterOS, routeros: RouterOSFactory) -> None:
    router.fail_next(400)
    with pytest.raises(GatewayRejected, match="HTTP 400; the log has its reason") as refused:
        routeros().open_auth_window("10.0.0.5", 60)
    # The router's own words stay out of the error (it reaches gateway_status.last_error).
    assert "injected by the test" not in str(refused.value)
    assert router.count() == 1


def test_health_reports_the_routeros_version(routeros: RouterOSFactory) -> None:
    health = routeros().health()
    assert (health.state, health.detail) == ("ok", "RouterOS 7.16.2 (stable) on CHR")


# -- TLS and connections ------------------------------------------------------------------


def test_a_router_certificate_from_another_ca_is_refused(routeros: RouterOSFactory, tmp_path: Path) -> None:
    other = make_tls(tmp_path / "other", common_name="impostor")
    with pytest.raises(GatewayMisconfigured, match="TLS verification"):
        routeros(ca_pem=other.ca_pem).health()


def test_the_system_cas_do_not_trust_a_self_signed_router(routeros: RouterOSFactory) -> None:
    with pytest.raises(GatewayMisconfigured, match="TLS verification"):
        routeros(ca_pem=None).health()


def test_a_pinned_certificate_is_trusted_without_a_ca(routeros: RouterOSFactory, tls: Tls) -> None:
    pin = ":".join(tls.fingerprint[i : i + 2] for i in range(0, 64, 2)).upper()
    assert routeros(ca_pem=None, pinned_sha256=pin).health().state == "ok"


def test_a_pin_mismatch_fails_before_any_request_is_sent(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    with pytest.raises(GatewayMisconfigured, match="does not match the pinned fingerprint"):
        routeros(ca_pem=None, pinned_sha256="00" * 32).health()
    assert router.requests == []


def test_a_malformed_pin_is_a_misconfiguration(routeros: RouterOSFactory) -> None:
    with pytest.raises(GatewayMisconfigured, match="64 hex digits"):
        routeros(pinned_sha256="abc")


def test_a_malformed_ca_is_a_misconfiguration(routeros: RouterOSFactory) -> None:
    with pytest.raises(GatewayMisconfigured, match="CA certificate"):
        routeros(ca_pem="-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")


@pytest.mark.parametrize("host", ["router.example/rest?x=", "user@router", "", "-router"])
def test_an_unusable_host_is_a_misconfiguration(routeros: RouterOSFactory, host: str) -> None:
    with pytest.raises(GatewayMisconfigured, match="host"):
        routeros(host=host)


def test_verification_can_be_turned_off_explicitly(routeros: RouterOSFactory) -> None:
    assert routeros(ca_pem=None, tls_verify=False).health().state == "ok"


def test_requests_reuse_one_connection(router: FakeRouterOS, routeros: RouterOSFactory) -> None:
    gateway = routeros()
    for n in range(5):
        gateway.allow(guest(f"s{n}", f"10.0.0.{n + 1}", seconds=60), now=NOW)
    gateway.list_allowed()
    assert router.connections == 1
    assert router.count() == 12  # five adds and their five queues, then one read per address family


def test_the_driver_reconnects_after_the_router_dropped_its_connections(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    gateway = routeros()
    gateway.health()
    router.reboot()
    assert gateway.health().state == "ok"
    assert router.connections == 2


# -- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"), [(1, "1s"), (60, "1m"), (5405, "1h30m5s"), (86400, "1d"), (694861, "8d1h1m1s")]
)
def test_format_duration_writes_routeros_durations(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("59m58s", 3598), ("1w2d3h4m5s", 788645), ("1d", 86400), ("500ms", 0.5), ("1d02:03:04", 93784)],
)
def test_parse_duration_reads_routeros_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "5x", "1h 2m"])
def test_parse_duration_rejects_what_routeros_never_prints(text: str) -> None:
    with pytest.raises(GatewayRejected):
        parse_duration(text)
