"""Host names from the database to the gateways: the reconciler (fake RouterOS), the agent's
state, and the provider presets an oauth2 instance brings into its sites' auth window."""

from __future__ import annotations

from datetime import UTC, datetime

from guestgate.auth_integrations.models import AuthIntegration
from guestgate.gateways import registry
from guestgate.gateways import service as gateway_service
from guestgate.gateways.agent_protocol import read_state
from guestgate.gateways.reconcile import names_of, reconcile_all
from guestgate.instances.models import Instance, InstanceSubnet
from guestgate.outbound import OutboundPolicy
from guestgate.runtime import Runtime
from guestgate.sites.schemas import GatewayIn
from guestgate.walled_garden import presets
from guestgate.walled_garden.models import WalledGardenEntry
from guestgate.walled_garden.resolver import MARGIN_SECONDS, Answer, GardenResolver
from tests.gateways.fake_routeros import FakeRouterOS, Tls
from tests.gateways.test_reconcile import ORG, make_site, pool, routeros_gateway  # noqa: F401  (fixture)

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def add_name(runtime: Runtime, site_id: str, hostname: str, kind: str = "captive-auth") -> None:
    with runtime.sessions() as session:
        session.add(
            WalledGardenEntry(org_id=ORG, site_id=site_id, name=hostname, type=kind, hostname=hostname)
        )
        session.commit()


def add_oauth2_instance(
    runtime: Runtime,
    site_id: str,
    provider: str,
    *,
    sign_in_host: str | None = None,
    subnet: str = "10.0.0.0/24",
) -> None:
    with runtime.sessions() as session:
        integration = AuthIntegration(
            org_id=ORG,
            name=provider,
            type=provider,
            client_id="client",
            client_secret_sealed="sealed",
            issuer="https://idp.example.com/realms/guests" if provider == "oidc" else None,
            sign_in_host=sign_in_host,
        )
        session.add(integration)
        session.flush()
        instance = Instance(
            org_id=ORG, name="Guests", strategy="oauth2", auth_integration_id=integration.id, session_ttl=3600
        )
        session.add(instance)
        session.flush()
        session.add(InstanceSubnet(instance_id=instance.id, site_id=site_id, subnet=subnet))
        session.commit()


def test_presets_have_a_reason_and_are_valid_names() -> None:
    from guestgate.walled_garden.hostnames import normalize

    assert set(presets.PRESETS) == {"google", "github", "azure"}
    for hosts in presets.PRESETS.values():
        assert hosts
        for host in hosts:
            assert normalize(host.hostname) == host.hostname and host.reason


def test_an_oauth2_instance_brings_its_providers_hosts_into_the_sites_auth_garden(runtime: Runtime) -> None:
    site_id = make_site(runtime, "Lobby", GatewayIn())
    add_name(runtime, site_id, "status.example.com", "captive-portal")
    with runtime.sessions() as session:
        assert [(n.hostname, n.type) for n in names_of(site_id, session=session)] == [
            ("status.example.com", "captive-portal")
        ]
    add_oauth2_instance(runtime, site_id, "github")
    with runtime.sessions() as session:
        found = {(n.hostname, n.type) for n in names_of(site_id, session=session)}
    assert found == {("status.example.com", "captive-portal")} | {
        (h.hostname, "captive-auth") for h in presets.hosts_for("github")
    }


def test_reconcile_pushes_names_and_presets_to_routeros(
    runtime: Runtime,
    router: FakeRouterOS,
    tls: Tls,
    pool: registry.GatewayPool,  # noqa: F811
) -> None:
    site_id = make_site(runtime, "Lobby", routeros_gateway(router, tls))
    router.dns["idp.example.com"] = ["203.0.113.5"]
    add_name(runtime, site_id, "idp.example.com")
    add_name(runtime, site_id, "*.cdn.example.com")
    add_oauth2_instance(runtime, site_id, "google")
    [outcome] = reconcile_all(runtime=runtime, now=NOW, pool=pool)
    assert outcome.status == "ok", outcome.error
    auth = {e["address"] for e in router.entries("guestgate-walled-garden-auth")}
    assert {"idp.example.com", "203.0.113.5", "accounts.google.com", "accounts.youtube.com"} <= auth
    domains = {(e["name"], e["address-list"]) for e in router.dns_entries()}
    assert domains == {
        ("cdn.example.com", "guestgate-walled-garden-auth"),
        ("gstatic.com", "guestgate-walled-garden-auth"),
        ("googleusercontent.com", "guestgate-walled-garden-auth"),
    }


