"""The status page of a session with access-plan limits: data left and speed; the end over quota."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from guestgate.site_users.models import SiteUser
from tests.portal.test_status import _signed_in
from tests.utils.portal import GUEST_IP, ClientFactory, World


def _set(world: World, **values: Any) -> None:
    with world.runtime.sessions() as session:
        session.execute(update(SiteUser).values(**values))
        session.commit()


def test_the_status_page_shows_data_left_and_speed_of_a_limited_session(
    world: World, guest: ClientFactory
) -> None:
    client, status_url = _signed_in(world, guest)
    _set(
        world,
        data_limit_mb=1000,
        bytes_in=50_000_000,
        bytes_out=100_000_000,
        download_kbps=10_000,
        upload_kbps=2_000,
    )
    page = client.get(status_url).text
    assert "Data left <strong>850 MB</strong>" in page
    assert "Speed <strong>↓ 10 Mbit/s · ↑ 2 Mbit/s</strong>" in page
    # By address too, as the captive portal's own check opens it.
    assert "850 MB" in client.get("/guest/status", params={"site": world.site_id}).text


def test_a_session_without_limits_shows_neither(world: World, guest: ClientFactory) -> None:
    client, status_url = _signed_in(world, guest)
    _set(world, bytes_in=5, bytes_out=5)
    page = client.get(status_url).text
    assert "Time remaining" in page
    assert "Data left" not in page
    assert "Speed" not in page


def test_one_limited_direction_shows_the_other_as_unlimited_in_the_guests_language(
    world: World, guest: ClientFactory
) -> None:
    _, status_url = _signed_in(world, guest)
    _set(world, download_kbps=512, data_limit_mb=2000, bytes_out=500_000_000)
    page = guest(GUEST_IP, **{"accept-language": "de"}).get(status_url).text
    assert "Verbleibende Daten <strong>1,5 GB</strong>" in page
    assert "↓ 512 kbit/s · ↑ unbegrenzt" in page


def test_a_session_ended_over_quota_says_so_by_link_and_by_address(
    world: World, guest: ClientFactory
) -> None:
    client, status_url = _signed_in(world, guest)
    _set(world, data_limit_mb=1, bytes_out=1_000_000, status="quota_exceeded", end_reason="quota_exceeded")
    for response in (client.get(status_url), client.get("/guest/status", params={"site": world.site_id})):
        assert response.status_code == 200
        assert "Data limit reached" in response.text
        assert "You have used all the data this session allowed" in response.text
        assert f'href="/guest/entry?site={world.site_id}"' in response.text
    french = guest(GUEST_IP, **{"accept-language": "fr"}).get(status_url).text
    assert "Limite de données atteinte" in french


def test_another_guest_at_the_site_is_not_told_of_someone_elses_quota(
    world: World, guest: ClientFactory
) -> None:
    _signed_in(world, guest)
    _set(world, data_limit_mb=1, status="quota_exceeded", end_reason="quota_exceeded")
    page = guest("10.0.1.200").get("/guest/status", params={"site": world.site_id}).text
    assert "You are not signed in on this network." in page
    assert "Data limit reached" not in page


def test_a_disconnected_session_is_not_reported_as_over_quota(world: World, guest: ClientFactory) -> None:
    client, status_url = _signed_in(world, guest)
    _set(world, data_limit_mb=1, bytes_out=5_000_000, status="disconnected", end_reason="operator")
    page = client.get(status_url).text
    assert "Your session has ended." in page
    assert "Data limit reached" not in page
