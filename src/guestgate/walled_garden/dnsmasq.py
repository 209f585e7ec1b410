"""The dnsmasq configuration of a site's wildcard walled-garden names, for `guestgate gateway dnsmasq`.

nftables and agent gateways leave `*.` wildcards to the gateway's dnsmasq (`nftset=`, see
`guestgate.gateways.nftables.dnsmasq_config`): these are the lines for the site's nft table, with
its own wildcards and those of its providers' presets. Agent sites also receive them in their
state (`dnsmasq_config`); for an nftables site on this host an operator writes them into the
dnsmasq the guests use (`conf-file=` or a file in `conf-dir=`) and reloads it.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from guestgate.gateways.base import GatewayMisconfigured
from guestgate.gateways.nftables import dnsmasq_config
from guestgate.gateways.policy import effective_table
from guestgate.gateways.reconcile import names_of
from guestgate.gateways.service import find_site


def site_config(site_id: str, *, session: Session) -> str:
    """The dnsmasq lines of any org's site (NotFound); GatewayMisconfigured for drivers without dnsmasq."""
    site = find_site(site_id, session=session)
    table = effective_table(site.gateway_driver, dict(site.gateway_config or {}))
    if table is None:
        raise GatewayMisconfigured(
            f"site {site.id} uses the '{site.gateway_driver}' driver: dnsmasq serves only nftables and "
            "agent gateways (RouterOS resolves wildcards with its own DNS)"
        )
    return dnsmasq_config(table, names_of(site.id, session=session))
