"""The nftables driver is the deployment's, not a tenant's: reproductions of issue 9, item 1.

A tenant created `{"driver": "nftables", "table": "filter"}` and the rendered script deleted the
host's own `inet filter` table; two orgs naming one table deleted each other's guests while both
reported `ok`. Now: no org may use the driver unless GUESTGATE_NFTABLES_ALLOW lists the place
(`interface` or `netns/interface`) for it; each site has its own table `guestgate_<site id>`;
two sites cannot share a place; and a script only ever creates, changes or deletes its own
table. Sites stored before these rules keep working until they are edited, and `guestgate doctor`
(and the server at start) names them.

The netns tests run real nft in a namespace they create, with a host-like `inet filter` table in
it that must come out of everything unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from guestgate import doctor
from guestgate.app import create_app
from guestgate.cli import app as cli_app
from guestgate.config import get_settings
from guestgate.db import utcnow
from guestgate.gateways.nftables import NftablesGateway, table_name
from guestgate.gateways.reconcile import reconcile_all
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from guestgate.sites.models import Site
from tests.core.test_errors import assert_error
from tests.gateways.netns import Namespace, namespaces, require_netns_tools
from tests.utils.settings import TokenFactory

HOST_FILTER = """table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\ttcp dport 22 accept comment "the host's own ssh rule"
\t}
}
"""


def allow(runtime: Runtime, places: dict[str, list[str]]) -> None:
    """The deployment's GUESTGATE_NFTABLES_ALLOW for this test."""
    runtime.settings = runtime.settings.model_copy(update={"nftables_allow": places})


def nft_site(interface: str, netns: str | None = None, **extra: Any) -> dict[str, Any]:
    gateway: dict[str, Any] = {"driver": "nftables", "interface": interface, "portal_port": 8080, **extra}
    if netns is not None:
        gateway["netns"] = netns
    return {"name": f"Lobby {interface}", "subnets": [], "gateway": gateway}


def site_count(runtime: Runtime) -> int:
    with runtime.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Site)) or 0)


def legacy_site(runtime: Runtime, org: str, config: dict[str, Any], *, name: str = "Old lobby") -> str:
    """A site as stored before tables were per site and before the allow-list (no API check)."""
    with runtime.sessions() as session:
        org_service.ensure(org, session=session)
        site = Site(org_id=org, name=name, subnets=[], gateway_driver="nftables", gateway_config=config)
        session.add(site)
        session.commit()
        return site.id


def add_guest(runtime: Runtime, org: str, site_id: str, ip: str) -> str:
    now = utcnow()
    with runtime.sessions() as session:
        user = SiteUser(
            org_id=org,
            site_id=site_id,
            instance_id="00000000-0000-4000-8000-000000000000",
            ip_address=ip,
            strategy="coupon",
            started_at=now,
            expires_at=now + timedelta(hours=1),
        )
        session.add(user)
        session.commit()
        return user.id


# -- who may use the driver ----------------------------------------------------------------------


def test_no_org_may_use_nftables_unless_the_deployment_allows_it(
    client: TestClient, auth: TokenFactory, runtime: Runtime
) -> None:
    for body in (nft_site("wlan0"), nft_site("eth0", "default"), nft_site("wlan0", table="filter")):
        response = client.post("/captive/sites", headers=auth(org="org-a"), json=body)
        error = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
        assert error["message"].startswith(
            "The 'gateway.driver' parameter is 'nftables', which is not enabled for this organisation"
        )
    assert site_count(runtime) == 0


def test_an_allowed_org_may_use_only_its_places_and_other_orgs_none(
    client: TestClient, auth: TokenFactory, runtime: Runtime
) -> None:
    allow(runtime, {"org-a": ["wlan0", "guests/veth-a"]})
    a, b = auth(org="org-a"), auth(org="org-b")
    assert client.post("/captive/sites", headers=a, json=nft_site("wlan0")).status_code == 201
    assert client.post("/captive/sites", headers=a, json=nft_site("veth-a", "guests")).status_code == 201
    # The host's uplink, another namespace, or the right interface in the wrong namespace: refused.
    for body, parameter in (
        (nft_site("eth0"), "gateway.interface"),
        (nft_site("veth-a", "other"), "gateway.netns"),
        (nft_site("wlan0", "guests"), "gateway.netns"),
    ):
        error = assert_error(
            client.post("/captive/sites", headers=a, json=body),
            400,
            "invalid_request_error",
            "parameter_invalid",
        )
        assert error["message"].startswith(f"The '{parameter}' parameter names interface")
        assert "has not allowed this organisation" in error["message"]
    error = assert_error(
        client.post("/captive/sites", headers=b, json=nft_site("wlan0")),
        400,
        "invalid_request_error",
        "parameter_invalid",
    )
    assert "not enabled for this organisation" in error["message"]


