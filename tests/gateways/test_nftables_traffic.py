"""Real traffic through the nftables driver: client -- gateway -- upstream, each in its own namespace.

    client  c0 10.77.0.2 ──veth── g0 10.77.0.1  gateway (guest interface g0, portal on :8080)
                                  g1 10.78.0.1 ──veth── u0 10.78.0.2 / .3 / .4  upstream
                                                        (HTTP :80, tcp :22, udp+tcp :53)

10.78.0.3 is a captive-portal walled-garden address, 10.78.0.4 a captive-auth one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from guestgate.gateways.base import GuestAccess, SyncResult
from guestgate.gateways.nftables import NftablesGateway
from tests.gateways.netns import (
    ECHO_SERVER,
    HTTP_GET,
    HTTP_SERVER,
    TCP_CONNECT,
    UDP_ECHO,
    Namespace,
    namespaces,
    veth,
)

CLIENT = "10.77.0.2"
UPSTREAM = "10.78.0.2"
GARDEN_OPEN = "10.78.0.3"
GARDEN_AUTH = "10.78.0.4"
GARDEN = [(GARDEN_OPEN, "captive-portal"), (f"{GARDEN_AUTH}/32", "captive-auth")]
DROPPED = "ERROR TimeoutError"


@dataclass
class Lab:
    client: Namespace
    gateway_ns: Namespace
    upstream: Namespace
    gateway: NftablesGateway

    def http(self, host: str) -> str:
        return self.client.python(HTTP_GET, host, "2")

    def tcp(self, host: str, port: int = 22) -> str:
        return self.client.python(TCP_CONNECT, host, str(port), "1")

    def udp(self, host: str, port: int = 53) -> str:
        return self.client.python(UDP_ECHO, host, str(port), "1")


@pytest.fixture
def lab(netns_tools: None) -> Iterator[Lab]:
    with namespaces("c", "g", "u") as ns:
        client, gw, up = ns["c"], ns["g"], ns["u"]
        veth(client, "c0", gw, "g0")
        veth(gw, "g1", up, "u0")
        client.run("ip", "addr", "add", f"{CLIENT}/24", "dev", "c0")
        client.run("ip", "route", "add", "default", "via", "10.77.0.1")
        gw.run("ip", "addr", "add", "10.77.0.1/24", "dev", "g0")
        gw.run("ip", "addr", "add", "10.78.0.1/24", "dev", "g1")
        gw.python("open('/proc/sys/net/ipv4/ip_forward', 'w').write('1')")
        for address in (UPSTREAM, GARDEN_OPEN, GARDEN_AUTH):
            up.run("ip", "addr", "add", f"{address}/24", "dev", "u0")
        up.run("ip", "route", "add", "default", "via", "10.78.0.1")
        up.start(HTTP_SERVER, "80", "upstream")
        up.start(ECHO_SERVER, "22")
        up.start(ECHO_SERVER, "53")
        gw.start(HTTP_SERVER, "8080", "portal")
        for port in (80, 22, 53):
            up.wait_listening(port)
        gw.wait_listening(8080)
        gateway = NftablesGateway(interface="g0", portal_port=8080, netns=gw.name)
        yield Lab(client=client, gateway_ns=gw, upstream=up, gateway=gateway)


@pytest.mark.netns
def test_guest_journey_through_real_nftables(lab: Lab) -> None:
    # Without guestgate's table the gateway simply routes.
    assert lab.http(UPSTREAM) == "upstream"

    lab.gateway.apply(walled_garden=GARDEN)
    # Not signed in: web traffic lands on the portal, everything else is dropped except DNS
    # and the always-open walled garden.
    assert lab.http(UPSTREAM) == "portal"
    assert lab.tcp(UPSTREAM) == DROPPED
    assert lab.udp(UPSTREAM) == "ECHO ping"
    assert lab.tcp(UPSTREAM, 53) == "OPEN hello"
    assert lab.http(GARDEN_OPEN) == "upstream"
    assert lab.tcp(GARDEN_OPEN) == "OPEN hello"
    assert lab.tcp(GARDEN_AUTH) == DROPPED
    assert lab.http(GARDEN_AUTH) == "portal"

    # During the OAuth auth window the captive-auth garden opens for this guest only.
    lab.gateway.open_auth_window(CLIENT, 60)
    assert lab.tcp(GARDEN_AUTH) == "OPEN hello"
    assert lab.http(GARDEN_AUTH) == "upstream"
    assert lab.http(UPSTREAM) == "portal"

    # Signed in: the upstream answers.
    now = datetime.now(UTC)
    session = GuestAccess(session_id="s1", ip=CLIENT, mac=None, until=now + timedelta(hours=1))
    lab.gateway.allow(session, now=now)
    assert lab.http(UPSTREAM) == "upstream"
    assert lab.tcp(UPSTREAM) == "OPEN hello"

    # Disconnected: blocked again.
    lab.gateway.revoke("s1", CLIENT)
    assert lab.http(UPSTREAM) == "portal"
    assert lab.tcp(UPSTREAM) == DROPPED


@pytest.mark.netns
def test_access_ends_when_the_element_times_out(lab: Lab) -> None:
    lab.gateway.apply(walled_garden=GARDEN)
    now = datetime.now(UTC)
    lab.gateway.allow(GuestAccess("s1", CLIENT, None, now + timedelta(seconds=2)), now=now)
    assert lab.http(UPSTREAM) == "upstream"
    time.sleep(2.5)
    assert lab.http(UPSTREAM) == "portal"
    assert lab.gateway.list_allowed() == []


@pytest.mark.netns
def test_after_a_ruleset_flush_apply_and_sync_restore_enforcement(lab: Lab) -> None:
    now = datetime.now(UTC)
    session = GuestAccess("s1", CLIENT, None, now + timedelta(hours=1))

    lab.gateway.apply(walled_garden=GARDEN)
    lab.gateway_ns.nft("flush", "ruleset")
    assert lab.tcp(UPSTREAM) == "OPEN hello"  # nothing enforces any more
    lab.gateway.apply(walled_garden=GARDEN)
    assert lab.http(UPSTREAM) == "portal"
    assert lab.tcp(UPSTREAM) == DROPPED
    assert lab.http(GARDEN_OPEN) == "upstream"

    # The reconciler's path: one sync rebuilds the table and re-adds the active guest.
    lab.gateway.sync([session], GARDEN, now=now)
    lab.gateway_ns.nft("flush", "ruleset")
    assert lab.gateway.sync([session], GARDEN, now=now + timedelta(minutes=1)) == SyncResult(1, 0, 0)
    assert lab.http(UPSTREAM) == "upstream"
    assert lab.http(GARDEN_OPEN) == "upstream"
    assert lab.gateway.sync([], GARDEN, now=now + timedelta(minutes=2)) == SyncResult(0, 1, 0)
    assert lab.http(UPSTREAM) == "portal"
    assert lab.tcp(UPSTREAM) == DROPPED
