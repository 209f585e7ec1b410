"""Which driver a site uses: `gateway_driver` -> a built Gateway, from the site's settings and secrets.

`build(site, box=...)` makes a fresh driver; `GatewayPool` keeps one per site between calls so the
RouterOS HTTPS connection is reused, and rebuilds it when the site's gateway settings change.
The pool also holds one lock per site, taken by whoever changes that gateway in this process
(the portal's notifier, the operator routes, the reconciler), so a reconciler working from a
state read just before a sign-in cannot remove the guest the sign-in has just let through; and
the `AgentFeed` that wakes the long-polls of `agent` sites.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from guestgate.gateways.agent import AGENT_DRIVER, AgentFeed, AgentGateway
from guestgate.gateways.base import Gateway, GatewayMisconfigured
from guestgate.gateways.nftables import LEGACY_TABLE, NftablesGateway
from guestgate.gateways.none import NoneGateway
from guestgate.gateways.routeros import RouterOSGateway
from guestgate.outbound import OutboundPolicy
from guestgate.security import SecretBox
from guestgate.sites import service as site_service
from guestgate.sites.models import Site

DEFAULT_PORTAL_PORT = 8000
# Drivers guestgate pushes changes to; `agent` sites pull theirs, `none` enforces nothing.
PUSHED_DRIVERS = frozenset({"nftables", "routeros"})

Factory = Callable[[dict[str, Any], dict[str, str], int, OutboundPolicy], Gateway]


def _none(
    config: dict[str, Any], secrets: dict[str, str], portal_port: int, outbound: OutboundPolicy
) -> Gateway:
    return NoneGateway()


def _nftables(
    config: dict[str, Any], secrets: dict[str, str], portal_port: int, outbound: OutboundPolicy
) -> Gateway:
    if not config.get("interface"):
        raise GatewayMisconfigured("the nftables driver needs the guest 'interface'")
    return NftablesGateway(
        interface=str(config["interface"]),
        portal_port=int(config.get("portal_port") or portal_port),
        portal_address=config.get("portal_address"),
        netns=config.get("netns"),
        # Sites store their own table (`guestgate_<site id>`); one made before that has none and
        # keeps the table it always had until it is edited.
        table=str(config.get("table") or LEGACY_TABLE),
    )


def _routeros(
    config: dict[str, Any], secrets: dict[str, str], portal_port: int, outbound: OutboundPolicy
) -> Gateway:
    if not config.get("host") or not config.get("username"):
        raise GatewayMisconfigured("the routeros driver needs 'host' and 'username'")
    if not secrets.get("password"):
        raise GatewayMisconfigured("the routeros driver needs a 'password'")
    return RouterOSGateway(
        host=str(config["host"]),
        port=int(config.get("port") or 443),
        username=str(config["username"]),
        password=secrets["password"],
        outbound=outbound,
        tls_verify=bool(config.get("tls_verify", True)),
        ca_pem=config.get("ca_pem"),
        pinned_sha256=config.get("pinned_sha256"),
    )


DRIVERS: dict[str, Factory] = {
    "none": _none,
    "nftables": _nftables,
    "routeros": _routeros,
}


def build(
    site: Site,
    *,
    box: SecretBox,
    outbound: OutboundPolicy,
    default_portal_port: int = DEFAULT_PORTAL_PORT,
    agents: AgentFeed | None = None,
) -> Gateway:
    """A new driver for the site's gateway; GatewayMisconfigured when its settings cannot work."""
    if site.gateway_driver == AGENT_DRIVER:
        # Remote: its changes wake the agent through `agents`, which the agent endpoint watches.
        return AgentGateway(site_id=site.id, feed=agents if agents is not None else AgentFeed())
    factory = DRIVERS.get(site.gateway_driver)
    if factory is None:
        raise GatewayMisconfigured(f"unknown gateway driver '{site.gateway_driver}'")
    secrets = site_service.gateway_secrets(site, box=box)
    return factory(dict(site.gateway_config or {}), secrets, default_portal_port, outbound)


class GatewayPool:
    """One driver per site, kept between calls (connection reuse) and rebuilt when settings change."""

    def __init__(
        self,
        *,
        box: SecretBox,
        outbound: OutboundPolicy,
        default_portal_port: int = DEFAULT_PORTAL_PORT,
        builder: Callable[..., Gateway] = build,
    ) -> None:
        self._box = box
        self._outbound = outbound
        self._portal_port = default_portal_port
        self._builder = builder
        self._built: dict[str, tuple[str, Gateway]] = {}
        self._lock = threading.Lock()
        self._site_locks: dict[str, threading.Lock] = {}
        self.agents = AgentFeed()

    def get(self, site: Site) -> Gateway:
        """The site's driver, built on first use or after its settings changed."""
        key = _settings_key(site)
        with self._lock:
            held = self._built.get(site.id)
            if held is not None and held[0] == key:
                return held[1]
            gateway = self._builder(
                site,
                box=self._box,
                outbound=self._outbound,
                default_portal_port=self._portal_port,
                agents=self.agents,
            )
            self._built[site.id] = (key, gateway)
        if held is not None:
            held[1].close()
        return gateway

    def site_lock(self, site_id: str) -> threading.Lock:
        """The lock that serialises changes to one site's gateway in this process."""
        with self._lock:
            lock = self._site_locks.get(site_id)
            if lock is None:
                lock = self._site_locks[site_id] = threading.Lock()
            return lock

    @property
    def default_portal_port(self) -> int:
        """The portal port used where a site names none."""
        return self._portal_port

    def close(self) -> None:
        """Close every driver."""
        with self._lock:
            built, self._built = self._built, {}
        for _, gateway in built.values():
            gateway.close()


def _settings_key(site: Site) -> str:
    text = json.dumps(
        [site.gateway_driver, site.gateway_config or {}, site.gateway_secrets_sealed], sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()