def test_the_table_is_never_the_tenants_choice(
    client: TestClient, auth: TokenFactory, runtime: Runtime
) -> None:
    allow(runtime, {"org-a": ["wlan0"]})
    a = auth(org="org-a")
    for table in ("filter", "guestgate", "nat", "guestgate_0123456789abcdef0123456789abcdef"):
        response = client.post("/captive/sites", headers=a, json=nft_site("wlan0", table=table))
        error = assert_error(response, 400, "invalid_request_error", "parameter_invalid")
        assert error["message"].startswith(f"The 'gateway.table' parameter names the nft table '{table}'")
    created = client.post("/captive/sites", headers=a, json=nft_site("wlan0"))
    assert created.status_code == 201, created.text
    site = created.json()
    assert site["gateway"]["table"] == table_name(site["id"]) == "guestgate_" + site["id"].replace("-", "")
    # What a client read back may be sent again.
    again = client.put(
        f"/captive/sites/{site['id']}", headers=a, json={**nft_site("wlan0"), "gateway": site["gateway"]}
    )
    assert again.status_code == 200, again.text
    # An agent site's table follows the same rule.
    agent = client.post(
        "/captive/sites",
        headers=a,
        json={"name": "Remote", "gateway": {"driver": "agent", "table": "filter"}},
    )
    assert_error(agent, 400, "invalid_request_error", "parameter_invalid")
    agent = client.post("/captive/sites", headers=a, json={"name": "Remote", "gateway": {"driver": "agent"}})
    assert agent.json()["gateway"]["table"] == table_name(agent.json()["id"])


def test_two_sites_cannot_share_an_interface_across_orgs(
    client: TestClient, auth: TokenFactory, runtime: Runtime
) -> None:
    allow(runtime, {"*": ["wlan0", "ns1/wlan0"]})
    a, b = auth(org="org-a"), auth(org="org-b")
    first = client.post("/captive/sites", headers=a, json=nft_site("wlan0"))
    assert first.status_code == 201
    taken = client.post("/captive/sites", headers=b, json=nft_site("wlan0"))
    error = assert_error(taken, 409, "conflict_error", "resource_in_use")
    assert error["message"] == (
        "The 'gateway.interface' parameter names interface 'wlan0' in the host's network namespace, "
        "which another site uses."
    )
    # Nothing of the other org's site shows through.
    assert first.json()["id"] not in error["message"]
    assert client.post("/captive/sites", headers=b, json=nft_site("wlan0", "ns1")).status_code == 201
    moved = client.put(f"/captive/sites/{first.json()['id']}", headers=a, json=nft_site("wlan0", "ns1"))
    assert_error(moved, 409, "conflict_error", "resource_in_use")


# -- stored before the rules -----------------------------------------------------------------------


def test_a_stored_site_the_rules_now_refuse_keeps_working_until_edited_and_is_named(
    client: TestClient, auth: TokenFactory, runtime: Runtime
) -> None:
    old = legacy_site(runtime, "org-a", {"interface": "wlan0", "table": "filter"})
    shared = legacy_site(runtime, "org-b", {"interface": "wlan0"}, name="Other lobby")
    # Still built with the table it has (the driver is not rebuilt from the rules).
    gateway = runtime.gateways.get(_site(runtime, old))
    assert isinstance(gateway, NftablesGateway) and gateway.table == "filter"

    problems = [(p.id, p.parameter, p.problem) for p in doctor.diagnose(runtime)]

    assert (old, "gateway.driver") in [(i, p) for i, p, _ in problems]
    assert (
        old,
        "gateway.table",
        f"names the nft table 'filter', but guestgate names each site's table itself ('{table_name(old)}' for this site): omit it",
    ) in problems
    assert (
        shared,
        "gateway.interface",
        "names interface 'wlan0' in the host's network namespace, which another site uses",
    ) in problems
    edited = client.put(
        f"/captive/sites/{old}",
        headers=auth(org="org-a"),
        json={"name": "Renamed", "subnets": [], "gateway": {"driver": "nftables", "interface": "wlan0"}},
    )
    assert_error(edited, 400, "invalid_request_error", "parameter_invalid")


