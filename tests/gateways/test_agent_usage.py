"""Agent sites and access plans: the state carries each guest's limits; the agent reports its counters.

`POST /agent/v1/usage` adds an agent's raw counters to its sessions' usage and ends those past
their data limit, which wakes the agent's poll with a state without them (both databases).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from guestgate.gateways.agent import agent_key
from guestgate.gateways.agent_client import Agent, AgentOptions, nftables_gateway
from guestgate.gateways.nftables import object_name, table_name
from guestgate.runtime import Runtime
from guestgate.sites.schemas import GatewayIn
from tests.gateways.journey import GUEST_IP, app_client, sign_in
from tests.gateways.netns import namespaces
from tests.gateways.test_agent import key_of, poll
from tests.gateways.world import GuestSite, make_guest_site
from tests.utils.settings import TEST_KEYS

USAGE = "/agent/v1/usage"


@pytest.fixture
def world(runtime: Runtime) -> GuestSite:
    return make_guest_site(runtime, GatewayIn(driver="agent", interface="wlan0"))


@pytest.fixture
def client(runtime: Runtime, world: GuestSite) -> Iterator[TestClient]:
    with app_client(runtime) as built:
        yield built


def report(client: TestClient, site_id: str, counters: object, **headers: str) -> object:
    return client.post(
        USAGE, params={"site": site_id}, json={"counters": counters}, headers={**key_of(site_id), **headers}
    )


def signed_in(client: TestClient, world: GuestSite, **limits: int) -> str:
    world.coupon("ABC234")
    sign_in(client, world.site_id, "ABC234")
    [user] = world.users()
    if limits:
        world.update_user(user.id, **limits)
    return user.id


def test_the_state_carries_each_guests_limits(client: TestClient, world: GuestSite) -> None:
    signed_in(client, world, download_kbps=4000, upload_kbps=1000)
    [guest] = poll(client, world.site_id).json()["guests"]
    assert (guest["download_kbps"], guest["upload_kbps"]) == (4000, 1000)


def test_reported_counters_become_usage_and_a_session_past_its_quota_ends_and_leaves_the_state(
    client: TestClient, world: GuestSite
) -> None:
    user_id = signed_in(client, world, data_limit_mb=1)
    version = poll(client, world.site_id).json()["version"]
    answer = report(client, world.site_id, [{"session_id": user_id, "bytes_in": 1000, "bytes_out": 400_000}])
    assert answer.status_code == 200 and answer.json() == {"written": 1, "ended": 0}  # type: ignore[attr-defined]
    [user] = world.users()
    assert (user.bytes_in, user.bytes_out, user.status) == (1000, 400_000, "active")
    assert user.last_seen_at is not None
    # The agent restarted: its counters start again, and the smaller readings are added whole.
    answer = report(client, world.site_id, [{"session_id": user_id, "bytes_in": 10, "bytes_out": 399_000}])
    assert answer.json() == {"written": 1, "ended": 0}  # type: ignore[attr-defined]
    [user] = world.users()
    assert (user.bytes_in, user.bytes_out) == (1010, 799_000)
    # Growth from there reaches the 1 MB limit: the session ends.
    answer = report(client, world.site_id, [{"session_id": user_id, "bytes_in": 10, "bytes_out": 600_000}])
    assert answer.json() == {"written": 1, "ended": 1}  # type: ignore[attr-defined]
    [user] = world.users()
    assert (user.bytes_in, user.bytes_out) == (1010, 1_000_000)
    assert (user.status, user.end_reason) == ("quota_exceeded", "quota_exceeded")
    state = poll(client, world.site_id, since=version).json()
    assert state["guests"] == []
    # An ended session takes no more usage.
    answer = report(client, world.site_id, [{"session_id": user_id, "bytes_in": 99, "bytes_out": 900_000}])
    assert answer.json() == {"written": 0, "ended": 0}  # type: ignore[attr-defined]


def test_counters_of_another_sites_sessions_are_ignored(
    client: TestClient, runtime: Runtime, world: GuestSite
) -> None:
    user_id = signed_in(client, world)
    other = make_guest_site(runtime, GatewayIn(driver="agent", interface="wlan1"), subnet="10.9.0.0/24")
    answer = report(client, other.site_id, [{"session_id": user_id, "bytes_in": 5, "bytes_out": 5}])
    assert answer.json() == {"written": 0, "ended": 0}  # type: ignore[attr-defined]
    assert world.users()[0].bytes_out == 0


@pytest.mark.parametrize(
    "counters",
    [
        "not a list",
        [{"session_id": "s", "bytes_in": -1, "bytes_out": 0}],
        [{"session_id": "s", "bytes_in": 1.5, "bytes_out": 0}],
        [{"session_id": "s", "bytes_in": True, "bytes_out": 0}],
        [{"session_id": "x" * 37, "bytes_in": 0, "bytes_out": 0}],
        [{"session_id": "s", "bytes_in": 2**63, "bytes_out": 0}],
        ["s"],
        [{"session_id": f"s{n}", "bytes_in": 0, "bytes_out": 0} for n in range(20_001)],
    ],
)
def test_bad_usage_reports_are_refused(client: TestClient, world: GuestSite, counters: object) -> None:
    answer = report(client, world.site_id, counters)
    assert answer.status_code == 400  # type: ignore[attr-defined]


def test_a_usage_report_needs_the_sites_key(client: TestClient, world: GuestSite) -> None:
    answer = client.post(USAGE, params={"site": world.site_id}, json={"counters": []})
    assert answer.status_code == 401
    answer = client.post(
        USAGE, params={"site": world.site_id}, content=b"x" * 4_000_001, headers=key_of(world.site_id)
    )
    assert answer.status_code == 400


@pytest.mark.netns
def test_the_agent_posts_its_nftables_counters_after_an_apply(
    client: TestClient, world: GuestSite, netns_tools: None
) -> None:
    user_id = signed_in(client, world, data_limit_mb=1)
    with namespaces("gw") as made:
        ns = made["gw"]
        agent = Agent(
            AgentOptions(
                controller="http://testserver",
                site_id=world.site_id,
                key=agent_key(TEST_KEYS["signing_key"], world.site_id),
                wait_seconds=0,
                netns=ns.name,
            ),
            http=client,
            gateway_factory=nftables_gateway,
        )
        assert agent.poll() is True
        agent.apply()
        # Nothing moved yet: a first reading of 0 is posted, and changes nothing.
        assert agent.report_usage() is True
        assert agent.report_usage() is False
        # The kernel's counter of the guest's downloads, as 2 MB of traffic would leave it.
        table, counter = table_name(world.site_id), object_name("cd", GUEST_IP)
        ns.run(
            "nft",
            "-f",
            "-",
            input=(
                f"delete element inet {table} down_count4 {{ {GUEST_IP} }}\n"
                f"delete counter inet {table} {counter}\n"
                f"add counter inet {table} {counter} {{ packets 1500 bytes 2000000 }}\n"
                f'add element inet {table} down_count4 {{ {GUEST_IP} : "{counter}" }}\n'
            ),
        )
        agent.apply()
        assert agent.report_usage() is True
        [user] = world.users()
        assert (user.bytes_out, user.status) == (2_000_000, "quota_exceeded")
        # The next poll brings a state without the guest; the agent's apply drops it.
        assert agent.poll() is True
        agent.apply()
        listing = ns.nft("list", "table", "inet", table)
        assert user_id not in listing
        assert GUEST_IP not in listing
