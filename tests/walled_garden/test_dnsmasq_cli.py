"""`guestgate gateway dnsmasq <site>`: the dnsmasq lines of a site's wildcard names (its own and its
providers' presets), on both databases through typer's CliRunner."""

from __future__ import annotations

from guestgate.gateways.nftables import table_name
from guestgate.runtime import Runtime
from guestgate.sites.schemas import GatewayIn
from tests.core.test_cli_commands import Invoke, cli, env_for  # noqa: F401  (fixtures)
from tests.gateways.test_garden_names_reconcile import add_name, add_oauth2_instance
from tests.gateways.test_reconcile import make_site


def test_the_lines_name_the_sites_table_and_each_wildcard_once(cli: Invoke, runtime: Runtime) -> None:  # noqa: F811
    site_id = make_site(runtime, "Branch", GatewayIn(driver="agent", interface="wlan0"))
    empty = cli("gateway", "dnsmasq", site_id)
    assert empty.exit_code == 0, empty.output
    table = table_name(site_id)
    assert empty.stdout.splitlines() == [
        f"# guestgate walled garden of nft table inet {table}: wildcards through dnsmasq's nftset"
    ]

    add_name(runtime, site_id, "*.cdn.example.com", "captive-portal")
    add_name(runtime, site_id, "idp.example.com")  # exact: resolved by guestgate, no dnsmasq line
    add_oauth2_instance(runtime, site_id, "google")
    result = cli("gateway", "dnsmasq", site_id)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()[1:]
    assert lines == [
        f"nftset=/cdn.example.com/4#inet#{table}#dns_garden4,6#inet#{table}#dns_garden6",
        f"nftset=/googleusercontent.com/4#inet#{table}#dns_auth_garden4,6#inet#{table}#dns_auth_garden6",
        f"nftset=/gstatic.com/4#inet#{table}#dns_auth_garden4,6#inet#{table}#dns_auth_garden6",
    ]


def test_routeros_and_unknown_sites_are_refused(cli: Invoke, runtime: Runtime) -> None:  # noqa: F811
    site_id = make_site(runtime, "Lobby", GatewayIn(driver="none"))
    refused = cli("gateway", "dnsmasq", site_id)
    assert refused.exit_code == 1
    assert "uses the 'none' driver: dnsmasq serves only nftables and agent gateways" in refused.stderr
    unknown = cli("gateway", "dnsmasq", "5f4e3d2c-1b0a-4987-8654-3210fedcba98")
    assert unknown.exit_code == 1 and "No such site" in unknown.stderr
