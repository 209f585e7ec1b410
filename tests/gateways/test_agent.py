"""Agent sites: keys, the long-polled state API, the agent's pull-and-apply loop, and its reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from guestgate.db import utcnow
from guestgate.gateways import service as gateway_service
from guestgate.gateways.agent import AGENT_STALE_SECONDS, agent_key, agent_key_valid, agent_keys
from guestgate.gateways.agent_client import Agent, AgentOptions, AgentRefused, nftables_gateway
from guestgate.gateways.agent_protocol import LocalState
from guestgate.gateways.base import GatewayMisconfigured, GuestAccess
from guestgate.gateways.nftables import NftablesGateway, table_name
from guestgate.gateways.none import NoneGateway
from guestgate.runtime import Runtime
from guestgate.sites.schemas import GatewayIn
from tests.gateways.journey import GUEST_IP, app_client, refresh_of, sign_in, text_of
from tests.gateways.netns import namespaces
from tests.gateways.world import ACTIVATING, GuestSite, make_guest_site
from tests.utils.settings import TEST_KEYS, TokenFactory, make_settings

STATE = "/agent/v1/state"


@pytest.fixture
def world(runtime: Runtime) -> GuestSite:
    return make_guest_site(runtime, GatewayIn(driver="agent", interface="wlan0"))


@pytest.fixture
def client(runtime: Runtime, world: GuestSite) -> Iterator[TestClient]:
    with app_client(runtime) as built:
        yield built


def key_of(site_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {agent_key(TEST_KEYS['signing_key'], site_id)}"}


def poll(client: TestClient, site_id: str, since: str = "", wait: str = "0", **headers: str) -> Any:
    return client.get(
        STATE, params={"site": site_id, "since": since, "wait": wait}, headers={**key_of(site_id), **headers}
    )


def test_agent_keys_are_per_site_and_follow_the_signing_key() -> None:
    first = agent_key("k" * 40, "site-a")
    assert first == agent_key("k" * 40, "site-a")
    assert first != agent_key("k" * 40, "site-b")
    assert first != agent_key("j" * 40, "site-a")
    assert len(first) == 43 and "=" not in first


def test_the_previous_signing_keys_agent_key_stays_valid_during_a_rotation(tmp_path: Any) -> None:
    settings = make_settings(
        "sqlite://", tmp_path, signing_key=SecretStr("n" * 40), signing_key_previous=SecretStr("o" * 40)
    )
    assert agent_keys(settings, "s") == [agent_key("n" * 40, "s"), agent_key("o" * 40, "s")]
    assert agent_key_valid(settings, "s", agent_key("o" * 40, "s"))
    assert not agent_key_valid(settings, "s", agent_key("p" * 40, "s"))


def test_the_first_poll_gets_the_whole_state(
    client: TestClient, world: GuestSite, auth: TokenFactory
) -> None:
    world.coupon("ABC234")
    sign_in(client, world.site_id, "ABC234")
    client.post(
        f"/captive/walled-garden/{world.site_id}",
        json={"name": "Docs", "ip_address": "198.51.100.0/24", "type": "captive-portal"},
        headers=auth(),
    )
    [user] = world.users()

    response = poll(client, world.site_id)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert response.headers["etag"] == f'"{body["version"]}"'
    assert len(body["version"]) == 32
    assert body["site_id"] == world.site_id
    assert body["gateway"] == {
        "interface": "wlan0",
        "portal_address": None,
        "portal_port": 8000,
        # The site's own table, named by guestgate (never the tenant).
        "table": table_name(world.site_id),
    }
    [guest] = body["guests"]
    assert (guest["session_id"], guest["ip"], guest["mac"]) == (user.id, GUEST_IP, None)
    assert 3590 <= guest["seconds_remaining"] <= 3600
    assert body["walled_garden"] == [{"ip_address": "198.51.100.0/24", "type": "captive-portal"}]
    assert body["auth_windows"] == []


def test_a_poll_with_the_current_version_waits_then_answers_304_and_reports_the_site_ok(
    client: TestClient, world: GuestSite
) -> None:
    world.coupon("ABC234")
    sign_in(client, world.site_id, "ABC234")
    version = poll(client, world.site_id).json()["version"]
    assert world.users()[0].gateway_applied_at is None

    started = time.monotonic()
    response = poll(client, world.site_id, since=version, wait="1")

    assert response.status_code == 304
    assert response.content == b""
    assert time.monotonic() - started >= 0.9
    site = world.site()
    assert (site.gateway_status, site.gateway_last_error) == ("ok", None)
    assert site.gateway_last_sync_at is not None
    assert world.users()[0].gateway_applied_at is not None


def test_a_change_wakes_a_waiting_poll_at_once(
    client: TestClient, world: GuestSite, auth: TokenFactory
) -> None:
    version = poll(client, world.site_id).json()["version"]
    answers: list[Any] = []
    waiting = threading.Thread(
        target=lambda: answers.append(poll(client, world.site_id, since=version, wait="20"))
    )
    started = time.monotonic()
    waiting.start()
    time.sleep(0.3)
    client.post(
        f"/captive/walled-garden/{world.site_id}",
        json={"name": "IdP", "ip_address": "203.0.113.5"},
        headers=auth(),
    )
    waiting.join(timeout=10)
    assert time.monotonic() - started < 3
    [answer] = answers
    assert answer.status_code == 200
    assert answer.json()["version"] != version
    assert answer.json()["walled_garden"] == [{"ip_address": "203.0.113.5/32", "type": "captive-auth"}]


def test_an_auth_window_reaches_the_agent_state(
    client: TestClient, runtime: Runtime, world: GuestSite
) -> None:
    import asyncio

    from guestgate.gateways.notifier import PoolNotifier

    asyncio.run(PoolNotifier(runtime).open_auth_window(world.site_id, GUEST_IP, 300))
    [window] = poll(client, world.site_id).json()["auth_windows"]
    assert window["ip"] == GUEST_IP
    assert 295 <= window["seconds_remaining"] <= 300


def test_an_agent_error_marks_the_site_misconfigured(client: TestClient, world: GuestSite) -> None:
    response = poll(client, world.site_id, **{"X-Guestgate-Agent-Error": "nft is not installed"})
    assert response.status_code == 200
    site = world.site()
    assert (site.gateway_status, site.gateway_last_error) == ("misconfigured", "nft is not installed")


@pytest.mark.parametrize(
    ("with_site", "params", "message"),
    [
        (False, {}, "The 'site' parameter is required for this request."),
        (True, {"wait": "61"}, "The 'wait' parameter must be between 0 and 60."),
        (True, {"wait": "-1"}, "The 'wait' parameter must be between 0 and 60."),
        (True, {"wait": "soon"}, "The 'wait' parameter must be between 0 and 60."),
        (True, {"since": "v" * 65}, "The 'since' parameter must be a version this API returned."),
    ],
)
def test_bad_state_requests_are_refused_naming_the_parameter(
    client: TestClient, world: GuestSite, with_site: bool, params: dict[str, str], message: str
) -> None:
    query = {"site": world.site_id, **params} if with_site else params
    response = client.get(STATE, params=query, headers=key_of(world.site_id))
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == message
    assert body["type"] == "invalid_request_error"
    assert body["doc_url"] == f"http://testserver/errors/{body['code']}"


def test_the_wait_edges_zero_and_sixty_are_accepted(client: TestClient, world: GuestSite) -> None:
    assert poll(client, world.site_id, wait="0").status_code == 200
    assert poll(client, world.site_id, wait="60").status_code == 200


@pytest.mark.parametrize("authorization", [None, "Bearer ", "Basic abc", "Bearer not-the-key"])
def test_a_poll_without_the_sites_key_is_401(
    client: TestClient, world: GuestSite, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = client.get(STATE, params={"site": world.site_id}, headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "token_invalid"


def test_another_sites_key_is_401(client: TestClient, runtime: Runtime, world: GuestSite) -> None:
    other = make_guest_site(runtime, GatewayIn(driver="agent"), subnet="10.9.0.0/24")
    response = client.get(STATE, params={"site": world.site_id, "wait": "0"}, headers=key_of(other.site_id))
    assert response.status_code == 401


def test_an_unknown_site_or_one_not_driven_by_an_agent_is_404(
    client: TestClient, runtime: Runtime, world: GuestSite
) -> None:
    missing = "5f4e3d2c-1b0a-4987-8654-3210fedcba98"
    assert poll(client, missing).status_code == 404
    routed = make_guest_site(runtime, GatewayIn(driver="none"), subnet="10.9.0.0/24")
    response = poll(client, routed.site_id)
    assert response.status_code == 404
    assert response.json()["message"] == f"No such agent site: '{routed.site_id}'."


def test_an_agent_site_sign_in_shows_activating_until_the_agent_has_applied_it(
    client: TestClient, world: GuestSite
) -> None:
    world.coupon("ABC234")
    page = sign_in(client, world.site_id, "ABC234")
    assert ACTIVATING in text_of(page)
    refresh = refresh_of(page.text)
    assert refresh is not None
    agent = Agent(
        AgentOptions(
            controller="http://testserver",
            site_id=world.site_id,
            key=agent_key(TEST_KEYS["signing_key"], world.site_id),
            wait_seconds=0,
        ),
        http=client,
        gateway_factory=lambda options, sent: NoneGateway(),
    )
    assert agent.poll() is True
    agent.apply()
    # Applied locally, but the controller learns it on the agent's next poll.
    assert ACTIVATING in text_of(client.get(refresh[1]))
    assert agent.poll() is False
    done = client.get(refresh[1])
    assert ACTIVATING not in text_of(done)
    assert refresh_of(done.text) is None


def test_the_agent_applies_what_it_pulls_to_its_local_gateway(client: TestClient, world: GuestSite) -> None:
    world.coupon("ABC234")
    sign_in(client, world.site_id, "ABC234")
    local = NoneGateway()
    seen: list[dict[str, Any]] = []

    def factory(options: AgentOptions, sent: dict[str, Any]) -> NoneGateway:
        seen.append(sent)
        return local

    agent = Agent(
        AgentOptions(
            controller="http://testserver",
            site_id=world.site_id,
            key=agent_key(TEST_KEYS["signing_key"], world.site_id),
            wait_seconds=0,
        ),
        http=client,
        gateway_factory=factory,
    )
    assert agent.poll() is True
    agent.apply()
    [user] = world.users()
    [held] = local.list_allowed()
    assert (held.session_id, held.ip) == (user.id, GUEST_IP)
    assert held.remaining is not None and held.remaining > timedelta(minutes=59)
    assert agent.applied == agent.state.version if agent.state else False
    assert seen == [
        {
            "interface": "wlan0",
            "portal_address": None,
            "portal_port": 8000,
            "table": table_name(world.site_id),
        }
    ]

    world.update_user(user.id, status="disconnected", ended_at=utcnow())
    assert agent.poll() is True
    agent.apply()
    assert local.list_allowed() == []


def test_the_agent_reports_a_failed_apply_and_keeps_its_last_applied_version(
    client: TestClient, world: GuestSite
) -> None:
    def broken(options: AgentOptions, sent: dict[str, Any]) -> NoneGateway:
        raise GatewayMisconfigured("no guest interface")

    agent = Agent(
        AgentOptions(
            controller="http://testserver",
            site_id=world.site_id,
            key=agent_key(TEST_KEYS["signing_key"], world.site_id),
            wait_seconds=0,
        ),
        http=client,
        gateway_factory=broken,
    )
    agent.poll()
    with pytest.raises(GatewayMisconfigured):
        agent.apply()
    assert agent.applied == ""
    assert agent.poll() is True
    site = world.site()
    assert (site.gateway_status, site.gateway_last_error) == ("misconfigured", "no guest interface")


def test_an_agent_with_a_wrong_key_is_refused(client: TestClient, world: GuestSite) -> None:
    agent = Agent(
        AgentOptions(controller="http://testserver", site_id=world.site_id, key="wrong", wait_seconds=0),
        http=client,
    )
    with pytest.raises(AgentRefused, match="401"):
        agent.poll()


def test_the_agents_own_options_override_what_the_controller_sends() -> None:
    sent = {"interface": "wlan0", "portal_address": "192.0.2.10", "portal_port": 8443, "table": "gg_site"}
    options = AgentOptions(
        controller="http://c", site_id="s", key="k", netns="guests", interface="br-guest", portal_port=80
    )
    gateway = nftables_gateway(options, sent)
    assert isinstance(gateway, NftablesGateway)
    assert (gateway.interface, gateway.portal_address, gateway.portal_port, gateway.table, gateway.netns) == (
        "br-guest",
        "192.0.2.10",
        80,
        "gg_site",
        "guests",
    )
    with pytest.raises(GatewayMisconfigured, match="interface"):
        nftables_gateway(AgentOptions(controller="http://c", site_id="s", key="k"), {})


def test_an_agent_that_stops_polling_is_reported_unreachable(
    runtime: Runtime, client: TestClient, world: GuestSite
) -> None:
    version = poll(client, world.site_id).json()["version"]
    assert poll(client, world.site_id, since=version).status_code == 304
    seen = world.site().gateway_last_sync_at
    assert seen is not None
    assert (
        gateway_service.mark_stale_agents(runtime, now=seen + timedelta(seconds=AGENT_STALE_SECONDS - 1)) == 0
    )
    assert world.site().gateway_status == "ok"

    assert (
        gateway_service.mark_stale_agents(runtime, now=seen + timedelta(seconds=AGENT_STALE_SECONDS + 1)) == 1
    )

    site = world.site()
    assert site.gateway_status == "unreachable"
    assert site.gateway_last_error is not None and "has not polled since" in site.gateway_last_error


@pytest.mark.netns
def test_an_agent_whose_table_changes_installs_the_new_one_then_removes_only_the_old(
    netns_tools: None,
) -> None:
    # A site made before tables were per site is edited: its agent moves from `guestgate` to the
    # site's own table, and the gateway's own tables stay.
    with namespaces("gw") as made:
        ns = made["gw"]
        ns.run(
            "nft",
            "-f",
            "-",
            input="table inet filter {\n\tchain input {\n\t\ttype filter hook input priority 0;\n\t}\n}\n",
        )
        agent = Agent(AgentOptions(controller="http://c", site_id="s", key="k", netns=ns.name))
        try:
            sent = {"interface": "g0", "portal_address": None, "portal_port": 8080, "table": None}
            for version, table in (("v1", None), ("v2", "guestgate_0123456789abcdef0123456789abcdef")):
                agent.state = LocalState(
                    version=version,
                    gateway={**sent, "table": table},
                    guests=[GuestAccess("s1", "10.0.0.5", None, utcnow() + timedelta(hours=1))],
                    walled_garden=[],
                    auth_windows={},
                )
                agent.apply()
                listed = sorted(line.split()[-1] for line in ns.nft("list", "tables").splitlines())
                assert listed == sorted(["filter", table or "guestgate"])
            assert 'comment "guestgate:s1"' in ns.nft(
                "list", "table", "inet", "guestgate_0123456789abcdef0123456789abcdef"
            )
        finally:
            agent.close()
