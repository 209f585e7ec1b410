"""The outbound-destination policy alone: which hosts and addresses a tenant-aimed connection may reach."""

from __future__ import annotations

import socket

import pytest

from guestgate.errors import ParameterInvalid, ParameterMissing
from guestgate.outbound import OutboundPolicy, OutboundRefused, canonical_host, secret_for_destination

REFUSED_HOSTS = [
    # loopback in every spelling
    "127.0.0.1",
    "127.8.9.10",
    "localhost",
    "LOCALHOST.",
    "api.localhost",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "127.1",
    "0x7f.0.0.1",
    "::1",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "::ffff:7f00:1",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
    "2002:7f00:1::1",
    "::ffff:0:127.0.0.1",
    # cloud metadata, link-local
    "169.254.169.254",
    "fe80::1",
    # private, CGNAT, unique local, site-local
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",
    "fd00::1",
    "fec0::1",
    "::ffff:10.0.0.1",
    # unspecified, multicast, reserved, broadcast, documentation, benchmarking
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "2001:db8::1",
    "198.18.0.1",
    # not a host name at all
    "a_b.example.com",
    "1.2.3.4.5",
    "-bad.example.com",
    "",
]


def resolver(answers: dict[str, list[str]]) -> OutboundPolicy:
    def resolve(host: str, port: int) -> list[str]:
        if host in answers:
            return answers[host]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    return OutboundPolicy(resolver=resolve)


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_loopback_private_link_local_and_odd_spellings_are_refused(host: str) -> None:
    with pytest.raises(OutboundRefused):
        OutboundPolicy().vet(host, 443, "gateway")
    with pytest.raises(OutboundRefused):
        OutboundPolicy().vet(host, 443, "webhook")


@pytest.mark.parametrize("host", ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808", "::ffff:8.8.8.8"])
def test_public_addresses_pass(host: str) -> None:
    assert OutboundPolicy().vet(host, 443, "webhook")


def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    policy = resolver(
        {
            "public.example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
            "mixed.example.com": ["93.184.215.14", "127.0.0.1"],
            "metadata.example.com": ["169.254.169.254"],
        }
    )
    assert policy.vet("Public.Example.com.", 443, "webhook") == [
        "93.184.215.14",
        "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
    ]
    with pytest.raises(
        OutboundRefused, match=r"'mixed.example.com' resolves to 127.0.0.1, a loopback address"
    ):
        policy.vet("mixed.example.com", 443, "webhook")
    with pytest.raises(OutboundRefused, match="link-local"):
        policy.vet("metadata.example.com", 443, "gateway")
    with pytest.raises(OutboundRefused, match="does not resolve"):
        policy.vet("nowhere.example.com", 443, "gateway")


def test_allowed_ranges_open_only_what_they_list_and_gateway_ranges_only_for_gateways() -> None:
    policy = OutboundPolicy.from_settings("192.168.50.0/24", "10.20.0.0/16")
    assert policy.vet("192.168.50.7", 443, "webhook") == ["192.168.50.7"]
    assert policy.vet("192.168.50.7", 443, "gateway") == ["192.168.50.7"]
    assert policy.vet("10.20.3.4", 443, "gateway") == ["10.20.3.4"]
    # The routers' management network is not a place for webhooks.
    with pytest.raises(OutboundRefused, match="GUESTGATE_OUTBOUND_ALLOW_NETWORKS"):
        policy.vet("10.20.3.4", 443, "webhook")
    with pytest.raises(OutboundRefused):
        policy.vet("192.168.51.1", 443, "gateway")
    # The IPv6 form of an allowed IPv4 address is the same destination.
    assert policy.vet("::ffff:192.168.50.7", 443, "webhook") == ["::ffff:c0a8:3207"]


def test_a_bad_allowed_range_names_the_setting() -> None:
    with pytest.raises(ValueError, match="GUESTGATE_OUTBOUND_GATEWAY_NETWORKS: 'ten' is not"):
        OutboundPolicy.from_settings("", "10.0.0.0/8, ten")


def test_the_api_check_names_the_parameter() -> None:
    with pytest.raises(ParameterInvalid) as refused:
        OutboundPolicy().check_url(
            "http://[::ffff:127.0.0.1]:8080/x", purpose="webhook", parameter="webhooks[2].url"
        )
    assert str(refused.value).startswith(
        "The 'webhooks[2].url' parameter is refused: ::ffff:7f00:1 is an IPv6"
    )


def test_canonical_host_keeps_names_and_literals_and_refuses_the_rest() -> None:
    assert canonical_host(" Router.Example.COM. ") == "router.example.com"
    assert canonical_host("[2606:4700::1111]") == "2606:4700::1111"
    assert canonical_host("bücher.example") == "xn--bcher-kva.example"
    with pytest.raises(OutboundRefused, match="not a canonical IP address"):
        canonical_host("017700000001")


def test_a_secret_follows_its_destination() -> None:
    stored = {"https://a.example.com/": "sealed-a"}
    assert secret_for_destination(
        "https://a.example.com/", given=None, stored=stored, parameter="p", reason="r"
    ) == ("sealed-a")
    assert secret_for_destination(
        "https://b.example.com/", given="new", stored=stored, parameter="p", reason="r"
    ) == ("new")
    with pytest.raises(ParameterMissing, match=r"The 'p' parameter is required for this request: why\."):
        secret_for_destination(
            "https://b.example.com/", given=None, stored=stored, parameter="p", reason="why"
        )
