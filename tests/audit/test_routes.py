"""The audit log: every operator change recorded with who, from where and what, never a secret;
guest sign-in failures beside them; `GET /captive/audit-events` filtered and paged per org."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from guestgate.app import create_app
from guestgate.audit.models import AuditEvent
from guestgate.db import utcnow
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from tests.utils.settings import TokenFactory

OPERATOR_IP = "192.0.2.77"
GUEST_IP = "10.20.1.5"
CLIENT_SECRET = "client-secret-never-in-the-audit-log-4711"
ROUTER_PASSWORD = "router-password-never-in-the-audit-log-0815"
WEBHOOK_SECRET = "webhook-secret-never-in-the-audit-log-2342"
_TOKEN = re.compile(r'name="t" value="([^"]+)"')


@pytest.fixture
def operator(runtime: Runtime) -> Iterator[TestClient]:
    """The app called from OPERATOR_IP."""
    app = create_app(runtime=runtime)
    with TestClient(app, client=(OPERATOR_IP, 40000), raise_server_exceptions=False) as client:
        yield client


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _ok(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json() if response.content else {}


def _events(client: TestClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = client.get("/captive/audit-events", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return list(response.json())


def _every_change(client: TestClient, runtime: Runtime, headers: dict[str, str]) -> dict[str, str]:
    """Make one change of every kind through the API; returns the ids it created."""
    api = "/captive"
    site = _ok(
        client.post(
            f"{api}/sites",
            headers=headers,
            json={
                "name": "HQ",
                "subnets": ["10.20.0.0/16"],
                "gateway": {
                    "driver": "routeros",
                    "host": "router.example.com",
                    "port": 9,
                    "username": "api",
                    "password": ROUTER_PASSWORD,
                },
            },
        ),
        201,
    )
    _ok(
        client.put(
            f"{api}/sites/{site['id']}",
            headers=headers,
            json={"name": "HQ", "subnets": ["10.20.0.0/16"], "gateway": {"driver": "none"}},
        ),
        200,
    )
    integration = _ok(
        client.post(
            f"{api}/auth-integrations",
            headers=headers,
            json={
                "name": "Google",
                "type": "google",
                "config": {"client_id": "cid", "client_secret": CLIENT_SECRET},
            },
        ),
        201,
    )
    _ok(
        client.put(
            f"{api}/auth-integrations/{integration['id']}",
            headers=headers,
            json={
                "name": "Google staff",
                "type": "google",
                "config": {"client_id": "cid", "client_secret": CLIENT_SECRET + "-new"},
            },
        ),
        200,
    )
    instance = _ok(
        client.post(
            f"{api}/instances",
            headers=headers,
            json={"name": "Lobby", "strategy": "coupon", "session_ttl": 3600},
        ),
        201,
    )
    _ok(
        client.put(
            f"{api}/instances/{instance['id']}",
            headers=headers,
            json={
                "name": "Lobby",
                "strategy": "coupon",
                "session_ttl": 7200,
                "sites": [{"id": site["id"], "subnets": ["10.20.1.0/24"]}],
            },
        ),
        200,
    )
    _ok(
        client.post(
            f"{api}/instances/{instance['id']}/images/logo",
            headers=headers,
            files={"file": ("logo.png", _png(240, 120), "image/png")},
        ),
        202,
    )
    made = client.post(
        f"{api}/instances/{instance['id']}/coupons", headers=headers, json={"count": 3, "minutes_valid": 60}
    )
    _ok(made, 201)
    batch = urlsplit(made.headers["location"]).path
    _ok(client.post(f"{batch}/revoke_urls", headers=headers), 200)
    group = _ok(
        client.post(
            f"{api}/notification-groups",
            headers=headers,
            json={
                "name": "Desk",
                "emails": ["desk@example.com"],
                "webhooks": [{"url": "https://hooks.example.com/x", "secret": WEBHOOK_SECRET}],
            },
        ),
        201,
    )
    _ok(
        client.put(f"{api}/notification-groups/{group['id']}", headers=headers, json={"name": "Front desk"}),
        200,
    )
    schedule_body = {
        "name": "Daily",
        "count": 2,
        "recurrence_type": "daily",
        "valid_for_in_minutes": 60,
        "timezone": "Europe/Zurich",
        "notification_group_id": group["id"],
    }
    schedules = f"{api}/instances/{instance['id']}/coupon-schedules"
    schedule = _ok(client.post(schedules, headers=headers, json=schedule_body), 201)
    _ok(client.put(f"{schedules}/{schedule['id']}", headers=headers, json={**schedule_body, "count": 4}), 200)
    _ok(client.post(f"{schedules}/{schedule['id']}/run", headers=headers), 200)
    _ok(client.post(f"{schedules}/{schedule['id']}/revoke_urls", headers=headers), 200)
    _ok(client.delete(f"{schedules}/{schedule['id']}", headers=headers), 204)
    garden = f"{api}/walled-garden/{site['id']}"
    entry = _ok(client.post(garden, headers=headers, json={"name": "IdP", "ip_address": "192.0.2.10"}), 201)
    _ok(
        client.put(
            f"{garden}/{entry['id']}", headers=headers, json={"name": "IdP", "ip_address": "192.0.2.11"}
        ),
        200,
    )
    _ok(client.delete(f"{garden}/{entry['id']}", headers=headers), 204)
    now = utcnow()
    with runtime.sessions() as session:
        user = SiteUser(
            org_id="org-a",
            site_id=site["id"],
            instance_id=instance["id"],
            ip_address=GUEST_IP,
            strategy="coupon",
            status="active",
            started_at=now,
            expires_at=now + timedelta(hours=1),
        )
        session.add(user)
        session.commit()
        user_id = user.id
    _ok(client.post(f"{api}/sites/{site['id']}/users/{user_id}/disconnect", headers=headers), 200)
    _ok(client.delete(f"{api}/instances/{instance['id']}", headers=headers), 204)
    _ok(client.delete(f"{api}/notification-groups/{group['id']}", headers=headers), 204)
    _ok(client.delete(f"{api}/auth-integrations/{integration['id']}", headers=headers), 204)
    _ok(client.delete(f"{api}/sites/{site['id']}", headers=headers), 204)
    return {
        "site": site["id"],
        "instance": instance["id"],
        "integration": integration["id"],
        "schedule": schedule["id"],
        "group": group["id"],
        "entry": entry["id"],
        "user": user_id,
        "batch": batch.rsplit("/", 1)[1],
    }


def test_every_operator_change_is_audited_with_actor_ip_target_and_no_secret(
    operator: TestClient, runtime: Runtime, auth: TokenFactory
) -> None:
    headers = auth()
    ids = _every_change(operator, runtime, headers)
    events = _events(operator, headers, limit="1000")
    by_action = {(e["action"], e["target_id"]) for e in events}
    expected = {
        ("site.create", ids["site"]),
        ("site.update", ids["site"]),
        ("site.delete", ids["site"]),
        ("auth_integration.create", ids["integration"]),
        ("auth_integration.update", ids["integration"]),
        ("auth_integration.delete", ids["integration"]),
        ("instance.create", ids["instance"]),
        ("instance.update", ids["instance"]),
        ("instance.image_upload", ids["instance"]),
        ("coupon_batch.create", ids["instance"]),
        ("coupon_batch.revoke_urls", ids["batch"]),
        ("coupon_schedule.revoke_urls", ids["schedule"]),
        ("instance.delete", ids["instance"]),
        ("notification_group.create", ids["group"]),
        ("notification_group.update", ids["group"]),
        ("notification_group.delete", ids["group"]),
        ("coupon_schedule.create", ids["schedule"]),
        ("coupon_schedule.update", ids["schedule"]),
        ("coupon_schedule.run", ids["schedule"]),
        ("coupon_schedule.delete", ids["schedule"]),
        ("walled_garden_entry.create", ids["entry"]),
        ("walled_garden_entry.update", ids["entry"]),
        ("walled_garden_entry.delete", ids["entry"]),
        ("site_user.disconnect", ids["user"]),
    }
    assert expected <= by_action, expected - by_action
    operator_events = [e for e in events if not e["action"].startswith("guest.")]
    assert len(operator_events) == len(expected)
    assert {e["actor"] for e in operator_events} == {"tester"}
    assert {e["ip_address"] for e in operator_events} == {OPERATOR_IP}
    # Newest first.
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    details = {e["action"]: e["detail"] for e in events}
    assert details["instance.update"]["changed"] == ["session_ttl", "sites"]
    assert details["coupon_batch.create"] == {"count": 3, "minutes_valid": 60, "batch_id": ids["batch"]}
    assert "client_secret" in details["auth_integration.update"]["changed"]
    assert "gateway.password" not in details["site.update"]["changed"]
    assert details["site.update"]["driver"] == "none"
    assert details["coupon_schedule.update"]["changed"] == ["count"]
    text = json.dumps(events)
    for secret in (CLIENT_SECRET, ROUTER_PASSWORD, WEBHOOK_SECRET, headers["Authorization"].split()[1]):
        assert secret not in text
    with runtime.sessions() as session:
        stored = json.dumps([e.detail for e in session.scalars(select(AuditEvent))])
    for secret in (CLIENT_SECRET, ROUTER_PASSWORD, WEBHOOK_SECRET):
        assert secret not in stored


def test_a_refused_change_leaves_no_audit_event(
    operator: TestClient, auth: TokenFactory, runtime: Runtime
) -> None:
    headers = auth()
    integration = _ok(
        operator.post(
            "/captive/auth-integrations",
            headers=headers,
            json={
                "name": "G",
                "type": "google",
                "config": {"client_id": "c", "client_secret": CLIENT_SECRET},
            },
        ),
        201,
    )
    _ok(
        operator.post(
            "/captive/instances",
            headers=headers,
            json={
                "name": "O",
                "strategy": "oauth2",
                "session_ttl": 3600,
                "auth_integration_id": integration["id"],
            },
        ),
        201,
    )
    refused = operator.delete(f"/captive/auth-integrations/{integration['id']}", headers=headers)
    assert refused.status_code == 409
    invalid = operator.post("/captive/instances", headers=headers, json={"name": "x", "strategy": "coupon"})
    assert invalid.status_code == 400
    actions = [e["action"] for e in _events(operator, headers)]
    assert actions == ["instance.create", "auth_integration.create"]
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 2


def test_guest_signin_failures_are_audited_and_listed_beside_operator_changes(
    runtime: Runtime, auth: TokenFactory
) -> None:
    headers = auth()
    app = create_app(runtime=runtime)
    with TestClient(app, client=(OPERATOR_IP, 40000)) as operator:
        site = _ok(
            operator.post("/captive/sites", headers=headers, json={"name": "S", "subnets": ["10.20.0.0/16"]}),
            201,
        )
        instance = _ok(
            operator.post(
                "/captive/instances",
                headers=headers,
                json={"name": "L", "strategy": "coupon", "session_ttl": 3600},
            ),
            201,
        )
        _ok(
            operator.put(
                f"/captive/instances/{instance['id']}",
                headers=headers,
                json={
                    "name": "L",
                    "strategy": "coupon",
                    "session_ttl": 3600,
                    "sites": [{"id": site["id"], "subnets": ["10.20.1.0/24"]}],
                },
            ),
            200,
        )
    with TestClient(app, client=(GUEST_IP, 40000)) as guest:
        entry = guest.get("/guest/entry", params={"site": site["id"]})
        assert entry.status_code == 200, entry.text
        token = _TOKEN.search(entry.text)
        assert token is not None
        refused = guest.post("/guest/signin", data={"t": token.group(1), "code": "ZZZZZZ"})
        assert refused.status_code in (200, 400, 401, 403, 404)
        failures = _events(guest, headers, action="guest.signin_failed")
    assert len(failures) == 1
    failure = failures[0]
    assert failure["actor"] == f"guest:{GUEST_IP}"
    assert failure["ip_address"] == GUEST_IP
    assert failure["target_type"] == "instance" and failure["target_id"] == instance["id"]
    assert failure["detail"]["reason"] == "unknown"


def test_filters_narrow_the_list_and_other_orgs_see_nothing(
    operator: TestClient, auth: TokenFactory, runtime: Runtime
) -> None:
    headers = auth()
    first = _ok(
        operator.post("/captive/sites", headers=headers, json={"name": "A", "subnets": ["10.1.0.0/16"]}), 201
    )
    second = _ok(
        operator.post("/captive/sites", headers=headers, json={"name": "B", "subnets": ["10.2.0.0/16"]}), 201
    )
    _ok(operator.delete(f"/captive/sites/{first['id']}", headers=headers), 204)
    assert [e["action"] for e in _events(operator, headers, target_id=first["id"])] == [
        "site.delete",
        "site.create",
    ]
    assert [e["target_id"] for e in _events(operator, headers, action="site.create")] == [
        second["id"],
        first["id"],
    ]
    assert len(_events(operator, headers, target_type="site")) == 3
    assert _events(operator, headers, actor="someone-else") == []
    assert len(_events(operator, headers, actor="tester")) == 3
    with runtime.sessions() as session:
        # Pin the times so the window filters are exact.
        base = utcnow().replace(microsecond=0) - timedelta(hours=3)
        for hours, event in enumerate(session.scalars(select(AuditEvent).order_by(AuditEvent.id))):
            event.at = base + timedelta(hours=hours)
        session.commit()
    stamp = (base + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = _events(operator, headers, since=stamp)
    assert [e["action"] for e in later] == ["site.delete", "site.create"]
    assert [e["action"] for e in _events(operator, headers, until=stamp)] == ["site.create"]
    assert _events(operator, auth(org="org-b")) == []
    assert _events(operator, auth(org="org-b"), target_id=first["id"]) == []


def test_the_list_pages_with_the_link_header(operator: TestClient, auth: TokenFactory) -> None:
    headers = auth()
    for index in range(5):
        _ok(
            operator.post(
                "/captive/sites",
                headers=headers,
                json={"name": f"S{index}", "subnets": [f"10.{index}.0.0/16"]},
            ),
            201,
        )
    seen: list[int] = []
    url: str | None = "/captive/audit-events?limit=2"
    pages = 0
    while url is not None:
        response = operator.get(url, headers=headers)
        assert response.status_code == 200, response.text
        seen += [e["id"] for e in response.json()]
        pages += 1
        link = response.headers.get("link")
        url = re.search(r"<http://testserver([^>]+)>", link).group(1) if link else None
    assert pages == 3
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 5


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-10-29T08:00:00"}, "until"),
        ({"since": "2025-10-30T00:00:00Z", "until": "2025-10-29T00:00:00Z"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"action": "x" * 201}, "action"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(
    operator: TestClient, auth: TokenFactory, params: dict[str, str], param: str
) -> None:
    response = operator.get("/captive/audit-events", headers=auth(), params=params)
    assert response.status_code == 400
    assert response.json()["code"] == "parameter_invalid"
    assert f"'{param}'" in response.json()["message"]


def test_the_list_needs_the_read_scope(operator: TestClient, auth: TokenFactory) -> None:
    assert operator.get("/captive/audit-events").status_code == 401
    forbidden = operator.get("/captive/audit-events", headers=auth(scopes=("coupons:issue",)))
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "insufficient_scope"
