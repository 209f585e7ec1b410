"""The reconciler: sessions and walled garden of the database, pushed to each site's gateway."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from guestgate.db import new_id
from guestgate.gateways import registry
from guestgate.gateways.base import Gateway, GuestAccess
from guestgate.gateways.nftables import table_name
from guestgate.gateways.none import NoneGateway
from guestgate.gateways.reconcile import ReconcileResult, SiteOutcome, reconcile_all, reconcile_site
from guestgate.gateways.routeros import RouterOSGateway
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites import service as site_service
from guestgate.sites.models import Site
from guestgate.sites.schemas import GatewayIn, SiteIn
from guestgate.walled_garden.models import WalledGardenEntry
from tests.gateways.fake_routeros import FakeRouterOS, Tls
from tests.gateways.netns import namespaces
from tests.gateways.world import allow_nftables

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ORG = "org-a"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def pool(runtime: Runtime) -> Iterator[registry.GatewayPool]:
    """A pool whose RouterOS drivers back off in milliseconds, so unreachable sites fail fast."""

    def fast(site: Site, **kwargs: Any) -> Gateway:
        gateway = registry.build(site, **kwargs)
        if isinstance(gateway, RouterOSGateway):
            gateway.backoff = 0.01
        return gateway

    built = registry.GatewayPool(box=runtime.box, outbound=runtime.outbound, builder=fast)
    yield built
    built.close()


def make_site(runtime: Runtime, name: str, gateway: GatewayIn, subnet: str = "10.0.0.0/24") -> str:
    if gateway.driver == "nftables":
        allow_nftables(runtime, gateway)
    with runtime.sessions() as session:
        org_service.ensure(ORG, session=session)
        site = site_service.create(
            SiteIn(name=name, subnets=[subnet], gateway=gateway),
            org_id=ORG,
            box=runtime.box,
            rules=runtime.gateway_rules,
            session=session,
        )
        return site.id


def routeros_gateway(router: FakeRouterOS, tls: Tls, **overrides: Any) -> GatewayIn:
    values: dict[str, Any] = {
        "driver": "routeros",
        "host": "127.0.0.1",
        "port": router.port,
        "username": router.username,
        "password": router.password,
        "ca_pem": tls.ca_pem,
    }
    values.update(overrides)
    return GatewayIn(**values)


def add_user(
    runtime: Runtime, site_id: str, ip: str, *, expires_in: timedelta, status: str = "active"
) -> str:
    with runtime.sessions() as session:
        user = SiteUser(
            org_id=ORG,
            site_id=site_id,
            instance_id=new_id(),
            ip_address=ip,
            strategy="coupon",
            status=status,
            started_at=NOW - timedelta(minutes=5),
            expires_at=NOW + expires_in,
        )
        session.add(user)
        session.commit()
        return user.id


def add_garden(runtime: Runtime, site_id: str, ip: str, kind: str) -> None:
    with runtime.sessions() as session:
        session.add(WalledGardenEntry(org_id=ORG, site_id=site_id, name=ip, type=kind, ip_address=ip))
        session.commit()


def load_site(runtime: Runtime, site_id: str) -> Site:
    with runtime.sessions() as session:
        site = session.get(Site, site_id)
        assert site is not None
        return site


def allowed(router: FakeRouterOS) -> dict[str, dict[str, str]]:
    return {e["address"]: e for e in router.entries("guestgate-allowed")}


def test_reconcile_site_returns_what_the_gateway_changed() -> None:
    gateway = NoneGateway(clock=lambda: NOW)
    site = Site(id=new_id(), name="Lobby", subnets=[], gateway_driver="none", gateway_config={})
    desired = [GuestAccess("s1", "10.0.0.5", None, NOW + timedelta(hours=1))]
    assert reconcile_site(
        site, gateway, desired_guests=desired, walled_garden=[], now=NOW
    ) == ReconcileResult(1, 0, 0)
    assert reconcile_site(site, gateway, desired_guests=[], walled_garden=[], now=NOW) == ReconcileResult(
        0, 1, 0
    )


def test_reconcile_all_pushes_the_active_sessions_and_walled_garden_and_records_ok(
    runtime: Runtime, router: FakeRouterOS, tls: Tls, pool: registry.GatewayPool
) -> None:
    site_id = make_site(runtime, "Lobby", routeros_gateway(router, tls))
    other_id = make_site(runtime, "Other", GatewayIn(), subnet="10.9.0.0/24")
    active = add_user(runtime, site_id, "10.0.0.5", expires_in=timedelta(hours=1))
    add_user(runtime, site_id, "10.0.0.6", expires_in=timedelta(minutes=-1))
    add_user(runtime, site_id, "10.0.0.7", expires_in=timedelta(hours=1), status="disconnected")
    add_user(runtime, other_id, "10.9.0.5", expires_in=timedelta(hours=1))
    add_garden(runtime, site_id, "198.51.100.0/24", "captive-portal")
    add_garden(runtime, site_id, "203.0.113.5", "captive-auth")
    router.add(list="guestgate-allowed", address="10.0.0.200", comment="vip")

    outcomes = reconcile_all(runtime=runtime, now=NOW, pool=pool)

    assert outcomes == [SiteOutcome(site_id, "ok", ReconcileResult(1, 0, 0), None)]
    entries = allowed(router)
    assert sorted(entries) == ["10.0.0.200", "10.0.0.5"]
    assert (entries["10.0.0.5"]["comment"], entries["10.0.0.5"]["timeout"]) == (f"guestgate:{active}", "1h")
    assert entries["10.0.0.200"]["comment"] == "vip"
    assert [e["address"] for e in router.entries("guestgate-walled-garden")] == ["198.51.100.0/24"]
    assert [e["address"] for e in router.entries("guestgate-walled-garden-auth")] == ["203.0.113.5"]
    site = load_site(runtime, site_id)
    assert (site.gateway_status, site.gateway_last_error, site.gateway_last_sync_at) == ("ok", None, NOW)
    assert load_site(runtime, other_id).gateway_status == "unknown"


def test_reconcile_all_twice_changes_nothing_the_second_time(
    runtime: Runtime, router: FakeRouterOS, tls: Tls, pool: registry.GatewayPool
) -> None:
    site_id = make_site(runtime, "Lobby", routeros_gateway(router, tls))
    add_user(runtime, site_id, "10.0.0.5", expires_in=timedelta(hours=1))
    add_garden(runtime, site_id, "198.51.100.1", "captive-portal")
    reconcile_all(runtime=runtime, now=NOW, pool=pool)
    writes = router.count() - router.count("GET")
    [outcome] = reconcile_all(runtime=runtime, now=NOW + timedelta(seconds=3), pool=pool)
    assert outcome.result == ReconcileResult(0, 0, 0)
    assert router.count() - router.count("GET") == writes
    assert router.connections == 1


def test_reconcile_all_readds_what_a_reboot_lost_with_the_time_left(
    runtime: Runtime, router: FakeRouterOS, tls: Tls, pool: registry.GatewayPool
) -> None:
    site_id = make_site(runtime, "Lobby", routeros_gateway(router, tls))
    add_user(runtime, site_id, "10.0.0.5", expires_in=timedelta(hours=1))
    add_garden(runtime, site_id, "198.51.100.1", "captive-portal")
    reconcile_all(runtime=runtime, now=NOW, pool=pool)
    router.clock.advance(600)
    router.reboot()

    [outcome] = reconcile_all(runtime=runtime, now=NOW + timedelta(minutes=10), pool=pool)

    assert outcome.result == ReconcileResult(1, 0, 0)
    assert allowed(router)["10.0.0.5"]["timeout"] == "50m"
    assert [e["address"] for e in router.entries("guestgate-walled-garden")] == ["198.51.100.1"]


def test_reconcile_all_removes_disconnected_and_expired_sessions(
    runtime: Runtime, router: FakeRouterOS, tls: Tls, pool: registry.GatewayPool
) -> None:
    site_id = make_site(runtime, "Lobby", routeros_gateway(router, tls))
    leaving = add_user(runtime, site_id, "10.0.0.5", expires_in=timedelta(hours=1))
    add_user(runtime, site_id, "10.0.0.6", expires_in=timedelta(minutes=30))
    reconcile_all(runtime=runtime, now=NOW, pool=pool)
    with runtime.sessions() as session:
        user = session.get(SiteUser, leaving)
        assert user is not None
        user.status = "disconnected"
        session.commit()

    # 31 minutes on, the other session is past its expires_at though still marked active.
    [outcome] = reconcile_all(runtime=runtime, now=NOW + timedelta(minutes=31), pool=pool)

    assert outcome.result == ReconcileResult(0, 2, 0)
    assert allowed(router) == {}


def test_reconcile_all_records_unreachable_and_misconfigured_sites_and_goes_on(
    runtime: Runtime, router: FakeRouterOS, tls: Tls, pool: registry.GatewayPool
) -> None:
    good = make_site(runtime, "Good", routeros_gateway(router, tls))
    down = make_site(runtime, "Down", routeros_gateway(router, tls, port=closed_port()), subnet="10.1.0.0/24")
    wrong = make_site(runtime, "Wrong", routeros_gateway(router, tls, password="nope"), subnet="10.2.0.0/24")
    for site_id, ip in ((good, "10.0.0.5"), (down, "10.1.0.5"), (wrong, "10.2.0.5")):
        add_user(runtime, site_id, ip, expires_in=timedelta(hours=1))

    outcomes = {o.site_id: o for o in reconcile_all(runtime=runtime, now=NOW, pool=pool)}

    assert outcomes[good].status == "ok"
    assert outcomes[down].status == "unreachable"
    assert outcomes[wrong].status == "misconfigured"
    assert sorted(allowed(router)) == ["10.0.0.5"]
    down_site, wrong_site = load_site(runtime, down), load_site(runtime, wrong)
    assert down_site.gateway_status == "unreachable"
    assert down_site.gateway_last_error is not None
    assert "did not answer" in down_site.gateway_last_error
    assert down_site.gateway_last_sync_at is None
    assert wrong_site.gateway_status == "misconfigured"
    assert wrong_site.gateway_last_error is not None
    assert "check username and password" in wrong_site.gateway_last_error


def test_reconcile_all_clears_the_error_once_the_gateway_answers_again(
    runtime: Runtime, router: FakeRouterOS, tls: Tls, pool: registry.GatewayPool
) -> None:
    site_id = make_site(runtime, "Lobby", routeros_gateway(router, tls))
    add_user(runtime, site_id, "10.0.0.5", expires_in=timedelta(hours=1))
    router.fail_next(503, count=4)
    [first] = reconcile_all(runtime=runtime, now=NOW, pool=pool)
    assert first.status == "unreachable"
    [second] = reconcile_all(runtime=runtime, now=NOW + timedelta(seconds=5), pool=pool)
    assert second == SiteOutcome(site_id, "ok", ReconcileResult(1, 0, 0), None)
    site = load_site(runtime, site_id)
    assert (site.gateway_status, site.gateway_last_error) == ("ok", None)
    assert site.gateway_last_sync_at == NOW + timedelta(seconds=5)


def test_reconcile_all_records_a_site_whose_settings_cannot_build_a_driver(runtime: Runtime) -> None:
    site_id = make_site(runtime, "Broken", GatewayIn(driver="nftables", interface="wlan0", netns="../bad"))
    [outcome] = reconcile_all(runtime=runtime, now=NOW)
    assert (outcome.site_id, outcome.status) == (site_id, "misconfigured")
    assert load_site(runtime, site_id).gateway_last_error == "'../bad' is not a usable network namespace name"


def test_reconcile_all_leaves_the_status_of_a_site_changed_during_the_run(
    runtime: Runtime, router: FakeRouterOS, tls: Tls
) -> None:
    site_id = make_site(runtime, "Lobby", routeros_gateway(router, tls, port=closed_port()))

    def build_then_operator_edits(site: Site, **kwargs: Any) -> Gateway:
        with runtime.sessions() as session:
            site_service.replace(
                site_id,
                SiteIn(name="Lobby", subnets=["10.0.0.0/24"], gateway=routeros_gateway(router, tls)),
                org_id=ORG,
                box=runtime.box,
                rules=runtime.gateway_rules,
                session=session,
            )
        gateway = registry.build(site, **kwargs)
        assert isinstance(gateway, RouterOSGateway)
        gateway.retries = 0
        return gateway

    pool = registry.GatewayPool(box=runtime.box, outbound=runtime.outbound, builder=build_then_operator_edits)
    [outcome] = reconcile_all(runtime=runtime, now=NOW, pool=pool)
    pool.close()
    assert outcome.status == "unreachable"
    site = load_site(runtime, site_id)
    assert (site.gateway_status, site.gateway_last_error) == ("unknown", None)


def test_reconcile_all_without_pushed_gateways_does_nothing(runtime: Runtime) -> None:
    make_site(runtime, "Embedded", GatewayIn())
    assert reconcile_all(runtime=runtime, now=NOW) == []
    with runtime.sessions() as session:
        assert [s.gateway_status for s in session.scalars(select(Site))] == ["unknown"]


@pytest.mark.netns
def test_reconcile_all_restores_a_flushed_nftables_gateway_with_its_active_guest(
    runtime: Runtime, netns_tools: None
) -> None:
    with namespaces("gw") as made:
        ns = made["gw"]
        site_id = make_site(
            runtime,
            "Linux",
            GatewayIn(driver="nftables", interface="guest0", portal_port=8080, netns=ns.name),
        )
        session_id = add_user(runtime, site_id, "10.0.0.5", expires_in=timedelta(hours=1))
        add_garden(runtime, site_id, "198.51.100.1", "captive-portal")
        assert reconcile_all(runtime=runtime, now=NOW) == [
            SiteOutcome(site_id, "ok", ReconcileResult(1, 0, 0), None)
        ]
        ns.nft("flush", "ruleset")

        [outcome] = reconcile_all(runtime=runtime, now=NOW + timedelta(minutes=20))

        assert outcome == SiteOutcome(site_id, "ok", ReconcileResult(1, 0, 0), None)
        listing = ns.nft("list", "table", "inet", table_name(site_id))
        assert re.search(rf'10\.0\.0\.5 timeout 40m expires \S+ comment "guestgate:{session_id}"', listing)
        assert "elements = { 198.51.100.1 }" in listing
        assert "redirect to :8080" in listing
