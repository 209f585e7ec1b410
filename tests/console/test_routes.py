"""Console pages over HTTP: sign-in, CSRF, throttling, the role matrix, other orgs, printing and disconnecting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from guestgate.api_tokens import service as token_service
from guestgate.audit.models import AuditEvent
from guestgate.console import service
from guestgate.console.models import ConsoleUser
from guestgate.coupons.models import Coupon
from guestgate.db import utcnow
from guestgate.notifications import service as group_service
from guestgate.notifications.schemas import NotificationGroupIn
from guestgate.pagination import PageRequest
from guestgate.runtime import Runtime
from guestgate.schedules import service as schedule_service
from guestgate.schedules.schemas import CouponScheduleCreate
from guestgate.site_users.models import SiteUser
from guestgate.walled_garden import service as garden_service
from guestgate.walled_garden.schemas import WalledGardenEntryIn
from tests.utils.console import PASSWORD, MemberFactory, Org, csrf_of, make_org, sign_in

ROLES = ("owner", "admin", "viewer", "front-desk")


def _preset(runtime: Runtime, org: Org, *, count: int = 20) -> str:
    with runtime.sessions() as session:
        return service.create_preset(
            org_id=org.id,
            instance_id=org.instance_id,
            name="Day pass",
            count=count,
            minutes_valid=1440,
            paper="a4",
            session=session,
        ).id


def _token(runtime: Runtime, org_id: str) -> str:
    with runtime.sessions() as session:
        row, _ = token_service.mint(
            org_id,
            "deploy",
            ["captive:read"],
            3600,
            "test",
            settings=runtime.settings,
            session=session,
            now=utcnow(),
        )
        return row.id


def _user_id(runtime: Runtime, email: str) -> str:
    with runtime.sessions() as session:
        return session.scalars(select(ConsoleUser.id).where(ConsoleUser.email == email)).one()


def test_pages_without_a_session_go_to_the_login_page(client: TestClient) -> None:
    response = client.get("/console/sites", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/sites"


def test_login_sets_a_hardened_cookie_and_strict_headers(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    email = member("org-a", "admin")
    page = client.get("/console/login")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    response = client.post(
        "/console/login",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text), "next": "/console"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/console"
    cookie = next(
        v for k, v in response.headers.multi_items() if k == "set-cookie" and "guestgate_console=" in v
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # the public URL is http:// in tests
    assert client.get("/console").status_code == 200


def test_login_form_without_its_csrf_token_is_refused(client: TestClient, member: MemberFactory) -> None:
    email = member("org-a", "admin")
    client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"email": email, "password": PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "guestgate_console=" not in response.headers.get("set-cookie", "")


def test_a_form_without_the_session_csrf_token_changes_nothing(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    sign_in(client, member("org-a", "admin"))
    response = client.post(f"/console/guests/{org.site_id}/{org.guest_id}/disconnect", data={})
    assert response.status_code == 403
    response = client.post(
        f"/console/guests/{org.site_id}/{org.guest_id}/disconnect", data={"csrf_token": "not-the-token"}
    )
    assert response.status_code == 403
    with runtime.sessions() as session:
        guest = session.get(SiteUser, org.guest_id)
        assert guest is not None and guest.status == "active"


def test_wrong_passwords_lock_the_login_and_say_so(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    email = member("org-a", "admin")
    for _ in range(runtime.settings.console_login_max_failures):
        page = client.get("/console/login")
        wrong = client.post(
            "/console/login",
            data={"email": email, "password": "nope nope nope", "csrf_token": csrf_of(page.text)},
        )
        assert wrong.status_code == 401
        assert "The e-mail address or the password is wrong." in wrong.text
    page = client.get("/console/login")
    locked = client.post(
        "/console/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert locked.status_code == 429
    assert "Too many wrong passwords" in locked.text


@dataclass(frozen=True)
class Objects:
    """An org's schedule, notification groups (one used by the schedule, one free) and garden entry."""

    group_id: str
    free_group_id: str
    schedule_id: str
    entry_id: str


