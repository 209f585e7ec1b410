"""GET /guest/entry: who the guest is (peer address or gateway-signed parameters), which instance."""

from __future__ import annotations

from datetime import timedelta

import pytest

from guestgate.instances.models import InstanceSubnet
from guestgate.portal.entry_signing import entry_query, sign_entry, site_key
from guestgate.portal.tokens import TokenSealer
from tests.utils.portal import (
    GUEST_IP,
    PORTAL_SUBNET,
    ClientFactory,
    PortalFactory,
    World,
    enter,
    fresh_token,
    sign_in,
    token_of,
)


def _sealer(world: World) -> TokenSealer:
    return TokenSealer.from_settings(world.runtime.settings)


def test_entry_from_an_address_in_the_instance_subnet_shows_the_form_with_a_sealed_identity(
    world: World, guest: ClientFactory
) -> None:
    response = enter(guest(GUEST_IP), world.site_id, orig="http://example.com/news")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    identity = _sealer(world).open_guest(token_of(response.text), now=world.clock().timestamp())
    assert identity.site_id == world.site_id
    assert identity.instance_id == world.instance_id
    assert identity.ip == GUEST_IP
    assert identity.mac is None
    assert identity.orig == "http://example.com/news"
    assert identity.peer == GUEST_IP


def test_entry_token_expires_after_the_configured_time(
    world: World, make_portal: PortalFactory, guest: ClientFactory
) -> None:
    client = guest(portal=make_portal(token_ttl_seconds=120))
    token = token_of(enter(client, world.site_id).text)
    claims = _sealer(world).open(token, "signin", now=world.clock().timestamp())
    assert claims["exp"] == int(world.clock().timestamp()) + 120
    assert set(claims) >= {"exp", "s", "i", "ip", "m", "o", "n"}


def test_entry_from_outside_the_site_subnets_is_refused_with_a_page(
    world: World, guest: ClientFactory
) -> None:
    response = enter(guest("192.168.7.7"), world.site_id)
    assert response.status_code == 403
    assert "not on a network served by this portal" in response.text
    assert 'name="t"' not in response.text


def test_entry_from_a_site_subnet_no_instance_serves_says_no_portal(
    world: World, guest: ClientFactory
) -> None:
    response = enter(guest("10.0.9.9"), world.site_id)
    assert response.status_code == 404
    assert "No sign-in page is set up for your network yet." in response.text


def test_the_most_specific_instance_subnet_picks_the_instance(world: World, guest: ClientFactory) -> None:
    with world.runtime.sessions() as session:
        from guestgate.instances.models import Instance

        other = Instance(
            org_id="org-a", name="Cafe", strategy="coupon", session_ttl=1200, theme={}, locale="en"
        )
        session.add(other)
        session.flush()
        session.add(
            InstanceSubnet(instance_id=other.id, site_id=world.site_id, subnet="10.0.2.0/24", position=0)
        )
        session.commit()
        other_id = other.id
    response = enter(guest("10.0.2.20"), world.site_id)
    assert response.status_code == 200
    assert "<h1>Cafe</h1>" in response.text
    identity = _sealer(world).open_guest(token_of(response.text), now=world.clock().timestamp())
    assert identity.instance_id == other_id


def test_entry_without_site_finds_the_site_from_the_address_and_fills_in_a_card_code(
    world: World, guest: ClientFactory
) -> None:
    response = guest().get("/guest/entry", params={"code": "ABC234"})
    assert response.status_code == 200
    assert 'name="code" type="text" value="ABC234"' in response.text
    identity = _sealer(world).open_guest(token_of(response.text), now=world.clock().timestamp())
    assert identity.site_id == world.site_id


def test_entry_without_site_from_an_unknown_address_is_a_400_page(world: World, guest: ClientFactory) -> None:
    response = guest("192.168.7.7").get("/guest/entry")
    assert response.status_code == 400
    assert "This sign-in link is incomplete." in response.text


def test_entry_without_site_but_with_gateway_parameters_is_a_400_page(
    world: World, guest: ClientFactory
) -> None:
    response = guest().get("/guest/entry", params={"ip": "10.0.1.7", "sig": "00"})
    assert response.status_code == 400


def test_entry_without_site_where_two_sites_share_the_range_is_a_400_page(
    world: World, guest: ClientFactory
) -> None:
    from guestgate.sites.models import Site

    with world.runtime.sessions() as session:
        other = Site(org_id="org-a", name="Branch", subnets=["10.0.0.0/16"])
        session.add(other)
        session.flush()
        session.add(
            InstanceSubnet(instance_id=world.instance_id, site_id=other.id, subnet=PORTAL_SUBNET, position=1)
        )
        session.commit()
    assert guest().get("/guest/entry").status_code == 400


@pytest.mark.parametrize("site", ["not-a-uuid", "00000000-0000-4000-8000-000000000000", "x" * 5000])
def test_entry_with_an_unknown_site_is_a_404_page(world: World, guest: ClientFactory, site: str) -> None:
    response = guest().get("/guest/entry", params={"site": site})
    assert response.status_code == 404
    assert "This network is not known here." in response.text


