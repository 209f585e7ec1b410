"""Console site pages: create and edit with gateway settings, test the connection, the `.rsc`, the agent key."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from guestgate.audit.models import AuditEvent
from guestgate.config import Settings
from guestgate.gateways.agent import agent_key_valid
from guestgate.runtime import Runtime
from guestgate.sites.models import Site
from tests.gateways.fake_routeros import FakeRouterOS, Tls, make_tls
from tests.utils.console import MemberFactory, make_org, sign_in
from tests.utils.settings import make_settings


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Routers on loopback (the fake one) pass the outbound policy; nothing else private does."""
    return make_settings(db_url, tmp_path / "var", outbound_gateway_networks="127.0.0.0/8")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def router(tls: Tls) -> Iterator[FakeRouterOS]:
    fake = FakeRouterOS(tls).start()
    yield fake
    fake.stop()


def _routeros_form(csrf: str, router: FakeRouterOS, tls: Tls, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": csrf,
        "name": "Harbour hotel",
        "subnets": "10.20.0.0/24\n10.21.0.0/24",
        "gateway.driver": "routeros",
        "gateway.host": "127.0.0.1",
        "gateway.port": str(router.port),
        "gateway.username": router.username,
        "gateway.password": router.password,
        "gateway.tls_verify": "on",
        "gateway.ca_pem": tls.ca_pem,
    }
    form.update(changes)
    return form


def _site(runtime: Runtime, name: str) -> Site:
    with runtime.sessions() as session:
        return session.scalars(select(Site).where(Site.name == name)).one()


def test_admin_creates_a_routeros_site_tests_it_and_downloads_its_script(
    client: TestClient, runtime: Runtime, member: MemberFactory, router: FakeRouterOS, tls: Tls
) -> None:
    make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    assert client.get("/console/sites/new").status_code == 200
    created = client.post("/console/sites", data=_routeros_form(csrf, router, tls), follow_redirects=False)
    assert created.status_code == 303, created.text
    site = _site(runtime, "Harbour hotel")
    assert created.headers["location"] == f"/console/sites/{site.id}"
    page = client.get(created.headers["location"])
    assert router.password not in page.text  # the stored password is never sent back
    assert "10.21.0.0/24" in page.text
    checked = client.post(f"/console/sites/{site.id}/test", data={"csrf_token": csrf})
    assert checked.status_code == 200
    assert "Connected: the gateway answered with these settings." in checked.text
    # The public URL is a name (testserver): dst-nat needs the portal's IPv4 address first.
    missing = client.get(f"/console/sites/{site.id}/guestgate.rsc")
    assert missing.status_code == 409 and 'id="script-error"' in missing.text
    assert "set the site&#39;s gateway.portal_address" in missing.text
    client.post(
        f"/console/sites/{site.id}",
        data=_routeros_form(csrf, router, tls, **{"gateway.portal_address": "192.0.2.10"}),
    )
    script = client.get(f"/console/sites/{site.id}/guestgate.rsc")
    assert script.status_code == 200
    assert script.headers["content-disposition"] == 'attachment; filename="guestgate.rsc"'
    assert "Harbour hotel" in script.text and router.password in script.text
    assert "to-addresses=192.0.2.10" in script.text
    with runtime.sessions() as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == site.id)).all()
    assert {"site.create", "site.script_downloaded"} <= set(actions)


def test_a_new_router_port_needs_the_password_again_shown_at_the_field(
    client: TestClient, runtime: Runtime, member: MemberFactory, router: FakeRouterOS, tls: Tls
) -> None:
    make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    client.post("/console/sites", data=_routeros_form(csrf, router, tls))
    site = _site(runtime, "Harbour hotel")
    # Same router, blank password: the stored one is kept.
    same = client.post(
        f"/console/sites/{site.id}",
        data=_routeros_form(csrf, router, tls, **{"gateway.password": "", "name": "Harbour"}),
        follow_redirects=False,
    )
    assert same.status_code == 303, same.text
    moved = client.post(
        f"/console/sites/{site.id}",
        data=_routeros_form(csrf, router, tls, **{"gateway.password": "", "gateway.port": "8443"}),
    )
    assert moved.status_code == 400
    error = re.search(r'<p class="error" id="gateway\.password-error" role="alert">([^<]+)</p>', moved.text)
    assert error is not None and "gateway.password" in error.group(1)
    with runtime.sessions() as session:
        stored = session.get(Site, site.id)
        assert stored is not None and stored.gateway_config["port"] == router.port
        assert stored.name == "Harbour"