def _objects(runtime: Runtime, org: Org) -> Objects:
    with runtime.sessions() as session:
        groups = [
            group_service.create(
                NotificationGroupIn(name=name, emails=["desk@example.com"]),
                org_id=org.id,
                box=runtime.box,
                outbound=runtime.outbound,
                session=session,
            ).id
            for name in ("Desk", "Spare")
        ]
        schedule = schedule_service.create(
            org.instance_id,
            CouponScheduleCreate(
                name="Daily",
                count=2,
                recurrence_type="daily",
                valid_for_in_minutes=60,
                timezone="UTC",
                notification_group_id=groups[0],
            ),
            org_id=org.id,
            session=session,
        )
        entry = garden_service.create(
            org.site_id,
            WalledGardenEntryIn(name="Bank", hostname="*.bank.example.com"),
            org_id=org.id,
            now=utcnow(),
            session=session,
        )
        return Objects(groups[0], groups[1], schedule.schedule.id, entry.id)


def _schedule_form(org: Org, objects: Objects) -> dict[str, str]:
    return {
        "name": "Daily",
        "count": "2",
        "recurrence_type": "daily",
        "valid_for_in_minutes": "60",
        "time_of_day": "08:00",
        "timezone": "UTC",
        "notification_group_id": objects.group_id,
    }


def _page_routes(org: Org, objects: Objects) -> list[tuple[str, str, dict[str, str], frozenset[str], int]]:
    """The sites, schedules, walled-garden and notification pages: method, path, form, roles, status when allowed."""
    readers = frozenset({"owner", "admin", "viewer"})
    writers = frozenset({"owner", "admin"})
    site = f"/console/sites/{org.site_id}"
    schedule = f"/console/schedules/{org.instance_id}/{objects.schedule_id}"
    group = f"/console/notification-groups/{objects.group_id}"
    site_form = {"name": "Renamed", "subnets": "10.0.0.0/24", "gateway.driver": "none"}
    return [
        ("GET", site, {}, readers, 200),
        ("GET", f"{site}/walled-garden", {}, readers, 200),
        ("GET", "/console/schedules", {}, readers, 200),
        ("GET", schedule, {}, readers, 200),
        ("GET", "/console/notification-groups", {}, readers, 200),
        ("GET", group, {}, readers, 200),
        ("GET", f"/console/coupons.csv?instance={org.instance_id}", {}, readers, 200),
        ("GET", "/console/sites/new", {}, writers, 200),
        ("POST", "/console/sites", {**site_form, "name": "New", "subnets": "10.9.0.0/24"}, writers, 303),
        ("POST", site, site_form, writers, 303),
        ("POST", f"{site}/test", {}, writers, 200),
        ("POST", f"{site}/agent-key/rotate", {}, writers, 200),
        # A site without a RouterOS password has no script yet: refused in words, after the role check.
        ("GET", f"{site}/guestgate.rsc", {}, writers, 409),
        ("GET", f"/console/schedules/new?instance={org.instance_id}", {}, writers, 200),
        ("POST", f"/console/schedules/{org.instance_id}", _schedule_form(org, objects), writers, 303),
        ("POST", schedule, _schedule_form(org, objects), writers, 303),
        ("POST", f"{schedule}/run", {}, writers, 200),
        ("POST", f"{site}/walled-garden", {"name": "Pay", "ip_address": "192.0.2.0/24"}, writers, 303),
        ("POST", f"{site}/walled-garden/{objects.entry_id}/delete", {}, writers, 303),
        ("GET", "/console/notification-groups/new", {}, writers, 200),
        ("POST", "/console/notification-groups", {"name": "Other", "emails": "a@example.com"}, writers, 303),
        ("POST", group, {"name": "Desk", "emails": "desk@example.com"}, writers, 303),
        ("POST", f"{group}/test", {"channel": "email", "target": "desk@example.com"}, writers, 200),
        ("POST", f"/console/notification-groups/{objects.free_group_id}/delete", {}, writers, 303),
    ]


