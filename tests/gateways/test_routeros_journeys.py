"""A MikroTik site end to end: the portal, the operator API and the reconciler against the fake router."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from guestgate.db import utcnow
from guestgate.gateways import registry
from guestgate.gateways import service as gateway_service
from guestgate.gateways.reconcile import ReconcileResult, reconcile_all
from guestgate.runtime import Runtime
from tests.gateways.fake_routeros import FakeRouterOS, Tls
from tests.gateways.journey import GUEST_IP, app_client, refresh_of, sign_in, text_of
from tests.gateways.world import ACTIVATING, CONNECTED, GuestSite, make_guest_site
from tests.utils.settings import TokenFactory


@pytest.fixture
def world(runtime: Runtime, router: FakeRouterOS, tls: Tls, fast_gateways: registry.GatewayPool) -> GuestSite:
    gateway = router.site_gateway()
    return make_guest_site(runtime, gateway)


@pytest.fixture
def client(runtime: Runtime, world: GuestSite) -> Iterator[TestClient]:
    with app_client(runtime) as built:
        yield built


def allowed(router: FakeRouterOS) -> dict[str, dict[str, Any]]:
    return {e["address"]: e for e in router.entries("guestgate-allowed")}


def test_sign_in_adds_the_guest_to_the_allowed_list_with_its_timeout_and_session_comment(
    client: TestClient, world: GuestSite, router: FakeRouterOS
) -> None:
    world.coupon("ABC234")
    page = sign_in(client, world.site_id, "ABC234")
    assert page.status_code == 200
    assert CONNECTED in text_of(page)
    assert refresh_of(page.text) is None
    [user] = world.users()
    entry = allowed(router)[GUEST_IP]
    assert (entry["timeout"], entry["comment"], entry["dynamic"]) == ("1h", f"guestgate:{user.id}", "true")
    assert user.gateway_applied_at is not None


def test_disconnect_removes_the_guests_entry_at_once(
    client: TestClient, world: GuestSite, router: FakeRouterOS, auth: TokenFactory
) -> None:
    world.coupon("ABC234")
    sign_in(client, world.site_id, "ABC234")
    router.add(list="guestgate-allowed", address="10.0.0.99", comment="printer")
    [user] = world.users()
    response = client.post(f"/captive/sites/{world.site_id}/users/{user.id}/disconnect", headers=auth())
    assert response.status_code == 200
    assert response.json()["status"] == "disconnected"
    assert sorted(allowed(router)) == ["10.0.0.99"]


def test_walled_garden_changes_reach_the_router_lists(
    client: TestClient, world: GuestSite, router: FakeRouterOS, auth: TokenFactory
) -> None:
    headers = auth()
    path = f"/captive/walled-garden/{world.site_id}"
    created = client.post(
        path,
        json={"name": "Docs", "ip_address": "198.51.100.0/24", "type": "captive-portal"},
        headers=headers,
    )
    assert created.status_code == 201
    idp = client.post(path, json={"name": "IdP", "ip_address": "203.0.113.5"}, headers=headers)
    assert idp.status_code == 201
    assert [e["address"] for e in router.entries("guestgate-walled-garden")] == ["198.51.100.0/24"]
    assert [e["address"] for e in router.entries("guestgate-walled-garden-auth")] == ["203.0.113.5"]

    moved = client.put(
        f"{path}/{created.json()['id']}",
        json={"name": "Docs", "ip_address": "198.51.100.7", "type": "captive-portal"},
        headers=headers,
    )
    assert moved.status_code == 200
    assert [e["address"] for e in router.entries("guestgate-walled-garden")] == ["198.51.100.7"]

    assert client.delete(f"{path}/{idp.json()['id']}", headers=headers).status_code == 204
    assert router.entries("guestgate-walled-garden-auth") == []
    assert [e["comment"] for e in router.entries("guestgate-walled-garden")] == ["guestgate:walled-garden"]


def test_a_router_reboot_is_repaired_by_the_reconciler_with_the_time_left(
    client: TestClient, runtime: Runtime, world: GuestSite, router: FakeRouterOS, auth: TokenFactory
) -> None:
    world.coupon("ABC234")
    sign_in(client, world.site_id, "ABC234")
    client.post(
        f"/captive/walled-garden/{world.site_id}",
        json={"name": "Docs", "ip_address": "198.51.100.1", "type": "captive-portal"},
        headers=auth(),
    )
    [user] = world.users()
    router.clock.advance(600)
    router.reboot()
    assert allowed(router) == {}

    [outcome] = reconcile_all(
        runtime=runtime, now=user.started_at + timedelta(minutes=10), pool=runtime.gateways
    )

    assert outcome.result == ReconcileResult(added=1, removed=0, updated=0)
    entry = allowed(router)[GUEST_IP]
    assert (entry["timeout"], entry["comment"]) == ("50m", f"guestgate:{user.id}")
    assert [e["address"] for e in router.entries("guestgate-walled-garden")] == ["198.51.100.1"]


def test_a_session_ends_at_expires_at_even_when_the_router_kept_a_longer_timeout(
    client: TestClient, runtime: Runtime, world: GuestSite, router: FakeRouterOS
) -> None:
    world.coupon("ABC234")
    sign_in(client, world.site_id, "ABC234")
    [user] = world.users()
    # The router's own timeout still runs (its clock has not moved) past the session's end.
    [outcome] = reconcile_all(
        runtime=runtime, now=user.expires_at + timedelta(seconds=1), pool=runtime.gateways
    )
    assert outcome.result == ReconcileResult(added=0, removed=1, updated=0)
    assert allowed(router) == {}


def test_an_unreachable_router_at_sign_in_keeps_the_session_and_shows_activating_until_reconciled(
    client: TestClient, runtime: Runtime, world: GuestSite, router: FakeRouterOS
) -> None:
    world.coupon("ABC234")
    entry = client.get("/guest/entry", params={"site": world.site_id})
    assert entry.status_code == 200
    router.fail_next(503, count=50)

    page = sign_in(client, world.site_id, "ABC234")

    assert page.status_code == 200
    assert ACTIVATING in text_of(page)
    assert CONNECTED not in text_of(page)
    refresh = refresh_of(page.text)
    assert refresh is not None
    seconds, url = refresh
    assert seconds == 3 and url.startswith("/guest/status?t=")
    [user] = world.users()
    assert (user.status, user.gateway_applied_at) == ("active", None)
    # Still down: the page keeps refreshing.
    again = client.get(url)
    assert ACTIVATING in text_of(again) and refresh_of(again.text) is not None
    [down] = reconcile_all(runtime=runtime, now=utcnow(), pool=runtime.gateways)
    assert down.status == "unreachable"

    router.failures.clear()
    [up] = reconcile_all(runtime=runtime, now=utcnow(), pool=runtime.gateways)

    assert up.status == "ok"
    assert allowed(router)[GUEST_IP]["comment"] == f"guestgate:{user.id}"
    [user] = world.users()
    assert user.gateway_applied_at is not None
    done = client.get(url)
    assert ACTIVATING not in text_of(done)
    assert "Time remaining" in text_of(done)
    assert refresh_of(done.text) is None
    assert world.site().gateway_status == "ok"


def test_a_sign_in_during_a_long_reconciliation_does_not_wait_for_it(
    client: TestClient,
    runtime: Runtime,
    world: GuestSite,
    router: FakeRouterOS,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gateway_service, "ALLOW_LOCK_WAIT_SECONDS", 0.05)
    world.coupon("ABC234")
    with runtime.gateways.site_lock(world.site_id):
        page = sign_in(client, world.site_id, "ABC234")
    assert ACTIVATING in text_of(page)
    assert allowed(router) == {}
    [outcome] = reconcile_all(runtime=runtime, now=utcnow(), pool=runtime.gateways)
    assert outcome.result == ReconcileResult(added=1, removed=0, updated=0)
    [user] = world.users()
    assert user.gateway_applied_at is not None


def test_instance_deletion_removes_its_guests_from_the_router(
    client: TestClient, world: GuestSite, router: FakeRouterOS, auth: TokenFactory
) -> None:
    world.coupon("ABC234")
    sign_in(client, world.site_id, "ABC234")
    assert GUEST_IP in allowed(router)
    response = client.delete(f"/captive/instances/{world.instance_id}", headers=auth())
    assert response.status_code == 204
    assert allowed(router) == {}
    [user] = world.users()
    assert user.status == "disconnected"


def test_the_auth_window_opens_on_the_router_for_the_windows_length(
    runtime: Runtime, world: GuestSite, router: FakeRouterOS
) -> None:
    import asyncio

    from guestgate.gateways.notifier import PoolNotifier

    asyncio.run(PoolNotifier(runtime).open_auth_window(world.site_id, GUEST_IP, 300))
    [entry] = router.entries("guestgate-auth-window")
    assert (entry["address"], entry["timeout"], entry["comment"]) == (GUEST_IP, "5m", "guestgate:auth-window")
