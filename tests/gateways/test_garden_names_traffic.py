"""Walled-garden host names through real nftables and a real dnsmasq, each side in its namespace.

    client  c0 10.77.0.2 ──veth── g0 10.77.0.1  gateway: nft table, portal :8080, dnsmasq :53
                                  │                      (forwards to the upstream, nftset=)
                                  g1 10.78.0.1 ──veth── u0 10.78.0.2  upstream: dnsmasq answering
                                                           10.78.0.5-.8  the test names; HTTP :80

`idp.test` is 10.78.0.5 (10.78.0.7 after the change), `*.wild.test` is 10.78.0.6, and 10.78.0.8
is a destination no entry names. guestgate's resolver asks the gateway's dnsmasq (from a thread
inside the gateway's namespace), as the guests do.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from guestgate.gateways.base import GardenName
from guestgate.gateways.nftables import NftablesGateway, dnsmasq_config, table_name
from guestgate.outbound import OutboundPolicy
from guestgate.walled_garden.resolver import MARGIN_SECONDS, MIN_TTL, Answer, GardenResolver, dns_query
from tests.gateways.netns import HTTP_GET, HTTP_SERVER, Namespace, namespaces, veth

CLIENT = "10.77.0.2"
GATEWAY_DNS = "10.77.0.1"
UPSTREAM_DNS = "10.78.0.2"
IDP, IDP_NEW, WILD, OTHER = "10.78.0.5", "10.78.0.7", "10.78.0.6", "10.78.0.8"
TTL = MIN_TTL
SITE = "5a1e0000-0000-4000-8000-00000000d115"
DNSMASQ = "/usr/sbin/dnsmasq"
# A guest's DNS lookup through the gateway's dnsmasq (dnspython, inside the client namespace).
LOOKUP = """
import sys, dns.resolver
r = dns.resolver.Resolver(configure=False); r.nameservers = [sys.argv[1]]; r.lifetime = 3
try:
    print(",".join(sorted(str(a) for a in r.resolve(sys.argv[2], "A"))))
except Exception as exc:
    print(f"ERROR {type(exc).__name__}")