def _routes(
    org: Org, preset_id: str, member_id: str, token_id: str
) -> list[tuple[str, str, dict[str, str], frozenset[str]]]:
    """Every console route: method, path, form, and the roles allowed."""
    everyone = frozenset(ROLES)
    readers = frozenset({"owner", "admin", "viewer"})
    writers = frozenset({"owner", "admin"})
    desk = frozenset({"owner", "admin", "front-desk"})
    owner = frozenset({"owner"})
    return [
        ("GET", "/console", {}, everyone),
        ("GET", "/console/desk", {}, everyone),
        ("GET", "/console/guests", {}, everyone),
        ("GET", "/console/sites", {}, readers),
        ("GET", "/console/coupons", {}, readers),
        ("GET", "/console/presets", {}, readers),
        ("GET", "/console/audit", {}, readers),
        ("GET", "/console/users", {}, owner),
        ("POST", f"/console/desk/presets/{preset_id}/print", {}, desk),
        (
            "POST",
            "/console/presets",
            {"name": "X", "instance_id": org.instance_id, "count": "1", "minutes_valid": "60", "paper": "a4"},
            writers,
        ),
        ("POST", f"/console/presets/{preset_id}/delete", {}, writers),
        ("POST", f"/console/guests/{org.site_id}/{org.guest_id}/disconnect", {}, desk),
        ("POST", "/console/users", {"email": "someone@example.com", "role": "viewer"}, owner),
        ("POST", f"/console/users/{member_id}/role", {"role": "viewer"}, owner),
        ("POST", f"/console/users/{member_id}/disable", {}, owner),
        ("POST", f"/console/users/{member_id}/invite", {}, owner),
        ("GET", "/console/tokens", {}, writers),
        ("POST", "/console/tokens", {"name": "ci", "scopes": "captive:read", "ttl_days": "1"}, writers),
        ("POST", f"/console/tokens/{token_id}/revoke", {}, writers),
        ("GET", "/console/account", {}, everyone),
        # The same password again: every role may change its own, and the session it runs in stays.
        ("POST", "/console/account/password", {"current": PASSWORD, "password": PASSWORD, "confirm": PASSWORD}, everyone),
    ]


@pytest.mark.parametrize("role", list(ROLES))
def test_authorization_matrix(client: TestClient, runtime: Runtime, member: MemberFactory, role: str) -> None:
    """Each role reaches what it may (never 403) and is refused the rest with 403."""
    org = make_org(runtime, "org-a")
    other = member("org-a", "viewer", email="other@example.com")
    member_id = _user_id(runtime, other)
    csrf = sign_in(client, member("org-a", role))
    for method, path, form, allowed in _routes(
        org, _preset(runtime, org), member_id, _token(runtime, org.id)
    ):
        if method == "GET":
            response = client.get(path, follow_redirects=False)
        else:
            response = client.post(path, data={**form, "csrf_token": csrf}, follow_redirects=False)
        if role in allowed:
            assert response.status_code in (200, 303), (method, path, response.status_code, response.text)
        else:
            assert response.status_code == 403, (method, path, response.status_code)
    for method, path, form, allowed, status in _page_routes(org, _objects(runtime, org)):
        if method == "GET":
            response = client.get(path, follow_redirects=False)
        else:
            response = client.post(path, data={**form, "csrf_token": csrf}, follow_redirects=False)
        expected = status if role in allowed else 403
        assert response.status_code == expected, (method, path, response.status_code, response.text[:2000])


@pytest.mark.parametrize("role", ["owner", "admin", "viewer", "front-desk"])
def test_another_orgs_sites_schedules_gardens_and_groups_are_not_found(
    client: TestClient, runtime: Runtime, member: MemberFactory, role: str
) -> None:
    """Every new page with another org's ids: 404 for a role that may use the page, 403 for the others."""
    mine = make_org(runtime, "org-a")
    _objects(runtime, mine)
    theirs = make_org(runtime, "org-b")
    their_objects = _objects(runtime, theirs)
    csrf = sign_in(client, member("org-a", role))
    with runtime.sessions() as session:
        before = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.org_id == "org-b")
        )
    for method, path, form, allowed, _status in _page_routes(theirs, their_objects):
        if path in ("/console/sites", "/console/schedules", "/console/notification-groups") or path.endswith(
            "/new"
        ):
            continue  # the signed-in org's own collections: nothing of org-b's in the path
        if method == "GET":
            response = client.get(path, follow_redirects=False)
        else:
            response = client.post(path, data={**form, "csrf_token": csrf}, follow_redirects=False)
        expected = 404 if role in allowed else 403
        assert response.status_code == expected, (role, method, path, response.status_code)
    # A schedule form naming org-b's group is refused at the field (its group is not ours).
    if role in ("owner", "admin"):
        response = client.post(
            f"/console/schedules/{mine.instance_id}",
            data={**_schedule_form(mine, their_objects), "csrf_token": csrf},
        )
        assert response.status_code == 400 and 'id="notification_group_id-error"' in response.text
    with runtime.sessions() as session:
        after = session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.org_id == "org-b")
        )
        assert after == before
        assert session.scalar(select(func.count()).select_from(Coupon).where(Coupon.org_id == "org-b")) == 0


