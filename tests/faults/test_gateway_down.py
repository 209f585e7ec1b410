"""A gateway unreachable then back: a MikroTik site (the fake RouterOS over TLS) behind a TCP proxy
that is cut, so the router refuses connections as if powered off, while guests sign in.

Guests keep their sessions and see the "activating" page; the operator sees the site's
gateway_status turn `unreachable`; once the router answers again, the reconcile job of the
running app (not a direct call) applies every waiting guest, the status returns to `ok`, and the
guests' pages turn to "connected". (tests/gateways/test_routeros_journeys.py covers a router that
answers 503; nftables gateways are local to the host and tested in tests/gateways.)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from guestgate.app import create_app
from guestgate.gateways import registry
from guestgate.gateways.base import Gateway
from guestgate.gateways.routeros import RouterOSGateway
from guestgate.runtime import Runtime
from guestgate.security import ALL_SCOPES, mint_token
from guestgate.sites.models import Site
from tests.gateways.fake_routeros import FakeRouterOS, Tls, make_tls
from tests.gateways.journey import refresh_of, sign_in, text_of
from tests.gateways.world import ACTIVATING, CONNECTED, ORG, make_guest_site
from tests.utils.faults import CuttableProxy
from tests.utils.settings import make_settings

GUESTS = ("10.0.0.21", "10.0.0.22", "10.0.0.23")
CODES = ("AAA234", "BBB234", "CCC234")
RECONCILE_EVERY = 0.2
WAIT_SECONDS = 20.0


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    return make_tls(tmp_path / "tls")


@pytest.fixture
def router(tls: Tls) -> Iterator[FakeRouterOS]:
    fake = FakeRouterOS(tls).start()
    yield fake
    fake.stop()


@pytest.fixture
def proxy(router: FakeRouterOS) -> Iterator[CuttableProxy]:
    cuttable = CuttableProxy(router.port).restore()
    yield cuttable
    cuttable.cut()


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def allowed(router: FakeRouterOS) -> dict[str, dict[str, Any]]:
    return {e["address"]: e for e in router.entries("guestgate-allowed")}


def test_router_unreachable_during_sign_ins_keeps_sessions_and_the_running_reconciler_applies_them_when_back(
    db_url: str, tmp_path: Path, tls: Tls, router: FakeRouterOS, proxy: CuttableProxy
) -> None:
    # The app runs its background jobs as `guestgate serve` does, the reconciler every 0.2 s.
    settings = make_settings(
        db_url,
        tmp_path / "var",
        scheduler_enabled=True,
        worker_poll_seconds=RECONCILE_EVERY,
        # The router (behind its cuttable proxy) is on loopback, allowed as a management network.
        outbound_gateway_networks="127.0.0.0/8",
    )
    runtime = Runtime.build(settings)

    def quick_retries(site: Site, **kwargs: Any) -> Gateway:
        gateway = registry.build(site, **kwargs)
        if isinstance(gateway, RouterOSGateway):
            gateway.backoff, gateway.retries = 0.01, 1
        return gateway

    runtime._gateways = registry.GatewayPool(
        box=runtime.box, outbound=runtime.outbound, default_portal_port=settings.port, builder=quick_retries
    )
    world = make_guest_site(
        runtime,
        router.site_gateway(port=proxy.port),
    )
    token = mint_token(settings, org=ORG, subject="faults", scopes=ALL_SCOPES, ttl_seconds=600)
    operator = {"Authorization": f"Bearer {token}"}
    app = create_app(runtime=runtime)
    seen: list[dict[str, Any]] = []
    guests = {ip: TestClient(app, client=(ip, 40000), raise_server_exceptions=False) for ip in GUESTS}
    try:
        with TestClient(app, raise_server_exceptions=False) as ops:  # runs the lifespan: the jobs

            def status() -> str:
                body = ops.get(f"/captive/sites/{world.site_id}", headers=operator).json()
                seen.append(body["gateway_status"])
                return str(body["gateway_status"]["state"])

            for code in CODES:
                world.coupon(code)
            first = sign_in(guests[GUESTS[0]], world.site_id, CODES[0])
            assert CONNECTED in text_of(first) and ACTIVATING not in text_of(first)
            wait_for("the reconciler finds the router reachable", lambda: status() == "ok")

            proxy.cut()
            pages = {
                ip: sign_in(guests[ip], world.site_id, code)
                for ip, code in zip(GUESTS[1:], CODES[1:], strict=True)
            }
            for page in pages.values():
                assert page.status_code == 200
                assert ACTIVATING in text_of(page) and CONNECTED not in text_of(page)
                assert refresh_of(page.text) is not None
            wait_for("the operator sees the gateway unreachable", lambda: status() == "unreachable")
            last_error = seen[-1]["last_error"] or ""
            assert "Connection refused" in last_error and router.password not in last_error
            users = {u.ip_address: u for u in world.users()}
            assert set(users) == set(GUESTS)
            assert all(u.status == "active" for u in users.values())
            assert [users[ip].gateway_applied_at is None for ip in GUESTS] == [False, True, True]
            # Still down: the guests' pages keep waiting.
            for ip, page in pages.items():
                refresh = refresh_of(page.text)
                assert refresh is not None
                assert ACTIVATING in text_of(guests[ip].get(refresh[1]))

            proxy.restore()
            wait_for("the reconciler applies the waiting guests", lambda: set(allowed(router)) == set(GUESTS))
            wait_for("the operator sees the gateway ok", lambda: status() == "ok")
            assert seen[-1]["last_error"] is None
            entries = allowed(router)
            for user in world.users():
                assert user.gateway_applied_at is not None
                assert entries[user.ip_address]["comment"] == f"guestgate:{user.id}"
            for ip, page in pages.items():
                refresh = refresh_of(page.text)
                assert refresh is not None
                done = guests[ip].get(refresh[1])
                assert ACTIVATING not in text_of(done) and "Time remaining" in text_of(done)
    finally:
        for client in guests.values():
            client.close()
        runtime.close()
