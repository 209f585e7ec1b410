"""Walled-garden host names on RouterOS (fake router, documented semantics): exact names as
address-list entries the router resolves, wildcards as static DNS FWD entries with address-list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from guestgate.gateways.base import GardenName, GatewayMisconfigured, GuestAccess
from tests.gateways.fake_routeros import FakeRouterOS
from tests.utils.gateways import RouterOSFactory

AUTH = "guestgate-walled-garden-auth"
ALWAYS = "guestgate-walled-garden"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def addresses(router: FakeRouterOS, list_name: str) -> list[str]:
    return sorted(e["address"] for e in router.entries(list_name))


def test_exact_names_become_address_list_entries_the_router_resolves(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    router.dns["idp.test"] = ["203.0.113.5", "203.0.113.6"]
    router.dns["status.test"] = ["198.51.100.9"]
    gateway = routeros()
    gateway.replace_walled_garden(
        [("192.0.2.10", "captive-auth")],
        [GardenName("idp.test", "captive-auth"), GardenName("status.test", "captive-portal")],
    )
    assert addresses(router, AUTH) == ["192.0.2.10", "203.0.113.5", "203.0.113.6", "idp.test"]
    assert addresses(router, ALWAYS) == ["198.51.100.9", "status.test"]
    # Addresses the router resolved are its own dynamic entries: guestgate leaves them be.
    assert {e["dynamic"] for e in router.entries(AUTH) if e["address"].startswith("203.")} == {"true"}

    # Pushing the same again changes nothing; dropping a name removes its entry.
    before = router.count("PUT")
    gateway.replace_walled_garden([("192.0.2.10", "captive-auth")], [GardenName("idp.test", "captive-auth")])
    assert router.count("PUT") == before
    assert "status.test" not in addresses(router, ALWAYS)
    assert "idp.test" in addresses(router, AUTH)


def test_wildcards_become_static_dns_fwd_entries_that_fill_the_list(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    router.dns["login.idp.test"] = ["203.0.113.20"]
    router.dns["other.test"] = ["203.0.113.99"]
    gateway = routeros()
    gateway.replace_walled_garden([], [GardenName("*.idp.test", "captive-auth")])
    [entry] = router.dns_entries()
    assert {k: entry[k] for k in ("name", "type", "address-list", "match-subdomain", "comment")} == {
        "name": "idp.test",
        "type": "FWD",
        "address-list": AUTH,
        "match-subdomain": "yes",
        "comment": "guestgate:walled-garden",
    }
    # Forwarded where the router forwards everything else: its (here DHCP-learnt) upstream.
    assert entry["forward-to"] == "192.0.2.53"
    # A guest asks the router for a name below the domain: its address joins the auth list.
    assert router.answer("login.idp.test") == ["203.0.113.20"]
    router.answer("other.test")
    assert addresses(router, AUTH) == ["203.0.113.20"]

    # A second push changes nothing; removing the wildcard removes the DNS entry, not others'.
    router.dns_static["*FFFF"] = {".id": "*FFFF", "name": "lan.example", "type": "A", "address": "10.0.0.1"}
    puts = router.count("PUT")
    gateway.replace_walled_garden([], [GardenName("*.idp.test", "captive-auth")])
    assert router.count("PUT") == puts
    gateway.replace_walled_garden([], [])
    assert [e["name"] for e in router.dns_entries()] == ["lan.example"]


def test_sync_carries_names_through_to_the_router(router: FakeRouterOS, routeros: RouterOSFactory) -> None:
    router.dns["idp.test"] = ["203.0.113.5"]
    gateway = routeros()
    guest = GuestAccess(session_id="s1", ip="10.0.0.5", mac=None, until=NOW + timedelta(hours=1))
    gateway.sync([guest], [], now=NOW, names=[GardenName("idp.test", None), GardenName("*.cdn.test", None)])
    assert addresses(router, AUTH) == ["203.0.113.5", "idp.test"]
    assert [e["name"] for e in router.dns_entries()] == ["cdn.test"]


def test_fwd_entries_follow_the_routers_own_upstream(router: FakeRouterOS, routeros: RouterOSFactory) -> None:
    gateway = routeros()
    wildcard = [GardenName("*.idp.test", "captive-auth")]
    # Static servers are preferred over the dynamic ones, as RouterOS itself prefers them.
    router.dns_settings["servers"] = "198.51.100.53,198.51.100.54"
    gateway.replace_walled_garden([], wildcard)
    [entry] = router.dns_entries()
    assert entry["forward-to"] == "198.51.100.53"
    assert ("GET", "ip/dns") in router.requests

    # The operator changes the router's upstream: the next push rewrites the entry, once.
    router.dns_settings["servers"] = "2001:db8::53"
    gateway.replace_walled_garden([], wildcard)
    [entry] = router.dns_entries()
    assert entry["forward-to"] == "2001:db8::53"
    puts = router.count("PUT")
    gateway.replace_walled_garden([], wildcard)
    assert router.count("PUT") == puts


def test_a_router_without_any_upstream_cannot_hold_wildcards(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    router.dns_settings.update({"servers": "", "dynamic-servers": ""})
    gateway = routeros()
    with pytest.raises(GatewayMisconfigured, match=r"no DNS server \(/ip dns servers"):
        gateway.replace_walled_garden([], [GardenName("*.idp.test", "captive-auth")])
    assert router.dns_entries() == []
    # Exact names need no forwarding: they still work on such a router.
    router.dns["idp.test"] = ["203.0.113.5"]
    gateway.replace_walled_garden([], [GardenName("idp.test", "captive-auth")])
    assert addresses(router, AUTH) == ["203.0.113.5", "idp.test"]


def test_an_explicit_forward_to_overrides_the_routers_upstream(
    router: FakeRouterOS, routeros: RouterOSFactory
) -> None:
    gateway = routeros(dns_forward_to="203.0.113.53")
    gateway.replace_walled_garden([], [GardenName("*.idp.test", "captive-auth")])
    [entry] = router.dns_entries()
    assert entry["forward-to"] == "203.0.113.53"
    assert ("GET", "ip/dns") not in router.requests
