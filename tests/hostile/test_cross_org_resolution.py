"""One org's subnets never decide which site another org's guests reach (issue 9, item 5).

Org A serves 10.50.1.0/24 at its site. Org B then claims, through the API, the same range, a
more specific one inside it or a broad one around it, or holds `0.0.0.0/0` from before the API
refused it. Whatever B holds, A's guest keeps reaching A on every path that names no site: the
site-less entry, a printed card's QR link, guestgate's captive redirect and RFC 8908 capport.
B's own guests in the overlap reach B with `site=` and with B's cards' scope hint.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from guestgate.app import create_app
from guestgate.config import Settings
from guestgate.instances.models import InstanceSubnet
from guestgate.runtime import Runtime
from guestgate.sites.models import Site
from tests.utils.settings import TokenFactory, make_settings

GUEST = "10.50.1.7"
_TOKEN = re.compile(r'name="t" value="([^"]+)"')


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """No cached subnets: each look-up sees what the orgs have just configured."""
    return make_settings(db_url, tmp_path / "var", portal_cache_seconds=0)


@dataclass
class Org:
    headers: dict[str, str]
    site: str
    instance: str
    name: str


def _ok(response: object, status: int) -> dict[str, object]:
    assert getattr(response, "status_code", None) == status, getattr(response, "text", "")
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    return body


def make_org(client: TestClient, auth: TokenFactory, org: str, site_subnet: str, subnet: str) -> Org:
    """An org with one site and one coupon instance active on `subnet` of it."""
    headers = auth(org=org)
    site = _ok(
        client.post("/captive/sites", headers=headers, json={"name": org, "subnets": [site_subnet]}), 201
    )
    name = f"{org} Lobby"
    body = {"name": name, "strategy": "coupon", "session_ttl": 3600}
    instance = _ok(client.post("/captive/instances", headers=headers, json=body), 201)
    _ok(
        client.put(
            f"/captive/instances/{instance['id']}",
            headers=headers,
            json={**body, "terms_text": None, "sites": [{"id": site["id"], "subnets": [subnet]}]},
        ),
        200,
    )
    return Org(headers, str(site["id"]), str(instance["id"]), name)


@pytest.fixture
def app(runtime: Runtime) -> object:
    return create_app(runtime=runtime)


@pytest.fixture
def operator(app: object) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:  # type: ignore[arg-type]
        yield client


@pytest.fixture
def org_a(operator: TestClient, auth: TokenFactory) -> Org:
    return make_org(operator, auth, "org-a", "10.50.0.0/16", "10.50.1.0/24")


def _squat_legacy_everything(client: TestClient, runtime: Runtime, org: str, auth: TokenFactory) -> Org:
    """B holds 0.0.0.0/0 in a site and an instance, written as an older version let it."""
    headers = auth(org=org)
    body = {"name": f"{org} Lobby", "strategy": "coupon", "session_ttl": 3600}
    instance = _ok(client.post("/captive/instances", headers=headers, json=body), 201)
    with runtime.sessions() as session:
        site = Site(org_id=org, name=org, subnets=["0.0.0.0/0"])
        session.add(site)
        session.flush()
        session.add(
            InstanceSubnet(instance_id=instance["id"], site_id=site.id, subnet="0.0.0.0/0", position=0)
        )
        session.commit()
        return Org(headers, site.id, str(instance["id"]), f"{org} Lobby")


SQUATS = {
    "the same subnet": ("10.50.0.0/16", "10.50.1.0/24"),
    "a more specific subnet": ("10.50.1.0/28", "10.50.1.0/28"),
    "a broader subnet": ("10.0.0.0/8", "10.0.0.0/8"),
    "0.0.0.0/0 from before": None,
}


@pytest.fixture(params=list(SQUATS), ids=list(SQUATS))
def org_b(
    request: pytest.FixtureRequest, operator: TestClient, auth: TokenFactory, runtime: Runtime, org_a: Org
) -> Org:
    """Org B, created after A, claiming addresses A's guest has."""
    squat = SQUATS[request.param]
    if squat is None:
        return _squat_legacy_everything(operator, runtime, "org-b", auth)
    return make_org(operator, auth, "org-b", *squat)