def test_gateway_signed_parameters_identify_the_guest_behind_nat(world: World, guest: ClientFactory) -> None:
    # The request arrives from the gateway's public address; the signed parameters name the guest.
    query = entry_query(
        world.runtime.settings,
        site_id=world.site_id,
        ip="10.0.1.77",
        mac="aa-bb-cc-dd-ee-ff",
        orig="https://example.org/",
        now=world.clock(),
    )
    response = guest("203.0.113.9").get("/guest/entry", params=query)
    assert response.status_code == 200
    identity = _sealer(world).open_guest(token_of(response.text), now=world.clock().timestamp())
    assert identity.ip == "10.0.1.77"
    assert identity.mac == "AA:BB:CC:DD:EE:FF"
    assert identity.orig == "https://example.org/"
    assert identity.peer == "203.0.113.9"


@pytest.mark.parametrize("field", ["ip", "mac", "orig", "ts", "site"])
def test_gateway_parameters_changed_after_signing_are_refused(
    world: World, guest: ClientFactory, field: str
) -> None:
    query = entry_query(
        world.runtime.settings,
        site_id=world.site_id,
        ip="10.0.1.77",
        mac="AA:BB:CC:DD:EE:FF",
        orig="https://example.org/",
        now=world.clock(),
    )
    changed = {
        "ip": "10.0.1.78",
        "mac": "AA:BB:CC:DD:EE:00",
        "orig": "https://evil.example/",
        "ts": str(int(query["ts"]) - 1),
        "site": world.site_id.upper(),
    }
    query[field] = changed[field]
    response = guest("203.0.113.9").get("/guest/entry", params=query)
    assert response.status_code == 403
    assert "could not be verified" in response.text


def test_gateway_parameters_signed_with_another_key_are_refused(world: World, guest: ClientFactory) -> None:
    ts = str(int(world.clock().timestamp()))
    forged = sign_entry(
        site_key("some other key of 32 bytes or more....", world.site_id),
        site_id=world.site_id,
        ip="10.0.1.77",
        mac=None,
        orig=None,
        ts=ts,
    )
    response = guest("203.0.113.9").get(
        "/guest/entry", params={"site": world.site_id, "ip": "10.0.1.77", "ts": ts, "sig": forged}
    )
    assert response.status_code == 403


def test_gateway_parameters_without_a_signature_are_refused(world: World, guest: ClientFactory) -> None:
    response = guest("203.0.113.9").get("/guest/entry", params={"site": world.site_id, "ip": "10.0.1.77"})
    assert response.status_code == 403
    assert "could not be verified" in response.text


def test_a_gateway_signed_link_older_than_the_limit_has_expired(world: World, guest: ClientFactory) -> None:
    query = entry_query(
        world.runtime.settings,
        site_id=world.site_id,
        ip="10.0.1.77",
        now=world.clock() - timedelta(seconds=301),
    )
    response = guest("203.0.113.9").get("/guest/entry", params=query)
    assert response.status_code == 403
    assert "This sign-in link has expired." in response.text
    # The page offers a fresh start at the same site.
    assert f"/guest/entry?site={world.site_id}" in response.text


def test_a_gateway_signed_link_at_the_age_limit_is_accepted(world: World, guest: ClientFactory) -> None:
    query = entry_query(
        world.runtime.settings,
        site_id=world.site_id,
        ip="10.0.1.77",
        now=world.clock() - timedelta(seconds=300),
    )
    assert guest("203.0.113.9").get("/guest/entry", params=query).status_code == 200


@pytest.mark.parametrize(("ip", "mac"), [("10.0.1.500", None), ("10.0.1.7", "not-a-mac")])
def test_signed_but_malformed_gateway_values_are_a_400_page(
    world: World, guest: ClientFactory, ip: str, mac: str | None
) -> None:
    query = entry_query(world.runtime.settings, site_id=world.site_id, ip=ip, mac=mac, now=world.clock())
    response = guest("203.0.113.9").get("/guest/entry", params=query)
    assert response.status_code == 400
    assert "contains values we cannot use" in response.text


def test_a_gateway_signed_address_outside_the_site_is_refused(world: World, guest: ClientFactory) -> None:
    query = entry_query(world.runtime.settings, site_id=world.site_id, ip="172.16.0.1", now=world.clock())
    assert guest("203.0.113.9").get("/guest/entry", params=query).status_code == 403


def test_the_forwarded_address_counts_only_behind_a_trusted_proxy(
    world: World, make_portal: PortalFactory, guest: ClientFactory
) -> None:
    from guestgate.portal.config import parse_proxies

    proxied = make_portal(trusted_proxies=parse_proxies("127.0.0.1"))
    behind = guest("127.0.0.1", portal=proxied, **{"X-Forwarded-For": "6.6.6.6, 10.0.1.42"})
    identity = _sealer(world).open_guest(
        token_of(enter(behind, world.site_id).text), now=world.clock().timestamp()
    )
    assert identity.ip == "10.0.1.42"
    # Without the proxy being trusted, the header is the client's own claim and is ignored.
    direct = guest("192.168.7.7", **{"X-Forwarded-For": "10.0.1.42"})
    assert enter(direct, world.site_id).status_code == 403


def test_a_guest_already_signed_in_sees_the_status_page_not_a_second_form(
    world: World, guest: ClientFactory
) -> None:
    client = guest()
    world.coupon("ABC234")
    assert sign_in(client, fresh_token(client, world), "ABC234").status_code == 200
    response = enter(client, world.site_id)
    assert response.status_code == 200
    assert "Your connection" in response.text
    assert 'name="code"' not in response.text
    assert "Time remaining" in response.text


def test_an_unusable_peer_address_is_outside(world: World, guest: ClientFactory) -> None:
    response = enter(guest("testclient"), world.site_id)
    assert response.status_code == 403
