"""The nftables driver: the table it renders, and real nft in a network namespace the test creates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from guestgate.gateways.base import GatewayMisconfigured, GuestAccess, SyncResult
from guestgate.gateways.nftables import NftablesGateway, remove_table
from tests.gateways.netns import Namespace, namespaces


def guest(session: str, ip: str, *, seconds: int, now: datetime) -> GuestAccess:
    return GuestAccess(session_id=session, ip=ip, mac=None, until=now + timedelta(seconds=seconds))


# -- the rendered table (no nft needed) --------------------------------------------------------


def test_render_redirects_to_the_local_portal_port_without_a_portal_address() -> None:
    script = NftablesGateway(interface="wlan0", portal_port=8080).render()
    assert "\t\ttcp dport 80 redirect to :8080\n" in script
    assert '\t\tiifname "wlan0" tcp dport 80 jump gg_redirect comment "guestgate ' in script
    assert '\t\tiifname "wlan0" jump gg_guest\n' in script


def test_render_dnats_to_a_remote_portal_and_lets_guests_reach_it() -> None:
    script = NftablesGateway(interface="wlan0", portal_port=8443, portal_address="192.0.2.10").render()
    assert "\t\tmeta nfproto ipv4 tcp dport 80 dnat ip to 192.0.2.10:8443\n" in script
    assert "\t\tip daddr 192.0.2.10 tcp dport 8443 accept\n\t\tdrop\n" in script


def test_render_dnats_ipv6_guests_to_an_ipv6_portal() -> None:
    script = NftablesGateway(interface="wlan0", portal_port=80, portal_address="2001:db8::10").render()
    assert "\t\tmeta nfproto ipv6 tcp dport 80 dnat ip6 to [2001:db8::10]:80\n" in script


def test_render_replaces_the_table_atomically_and_declares_every_set() -> None:
    script = NftablesGateway(interface="wlan0", portal_port=8080, table="gg_site1").render(
        {"allowed4": ['10.0.0.5 timeout 60s comment "guestgate:s1"']}
    )
    assert script.splitlines()[:3] == [
        "table inet gg_site1 {}",
        "delete table inet gg_site1",
        "table inet gg_site1 {",
    ]
    assert '\t\telements = { 10.0.0.5 timeout 60s comment "guestgate:s1" }' in script
    for name, flags in [
        ("allowed4", "timeout"),
        ("allowed6", "timeout"),
        ("auth_window4", "timeout"),
        ("auth_window6", "timeout"),
        ("garden4", "interval"),
        ("garden6", "interval"),
        ("auth_garden4", "interval"),
        ("auth_garden6", "interval"),
    ]:
        assert f"\tset {name} {{\n\t\ttype ipv{name[-1]}_addr\n\t\tflags {flags}\n" in script


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"interface": "wlan0; flush ruleset"}, "interface"),
        ({"interface": "a-very-long-interface-name"}, "interface"),
        ({"table": "guest gate"}, "table"),
        ({"netns": "../etc"}, "namespace"),
        ({"portal_port": 0}, "port"),
        ({"portal_address": "portal.example.com"}, "portal address"),
    ],
)
def test_unusable_settings_are_refused_before_reaching_nft(settings: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"interface": "wlan0", "portal_port": 8080, **settings}
    with pytest.raises(GatewayMisconfigured, match=message):
        NftablesGateway(**values)


@pytest.mark.parametrize(
    ("table", "netns"), [("guestgate {}\nflush ruleset", None), ("guestgate", "guests\nflush ruleset")]
)
def test_removing_a_table_refuses_a_name_with_a_script_after_it_before_reaching_nft(
    table: str, netns: str | None
) -> None:
    # A stored site's table or namespace (older sites were not validated): a prefix is not enough.
    with pytest.raises(GatewayMisconfigured, match="is not a usable"):
        remove_table(table, netns=netns, nft="/nonexistent/nft", ip="/nonexistent/ip")


def test_a_missing_nft_binary_is_a_misconfiguration() -> None:
    gateway = NftablesGateway(interface="wlan0", portal_port=8080, nft="/nonexistent/nft")
    with pytest.raises(GatewayMisconfigured, match="not installed"):
        gateway.list_allowed()


# -- real nft in a namespace --------------------------------------------------------------------


@pytest.fixture
def ns(netns_tools: None) -> Iterator[Namespace]:
    """A fresh network namespace, deleted afterwards."""
    with namespaces("gw") as made:
        yield made["gw"]


@pytest.fixture
def gateway(ns: Namespace) -> NftablesGateway:
    return NftablesGateway(interface="guest0", portal_port=8080, netns=ns.name)


def elements(ns: Namespace, name: str) -> list[Any]:
    document = json.loads(ns.nft("-j", "list", "set", "inet", "guestgate", name))
    [found] = [item["set"] for item in document["nftables"] if "set" in item]
    return list(found.get("elem", []))


@pytest.mark.netns
def test_apply_creates_the_table_with_its_sets_and_chains(ns: Namespace, gateway: NftablesGateway) -> None:
    gateway.apply()
    listing = ns.nft("list", "table", "inet", "guestgate")
    for name in ("allowed4", "allowed6", "auth_window4", "garden4", "auth_garden6"):
        assert f"set {name} {{" in listing
    for chain in ("gg_prerouting", "gg_redirect", "gg_forward", "gg_guest"):
        assert f"chain {chain} {{" in listing
    assert "type nat hook prerouting priority dstnat; policy accept;" in listing
    assert "type filter hook forward priority filter; policy accept;" in listing
    assert gateway.health().state == "ok"


@pytest.mark.netns
def test_allow_adds_an_element_with_timeout_and_session_comment(
    ns: Namespace, gateway: NftablesGateway
) -> None:
    now = datetime.now(UTC)
    gateway.apply()
    gateway.allow(guest("s1", "10.0.0.5", seconds=3600, now=now), now=now)
    [element] = elements(ns, "allowed4")
    assert element["elem"]["val"] == "10.0.0.5"
    assert element["elem"]["timeout"] == 3600
    assert element["elem"]["comment"] == "guestgate:s1"


@pytest.mark.netns
def test_allow_of_an_allowed_address_rewrites_timeout_and_comment(
    ns: Namespace, gateway: NftablesGateway
) -> None:
    now = datetime.now(UTC)
    gateway.apply()
    gateway.allow(guest("s1", "10.0.0.5", seconds=600, now=now), now=now)
    gateway.allow(guest("s2", "10.0.0.5", seconds=7200, now=now), now=now)
    [element] = elements(ns, "allowed4")
    assert (element["elem"]["timeout"], element["elem"]["comment"]) == (7200, "guestgate:s2")


@pytest.mark.netns
def test_revoke_removes_the_sessions_element_only(ns: Namespace, gateway: NftablesGateway) -> None:
    now = datetime.now(UTC)
    gateway.apply()
    gateway.allow(guest("s1", "10.0.0.5", seconds=600, now=now), now=now)
    gateway.allow(guest("s2", "2001:db8::6", seconds=600, now=now), now=now)
    gateway.revoke("other", "10.0.0.5")
    assert len(elements(ns, "allowed4")) == 1
    gateway.revoke("s1", "10.0.0.5")
    gateway.revoke("s2", "2001:db8::6")
    assert elements(ns, "allowed4") == []
    assert elements(ns, "allowed6") == []


@pytest.mark.netns
def test_list_allowed_reads_back_tagged_elements_with_the_time_left(
    ns: Namespace, gateway: NftablesGateway
) -> None:
    now = datetime.now(UTC)
    gateway.apply()
    gateway.allow(guest("s1", "10.0.0.5", seconds=3600, now=now), now=now)
    gateway.allow(guest("s2", "2001:db8::6", seconds=60, now=now), now=now)
    ns.nft("add", "element", "inet", "guestgate", "allowed4", "{ 10.0.0.99 }")
    held = {e.ip: e for e in gateway.list_allowed()}
    assert sorted(held) == ["10.0.0.5", "2001:db8::6"]
    assert held["10.0.0.5"].session_id == "s1"
    remaining = held["10.0.0.5"].remaining
    assert remaining is not None
    assert timedelta(seconds=3590) <= remaining <= timedelta(seconds=3600)


@pytest.mark.netns
def test_replace_walled_garden_refills_the_interval_sets(ns: Namespace, gateway: NftablesGateway) -> None:
    gateway.apply()
    gateway.replace_walled_garden(
        [
            ("198.51.100.0/24", "captive-portal"),
            ("198.51.100.7", "captive-portal"),
            ("203.0.113.9", "captive-auth"),
        ]
    )
    assert elements(ns, "garden4") == [{"prefix": {"addr": "198.51.100.0", "len": 24}}]
    assert elements(ns, "auth_garden4") == ["203.0.113.9"]
    gateway.replace_walled_garden([("2001:db8::/48", "captive-portal")])
    assert elements(ns, "garden4") == []
    assert elements(ns, "auth_garden4") == []
    assert elements(ns, "garden6") == [{"prefix": {"addr": "2001:db8::", "len": 48}}]


@pytest.mark.netns
def test_open_auth_window_adds_the_guest_with_a_timeout(ns: Namespace, gateway: NftablesGateway) -> None:
    gateway.apply()
    gateway.open_auth_window("10.0.0.5", 120)
    [element] = elements(ns, "auth_window4")
    assert (element["elem"]["val"], element["elem"]["timeout"]) == ("10.0.0.5", 120)


@pytest.mark.netns
def test_sync_converges_and_a_second_sync_changes_nothing(ns: Namespace, gateway: NftablesGateway) -> None:
    now = datetime.now(UTC)
    gateway.apply()
    gateway.allow(guest("stale", "10.0.0.7", seconds=600, now=now), now=now)
    gateway.allow(guest("s2", "10.0.0.6", seconds=60, now=now), now=now)
    ns.nft("add", "element", "inet", "guestgate", "allowed4", "{ 10.0.0.99 }")
    desired = [guest("s1", "10.0.0.5", seconds=3600, now=now), guest("s2", "10.0.0.6", seconds=7200, now=now)]
    garden = [("198.51.100.1", "captive-portal")]
    assert gateway.sync(desired, garden, now=now) == SyncResult(added=1, removed=1, updated=1)
    assert gateway.sync(desired, garden, now=now) == SyncResult(added=0, removed=0, updated=0)
    values = {e if isinstance(e, str) else e["elem"]["val"] for e in elements(ns, "allowed4")}
    assert values == {"10.0.0.5", "10.0.0.6", "10.0.0.99"}
    assert elements(ns, "garden4") == ["198.51.100.1"]


@pytest.mark.netns
def test_sync_rebuilds_a_flushed_table_with_the_remaining_time(
    ns: Namespace, gateway: NftablesGateway
) -> None:
    now = datetime.now(UTC)
    desired = [guest("s1", "10.0.0.5", seconds=3600, now=now)]
    gateway.sync(desired, [("198.51.100.1", "captive-portal")], now=now)
    ns.nft("flush", "ruleset")
    with pytest.raises(GatewayMisconfigured, match="missing"):
        gateway.health()

    later = now + timedelta(minutes=10)
    assert gateway.sync(desired, [("198.51.100.1", "captive-portal")], now=later) == SyncResult(1, 0, 0)
    assert gateway.health().state == "ok"
    [element] = elements(ns, "allowed4")
    assert (element["elem"]["timeout"], element["elem"]["comment"]) == (3000, "guestgate:s1")
    assert elements(ns, "garden4") == ["198.51.100.1"]


@pytest.mark.netns
def test_sync_repairs_a_table_whose_rules_were_changed(ns: Namespace, gateway: NftablesGateway) -> None:
    now = datetime.now(UTC)
    gateway.sync([guest("s1", "10.0.0.5", seconds=600, now=now)], [], now=now)
    ns.nft("add", "element", "inet", "guestgate", "allowed4", '{ 10.0.0.99 comment "by hand" }')
    ns.nft("flush", "chain", "inet", "guestgate", "gg_guest")
    with pytest.raises(GatewayMisconfigured, match="differs"):
        gateway.health()
    desired = [guest("s1", "10.0.0.5", seconds=600, now=now), guest("s2", "10.0.0.99", seconds=600, now=now)]
    assert gateway.sync(desired, [], now=now) == SyncResult(0, 0, 0)
    assert gateway.health().state == "ok"
    values = {
        e if isinstance(e, str) else (e["elem"]["val"], e["elem"].get("comment"))
        for e in elements(ns, "allowed4")
    }
    assert values == {("10.0.0.5", "guestgate:s1"), ("10.0.0.99", "by hand")}


@pytest.mark.netns
def test_apply_keeps_the_elements_the_table_holds(ns: Namespace, gateway: NftablesGateway) -> None:
    now = datetime.now(UTC)
    gateway.apply()
    gateway.allow(guest("s1", "10.0.0.5", seconds=600, now=now), now=now)
    gateway.replace_walled_garden([("198.51.100.1", "captive-portal")])
    gateway.open_auth_window("10.0.0.6", 300)
    gateway.apply()
    assert [e.session_id for e in gateway.list_allowed()] == ["s1"]
    assert elements(ns, "garden4") == ["198.51.100.1"]
    assert [e["elem"]["val"] for e in elements(ns, "auth_window4")] == ["10.0.0.6"]


@pytest.mark.netns
def test_changed_settings_make_sync_rebuild_the_table(ns: Namespace, gateway: NftablesGateway) -> None:
    now = datetime.now(UTC)
    gateway.sync([guest("s1", "10.0.0.5", seconds=600, now=now)], [], now=now)
    moved = NftablesGateway(interface="guest0", portal_port=9090, netns=ns.name)
    with pytest.raises(GatewayMisconfigured, match="differs"):
        moved.health()
    moved.sync([guest("s1", "10.0.0.5", seconds=600, now=now)], [], now=now)
    assert "redirect to :9090" in ns.nft("list", "chain", "inet", "guestgate", "gg_redirect")
    assert [e.session_id for e in moved.list_allowed()] == ["s1"]


@pytest.mark.netns
def test_allow_on_a_flushed_gateway_rebuilds_the_table_first(ns: Namespace, gateway: NftablesGateway) -> None:
    now = datetime.now(UTC)
    gateway.allow(guest("s1", "10.0.0.5", seconds=600, now=now), now=now)
    assert gateway.health().state == "ok"
    assert [e.session_id for e in gateway.list_allowed()] == ["s1"]


@pytest.mark.netns
def test_a_missing_namespace_is_a_misconfiguration(netns_tools: None) -> None:
    gateway = NftablesGateway(interface="guest0", portal_port=8080, netns="gg-t-does-not-exist")
    with pytest.raises(GatewayMisconfigured, match="network namespace"):
        gateway.health()