def _portal_of(page: str) -> str:
    found = re.search(r"<h1>([^<]*)</h1>", page)
    assert found is not None, page
    return found.group(1)


def test_a_later_org_cannot_take_or_break_site_less_entry_for_another_orgs_guest(
    app: object, org_a: Org, org_b: Org
) -> None:
    with TestClient(app, client=(GUEST, 40000), raise_server_exceptions=False) as guest:  # type: ignore[arg-type]
        bare = guest.get("/guest/entry")
        assert bare.status_code == 200, bare.text
        assert _portal_of(bare.text) == org_a.name
        card = guest.get("/guest/entry", params={"instance": org_a.instance, "code": "ABC234"})
        assert card.status_code == 200 and _portal_of(card.text) == org_a.name
        intercepted = guest.get("/generate_204", headers={"host": "connectivitycheck.gstatic.com"})
        assert intercepted.status_code == 200 and _portal_of(intercepted.text) == org_a.name
        capport = guest.get("/guest/capport")
        assert capport.status_code == 200, capport.text
        assert capport.json()["user-portal-url"].endswith(f"/guest/entry?site={org_a.site}")


def test_the_later_orgs_guests_in_the_overlap_reach_it_by_site_or_by_its_cards(
    app: object, org_a: Org, org_b: Org
) -> None:
    with TestClient(app, client=(GUEST, 40000), raise_server_exceptions=False) as guest:  # type: ignore[arg-type]
        named = guest.get("/guest/entry", params={"site": org_b.site})
        assert named.status_code == 200 and _portal_of(named.text) == org_b.name
        card = guest.get("/guest/entry", params={"instance": org_b.instance, "code": "ABC234"})
        assert card.status_code == 200 and _portal_of(card.text) == org_b.name
        capport = guest.get("/guest/capport", params={"site": org_b.site})
        assert capport.status_code == 200
        assert capport.json()["user-portal-url"].endswith(f"site={org_b.site}")


def test_a_site_less_sign_in_redeems_at_the_first_org_whatever_the_other_holds(
    app: object, org_a: Org, org_b: Org
) -> None:
    with TestClient(app, client=(GUEST, 40000), raise_server_exceptions=False) as guest:  # type: ignore[arg-type]
        made = guest.post(
            f"/captive/instances/{org_a.instance}/coupons",
            headers=org_a.headers,
            json={"count": 1, "minutes_valid": 60},
        )
        code = made.json()[0]["code"]
        entry = guest.get("/guest/entry", params={"instance": org_a.instance, "code": code})
        token = _TOKEN.search(entry.text)
        assert token is not None
        done = guest.post("/guest/signin", data={"t": token.group(1), "code": code})
        assert done.status_code == 200, done.text
        users = guest.get(f"/captive/sites/{org_a.site}/users", headers=org_a.headers).json()
    assert [u["ip_address"] for u in users] == [GUEST]


def test_the_api_refuses_site_subnets_broad_enough_to_squat_on_everyone(
    operator: TestClient, auth: TokenFactory
) -> None:
    headers = auth(org="org-b")
    for subnets, parameter in (
        (["0.0.0.0/0"], "subnets[0]"),
        (["10.0.0.0/24", "0.0.0.0/1"], "subnets[1]"),
        (["::/0"], "subnets[0]"),
        (["2000::/3"], "subnets[0]"),
    ):
        refused = operator.post("/captive/sites", headers=headers, json={"name": "B", "subnets": subnets})
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == "parameter_invalid"
        assert f"'{parameter}'" in refused.json()["message"] and "too broad" in refused.json()["message"]
    for subnets in (["10.0.0.0/8"], ["2001:db8::/32"]):
        assert (
            operator.post(
                "/captive/sites", headers=headers, json={"name": "B", "subnets": subnets}
            ).status_code
            == 201
        )


