"""`guestgate gateway apply | script | agent-key`, run through typer's CliRunner on the test database."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from guestgate.cli import app
from guestgate.db import utcnow
from guestgate.gateways.agent import agent_key
from guestgate.gateways.nftables import table_name
from guestgate.gateways.rsc import render_script
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites.schemas import GatewayIn
from tests.gateways.netns import namespaces
from tests.gateways.world import ORG, GuestSite, make_guest_site
from tests.utils.settings import TEST_KEYS

MISSING = "5f4e3d2c-1b0a-4987-8654-3210fedcba98"


def routeros_site(runtime: Runtime, password: str | None = "s3cret!") -> GuestSite:
    gateway = GatewayIn(
        driver="routeros",
        host="router.example.com",
        username="gg-api",
        password=password,
        portal_address="192.0.2.10",
    )
    return make_guest_site(runtime, gateway)


def test_gateway_script_prints_the_sites_rsc(cli: CliRunner, runtime: Runtime) -> None:
    world = routeros_site(runtime)
    result = cli.invoke(app, ["gateway", "script", world.site_id])
    assert result.exit_code == 0, result.output
    expected = render_script(world.site(), "https://wifi.example.com", "gg-api", api_password="s3cret!")
    assert result.stdout == expected
    lines = result.stdout.splitlines()
    assert '/user add name=gg-api group=guestgate-api password="s3cret!" comment="guestgate"' in lines
    assert any("action=dst-nat protocol=tcp to-addresses=192.0.2.10 to-ports=80" in line for line in lines)


def test_gateway_script_takes_the_api_user_and_controller_address(cli: CliRunner, runtime: Runtime) -> None:
    world = routeros_site(runtime)
    result = cli.invoke(
        app,
        ["gateway", "script", world.site_id, "--api-user", "portal", "--controller-address", "192.0.2.50"],
    )
    assert result.exit_code == 0, result.output
    assert (
        '/user add name=portal group=guestgate-api password="s3cret!" address=192.0.2.50/32 comment="guestgate"'
        in (result.stdout.splitlines())
    )


def test_gateway_script_without_a_password_says_what_to_set(cli: CliRunner, runtime: Runtime) -> None:
    world = routeros_site(runtime, password=None)
    result = cli.invoke(app, ["gateway", "script", world.site_id])
    assert result.exit_code == 1
    assert "set a single-line API password" in result.stderr


def test_gateway_commands_refuse_an_unknown_site(cli: CliRunner, runtime: Runtime) -> None:
    for command in ("script", "apply", "agent-key"):
        result = cli.invoke(app, ["gateway", command, MISSING])
        assert result.exit_code == 1, command
        assert f"No such site: '{MISSING}'." in result.stderr


def test_gateway_apply_refuses_a_site_without_a_local_table(cli: CliRunner, runtime: Runtime) -> None:
    world = routeros_site(runtime)
    result = cli.invoke(app, ["gateway", "apply", world.site_id])
    assert result.exit_code == 1
    assert "uses the 'routeros' driver; only nftables sites have a local table" in result.stderr
    agent = make_guest_site(runtime, GatewayIn(driver="agent"), subnet="10.9.0.0/24")
    result = cli.invoke(app, ["gateway", "apply", agent.site_id])
    assert result.exit_code == 1
    assert "run `guestgate agent` on the gateway" in result.stderr


def test_gateway_agent_key_prints_the_sites_key(cli: CliRunner, runtime: Runtime) -> None:
    world = make_guest_site(runtime, GatewayIn(driver="agent"))
    result = cli.invoke(app, ["gateway", "agent-key", world.site_id])
    assert result.exit_code == 0
    assert result.stdout == agent_key(TEST_KEYS["signing_key"], world.site_id) + "\n"
    assert result.stderr == ""


def test_gateway_agent_key_warns_when_the_site_has_another_driver(cli: CliRunner, runtime: Runtime) -> None:
    world = routeros_site(runtime)
    result = cli.invoke(app, ["gateway", "agent-key", world.site_id])
    assert result.exit_code == 0
    assert result.stdout.strip() == agent_key(TEST_KEYS["signing_key"], world.site_id)
    assert "uses the 'routeros' driver" in result.stderr


def test_agent_needs_the_controller_site_and_key(cli: CliRunner) -> None:
    result = cli.invoke(app, ["agent", "--site", "s", "--key", "k"])
    assert result.exit_code == 2
    assert "--controller" in result.stderr


@pytest.mark.netns
def test_gateway_apply_installs_the_table_with_the_active_guests_and_garden(
    cli: CliRunner, runtime: Runtime, netns_tools: None
) -> None:
    with namespaces("gw") as made:
        ns = made["gw"]
        world = make_guest_site(
            runtime, GatewayIn(driver="nftables", interface="guest0", portal_port=8080, netns=ns.name)
        )
        with runtime.sessions() as session:
            user = SiteUser(
                org_id=ORG,
                site_id=world.site_id,
                instance_id=world.instance_id,
                ip_address="10.0.0.5",
                strategy="coupon",
                started_at=utcnow(),
                expires_at=utcnow() + timedelta(minutes=30),
            )
            session.add(user)
            session.commit()
            user_id = user.id

        result = cli.invoke(app, ["gateway", "apply", world.site_id])

        assert result.exit_code == 0, result.output
        assert result.stdout == (
            f"nft table inet {table_name(world.site_id)} applied in network namespace {ns.name}: "
            "1 guests, 0 walled-garden entries\n"
        )
        listing = ns.nft("list", "table", "inet", table_name(world.site_id))
        assert re.search(rf'10\.0\.0\.5 timeout 30m expires \S+ comment "guestgate:{user_id}"', listing)
        assert "redirect to :8080" in listing
        assert world.site().gateway_status == "ok"
        assert world.users()[0].gateway_applied_at is not None
