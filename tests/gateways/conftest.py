"""Fixtures of the gateway tests: a fake RouterOS over HTTPS, and network namespaces for nftables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guestgate.config import Settings
from guestgate.gateways import registry
from guestgate.gateways.base import Gateway
from guestgate.gateways.routeros import RouterOSGateway
from guestgate.runtime import Runtime
from guestgate.sites.models import Site
from tests.gateways.fake_routeros import FakeRouterOS, Tls, make_tls
from tests.gateways.netns import require_netns_tools
from tests.utils.gateways import LOOPBACK_ROUTERS, RouterOSFactory
from tests.utils.settings import make_settings


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Test settings that let gateways on loopback (the fake router) through the outbound policy,
    as GUESTGATE_OUTBOUND_GATEWAY_NETWORKS does for a router on a management network."""
    return make_settings(db_url, tmp_path / "var", outbound_gateway_networks="127.0.0.0/8")


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A CA and the fake router's certificate signed by it."""
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def router(tls: Tls) -> Iterator[FakeRouterOS]:
    """A fake RouterOS v7 REST server on 127.0.0.1 (HTTPS), stopped after the test."""
    fake = FakeRouterOS(tls).start()
    yield fake
    fake.stop()


@pytest.fixture
def routeros(router: FakeRouterOS, tls: Tls) -> Iterator[RouterOSFactory]:
    """`routeros(**overrides)` -> a driver for the fake router, verifying it with the test CA."""
    built: list[RouterOSGateway] = []

    def make(**overrides: Any) -> RouterOSGateway:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": router.port,
            "username": router.username,
            "password": router.password,
            "outbound": LOOPBACK_ROUTERS,
            "ca_pem": tls.ca_pem,
            "timeout": 5.0,
            "connect_timeout": 2.0,
            "retries": 2,
            "backoff": 0.01,
        }
        settings.update(overrides)
        gateway = RouterOSGateway(**settings)
        built.append(gateway)
        return gateway

    yield make
    for gateway in built:
        gateway.close()


@pytest.fixture
def netns_tools() -> None:
    """nft and ip are usable (root): fails in CI when they are not, skips elsewhere."""
    require_netns_tools()


@pytest.fixture
def fast_gateways(runtime: Runtime) -> registry.GatewayPool:
    """The runtime's gateway pool, with RouterOS drivers that retry once after 10 ms (unreachable fails fast)."""

    def fast(site: Site, **kwargs: Any) -> Gateway:
        gateway = registry.build(site, **kwargs)
        if isinstance(gateway, RouterOSGateway):
            gateway.backoff = 0.01
            gateway.retries = 1
        return gateway

    pool = registry.GatewayPool(
        box=runtime.box, outbound=runtime.outbound, default_portal_port=runtime.settings.port, builder=fast
    )
    # Installed before the app or the portal first asks the runtime for its pool.
    runtime._gateways = pool
    return pool