def test_an_instance_moving_within_its_own_org_keeps_its_claim(
    app: object, operator: TestClient, auth: TokenFactory, org_a: Org
) -> None:
    """Re-sending an instance's sites (a PUT that changes something else) keeps its claims' order."""
    org_b = make_org(operator, auth, "org-b", "10.50.1.0/24", "10.50.1.0/24")
    body = {"name": "renamed", "strategy": "coupon", "session_ttl": 3600}
    sites = [{"id": org_a.site, "subnets": ["10.50.1.0/24", "10.50.2.0/24"]}]
    assert (
        operator.put(
            f"/captive/instances/{org_a.instance}", headers=org_a.headers, json={**body, "sites": sites}
        ).status_code
        == 200
    )
    with TestClient(app, client=(GUEST, 40000), raise_server_exceptions=False) as guest:  # type: ignore[arg-type]
        page = guest.get("/guest/entry")
    assert page.status_code == 200 and _portal_of(page.text) == "renamed"
    assert org_b.site != org_a.site


def test_a_printed_cards_qr_link_is_scoped_to_its_instance_and_reaches_it(
    app: object, operator: TestClient, org_a: Org, org_b: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import urlsplit

    from guestgate.coupons import export

    printed: list[str] = []
    entry_url = export.entry_url
    monkeypatch.setattr(
        export, "entry_url", lambda portal, code: printed.append(entry_url(portal, code)) or printed[-1]
    )
    h = org_a.headers
    group = _ok(
        operator.post("/captive/notification-groups", headers=h, json={"name": "Desk", "emails": []}), 201
    )
    schedule = _ok(
        operator.post(
            f"/captive/instances/{org_a.instance}/coupon-schedules",
            headers=h,
            json={
                "name": "Daily",
                "count": 2,
                "recurrence_type": "daily",
                "valid_for_in_minutes": 60,
                "timezone": "UTC",
                "notification_group_id": group["id"],
            },
        ),
        201,
    )
    base = f"/captive/instances/{org_a.instance}/coupon-schedules/{schedule['id']}"
    _ok(operator.post(f"{base}/run", headers=h), 200)
    signed = urlsplit(str(_ok(operator.get(f"{base}/generate_url", headers=h), 200)["signed_url"]))
    pdf = operator.get(f"{signed.path}?{signed.query}&format=pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert printed and all(f"/guest/entry?instance={org_a.instance}&code=" in url for url in printed)
    with TestClient(app, client=(GUEST, 40000), raise_server_exceptions=False) as guest:  # type: ignore[arg-type]
        card = urlsplit(printed[0])
        page = guest.get(f"{card.path}?{card.query}")
    assert page.status_code == 200 and _portal_of(page.text) == org_a.name


def test_the_claim_index_finds_exactly_the_claims_containing_an_address() -> None:
    import ipaddress
    import random

    from guestgate.portal.resolution import Claim, ClaimIndex, site_of

    rng = random.Random(9)
    claims = []
    for order in range(400):
        if rng.random() < 0.3:
            length = rng.randint(32, 128)
            net = ipaddress.ip_network(((0x20010DB8 << 96) | rng.getrandbits(96), length), strict=False)
        else:
            length = rng.randint(8, 32)
            net = ipaddress.ip_network(((10 << 24) | rng.getrandbits(24), length), strict=False)
        claims.append(Claim(order, f"site-{order % 50}", f"org-{order % 7}", f"inst-{order % 20}", net))
    index = ClaimIndex(claims)
    for _ in range(2000):
        ip = str(
            rng.choice(
                [
                    ipaddress.IPv4Address((10 << 24) | rng.getrandbits(24)),
                    ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(96)),
                ]
            )
        )
        expected = {c.order for c in claims if ipaddress.ip_address(ip) in c.network}
        found = index.containing(ip)
        assert {c.order for c in found} == expected
        assert [c.network.prefixlen for c in found] == sorted(
            (c.network.prefixlen for c in found), reverse=True
        )
        if expected:
            owner = min((c for c in claims if c.order in expected), key=lambda c: c.order).org_id
            sites = {c.site_id for c in claims if c.order in expected and c.org_id == owner}
            assert site_of(index, ip) == (sites.pop() if len(sites) == 1 else None)
        else:
            assert site_of(index, ip) is None