def test_an_oidc_issuers_sign_in_host_reaches_routeros_in_the_auth_window(
    runtime: Runtime,
    router: FakeRouterOS,
    tls: Tls,
    pool: registry.GatewayPool,  # noqa: F811
) -> None:
    site_id = make_site(runtime, "Lobby", routeros_gateway(router, tls))
    router.dns["login.idp.example.com"] = ["203.0.113.7"]
    add_oauth2_instance(runtime, site_id, "oidc", sign_in_host="login.idp.example.com")
    # A second instance on the site whose issuer's authorization endpoint is an address.
    add_oauth2_instance(runtime, site_id, "oidc", sign_in_host="198.51.100.20", subnet="10.0.1.0/24")
    with runtime.sessions() as session:
        assert [(n.hostname, n.type) for n in names_of(site_id, session=session)] == [
            ("login.idp.example.com", "captive-auth")
        ]
    [outcome] = reconcile_all(runtime=runtime, now=NOW, pool=pool)
    assert outcome.status == "ok", outcome.error
    auth = {e["address"] for e in router.entries("guestgate-walled-garden-auth")}
    # The name (RouterOS resolves it and adds what it found), and the address as it is.
    assert {"login.idp.example.com", "203.0.113.7", "198.51.100.20"} <= auth
    assert router.dns_entries() == []
    assert not {e["address"] for e in router.entries("guestgate-walled-garden")} & auth


def test_the_agent_state_carries_resolved_names_and_the_dnsmasq_snippet(runtime: Runtime) -> None:
    site_id = make_site(runtime, "Branch", GatewayIn(driver="agent", interface="wlan0"))
    add_name(runtime, site_id, "idp.example.com")
    add_name(runtime, site_id, "*.cdn.example.com", "captive-portal")
    add_name(runtime, site_id, "intranet.example.com")
    answers = {
        "idp.example.com": Answer(("93.184.215.14",), 30),
        "intranet.example.com": Answer(("10.0.0.9",), 30),
    }
    runtime._garden_resolver = GardenResolver(OutboundPolicy(), query=lambda name: answers[name])
    with runtime.sessions() as session:
        from guestgate.sites.models import Site

        site = session.get(Site, site_id)
        assert site is not None
    state = gateway_service.agent_state(runtime, site, now=NOW)
    document = state.document(now=NOW)
    named = {n["hostname"]: n for n in document["walled_garden_names"]}
    assert named["idp.example.com"]["addresses"] == [
        {"ip": "93.184.215.14", "seconds_remaining": 30 + MARGIN_SECONDS}
    ]
    # A private answer is not admitted: the tenant must not open the controller's network.
    assert named["intranet.example.com"]["addresses"] == []
    assert named["*.cdn.example.com"]["addresses"] == []
    table = state.gateway["table"]
    assert (
        f"nftset=/cdn.example.com/4#inet#{table}#dns_garden4,6#inet#{table}#dns_garden6"
        in document["dnsmasq_config"]
    )
    # The agent reads it back into names with deadlines on its own clock.
    local = read_state(document, received=NOW)
    [idp] = [n for n in local.walled_garden_names if n.hostname == "idp.example.com"]
    assert [a for a, _ in idp.addresses] == ["93.184.215.14"]
    # A new answer is a new version, so the agent pulls it.
    answers["idp.example.com"] = Answer(("93.184.215.15",), 30)
    runtime._garden_resolver = GardenResolver(OutboundPolicy(), query=lambda name: answers[name])
    assert gateway_service.agent_state(runtime, site, now=NOW).version != state.version
