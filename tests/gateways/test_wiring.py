"""How the app wires gateways in: the `none` driver records, redirects of intercepted requests,
metrics, the reconcile job, and the migration that tracks what a gateway has applied."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from guestgate import worker
from guestgate.db import make_engine, utcnow
from guestgate.gateways import registry
from guestgate.gateways.none import NoneGateway
from guestgate.migrate import upgrade
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_ISSUE
from guestgate.sites.schemas import GatewayIn
from tests.gateways.fake_routeros import FakeRouterOS, Tls
from tests.gateways.journey import GUEST_IP, app_client, refresh_of, sign_in, text_of
from tests.gateways.world import ACTIVATING, CONNECTED, GuestSite, make_guest_site
from tests.utils.settings import TokenFactory


@pytest.fixture
def world(runtime: Runtime) -> GuestSite:
    return make_guest_site(runtime, GatewayIn())


@pytest.fixture
def client(runtime: Runtime, world: GuestSite) -> Iterator[TestClient]:
    with app_client(runtime) as built:
        yield built


def recorder(runtime: Runtime, world: GuestSite) -> NoneGateway:
    gateway = runtime.gateways.get(world.site())
    assert isinstance(gateway, NoneGateway)
    return gateway


def test_with_driver_none_sign_in_only_records_and_never_shows_activating(
    client: TestClient, runtime: Runtime, world: GuestSite
) -> None:
    world.coupon("ABC234")
    page = sign_in(client, world.site_id, "ABC234")
    assert CONNECTED in text_of(page)
    assert refresh_of(page.text) is None
    [user] = world.users()
    # Nothing enforces, so nothing is ever "applied"; the guest is not kept waiting for it.
    assert user.gateway_applied_at is None
    [(name, (guest,))] = recorder(runtime, world).calls
    assert (name, guest.session_id, guest.ip, guest.until) == ("allow", user.id, GUEST_IP, user.expires_at)
    status = client.get("/guest/status", params={"site": world.site_id})
    assert ACTIVATING not in text_of(status) and "Time remaining" in text_of(status)


def test_with_driver_none_disconnect_garden_and_instance_deletion_only_record(
    client: TestClient, runtime: Runtime, world: GuestSite, auth: TokenFactory
) -> None:
    headers = auth()
    world.coupon("ABC234")
    world.coupon("DEF567")
    sign_in(client, world.site_id, "ABC234")
    [first] = world.users()
    client.post(f"/captive/sites/{world.site_id}/users/{first.id}/disconnect", headers=headers)
    created = client.post(
        f"/captive/walled-garden/{world.site_id}",
        json={"name": "Docs", "ip_address": "198.51.100.1", "type": "captive-portal"},
        headers=headers,
    )
    sign_in(client, world.site_id, "DEF567")
    [second] = [u for u in world.users() if u.status == "active"]
    assert client.delete(f"/captive/instances/{world.instance_id}", headers=headers).status_code == 204

    gateway = recorder(runtime, world)
    names = [name for name, _ in gateway.calls]
    assert names == ["allow", "revoke", "replace_walled_garden", "allow", "revoke"]
    assert gateway.calls[1][1] == (first.id, GUEST_IP)
    assert gateway.calls[2][1] == ([("198.51.100.1/32", "captive-portal")],)
    assert gateway.calls[4][1] == (second.id, GUEST_IP)
    assert gateway.guests == {}
    assert created.status_code == 201


def test_disconnect_answers_while_the_router_is_down_and_the_reconciler_removes_the_guest_later(
    runtime: Runtime, router: FakeRouterOS, tls: Tls, fast_gateways: registry.GatewayPool, auth: TokenFactory
) -> None:
    world = make_guest_site(runtime, router.site_gateway(), subnet="10.0.0.0/24")
    world.coupon("ABC234")
    with app_client(runtime) as client:
        sign_in(client, world.site_id, "ABC234")
        [user] = world.users()
        router.fail_next(503, count=10)
        response = client.post(f"/captive/sites/{world.site_id}/users/{user.id}/disconnect", headers=auth())
    assert response.status_code == 200
    assert response.json()["status"] == "disconnected"
    router.failures.clear()
    assert [e["address"] for e in router.entries("guestgate-allowed")] == [GUEST_IP]

    done = asyncio.run(worker._reconcile_gateways(runtime, utcnow()))

    assert done == 1
    assert router.entries("guestgate-allowed") == []


def test_the_reconcile_job_runs_in_every_serve_and_worker_process(runtime: Runtime) -> None:
    jobs = {job.name: job for job in worker.default_jobs(runtime)}
    assert "gateway_reconcile" in jobs
    assert jobs["gateway_reconcile"].every_seconds <= worker.RECONCILE_EVERY_SECONDS


@pytest.mark.parametrize(
    ("host", "path", "location"),
    [
        ("example.com", "/", "http://testserver/guest/entry?orig=http%3A%2F%2Fexample.com%2F"),
        (
            "captive.apple.com:80",
            "/hotspot-detect.html?x=1",
            "http://testserver/guest/entry?orig=http%3A%2F%2Fcaptive.apple.com%3A80%2Fhotspot-detect.html%3Fx%3D1",
        ),
        (
            "[2001:db8::1]",
            "/a",
            "http://testserver/guest/entry?orig=http%3A%2F%2F%5B2001%3Adb8%3A%3A1%5D%2Fa",
        ),
    ],
)
def test_an_intercepted_request_for_another_host_is_sent_to_the_portal_entry(
    client: TestClient, host: str, path: str, location: str
) -> None:
    response = client.get(path, headers={"host": host}, follow_redirects=False)
    assert response.status_code == 302
    # The portal's signature of the URL for this guest follows (tests/hostile/test_small_items.py).
    assert response.headers["location"].startswith(location + "&ots=")
    assert "&osig=" in response.headers["location"]
    assert response.headers["cache-control"] == "no-store"


def test_a_very_long_intercepted_url_is_redirected_without_it(client: TestClient) -> None:
    response = client.get("/" + "a" * 3000, headers={"host": "example.com"}, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "http://testserver/guest/entry"


@pytest.mark.parametrize("host", ["localhost:8000", "127.0.0.1", "[::1]:8000", "TESTSERVER"])
def test_requests_naming_guestgate_or_the_loopback_are_not_redirected(client: TestClient, host: str) -> None:
    response = client.get("/", headers={"host": host}, follow_redirects=False)
    assert response.status_code == 404


def test_guestgates_own_paths_are_never_redirected_whatever_the_host(client: TestClient) -> None:
    assert client.get("/healthz", headers={"host": "alias.example"}).status_code == 200
    assert client.get("/captive/sites", headers={"host": "alias.example"}).status_code == 401
    unknown = client.get("/nothing-here", follow_redirects=False)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "route_not_found"


def test_metrics_show_the_gateway_state_of_the_tokens_org_only(
    client: TestClient, runtime: Runtime, world: GuestSite, auth: TokenFactory
) -> None:
    world.coupon("ABC234")
    sign_in(client, world.site_id, "ABC234")
    with runtime.sessions() as session:
        from guestgate.sites.models import Site

        site = session.get(Site, world.site_id)
        assert site is not None
        site.gateway_driver = "routeros"
        site.gateway_status = "unreachable"
        session.commit()
    other = auth(org="org-b")
    response = client.get("/metrics", headers=auth())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    site = (("driver", "routeros"), ("site_id", world.site_id))
    assert samples[("guestgate_gateway_status", (*site, ("state", "unreachable")))] == 1.0
    assert samples[("guestgate_gateway_status", (*site, ("state", "ok")))] == 0.0
    assert samples[("guestgate_gateway_active_sessions", site)] == 1.0
    assert samples[("guestgate_gateway_pending_sessions", site)] == 1.0
    assert "guestgate_gateway_last_sync_timestamp_seconds" not in {name for name, _ in samples}
    assert world.site_id not in client.get("/metrics", headers=other).text


def test_metrics_need_a_token_with_the_read_scope(client: TestClient, auth: TokenFactory) -> None:
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["code"] == "token_missing"
    forbidden = client.get("/metrics", headers=auth(scopes=(SCOPE_ISSUE,)))
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "insufficient_scope"
    assert forbidden.json()["message"] == "This request needs the 'captive:read' scope."


def test_migration_0002_counts_existing_sessions_as_applied(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0001")
    started = "2026-05-01 10:00:00.000000"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO orgs (id, created_at) VALUES ('org-a', :t)"), {"t": started})
        conn.execute(
            text(
                "INSERT INTO sites (id, org_id, name, subnets, gateway_driver, gateway_config, gateway_status, created_at)"
                " VALUES ('s1', 'org-a', 'Lobby', '[]', 'none', '{}', 'unknown', :t)"
            ),
            {"t": started},
        )
        conn.execute(
            text(
                "INSERT INTO site_users (id, org_id, site_id, instance_id, ip_address, strategy, status, started_at, expires_at)"
                " VALUES ('u1', 'org-a', 's1', 'i1', '10.0.0.5', 'coupon', 'active', :t, :t)"
            ),
            {"t": started},
        )
    upgrade(engine)
    with engine.connect() as conn:
        applied: Any = conn.execute(text("SELECT gateway_applied_at FROM site_users")).scalar_one()
    engine.dispose()
    assert str(applied).startswith("2026-05-01 10:00:00")


def test_a_session_whose_site_is_gone_is_not_pending(runtime: Runtime, world: GuestSite) -> None:
    from guestgate.gateways.service import site_pending

    assert site_pending("5f4e3d2c-1b0a-4987-8654-3210fedcba98", runtime=runtime) is False


def test_expiry_of_the_embedded_recorder_forgets_old_guests() -> None:
    from guestgate.gateways import none
    from guestgate.gateways.base import GuestAccess

    now = utcnow()
    gateway = NoneGateway(clock=lambda: now)
    for index in range(none.MAX_HELD):
        gateway.guests[f"10.{index // 65536}.{index // 256 % 256}.{index % 256}"] = none._Held(
            "old", now - timedelta(seconds=1)
        )
    gateway.allow(GuestAccess("new", "192.0.2.1", None, now + timedelta(hours=1)))
    assert list(gateway.guests) == ["192.0.2.1"]
    assert len(gateway.calls) == 1


def test_a_code_with_a_plan_signs_in_with_its_speed_limits_on_the_router_at_once(
    runtime: Runtime, router: FakeRouterOS, tls: Tls, fast_gateways: registry.GatewayPool
) -> None:
    # Both halves of access plans meet here: the sign-in copies the code's limits onto the
    # session, and the gateway applies them with the guest (no reconcile pass in between).
    world = make_guest_site(runtime, router.site_gateway(), subnet="10.0.0.0/24")
    world.coupon("PAY234", download_kbps=10_000, upload_kbps=2_000, data_limit_mb=500)
    world.coupon("FRE567")
    with app_client(runtime) as client:
        sign_in(client, world.site_id, "PAY234")
        [user] = world.users()
        assert (user.download_kbps, user.upload_kbps, user.data_limit_mb) == (10_000, 2_000, 500)
        [queue] = [q for q in router.queue_entries() if q["comment"] == f"guestgate:{user.id}"]
    assert queue["target"] == f"{GUEST_IP}/32"
    assert queue["max-limit"] == "2M/10M"  # upload/download, bits per second
    assert [e["address"] for e in router.entries("guestgate-allowed")] == [GUEST_IP]
