"""The RouterOS bootstrap script, checked line by line."""

from __future__ import annotations

from typing import Any

import pytest

from guestgate.gateways.base import GatewayMisconfigured
from guestgate.gateways.rsc import render_script
from guestgate.sites.models import Site

SITE_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


def site(subnets: list[str], **config: Any) -> Site:
    return Site(
        id=SITE_ID, name="Lobby\nWi-Fi", subnets=subnets, gateway_driver="routeros", gateway_config=config
    )


def script_lines(
    the_site: Site, portal_url: str = "http://192.0.2.10:8080/guest", **kwargs: Any
) -> list[str]:
    kwargs.setdefault("api_password", "pa$$word")
    return render_script(the_site, portal_url, "guestgate", **kwargs).splitlines()


def first_in_forward(rule: str) -> str:
    static = "[/ip firewall filter find where dynamic=no]"
    return (
        f":if ([:len {static}] > 0) do={{ /ip firewall filter add {rule} place-before=[:pick {static} 0] }} "
        f"else={{ /ip firewall filter add {rule} }}"
    )


def test_script_for_an_ipv4_site_is_exactly_the_expected_commands() -> None:
    lines = script_lines(site(["10.10.0.0/24", "10.20.0.0/24"]), controller_address="198.51.100.7")
    assert lines == [
        f'# guestgate: RouterOS v7 set-up for site "Lobby Wi-Fi" ({SITE_ID})',
        "# Unauthenticated guests' web traffic is sent to the portal at 192.0.2.10:8080 "
        "(http://192.0.2.10:8080/guest).",
        "# Import with `/import guestgate.rsc`; running it again replaces what it added before.",
        "",
        "# Remove what an earlier run added (guests already allowed stay allowed).",
        '/ip firewall filter remove [find where comment~"^guestgate"]',
        '/ip firewall nat remove [find where comment~"^guestgate"]',
        '/ip firewall address-list remove [find where list="guestgate-guest-subnets"]',
        '/ip firewall address-list remove [find where list="guestgate-walled-garden" and comment="guestgate:portal"]',
        "",
        "# Address lists: the guest subnets, and the portal (always reachable).",
        '/ip firewall address-list add list=guestgate-guest-subnets address=10.10.0.0/24 comment="guestgate"',
        '/ip firewall address-list add list=guestgate-guest-subnets address=10.20.0.0/24 comment="guestgate"',
        '/ip firewall address-list add list=guestgate-walled-garden address=192.0.2.10 comment="guestgate:portal"',
        "",
        "# Redirect tcp/80 of guests that are not allowed yet to the portal.",
        '/ip firewall nat add chain=guestgate-redirect action=return src-address-list=guestgate-allowed comment="guestgate"',
        "/ip firewall nat add chain=guestgate-redirect action=return dst-address-list=guestgate-walled-garden "
        'comment="guestgate"',
        "/ip firewall nat add chain=guestgate-redirect action=return src-address-list=guestgate-auth-window "
        'dst-address-list=guestgate-walled-garden-auth comment="guestgate"',
        "/ip firewall nat add chain=guestgate-redirect action=dst-nat protocol=tcp to-addresses=192.0.2.10 "
        'to-ports=8080 comment="guestgate"',
        "/ip firewall nat add chain=dstnat action=jump jump-target=guestgate-redirect protocol=tcp dst-port=80 "
        'src-address-list=guestgate-guest-subnets comment="guestgate"',
        "",
        "# /ip: guests pass only when allowed, for DNS, the walled garden and the auth window.",
        "/ip firewall filter add chain=guestgate-forward action=accept src-address-list=guestgate-allowed "
        'comment="guestgate"',
        '/ip firewall filter add chain=guestgate-forward action=accept protocol=udp dst-port=53 comment="guestgate"',
        '/ip firewall filter add chain=guestgate-forward action=accept protocol=tcp dst-port=53 comment="guestgate"',
        "/ip firewall filter add chain=guestgate-forward action=accept dst-address-list=guestgate-walled-garden "
        'comment="guestgate"',
        "/ip firewall filter add chain=guestgate-forward action=accept src-address-list=guestgate-auth-window "
        'dst-address-list=guestgate-walled-garden-auth comment="guestgate"',
        '/ip firewall filter add chain=guestgate-forward action=drop comment="guestgate"',
        "# First in forward (before fasttrack): guest traffic to the chain above, replies to guests accepted.",
        first_in_forward(
            "chain=forward action=jump jump-target=guestgate-forward src-address-list=guestgate-guest-subnets "
            'comment="guestgate"'
        ),
        first_in_forward(
            "chain=forward action=accept connection-state=established,related "
            'dst-address-list=guestgate-guest-subnets comment="guestgate"'
        ),
        "",
        "# The API user: address lists over REST, nothing else (no ssh, winbox, web, ftp, reboot, users).",
        '/user remove [find where name="guestgate"]',
        '/user group remove [find where name="guestgate-api"]',
        '/user group add name=guestgate-api policy=read,write,api,rest-api comment="guestgate REST API"',
        '/user add name=guestgate group=guestgate-api password="pa\\$\\$word" address=198.51.100.7/32 '
        'comment="guestgate"',
        "",
        "# HTTPS for the REST API, with a self-signed certificate; pin its fingerprint in the site.",
        ':if ([:len [/certificate find where name="guestgate-api"]] = 0) do={ /certificate add name=guestgate-api '
        "common-name=guestgate-api days-valid=3650 key-usage=digital-signature,key-encipherment,tls-server; "
        "/certificate sign guestgate-api }",
        "/ip service set www-ssl certificate=guestgate-api disabled=no",
        ':put ("pinned_sha256 for guestgate: " . [/certificate get guestgate-api fingerprint])',
    ]


