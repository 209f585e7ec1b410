"""The whole app hands /guest/* straight to the portal, with what the mount would have given it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from guestgate.app import GuestgateApp, create_app
from guestgate.runtime import Runtime
from tests.utils.portal import GUEST_IP, World, token_of


def _client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime=runtime), client=(GUEST_IP, 40000), raise_server_exceptions=False)


def test_a_sign_in_through_the_whole_app_reaches_the_success_page(world: World, runtime: Runtime) -> None:
    world.coupon("ABC234")
    with _client(runtime) as client:
        entry = client.get("/guest/entry", params={"site": world.site_id})
        assert entry.status_code == 200
        # The portal saw itself mounted at /guest: its form posts back there.
        assert 'action="/guest/signin"' in entry.text
        done = client.post(
            "/guest/signin", data={"t": token_of(entry.text), "code": "abc234", "accept": "yes"}
        )
    assert done.status_code == 200
    assert "/guest/status?t=" in done.text
    assert len(world.sessions()) == 1


def test_an_oversized_sign_in_form_gets_the_portals_page(world: World, runtime: Runtime) -> None:
    body = b"t=" + b"a" * (runtime.settings.max_body_bytes + 1)
    with _client(runtime) as client:
        response = client.post(
            "/guest/signin", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
        )
    assert response.status_code == 413
    assert "text/html" in response.headers["content-type"]
    assert "The form sent was too large." in response.text


def test_unknown_guest_paths_get_the_portals_page_and_other_paths_the_api(
    world: World, runtime: Runtime
) -> None:
    app = create_app(runtime=runtime)
    assert isinstance(app, GuestgateApp) and app.guest_portal is not None
    with TestClient(app, raise_server_exceptions=False) as client:
        guest = client.get("/guest/nothing-here")
        operator = client.get("/captive/sites")
    assert guest.status_code == 404
    assert "There is no page at this address." in guest.text
    assert operator.status_code == 401
    assert operator.json()["type"] == "authentication_error"