def test_every_new_form_without_its_csrf_token_changes_nothing(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    objects = _objects(runtime, org)
    sign_in(client, member("org-a", "owner"))
    with runtime.sessions() as session:
        before = session.scalar(select(func.count()).select_from(AuditEvent))
    posts = [(path, form) for method, path, form, _, _ in _page_routes(org, objects) if method == "POST"]
    assert len(posts) == 13
    for path, form in posts:
        for token in ({}, {"csrf_token": "forged"}):
            response = client.post(path, data={**form, **token}, follow_redirects=False)
            assert response.status_code == 403, path
            assert "This form has expired" in response.text
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == before
        assert session.scalar(select(func.count()).select_from(Coupon)) == 0


@pytest.mark.parametrize("role", ["owner", "admin", "front-desk"])
def test_another_orgs_objects_are_not_found(
    client: TestClient, runtime: Runtime, member: MemberFactory, role: str
) -> None:
    make_org(runtime, "org-a")
    theirs = make_org(runtime, "org-b")
    their_preset = _preset(runtime, theirs)
    their_member = _user_id(runtime, member("org-b", "viewer"))
    csrf = sign_in(client, member("org-a", role))
    attempts: list[tuple[str, dict[str, Any]]] = [
        (f"/console/desk/presets/{their_preset}/print", {}),
        (f"/console/guests/{theirs.site_id}/{theirs.guest_id}/disconnect", {}),
    ]
    if role != "front-desk":
        attempts.append((f"/console/presets/{their_preset}/delete", {}))
    if role != "front-desk":
        attempts.append((f"/console/tokens/{_token(runtime, 'org-b')}/revoke", {}))
    if role == "owner":
        attempts += [
            (f"/console/users/{their_member}/role", {"role": "owner"}),
            (f"/console/users/{their_member}/disable", {}),
            (f"/console/users/{their_member}/invite", {}),
        ]
    for path, form in attempts:
        assert client.post(path, data={**form, "csrf_token": csrf}).status_code == 404, path
    if role != "front-desk":
        assert client.get(f"/console/coupons?instance={theirs.instance_id}").status_code == 404
    assert client.get(f"/console/guests?site={theirs.site_id}").status_code == 404
    # Nothing of org-b changed.
    with runtime.sessions() as session:
        guest = session.get(SiteUser, theirs.guest_id)
        assert guest is not None and guest.status == "active"
        assert session.scalars(select(Coupon).where(Coupon.org_id == "org-b")).first() is None


def test_front_desk_prints_a_preset_and_gets_its_pdf(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    preset = _preset(runtime, org, count=20)
    csrf = sign_in(client, member("org-a", "front-desk"))
    desk = client.get("/console/desk")
    assert "Print 20 coupons: Day pass" in desk.text
    response = client.post(
        f"/console/desk/presets/{preset}/print", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/captive/coupons?")
    pdf = client.get(response.headers["location"])
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    with runtime.sessions() as session:
        assert len(session.scalars(select(Coupon).where(Coupon.org_id == "org-a")).all()) == 20


def test_front_desk_finds_a_guest_by_mac_and_disconnects_it(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "front-desk"))
    found = client.get(f"/console/guests?site={org.site_id}&mac=AA-BB-CC-DD-EE-FF")
    assert "10.0.0.23" in found.text
    bad = client.get(f"/console/guests?site={org.site_id}&mac=not-a-mac")
    assert bad.status_code == 400 and 'id="mac_address-error"' in bad.text
    done = client.post(f"/console/guests/{org.site_id}/{org.guest_id}/disconnect", data={"csrf_token": csrf})
    assert done.status_code == 200
    with runtime.sessions() as session:
        guest = session.get(SiteUser, org.guest_id)
        assert guest is not None and (guest.status, guest.end_reason) == ("disconnected", "operator")
    assert "10.0.0.23" not in client.get(f"/console/guests?site={org.site_id}").text


def test_preset_errors_are_shown_next_to_the_field(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    response = client.post(
        "/console/presets",
        data={
            "csrf_token": csrf,
            "name": "Big",
            "instance_id": org.instance_id,
            "count": "9999",
            "minutes_valid": "60",
            "paper": "a4",
        },
    )
    assert response.status_code == 400
    assert 'id="count-error"' in response.text and "must be between 1 and 500" in response.text


def test_owner_invites_by_one_time_link_and_the_invitee_signs_in(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "owner"))
    page = client.post(
        "/console/users", data={"csrf_token": csrf, "email": "desk@example.com", "role": "front-desk"}
    )
    assert page.status_code == 200
    start = page.text.index('<code id="invite-url">') + len('<code id="invite-url">')
    link = page.text[start : page.text.index("</code>", start)]
    path = link.removeprefix(runtime.settings.public_url)
    invitee = TestClient(client.app)
    assert invitee.get(path).status_code == 200
    done = invitee.post(path, data={"password": PASSWORD, "confirm": PASSWORD}, follow_redirects=False)
    assert done.status_code == 303
    assert invitee.get(path).status_code == 404  # used once
    sign_in(invitee, "desk@example.com")
    assert invitee.get("/console/sites").status_code == 403


def test_a_member_of_two_orgs_switches_between_them(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    make_org(runtime, "org-b")
    member("org-a", "admin", email="msp@example.com")
    member("org-b", "viewer", email="msp@example.com")
    csrf = sign_in(client, "msp@example.com")
    assert "Site of org-a" in client.get("/console/sites").text
    assert client.post("/console/org", data={"csrf_token": csrf, "org_id": "org-b"}).status_code == 200
    assert "Site of org-b" in client.get("/console/sites").text
    assert client.post("/console/org", data={"csrf_token": csrf, "org_id": "org-c"}).status_code == 404


def test_logout_ends_the_session(client: TestClient, runtime: Runtime, member: MemberFactory) -> None:
    csrf = sign_in(client, member("org-a", "viewer"))
    assert (
        client.post("/console/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    )
    assert client.get("/console/sites", follow_redirects=False).status_code == 303


def test_dashboard_counts_guests_online(client: TestClient, runtime: Runtime, member: MemberFactory) -> None:
    make_org(runtime, "org-a")
    sign_in(client, member("org-a", "viewer"))
    page = client.get("/console")
    assert page.status_code == 200
    assert '<strong id="online">1</strong>' in page.text
    assert "Sign-ins, last 24 hours: 1" in page.text
    assert utcnow().strftime("%H:00") in page.text


def test_admin_mints_a_token_shown_once_and_revokes_it(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    page = client.post(
        "/console/tokens",
        data={
            "csrf_token": csrf,
            "name": "Billing sync",
            "scopes": ["captive:read", "captive:write"],
            "ttl_days": "7",
        },
    )
    assert page.status_code == 200
    start = page.text.index('<code id="minted-token">') + len('<code id="minted-token">')
    token = page.text[start : page.text.index("</code>", start)]
    api = {"Authorization": f"Bearer {token}"}
    assert client.get("/captive/sites", headers=api).status_code == 200
    assert token not in client.get("/console/tokens").text
    with runtime.sessions() as session:
        row = token_service.list_tokens("org-a", page=PageRequest.parse(10, None), session=session).items[0]
        assert (row.name, row.scopes) == ("Billing sync", "captive:read captive:write")
    assert client.post(f"/console/tokens/{row.id}/revoke", data={"csrf_token": csrf}).status_code == 200
    assert client.get("/captive/sites", headers=api).status_code == 401
    bad = client.post(
        "/console/tokens", data={"csrf_token": csrf, "name": "x", "scopes": "captive:read", "ttl_days": "900"}
    )
    assert bad.status_code == 400 and 'id="ttl_days-error"' in bad.text
