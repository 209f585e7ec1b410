"""Per-site agent key rotation: `POST /captive/sites/{id}/agent-key/rotate`, the real agent protocol after it,
the CLI printing the current key, and the other sites keeping theirs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from guestgate.audit.models import AuditEvent
from guestgate.cli import app
from guestgate.gateways import service as gateway_service
from guestgate.gateways.agent import agent_key
from guestgate.gateways.agent_client import Agent, AgentOptions, AgentRefused
from guestgate.gateways.none import NoneGateway
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_READ
from guestgate.sites.models import Site
from guestgate.sites.schemas import GatewayIn
from tests.gateways.journey import app_client, sign_in
from tests.gateways.world import ORG, GuestSite, make_guest_site
from tests.utils.settings import TEST_KEYS, TokenFactory

STATE = "/agent/v1/state"
USAGE = "/agent/v1/usage"


@pytest.fixture
def world(runtime: Runtime) -> GuestSite:
    return make_guest_site(runtime, GatewayIn(driver="agent", interface="wlan0"))


@pytest.fixture
def client(runtime: Runtime, world: GuestSite) -> Iterator[TestClient]:
    with app_client(runtime) as built:
        yield built


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _poll(client: TestClient, site_id: str, key: str, since: str = "", wait: str = "0") -> Any:
    return client.get(STATE, params={"site": site_id, "since": since, "wait": wait}, headers=_bearer(key))


def _agent(client: TestClient, site_id: str, key: str, local: NoneGateway) -> Agent:
    options = AgentOptions(controller="http://testserver", site_id=site_id, key=key, wait_seconds=0)
    return Agent(options, http=client, gateway_factory=lambda options, sent: local)


def _other_agent_site(runtime: Runtime) -> str:
    with runtime.sessions() as session:
        site = Site(org_id=ORG, name="Annex", subnets=["10.7.0.0/24"], gateway_driver="agent")
        session.add(site)
        session.commit()
        return site.id


def test_rotation_refuses_the_old_key_at_once_and_the_agent_works_with_the_new_one(
    client: TestClient, runtime: Runtime, world: GuestSite, auth: TokenFactory
) -> None:
    old = agent_key(TEST_KEYS["signing_key"], world.site_id)
    other = _other_agent_site(runtime)
    other_key = agent_key(TEST_KEYS["signing_key"], other)
    assert _poll(client, world.site_id, old).status_code == 200

    answer = client.post(f"/captive/sites/{world.site_id}/agent-key/rotate", headers=auth(ORG))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    new = body["agent_key"]
    assert body == {"site_id": world.site_id, "agent_key": new}
    assert new != old and len(new) == 43

    # The old key is refused by both agent endpoints; the site's new one and the other site's own work.
    refused = _poll(client, world.site_id, old)
    assert refused.status_code == 401
    assert refused.json()["message"] == "The agent key is missing or is not this site's."
    usage = client.post(USAGE, params={"site": world.site_id}, json={"counters": []}, headers=_bearer(old))
    assert usage.status_code == 401
    assert _poll(client, other, other_key).status_code == 200

    # The real agent: a guest signs in, the agent with the new key pulls and applies it.
    world.coupon("ABC234")
    sign_in(client, world.site_id, "ABC234")
    local = NoneGateway()
    agent = _agent(client, world.site_id, new, local)
    assert agent.poll() is True
    agent.apply()
    [user] = world.users()
    assert [held.session_id for held in local.list_allowed()] == [user.id]
    counters = {"counters": [{"session_id": user.id, "bytes_in": 10, "bytes_out": 20}]}
    assert client.post(USAGE, params={"site": world.site_id}, json=counters, headers=_bearer(new)).json() == {
        "written": 1,
        "ended": 0,
    }
    with pytest.raises(AgentRefused, match="401"):
        _agent(client, world.site_id, old, NoneGateway()).poll()

    # A second rotation makes the first new key old in turn.
    again = client.post(f"/captive/sites/{world.site_id}/agent-key/rotate", headers=auth(ORG)).json()["agent_key"]
    assert again not in (old, new)
    assert _poll(client, world.site_id, new).status_code == 401
    assert _poll(client, world.site_id, again).status_code == 200

    with runtime.sessions() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "site.agent_key_rotated").order_by(AuditEvent.id)
        ).all()
        assert [(e.org_id, e.target_id, e.actor) for e in events] == [(ORG, world.site_id, "tester")] * 2
        # Only the salt is stored: no key appears in the site row or the audit log.
        site = session.get(Site, world.site_id)
        assert site is not None and site.agent_key_salt and again not in site.agent_key_salt
        assert all(again not in str(e.detail) for e in events)


def test_rotation_needs_the_write_scope_and_a_site_of_the_org(
    client: TestClient, runtime: Runtime, world: GuestSite, auth: TokenFactory
) -> None:
    old = agent_key(TEST_KEYS["signing_key"], world.site_id)
    read_only = client.post(
        f"/captive/sites/{world.site_id}/agent-key/rotate", headers=auth(ORG, scopes=(SCOPE_READ,))
    )
    assert read_only.status_code == 403
    elsewhere = client.post(f"/captive/sites/{world.site_id}/agent-key/rotate", headers=auth("org-b"))
    assert elsewhere.status_code == 404
    assert client.post(f"/captive/sites/{world.site_id}/agent-key/rotate").status_code == 401
    assert _poll(client, world.site_id, old).status_code == 200


def test_a_long_poll_waiting_with_the_old_key_is_answered_401_by_the_rotation(
    client: TestClient, runtime: Runtime, world: GuestSite
) -> None:
    old = agent_key(TEST_KEYS["signing_key"], world.site_id)
    version = _poll(client, world.site_id, old).json()["version"]
    answers: list[Any] = []
    waiting = threading.Thread(target=lambda: answers.append(_poll(client, world.site_id, old, version, "20")))
    started = time.monotonic()
    waiting.start()
    time.sleep(0.3)
    with runtime.sessions() as session:
        gateway_service.rotate_agent_key(runtime, world.site_id, org_id=ORG, session=session)
    waiting.join(timeout=10)
    assert time.monotonic() - started < 5
    assert [answer.status_code for answer in answers] == [401]


def test_the_cli_prints_the_current_key_before_and_after_a_rotation(
    cli: CliRunner, runtime: Runtime, world: GuestSite
) -> None:
    before = cli.invoke(app, ["gateway", "agent-key", world.site_id])
    assert before.stdout == agent_key(TEST_KEYS["signing_key"], world.site_id) + "\n"
    with runtime.sessions() as session:
        new = gateway_service.rotate_agent_key(runtime, world.site_id, org_id=ORG, session=session)
    after = cli.invoke(app, ["gateway", "agent-key", world.site_id])
    assert after.exit_code == 0
    assert after.stdout == new + "\n" != before.stdout