def test_guestgate_doctor_names_each_problem_and_fails(
    cli: CliRunner, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = legacy_site(runtime, "org-a", {"interface": "wlan0"})
    result = cli.invoke(cli_app, ["doctor"])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert f"site {old} (org org-a): 'gateway.driver' is 'nftables', which is not enabled" in lines[0]
    assert lines[1].startswith(f"site {old} (org org-a): 'gateway.table' names the nft table 'guestgate'")
    assert lines[-1].startswith("2 problem(s). Sites keep working with these settings until they are edited")
    monkeypatch.setenv("GUESTGATE_NFTABLES_ALLOW", '{"org-a": ["wlan0"]}')
    with runtime.sessions() as session:
        row = session.get(Site, old)
        assert row is not None
        row.gateway_config = {"interface": "wlan0", "table": table_name(old)}
        session.commit()
    get_settings.cache_clear()
    clean = cli.invoke(cli_app, ["doctor"])
    assert (clean.exit_code, clean.stdout) == (0, "No problems found.\n")


def test_the_server_logs_each_problem_at_start(runtime: Runtime) -> None:
    # In a namespace that does not exist: the server's start applies nftables sites' tables, and
    # this test must not reach the host's ruleset.
    old = legacy_site(runtime, "org-a", {"interface": "wlan0", "netns": "gg-t-absent"})
    with structlog.testing.capture_logs() as seen, TestClient(create_app(runtime=runtime)):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(e["event"] == "doctor.problem" for e in seen):
            time.sleep(0.05)
    problems = [e for e in seen if e["event"] == "doctor.problem"]
    assert {(e["id"], e["parameter"]) for e in problems} == {(old, "gateway.driver"), (old, "gateway.table")}
    assert all(e["log_level"] == "warning" and e["org_id"] == "org-a" for e in problems)


def _site(runtime: Runtime, site_id: str) -> Site:
    with runtime.sessions() as session:
        site = session.get(Site, site_id)
        assert site is not None
        return site


# -- nothing else on the host is touched (real nft) -----------------------------------------------


@pytest.fixture
def host() -> Iterator[Namespace]:
    """A namespace standing in for the controller host, with the host's own `inet filter` table."""
    require_netns_tools()
    with namespaces("host") as made:
        ns = made["host"]
        ns.run("nft", "-f", "-", input=HOST_FILTER)
        yield ns


def tables(ns: Namespace) -> list[str]:
    return sorted(line.split()[-1] for line in ns.nft("list", "tables").splitlines() if line.strip())


@pytest.mark.netns
def test_the_hosts_own_tables_survive_every_site_change(
    client: TestClient, auth: TokenFactory, runtime: Runtime, host: Namespace
) -> None:
    filter_before = host.nft("list", "table", "inet", "filter")
    allow(runtime, {"org-a": [f"{host.name}/veth-a"], "org-b": [f"{host.name}/veth-b"]})
    a, b = auth(org="org-a"), auth(org="org-b")
    # The old attack: name the host's table. Refused, and nothing ran.
    attack = client.post("/captive/sites", headers=a, json=nft_site("veth-a", host.name, table="filter"))
    assert_error(attack, 400, "invalid_request_error", "parameter_invalid")
    site_a = client.post("/captive/sites", headers=a, json=nft_site("veth-a", host.name)).json()["id"]
    site_b = client.post("/captive/sites", headers=b, json=nft_site("veth-b", host.name)).json()["id"]
    guest_a = add_guest(runtime, "org-a", site_a, "10.0.0.5")
    guest_b = add_guest(runtime, "org-b", site_b, "10.0.0.5")

    outcomes = reconcile_all(runtime=runtime, now=utcnow())

    assert {o.site_id: o.status for o in outcomes} == {site_a: "ok", site_b: "ok"}
    assert tables(host) == sorted(["filter", table_name(site_a), table_name(site_b)])
    # One org's guests are in its own table only: the same address at two sites is two entries.
    assert f"guestgate:{guest_a}" in host.nft("list", "table", "inet", table_name(site_a))
    assert f"guestgate:{guest_b}" in host.nft("list", "table", "inet", table_name(site_b))
    assert f"guestgate:{guest_b}" not in host.nft("list", "table", "inet", table_name(site_a))

    # Org A deletes its site (its instance-less site may go): only its table goes with it.
    assert client.delete(f"/captive/sites/{site_a}", headers=a).status_code == 204
    assert tables(host) == sorted(["filter", table_name(site_b)])
    assert f"guestgate:{guest_b}" in host.nft("list", "table", "inet", table_name(site_b))
    assert host.nft("list", "table", "inet", "filter") == filter_before


@pytest.mark.netns
def test_an_edited_legacy_site_moves_to_its_own_table_and_leaves_the_rest(
    client: TestClient, auth: TokenFactory, runtime: Runtime, host: Namespace
) -> None:
    filter_before = host.nft("list", "table", "inet", "filter")
    old = legacy_site(runtime, "org-a", {"interface": "veth-a", "netns": host.name, "portal_port": 8080})
    guest = add_guest(runtime, "org-a", old, "10.0.0.7")
    # Before the edit it works as it always did, in the shared `guestgate` table.
    assert [o.status for o in reconcile_all(runtime=runtime, now=utcnow())] == ["ok"]
    assert tables(host) == ["filter", "guestgate"]
    allow(runtime, {"org-a": [f"{host.name}/veth-a"]})

    edited = client.put(
        f"/captive/sites/{old}", headers=auth(org="org-a"), json=nft_site("veth-a", host.name)
    )

    assert edited.status_code == 200, edited.text
    assert edited.json()["gateway"]["table"] == table_name(old)
    # The new table (with the guest) went in, then the old one came out; the host's table stayed.
    assert tables(host) == sorted(["filter", table_name(old)])
    assert f"guestgate:{guest}" in host.nft("list", "table", "inet", table_name(old))
    assert host.nft("list", "table", "inet", "filter") == filter_before


@pytest.mark.netns
def test_a_legacy_table_two_sites_share_stays_until_neither_uses_it(
    client: TestClient, auth: TokenFactory, runtime: Runtime, host: Namespace
) -> None:
    first = legacy_site(runtime, "org-a", {"interface": "veth-a", "netns": host.name, "portal_port": 8080})
    legacy_site(runtime, "org-b", {"interface": "veth-b", "netns": host.name, "portal_port": 8080})
    reconcile_all(runtime=runtime, now=utcnow())
    allow(runtime, {"org-a": [f"{host.name}/veth-a"]})

    edited = client.put(
        f"/captive/sites/{first}", headers=auth(org="org-a"), json=nft_site("veth-a", host.name)
    )

    assert edited.status_code == 200, edited.text
    assert tables(host) == sorted(["filter", "guestgate", table_name(first)])


@pytest.mark.netns
def test_a_legacy_site_naming_the_hosts_table_never_replaces_or_deletes_it(
    client: TestClient, auth: TokenFactory, runtime: Runtime, host: Namespace
) -> None:
    # Stored before the rules by the original attack: its table is the host's own `inet filter`.
    filter_before = host.nft("list", "table", "inet", "filter")
    old = legacy_site(
        runtime, "org-a", {"interface": "veth-a", "netns": host.name, "portal_port": 8080, "table": "filter"}
    )
    other = legacy_site(
        runtime,
        "org-a",
        {"interface": "veth-b", "netns": host.name, "portal_port": 8080, "table": "filter"},
        name="Second",
    )

    outcomes = reconcile_all(runtime=runtime, now=utcnow())

    assert {o.site_id: o.status for o in outcomes} == {old: "misconfigured", other: "misconfigured"}
    assert host.nft("list", "table", "inet", "filter") == filter_before
    # Edited, it moves to its own table; the one it named is left alone (another site still names it).
    allow(runtime, {"org-a": [f"{host.name}/veth-a"]})
    edited = client.put(
        f"/captive/sites/{old}", headers=auth(org="org-a"), json=nft_site("veth-a", host.name)
    )
    assert edited.status_code == 200, edited.text
    # Deleted, the other one does not take the host's table with it either.
    assert client.delete(f"/captive/sites/{other}", headers=auth(org="org-a")).status_code == 204
    assert tables(host) == sorted(["filter", table_name(old)])
    assert host.nft("list", "table", "inet", "filter") == filter_before
