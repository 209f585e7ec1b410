"""The status page a guest can reopen, and the RFC 8908 API (GET /guest/capport)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.testclient import TestClient

from guestgate.instances.models import InstanceSubnet
from guestgate.sites.models import Site
from tests.utils.portal import GUEST_IP, ClientFactory, World, enter, fresh_token, sign_in


def _signed_in(world: World, guest: ClientFactory, ip: str = GUEST_IP) -> tuple[TestClient, str]:
    client = guest(ip)
    world.coupon("ABC234")
    page = sign_in(client, fresh_token(client, world), "ABC234").text
    status_url = page.split('<a href="')[-1].split('"')[0].replace("&amp;", "&")
    return client, status_url


def test_the_status_link_shows_the_time_remaining(world: World, guest: ClientFactory) -> None:
    client, status_url = _signed_in(world, guest)
    world.clock.advance(1800)
    response = client.get(status_url)
    assert response.status_code == 200
    assert "Your connection" in response.text
    assert ">30 minutes<" in response.text


def test_the_status_link_works_from_another_address(world: World, guest: ClientFactory) -> None:
    _, status_url = _signed_in(world, guest)
    response = guest("198.51.100.1").get(status_url)
    assert response.status_code == 200 and "Time remaining" in response.text


def test_the_status_link_after_the_session_ends_offers_a_new_sign_in(
    world: World, guest: ClientFactory
) -> None:
    client, status_url = _signed_in(world, guest)
    world.clock.advance(3600)
    response = client.get(status_url)
    assert response.status_code == 200
    assert "Your session has ended." in response.text
    assert f'href="/guest/entry?site={world.site_id}"' in response.text


def test_the_status_of_a_disconnected_session_has_ended(world: World, guest: ClientFactory) -> None:
    from sqlalchemy import update

    from guestgate.site_users.models import SiteUser

    client, status_url = _signed_in(world, guest)
    with world.runtime.sessions() as session:
        session.execute(update(SiteUser).values(status="disconnected"))
        session.commit()
    response = client.get(status_url)
    assert "Your session has ended." in response.text


def test_a_forged_status_link_is_a_403_page(world: World, guest: ClientFactory) -> None:
    response = guest().get("/guest/status", params={"t": "forged"})
    assert response.status_code == 403


def test_the_status_by_address_finds_the_session(world: World, guest: ClientFactory) -> None:
    client, _ = _signed_in(world, guest)
    response = client.get("/guest/status", params={"site": world.site_id})
    assert response.status_code == 200
    assert "Time remaining" in response.text


def test_the_status_by_address_without_a_session_says_not_signed_in(
    world: World, guest: ClientFactory
) -> None:
    response = guest("10.0.1.200").get("/guest/status", params={"site": world.site_id})
    assert response.status_code == 200
    assert "You are not signed in on this network." in response.text
    assert f'href="/guest/entry?site={world.site_id}"' in response.text


def test_the_status_without_link_or_site_is_a_400_page(world: World, guest: ClientFactory) -> None:
    assert guest().get("/guest/status").status_code == 400


def test_the_status_of_an_address_outside_the_site_is_a_403_page(world: World, guest: ClientFactory) -> None:
    assert guest("192.168.1.1").get("/guest/status", params={"site": world.site_id}).status_code == 403


def test_capport_of_a_guest_not_signed_in_is_captive(world: World, guest: ClientFactory) -> None:
    response = guest().get("/guest/capport", params={"site": world.site_id})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/captive+json"
    assert response.headers["cache-control"] == "private"
    assert response.json() == {
        "captive": True,
        "user-portal-url": f"http://testserver/guest/entry?site={world.site_id}",
        "venue-info-url": f"http://testserver/guest/status?site={world.site_id}",
        "seconds-remaining": 0,
        "can-extend-session": False,
    }


def test_capport_of_a_signed_in_guest_counts_down(world: World, guest: ClientFactory) -> None:
    client, _ = _signed_in(world, guest)
    world.clock.advance(600)
    body = client.get("/guest/capport", params={"site": world.site_id}).json()
    assert body["captive"] is False
    assert body["seconds-remaining"] == 3000
    assert body["can-extend-session"] is False


def test_capport_is_captive_again_when_the_session_expires(world: World, guest: ClientFactory) -> None:
    client, _ = _signed_in(world, guest)
    world.clock.advance(3600)
    body = client.get("/guest/capport", params={"site": world.site_id}).json()
    assert body["captive"] is True and body["seconds-remaining"] == 0


def test_capport_without_site_finds_the_site_from_the_address(world: World, guest: ClientFactory) -> None:
    body = guest().get("/guest/capport").json()
    assert body["user-portal-url"].endswith(f"/guest/entry?site={world.site_id}")


def test_capport_without_site_when_two_sites_share_the_range_is_a_404(
    world: World, guest: ClientFactory
) -> None:
    with world.runtime.sessions() as session:
        other = Site(org_id="org-a", name="Branch", subnets=["10.0.0.0/16"])
        session.add(other)
        session.flush()
        session.add(
            InstanceSubnet(instance_id=world.instance_id, site_id=other.id, subnet="10.0.1.0/24", position=1)
        )
        session.commit()
    response = guest().get("/guest/capport")
    assert response.status_code == 404
    assert response.json()["code"] == "resource_not_found"
    assert guest().get("/guest/capport", params={"site": world.site_id}).status_code == 200


def test_capport_for_an_address_outside_the_site_is_refused(world: World, guest: ClientFactory) -> None:
    response = guest("192.168.1.1").get("/guest/capport", params={"site": world.site_id})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "type": "not_found_error",
        "code": "resource_not_found",
        "message": "Your device is not on a network served by this portal.",
        "doc_url": "http://testserver/errors/resource_not_found",
    }


def test_capport_for_an_unknown_site_is_a_404(world: World, guest: ClientFactory) -> None:
    response = guest().get("/guest/capport", params={"site": "00000000-0000-4000-8000-000000000000"})
    assert response.status_code == 404


def test_sessions_last_the_instance_session_ttl(world: World, guest: ClientFactory) -> None:
    world.update_instance(session_ttl=7200)
    client = guest()
    world.coupon("ABC234")
    sign_in(client, fresh_token(client, world), "ABC234")
    [session] = world.sessions()
    assert session.expires_at - session.started_at == timedelta(seconds=7200)
    world.clock.advance(7199)
    assert "Your connection" in enter(client, world.site_id).text
    world.clock.advance(1)
    assert 'name="code"' in enter(client, world.site_id).text


def test_the_status_page_shows_the_end_in_the_instances_local_time_and_the_time_left_in_words(
    world: World, guest: ClientFactory
) -> None:
    # 02:00 AEDT on 5 April 2026 in Sydney; a 3-hour session ends at 04:00 AEST, after the clocks go back.
    world.clock.now = datetime(2026, 4, 4, 15, 0, tzinfo=UTC)
    world.update_instance(timezone="Australia/Sydney", session_ttl=3 * 3600)
    client, status_url = _signed_in(world, guest)
    world.clock.advance(1800)
    page = client.get(status_url).text
    assert ">2 hours and 30 minutes<" in page
    assert "until 04:00 AEST" in page
    assert 'datetime="2026-04-04T18:00:00Z"' in page  # the machine-readable time stays UTC
    german = client.get(status_url, headers={"Accept-Language": "de-DE"}).text
    assert ">2 Stunden und 30 Minuten<" in german and "bis 04:00 AEST" in german


def test_without_an_instance_zone_the_status_page_says_utc_and_names_another_day(
    world: World, guest: ClientFactory
) -> None:
    world.clock.now = datetime(2026, 4, 4, 23, 30, tzinfo=UTC)
    client, status_url = _signed_in(world, guest)
    page = client.get(status_url).text
    assert "until 2026-04-05 00:30 UTC" in page and ">1 hour<" in page
