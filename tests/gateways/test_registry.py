"""Building a site's driver from its settings and sealed secrets; the pool that keeps drivers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from guestgate.config import Settings
from guestgate.db import new_id
from guestgate.gateways import registry
from guestgate.gateways.agent import AgentFeed, AgentGateway
from guestgate.gateways.base import GatewayMisconfigured
from guestgate.gateways.nftables import NftablesGateway
from guestgate.gateways.none import NoneGateway
from guestgate.gateways.routeros import RouterOSGateway
from guestgate.security import SecretBox
from guestgate.sites.models import Site
from tests.gateways.fake_routeros import FakeRouterOS, Tls
from tests.utils.gateways import LOOPBACK_ROUTERS
from tests.utils.settings import TEST_KEYS


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Settings.model_validate({"encryption_key": TEST_KEYS["encryption_key"]}))


def site(box: SecretBox, driver: str, config: dict[str, Any], secrets: dict[str, str] | None = None) -> Site:
    sealed = box.seal(json.dumps(secrets)) if secrets else None
    return Site(
        id=new_id(),
        name="Lobby",
        subnets=["10.0.0.0/24"],
        gateway_driver=driver,
        gateway_config=config,
        gateway_secrets_sealed=sealed,
    )


def test_build_none_gives_the_recording_driver(box: SecretBox) -> None:
    assert isinstance(registry.build(site(box, "none", {}), box=box, outbound=LOOPBACK_ROUTERS), NoneGateway)


def test_build_nftables_uses_the_site_settings_and_the_default_portal_port(box: SecretBox) -> None:
    gateway = registry.build(
        site(box, "nftables", {"interface": "wlan0", "netns": "guests", "table": "gg_lobby"}),
        box=box,
        outbound=LOOPBACK_ROUTERS,
        default_portal_port=8123,
    )
    assert isinstance(gateway, NftablesGateway)
    assert (gateway.interface, gateway.netns, gateway.table, gateway.portal_port, gateway.portal_address) == (
        "wlan0",
        "guests",
        "gg_lobby",
        8123,
        None,
    )


def test_build_nftables_prefers_the_sites_portal_settings(box: SecretBox) -> None:
    gateway = registry.build(
        site(box, "nftables", {"interface": "wlan0", "portal_address": "192.0.2.10", "portal_port": 8443}),
        box=box,
        outbound=LOOPBACK_ROUTERS,
    )
    assert isinstance(gateway, NftablesGateway)
    assert (gateway.portal_address, gateway.portal_port, gateway.table) == ("192.0.2.10", 8443, "guestgate")


def test_build_routeros_opens_the_sealed_password(box: SecretBox, router: FakeRouterOS, tls: Tls) -> None:
    config = {"host": "127.0.0.1", "port": router.port, "username": router.username, "ca_pem": tls.ca_pem}
    gateway = registry.build(
        site(box, "routeros", config, {"password": router.password}), box=box, outbound=LOOPBACK_ROUTERS
    )
    try:
        assert isinstance(gateway, RouterOSGateway)
        assert gateway.health().state == "ok"
    finally:
        gateway.close()


@pytest.mark.parametrize(
    ("driver", "config", "secrets", "message"),
    [
        ("routeros", {"host": "192.0.2.1", "username": "gg"}, None, "password"),
        ("routeros", {"host": "192.0.2.1"}, {"password": "x"}, "username"),
        ("nftables", {}, None, "interface"),
        ("carrier-pigeon", {}, None, "unknown gateway driver"),
    ],
)
def test_build_refuses_settings_that_cannot_work(
    box: SecretBox, driver: str, config: dict[str, Any], secrets: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(GatewayMisconfigured, match=message):
        registry.build(site(box, driver, config, secrets), box=box, outbound=LOOPBACK_ROUTERS)


def test_build_agent_gives_a_remote_driver_that_wakes_the_sites_agent(box: SecretBox) -> None:
    feed = AgentFeed()
    lobby = site(box, "agent", {"interface": "wlan0"})
    gateway = registry.build(lobby, box=box, outbound=LOOPBACK_ROUTERS, agents=feed)
    assert isinstance(gateway, AgentGateway)
    assert (gateway.remote, gateway.enforcing, gateway.site_id) == (True, True, lobby.id)
    gateway.revoke("s1", "10.0.0.5")
    gateway.replace_walled_garden([])
    assert feed.generation(lobby.id) == 2
    assert gateway.list_allowed() == []


def test_pool_hands_its_agent_feed_to_agent_drivers(box: SecretBox) -> None:
    pool = registry.GatewayPool(box=box, outbound=LOOPBACK_ROUTERS)
    lobby = site(box, "agent", {})
    gateway = pool.get(lobby)
    assert isinstance(gateway, AgentGateway)
    assert gateway.feed is pool.agents
    pool.close()


def test_pool_gives_one_lock_per_site(box: SecretBox) -> None:
    pool = registry.GatewayPool(box=box, outbound=LOOPBACK_ROUTERS)
    assert pool.site_lock("a") is pool.site_lock("a")
    assert pool.site_lock("a") is not pool.site_lock("b")


def test_pool_keeps_one_driver_per_site_until_its_settings_change(box: SecretBox) -> None:
    pool = registry.GatewayPool(box=box, outbound=LOOPBACK_ROUTERS)
    lobby = site(box, "nftables", {"interface": "wlan0"})
    first = pool.get(lobby)
    assert pool.get(lobby) is first
    lobby.gateway_config = {"interface": "wlan1"}
    second = pool.get(lobby)
    assert second is not first
    assert isinstance(second, NftablesGateway)
    assert second.interface == "wlan1"
    pool.close()


def test_pool_closes_a_replaced_driver(box: SecretBox, router: FakeRouterOS, tls: Tls) -> None:
    config = {"host": "127.0.0.1", "port": router.port, "username": router.username, "ca_pem": tls.ca_pem}
    lobby = site(box, "routeros", config, {"password": router.password})
    pool = registry.GatewayPool(box=box, outbound=LOOPBACK_ROUTERS)
    first = pool.get(lobby)
    first.health()
    lobby.gateway_config = {**config, "tls_verify": True, "port": router.port}
    lobby.gateway_secrets_sealed = box.seal(json.dumps({"password": "changed"}))
    second = pool.get(lobby)
    assert second is not first
    with pytest.raises(RuntimeError):
        first.health()
    pool.close()