"""
T = TypeVar("T")


def in_netns(name: str, call: Callable[[], T]) -> T:
    """Run `call` in a thread that has joined network namespace `name` (only that thread moves)."""
    result: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), "setns failed")
            finally:
                os.close(fd)
            result.append(call())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    if errors:
        raise errors[0]
    return result[0]


@dataclass
class Lab:
    client: Namespace
    gw: Namespace
    upstream: Namespace
    gateway: NftablesGateway
    hosts: Path
    authority: subprocess.Popen[bytes]
    tmp: Path

    def http(self, host: str) -> str:
        return self.client.python(HTTP_GET, host, "2")

    def lookup(self, name: str) -> str:
        return self.client.python(LOOKUP, GATEWAY_DNS, name)

    def resolver(self, policy: OutboundPolicy) -> GardenResolver:
        query = dns_query([GATEWAY_DNS])

        def through_gateway(name: str) -> Answer:
            return in_netns(self.gw.name, lambda: query(name))

        return GardenResolver(policy, query=through_gateway)

    def start_forwarder(self, config: str) -> None:
        conf = self.tmp / "gateway-dnsmasq.conf"
        conf.write_text(config)
        _dnsmasq(self.gw, self.tmp / "gw.pid", f"--conf-file={conf}", f"--listen-address={GATEWAY_DNS}",
                 f"--server={UPSTREAM_DNS}")

    def set_idp(self, address: str) -> None:
        self.hosts.write_text(f"{address} idp.test\n{OTHER} other.test\n")
        self.authority.send_signal(signal.SIGHUP)  # dnsmasq re-reads its hosts files and empties its cache


def _dnsmasq(ns: Namespace, pid: Path, *args: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["ip", "netns", "exec", ns.name, DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts",
         "--bind-interfaces", "--user=root", f"--pid-file={pid}", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ns.processes.append(process)
    ns.wait_listening(53)
    return process


@pytest.fixture
def lab(netns_tools: None, tmp_path: Path) -> Iterator[Lab]:
    if not Path(DNSMASQ).exists():
        pytest.skip("dnsmasq is not installed (scripts/system-deps.sh installs dnsmasq-base)")
    with namespaces("c", "g", "u") as ns:
        client, gw, up = ns["c"], ns["g"], ns["u"]
        veth(client, "c0", gw, "g0")
        veth(gw, "g1", up, "u0")
        client.run("ip", "addr", "add", f"{CLIENT}/24", "dev", "c0")
        client.run("ip", "route", "add", "default", "via", GATEWAY_DNS)
        gw.run("ip", "addr", "add", f"{GATEWAY_DNS}/24", "dev", "g0")
        gw.run("ip", "addr", "add", "10.78.0.1/24", "dev", "g1")
        gw.python("open('/proc/sys/net/ipv4/ip_forward', 'w').write('1')")
        for address in (UPSTREAM_DNS, IDP, IDP_NEW, WILD, OTHER):
            up.run("ip", "addr", "add", f"{address}/24", "dev", "u0")
        up.run("ip", "route", "add", "default", "via", "10.78.0.1")
        up.start(HTTP_SERVER, "80", "upstream")
        gw.start(HTTP_SERVER, "8080", "portal")
        up.wait_listening(80)
        gw.wait_listening(8080)
        hosts = tmp_path / "hosts"
        hosts.write_text(f"{IDP} idp.test\n{OTHER} other.test\n")
        authority = _dnsmasq(
            up, tmp_path / "up.pid", "--conf-file=/dev/null", f"--listen-address={UPSTREAM_DNS}",
            f"--addn-hosts={hosts}", f"--local-ttl={TTL}", f"--address=/wild.test/{WILD}",
        )
        gateway = NftablesGateway(interface="g0", portal_port=8080, netns=gw.name, table=table_name(SITE))
        yield Lab(client, gw, up, gateway, hosts, authority, tmp_path)


ALLOW_LAB = OutboundPolicy(allow=(ipaddress.ip_network("10.78.0.0/24"),))


def names_now(resolver: GardenResolver, *names: GardenName) -> list[GardenName]:
    now = datetime.now(UTC)
    return [
        n if n.wildcard else GardenName(n.hostname, n.type, resolver.addresses(n.hostname, now=now))
        for n in names
    ]


@pytest.mark.netns
def test_a_guest_reaches_idp_test_before_sign_in_and_nothing_else(lab: Lab) -> None:
    lab.start_forwarder("")
    resolver = lab.resolver(ALLOW_LAB)
    names = names_now(resolver, GardenName("idp.test", "captive-auth"))
    assert [a for a, _ in names[0].addresses] == [IDP]
    lab.gateway.apply(walled_garden=[], names=names, now=datetime.now(UTC))
    # The element lapses by itself at the TTL plus the margin unless refreshed.
    listed = lab.gw.nft("list", "set", "inet", lab.gateway.table, "name_auth_garden4")
    assert IDP in listed and "expires" in listed
    assert lab.http(IDP) == "portal"  # not in the auth window yet
    lab.gateway.open_auth_window(CLIENT, 60)
    assert lab.http(IDP) == "upstream"
    assert lab.http(OTHER) == "portal"
    assert lab.http(WILD) == "portal"


@pytest.mark.netns
def test_a_name_resolving_to_a_private_address_is_not_admitted_by_default(lab: Lab) -> None:
    lab.start_forwarder("")
    resolver = lab.resolver(OutboundPolicy())
    names = names_now(resolver, GardenName("idp.test", "captive-portal"))
    assert names[0].addresses == ()
    lab.gateway.apply(walled_garden=[], names=names, now=datetime.now(UTC))
    assert lab.http(IDP) == "portal"


@pytest.mark.netns
def test_a_changed_dns_answer_is_followed_within_its_ttl(lab: Lab) -> None:
    lab.start_forwarder("")
    resolver = lab.resolver(ALLOW_LAB)
    entry = GardenName("idp.test", "captive-portal")
    lab.gateway.apply(walled_garden=[], names=names_now(resolver, entry), now=datetime.now(UTC))
    assert lab.http(IDP) == "upstream"
    assert lab.http(IDP_NEW) == "portal"
    lab.set_idp(IDP_NEW)
    changed = time.monotonic()
    # What the reconciler does every few seconds: resolve what is due, sync the difference.
    while time.monotonic() - changed < TTL + 3:
        lab.gateway.sync([], [], now=datetime.now(UTC), names=names_now(resolver, entry))
        if lab.http(IDP_NEW) == "upstream":
            break
        time.sleep(0.5)
    assert lab.http(IDP_NEW) == "upstream", "the new address was not admitted within the TTL"
    assert time.monotonic() - changed <= TTL + 3
    assert lab.http(IDP) == "portal"
    document = json.loads(lab.gw.nft("-j", "list", "set", "inet", lab.gateway.table, "name_garden4"))
    [held] = [item["set"]["elem"] for item in document["nftables"] if "set" in item]
    assert [e["elem"]["val"] for e in held] == [IDP_NEW]
    # The element's timeout is the answer's TTL plus the margin (rounded up to a whole second).
    assert TTL + MARGIN_SECONDS <= held[0]["elem"]["timeout"] <= TTL + MARGIN_SECONDS + 1


@pytest.mark.netns
def test_a_wildcard_opens_what_the_gateways_dnsmasq_answers(lab: Lab) -> None:
    names = [GardenName("*.wild.test", "captive-auth")]
    lab.gateway.apply(walled_garden=[], names=names, now=datetime.now(UTC))
    lab.start_forwarder(dnsmasq_config(lab.gateway.table, names))
    lab.gateway.open_auth_window(CLIENT, 60)
    assert lab.http(WILD) == "portal"  # nobody has asked for a name below wild.test yet
    assert lab.lookup("login.wild.test") == WILD
    assert WILD in lab.gw.nft("list", "set", "inet", lab.gateway.table, "dns_auth_garden4")
    assert lab.http(WILD) == "upstream"
    # Another name's answer adds nothing.
    assert lab.lookup("other.test") == OTHER
    assert lab.http(OTHER) == "portal"
    # A later full sync keeps what dnsmasq added.
    lab.gateway.sync([], [], now=datetime.now(UTC), names=names)
    assert lab.http(WILD) == "upstream"
