"""The RouterOS bootstrap script (`.rsc`) of a site: lists, redirect, filter, API user, HTTPS.

`guestgate gateway script <siteId>` prints it; the operator imports it once on the router
(`/import guestgate.rsc`). Running it again replaces what it added before; guests already in
`guestgate-allowed` stay. What it sets up, for the site's guest subnets:

- `guestgate-guest-subnets` (the subnets) and the portal in `guestgate-walled-garden`;
- NAT: tcp/80 from guests not allowed, outside the walled garden and the auth window,
  dst-nat to the portal (IPv4; the portal must answer plain HTTP on that port);
- filter: guest traffic jumps to `guestgate-forward`, which accepts allowed guests, DNS, the
  walled garden and the auth window and drops the rest. The jump and an accept for replies to
  guests go first in `forward`, ahead of fasttrack, so a revoked guest's open connections stop too;
- a group with policy read,write,api,rest-api (no ssh, winbox, web, ftp, reboot or user
  management) and a user in it for guestgate's REST calls;
- `www-ssl` with a self-signed certificate whose SHA-256 fingerprint can be pinned in the site.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from guestgate.gateways.base import GatewayMisconfigured
from guestgate.gateways.routeros import (
    ALLOWED_LIST,
    AUTH_GARDEN_LIST,
    AUTH_WINDOW_LIST,
    GARDEN_LIST,
)
from guestgate.sites.models import Site

SUBNETS_LIST = "guestgate-guest-subnets"
FORWARD_CHAIN = "guestgate-forward"
REDIRECT_CHAIN = "guestgate-redirect"
API_GROUP = "guestgate-api"
API_POLICY = "read,write,api,rest-api"
CERTIFICATE = "guestgate-api"
PORTAL_COMMENT = "guestgate:portal"
TAG = 'comment="guestgate"'
_USER = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def render_script(
    site: Site,
    portal_url: str,
    api_user: str,
    *,
    api_password: str,
    controller_address: str | None = None,
    portal_address: str | None = None,
    portal_port: int | None = None,
) -> str:
    """The `.rsc` commands that prepare a RouterOS v7 router to be driven by guestgate for `site`."""
    if not site.subnets:
        raise GatewayMisconfigured("the site has no guest subnets to protect")
    if not _USER.fullmatch(api_user):
        raise GatewayMisconfigured(f"'{api_user}' is not a usable RouterOS user name")
    if not api_password or "\n" in api_password or "\r" in api_password:
        raise GatewayMisconfigured("set a single-line API password for the site's gateway first")
    address, port = _portal(site, portal_url, portal_address, portal_port)
    networks = [ipaddress.ip_network(s, strict=False) for s in site.subnets]
    families: list[int] = sorted({n.version for n in networks})
    controller = str(ipaddress.ip_network(controller_address, strict=False)) if controller_address else None
    name = " ".join(site.name.split())

    lines = [
        f'# guestgate: RouterOS v7 set-up for site "{name}" ({site.id})',
        f"# Unauthenticated guests' web traffic is sent to the portal at {address}:{port} ({portal_url}).",
        "# Import with `/import guestgate.rsc`; running it again replaces what it added before.",
        "",
        "# Remove what an earlier run added (guests already allowed stay allowed).",
    ]
    for menu in _menus(families):
        lines.append(f'{menu} firewall filter remove [find where comment~"^guestgate"]')
    lines.append('/ip firewall nat remove [find where comment~"^guestgate"]')
    for menu in _menus(families):
        lines.append(f'{menu} firewall address-list remove [find where list="{SUBNETS_LIST}"]')
    lines.append(
        f'/ip firewall address-list remove [find where list="{GARDEN_LIST}" and comment="{PORTAL_COMMENT}"]'
    )

    lines += ["", "# Address lists: the guest subnets, and the portal (always reachable)."]
    for network in networks:
        menu = _menu(network.version)
        lines.append(f"{menu} firewall address-list add list={SUBNETS_LIST} address={network} {TAG}")
    lines.append(
        f'/ip firewall address-list add list={GARDEN_LIST} address={address} comment="{PORTAL_COMMENT}"'
    )

    if 4 in families:
        lines += ["", "# Redirect tcp/80 of guests that are not allowed yet to the portal."]
        nat = "/ip firewall nat add"
        lines += [
            f"{nat} chain={REDIRECT_CHAIN} action=return src-address-list={ALLOWED_LIST} {TAG}",
            f"{nat} chain={REDIRECT_CHAIN} action=return dst-address-list={GARDEN_LIST} {TAG}",
            f"{nat} chain={REDIRECT_CHAIN} action=return src-address-list={AUTH_WINDOW_LIST} "
            f"dst-address-list={AUTH_GARDEN_LIST} {TAG}",
            f"{nat} chain={REDIRECT_CHAIN} action=dst-nat protocol=tcp to-addresses={address} "
            f"to-ports={port} {TAG}",
            f"{nat} chain=dstnat action=jump jump-target={REDIRECT_CHAIN} protocol=tcp dst-port=80 "
            f"src-address-list={SUBNETS_LIST} {TAG}",
        ]

    for menu in _menus(families):
        add = f"{menu} firewall filter add"
        lines += [
            "",
            f"# {menu}: guests pass only when allowed, for DNS, the walled garden and the auth window.",
            f"{add} chain={FORWARD_CHAIN} action=accept src-address-list={ALLOWED_LIST} {TAG}",
            f"{add} chain={FORWARD_CHAIN} action=accept protocol=udp dst-port=53 {TAG}",
            f"{add} chain={FORWARD_CHAIN} action=accept protocol=tcp dst-port=53 {TAG}",
            f"{add} chain={FORWARD_CHAIN} action=accept dst-address-list={GARDEN_LIST} {TAG}",
            f"{add} chain={FORWARD_CHAIN} action=accept src-address-list={AUTH_WINDOW_LIST} "
            f"dst-address-list={AUTH_GARDEN_LIST} {TAG}",
            f"{add} chain={FORWARD_CHAIN} action=drop {TAG}",
            "# First in forward (before fasttrack): guest traffic to the chain above, replies to guests accepted.",
            _first_in_forward(
                menu,
                f"chain=forward action=jump jump-target={FORWARD_CHAIN} src-address-list={SUBNETS_LIST} {TAG}",
            ),
            _first_in_forward(
                menu,
                f"chain=forward action=accept connection-state=established,related "
                f"dst-address-list={SUBNETS_LIST} {TAG}",
            ),
        ]

    user_address = f" address={controller}" if controller else ""
    lines += [
        "",
        "# The API user: address lists over REST, nothing else (no ssh, winbox, web, ftp, reboot, users).",
        f'/user remove [find where name="{api_user}"]',
        f'/user group remove [find where name="{API_GROUP}"]',
        f'/user group add name={API_GROUP} policy={API_POLICY} comment="guestgate REST API"',
        f"/user add name={api_user} group={API_GROUP} password={_quote(api_password)}{user_address} {TAG}",
        "",
        "# HTTPS for the REST API, with a self-signed certificate; pin its fingerprint in the site.",
        f':if ([:len [/certificate find where name="{CERTIFICATE}"]] = 0) do={{ '
        f"/certificate add name={CERTIFICATE} common-name={CERTIFICATE} days-valid=3650 "
        f"key-usage=digital-signature,key-encipherment,tls-server; /certificate sign {CERTIFICATE} }}",
        f"/ip service set www-ssl certificate={CERTIFICATE} disabled=no",
        f':put ("pinned_sha256 for guestgate: " . [/certificate get {CERTIFICATE} fingerprint])',
    ]
    return "\n".join(lines) + "\n"


def _portal(site: Site, portal_url: str, address: str | None, port: int | None) -> tuple[str, int]:
    config = site.gateway_config or {}
    parts = urlsplit(portal_url)
    chosen = address or config.get("portal_address") or parts.hostname
    try:
        parsed = ipaddress.ip_address(str(chosen))
    except ValueError as exc:
        raise GatewayMisconfigured(
            f"the portal address must be an IPv4 address for dst-nat; '{chosen}' is not "
            "(set the site's gateway.portal_address)"
        ) from exc
    if parsed.version != 4:
        raise GatewayMisconfigured(f"RouterOS dst-nat needs an IPv4 portal address, not {parsed}")
    chosen_port = port or config.get("portal_port") or parts.port or 80
    return str(parsed), int(chosen_port)


def _menus(families: list[int]) -> list[str]:
    return [_menu(f) for f in families]


def _menu(version: int) -> str:
    return "/ipv6" if version == 6 else "/ip"


def _first_in_forward(menu: str, rule: str) -> str:
    # RouterOS refuses to place a rule before a dynamic one, and `add` alone would append the rule
    # behind fasttrack; so it goes before the first static rule, or in an empty chain as is.
    static = f"[{menu} firewall filter find where dynamic=no]"
    return (
        f":if ([:len {static}] > 0) do={{ {menu} firewall filter add {rule} "
        f"place-before=[:pick {static} 0] }} else={{ {menu} firewall filter add {rule} }}"
    )


def _quote(value: str) -> str:
    # RouterOS strings: backslash escapes, and `$` would start a variable.
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("?", "\\?")
    return f'"{escaped}"'