def test_connection_failures_are_told_in_our_words(
    client: TestClient, runtime: Runtime, member: MemberFactory, router: FakeRouterOS, tls: Tls
) -> None:
    make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    client.post("/console/sites", data=_routeros_form(csrf, router, tls, **{"gateway.password": "wrong"}))
    site = _site(runtime, "Harbour hotel")
    wrong = client.post(f"/console/sites/{site.id}/test", data={"csrf_token": csrf})
    assert "answered HTTP 401: check username and password" in wrong.text
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    client.post(
        f"/console/sites/{site.id}",
        data=_routeros_form(csrf, router, tls, **{"gateway.port": str(closed), "gateway.password": "x"}),
    )
    with runtime.sessions() as session:
        stored = session.get(Site, site.id)
        assert stored is not None
        runtime.gateways.get(stored).retries = 0  # type: ignore[attr-defined]
    down = client.post(f"/console/sites/{site.id}/test", data={"csrf_token": csrf})
    assert "The gateway did not answer as it should" in down.text and str(closed) in down.text


def test_a_router_outside_the_outbound_policy_is_refused_at_the_host_field(
    client: TestClient, runtime: Runtime, member: MemberFactory, router: FakeRouterOS, tls: Tls
) -> None:
    make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    refused = client.post(
        "/console/sites", data=_routeros_form(csrf, router, tls, **{"gateway.host": "10.9.9.9"})
    )
    assert refused.status_code == 400
    assert 'id="gateway.host-error"' in refused.text
    assert 'value="10.9.9.9"' in refused.text and router.password not in refused.text
    with runtime.sessions() as session:
        assert session.scalars(select(Site).where(Site.name == "Harbour hotel")).first() is None


def test_bad_subnets_are_shown_at_the_subnets_field(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    bad = client.post(
        "/console/sites", data={"csrf_token": csrf, "name": "X", "subnets": "10.0.0.0/24\nnot-a-net"}
    )
    assert bad.status_code == 400 and 'id="subnets-error"' in bad.text


def test_an_agent_site_shows_its_key_once(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    created = client.post(
        "/console/sites",
        data={
            "csrf_token": csrf,
            "name": "Cabin",
            "subnets": "10.30.0.0/24",
            "gateway.driver": "agent",
            "gateway.interface": "wlan0",
        },
    )
    assert created.status_code == 201, created.text
    key = re.search(r'<code id="agent-key">([^<]+)</code>', created.text)
    assert key is not None
    site = _site(runtime, "Cabin")
    assert agent_key_valid(runtime.settings, site.id, key.group(1))
    assert key.group(1) not in client.get(f"/console/sites/{site.id}").text
    checked = client.post(f"/console/sites/{site.id}/test", data={"csrf_token": csrf})
    assert "the agent has not polled yet" in checked.text
    with runtime.sessions() as session:
        shown = session.scalars(select(AuditEvent).where(AuditEvent.action == "site.agent_key_shown")).all()
        assert [e.target_id for e in shown] == [site.id]


def test_an_admin_rotates_an_agent_sites_key_from_its_page_and_sees_the_new_one_once(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    viewer = TestClient(client.app)
    sign_in(viewer, member("org-a", "viewer"))
    csrf = sign_in(client, member("org-a", "admin"))
    created = client.post(
        "/console/sites",
        data={
            "csrf_token": csrf,
            "name": "Cabin",
            "subnets": "10.30.0.0/24",
            "gateway.driver": "agent",
            "gateway.interface": "wlan0",
        },
    )
    old = re.search(r'<code id="agent-key">([^<]+)</code>', created.text)
    assert old is not None
    site = _site(runtime, "Cabin")
    page = client.get(f"/console/sites/{site.id}")
    assert f'action="/console/sites/{site.id}/agent-key/rotate"' in page.text
    assert "agent-key/rotate" not in viewer.get(f"/console/sites/{site.id}").text

    rotated = client.post(f"/console/sites/{site.id}/agent-key/rotate", data={"csrf_token": csrf})
    assert rotated.status_code == 200
    new = re.search(r'<code id="agent-key">([^<]+)</code>', rotated.text)
    assert new is not None and new.group(1) != old.group(1)
    site = _site(runtime, "Cabin")
    assert agent_key_valid(runtime.settings, site.id, new.group(1), site.agent_key_salt)
    assert not agent_key_valid(runtime.settings, site.id, old.group(1), site.agent_key_salt)
    assert new.group(1) not in client.get(f"/console/sites/{site.id}").text
    with runtime.sessions() as session:
        rotations = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "site.agent_key_rotated")
        ).all()
        assert [(e.target_id, e.actor) for e in rotations] == [(site.id, "console:admin@org-a.example.com")]


def test_a_viewer_sees_a_site_read_only(client: TestClient, runtime: Runtime, member: MemberFactory) -> None:
    org = make_org(runtime, "org-a")
    sign_in(client, member("org-a", "viewer"))
    page = client.get(f"/console/sites/{org.site_id}")
    assert page.status_code == 200
    assert "<fieldset disabled>" in page.text and "Test connection" not in page.text
    assert client.get(f"/console/sites/{org.site_id}/guestgate.rsc").status_code == 403
