"""The hosts each identity provider's sign-in needs, opened in the auth window automatically.

A site whose subnets belong to an `oauth2` instance gets, as `captive-auth` host names, the
hosts of that instance's integration type below: a guest in its auth window can load the
provider's sign-in pages and the assets they pull in, so an operator never has to discover
them. They are added to the site's own walled-garden entries when its gateway is pushed (not
stored as entries: the API lists only what the operator created), and are enforced like host
names (see `guestgate.walled_garden.resolver`, and the RouterOS driver). The token, JWKS and
user-info endpoints are called by guestgate itself, not by the guest, so they are not here.

A generic OpenID Connect integration (`oidc`) has no fixed list: its one host is the host of
the authorization endpoint its discovery document names (`sign_in_host`, found when the
integration is saved, see `guestgate.auth_integrations.discovery`): the provider's login page.
Assets a provider's login page loads from other hosts are the operator's to add as entries.

One list per integration type; every name with why the guest's browser needs it. Wildcards
cover asset hosts whose exact names change (they work through the gateway's DNS: dnsmasq's
`nftset=` on nftables and agent gateways, static DNS FWD entries on RouterOS v7.6+).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PresetHost:
    """A host a provider's sign-in needs, and why."""

    hostname: str
    reason: str


PRESETS: dict[str, tuple[PresetHost, ...]] = {
    "google": (
        PresetHost("accounts.google.com", "the sign-in and consent pages, and the authorize endpoint"),
        PresetHost("accounts.youtube.com", "Google's sign-in sets its session cookie there on the way back"),
        PresetHost("*.gstatic.com", "scripts, styles and images of the sign-in pages (ssl., www., fonts.)"),
        PresetHost("fonts.googleapis.com", "the web fonts the sign-in pages load"),
        PresetHost("*.googleusercontent.com", "the account pictures shown in the account chooser"),
    ),
    "github": (
        PresetHost("github.com", "the sign-in page and the OAuth authorize endpoint (/login/oauth/authorize)"),
        PresetHost("*.githubassets.com", "scripts and styles of the sign-in and authorize pages"),
        PresetHost("avatars.githubusercontent.com", "the account and app pictures on the authorize page"),
    ),
    "azure": (
        PresetHost("login.microsoftonline.com", "the sign-in pages and the authorize endpoint of every tenant"),
        PresetHost("login.live.com", "personal Microsoft accounts (tenant `common` or `consumers`) sign in there"),
        PresetHost("*.msauth.net", "scripts, styles and images of the sign-in pages (aadcdn., logincdn.)"),
        PresetHost("*.msftauth.net", "the same assets on Microsoft's second CDN name (aadcdn.msftauth.net)"),
    ),
}


def hosts_for(integration_type: str) -> tuple[PresetHost, ...]:
    """The preset hosts of an integration type (none for an unknown type)."""
    return PRESETS.get(integration_type, ())


def sign_in_hosts(integration_type: str, sign_in_host: str | None) -> tuple[str, ...]:
    """What an integration opens in the auth window: its type's presets, or an `oidc` issuer's sign-in host."""
    if integration_type == "oidc":
        return () if sign_in_host is None else (sign_in_host,)
    return tuple(host.hostname for host in hosts_for(integration_type))