def test_script_api_group_has_only_the_policies_the_driver_needs() -> None:
    [group] = [line for line in script_lines(site(["10.10.0.0/24"])) if line.startswith("/user group add")]
    policies = group.split("policy=")[1].split()[0].split(",")
    assert policies == ["read", "write", "api", "rest-api"]


def test_script_without_a_controller_address_does_not_restrict_the_user() -> None:
    [user] = [line for line in script_lines(site(["10.10.0.0/24"])) if line.startswith("/user add")]
    assert "address=" not in user


def test_script_escapes_quotes_backslashes_and_variables_in_the_password() -> None:
    [user] = [
        line
        for line in script_lines(site(["10.10.0.0/24"]), api_password='a"b\\c$d?e')
        if line.startswith("/user add")
    ]
    assert 'password="a\\"b\\\\c\\$d\\?e"' in user


def test_script_for_ipv6_subnets_adds_ipv6_filter_rules_but_no_ipv6_redirect() -> None:
    lines = script_lines(site(["10.10.0.0/24", "2001:db8:10::/64"]))
    assert (
        '/ipv6 firewall address-list add list=guestgate-guest-subnets address=2001:db8:10::/64 comment="guestgate"'
        in lines
    )
    assert '/ipv6 firewall filter add chain=guestgate-forward action=drop comment="guestgate"' in lines
    assert '/ipv6 firewall filter remove [find where comment~"^guestgate"]' in lines
    assert not [line for line in lines if line.startswith("/ipv6 firewall nat")]


def test_script_for_an_ipv6_only_site_has_no_ipv4_rules() -> None:
    lines = script_lines(site(["2001:db8:10::/64"]))
    assert not [
        line for line in lines if line.startswith(("/ip firewall nat add", "/ip firewall filter add"))
    ]


def test_script_takes_the_portal_address_and_port_from_the_site_settings() -> None:
    lines = script_lines(
        site(["10.10.0.0/24"], portal_address="192.0.2.99", portal_port=8081),
        "https://portal.example.com/guest",
    )
    assert (
        "/ip firewall nat add chain=guestgate-redirect action=dst-nat protocol=tcp to-addresses=192.0.2.99 "
        'to-ports=8081 comment="guestgate"'
    ) in lines


def test_script_defaults_the_portal_port_to_80() -> None:
    lines = script_lines(site(["10.10.0.0/24"]), "http://192.0.2.10/guest")
    assert any("to-addresses=192.0.2.10 to-ports=80 " in line for line in lines)


def test_script_refuses_a_portal_host_name_without_an_address() -> None:
    with pytest.raises(GatewayMisconfigured, match="portal_address"):
        render_script(site(["10.10.0.0/24"]), "https://portal.example.com/", "guestgate", api_password="x")


def test_script_refuses_an_ipv6_portal() -> None:
    with pytest.raises(GatewayMisconfigured, match="IPv4"):
        render_script(site(["10.10.0.0/24"]), "http://[2001:db8::1]:8080/", "guestgate", api_password="x")


def test_script_refuses_a_site_without_subnets() -> None:
    with pytest.raises(GatewayMisconfigured, match="no guest subnets"):
        render_script(site([]), "http://192.0.2.10/", "guestgate", api_password="x")


@pytest.mark.parametrize("user", ["", "gate way", 'x"y', "a" * 65])
def test_script_refuses_an_unusable_user_name(user: str) -> None:
    with pytest.raises(GatewayMisconfigured, match="user name"):
        render_script(site(["10.10.0.0/24"]), "http://192.0.2.10/", user, api_password="x")


@pytest.mark.parametrize("password", ["", "two\nlines"])
def test_script_refuses_an_empty_or_multi_line_password(password: str) -> None:
    with pytest.raises(GatewayMisconfigured, match="password"):
        render_script(site(["10.10.0.0/24"]), "http://192.0.2.10/", "guestgate", api_password=password)
