"""Hostile-input test helpers: two fully populated orgs built through the API, database dumps, a live server.

The fixtures built on them are in tests/hostile/conftest.py.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import MetaData, select, text

from guestgate.db import utcnow
from guestgate.runtime import Runtime
from guestgate.site_users.models import SiteUser
from tests.utils.settings import TokenFactory


def picture(size: tuple[int, int], fmt: str = "PNG") -> bytes:
    """A plain image of `size` in `fmt`."""
    out = io.BytesIO()
    Image.new("RGB", size, color=(3, 150, 213)).save(out, fmt)
    return out.getvalue()


def local(url: str) -> str:
    """The path and query of an absolute URL the API returned (the test client's own host)."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def ok(response: Any, status: int) -> Any:
    """The JSON of a response that must have `status`."""
    assert response.status_code == status, response.text
    return response.json() if response.content else None


@dataclass
class Tenant:
    """An org with one of every resource, made through the operator API."""

    org: str
    headers: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)


def build_tenant(client: TestClient, auth: TokenFactory, runtime: Runtime, org: str, net: int) -> Tenant:
    """Every kind of resource for `org`; its sites use 10.<net>.0.0/16."""
    tenant = Tenant(org=org, headers=auth(org=org))
    h = tenant.headers
    site = ok(
        client.post(
            "/captive/sites",
            headers=h,
            json={"name": f"{org} HQ", "subnets": [f"10.{net}.0.0/16"]},
        ),
        201,
    )
    group = ok(
        client.post(
            "/captive/notification-groups",
            headers=h,
            json={"name": f"{org} desk", "emails": [f"desk@{org}.example.com"], "webhooks": []},
        ),
        201,
    )
    integration = ok(
        client.post(
            "/captive/auth-integrations",
            headers=h,
            json={
                "name": f"{org} GitHub",
                "type": "github",
                "config": {"client_id": f"{org}-client", "client_secret": "s3cret-value"},
            },
        ),
        201,
    )
    instance = ok(
        client.post(
            "/captive/instances",
            headers=h,
            json={"name": f"{org} Lobby", "strategy": "coupon", "session_ttl": 3600},
        ),
        201,
    )
    ok(
        client.put(
            f"/captive/instances/{instance['id']}",
            headers=h,
            json={
                "name": f"{org} Lobby",
                "strategy": "coupon",
                "session_ttl": 3600,
                "terms_text": f"Terms of {org}",
                "sites": [{"id": site["id"], "subnets": [f"10.{net}.1.0/24"]}],
            },
        ),
        200,
    )
    oauth_instance = ok(
        client.post(
            "/captive/instances",
            headers=h,
            json={
                "name": f"{org} Staff",
                "strategy": "oauth2",
                "session_ttl": 3600,
                "auth_integration_id": integration["id"],
            },
        ),
        201,
    )
    uploaded = ok(
        client.post(
            f"/captive/instances/{instance['id']}/images/logo",
            headers=h,
            files={"file": ("logo.png", picture((240, 120)), "image/png")},
        ),
        202,
    )
    made = client.post(
        f"/captive/instances/{instance['id']}/coupons", headers=h, json={"minutes_valid": 60, "count": 3}
    )
    coupons = ok(made, 201)
    schedule = ok(
        client.post(
            f"/captive/instances/{instance['id']}/coupon-schedules",
            headers=h,
            json={
                "name": f"{org} daily",
                "count": 2,
                "recurrence_type": "daily",
                "valid_for_in_minutes": 480,
                "timezone": "Europe/Paris",
                "notification_group_id": group["id"],
            },
        ),
        201,
    )
    ok(
        client.post(f"/captive/instances/{instance['id']}/coupon-schedules/{schedule['id']}/run", headers=h),
        200,
    )
    entry = ok(
        client.post(
            f"/captive/walled-garden/{site['id']}",
            headers=h,
            json={"name": f"{org} IdP", "ip_address": "192.0.2.0/24"},
        ),
        201,
    )
    signed = ok(
        client.get(
            f"/captive/instances/{instance['id']}/coupon-schedules/{schedule['id']}/generate_url", headers=h
        ),
        200,
    )
    now = utcnow()
    with runtime.sessions() as session:
        user = SiteUser(
            org_id=org,
            site_id=site["id"],
            instance_id=instance["id"],
            ip_address=f"10.{net}.1.5",
            strategy="coupon",
            coupon_id=coupons[0]["id"],
            status="active",
            started_at=now,
            expires_at=now + timedelta(hours=1),
        )
        session.add(user)
        session.commit()
        user_id = user.id
    api_token = ok(client.post("/captive/api-tokens", headers=h, json={"name": f"{org} export"}), 201)
    logo = uploaded["theme"]["logo"]
    tenant.ids = {
        "apiTokenId": api_token["id"],
        "instanceId": instance["id"],
        "oauthInstanceId": oauth_instance["id"],
        "authIntegrationId": integration["id"],
        "groupId": group["id"],
        "siteId": site["id"],
        "scheduleId": schedule["id"],
        "walledGardenEntryId": entry["id"],
        "userId": user_id,
        "couponId": coupons[0]["id"],
        "batchId": made.headers["location"].rsplit("/", 1)[1],
        "assetId": urlsplit(logo).path.rsplit("/", 1)[1],
    }
    tenant.urls = {
        "logo": logo,
        "preview": uploaded["preview_url"],
        "coupons": signed["signed_url"],
        "batch": made.headers["link"].split(">", 1)[0].lstrip("<"),
        "test": integration["test_url"],
    }
    return tenant


def dump_database(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (audit events aside), in a stable order: what 'unchanged' means."""
    metadata = MetaData()
    metadata.reflect(runtime.engine)
    dump: dict[str, list[tuple[Any, ...]]] = {}
    with runtime.engine.connect() as connection:
        for name, table in sorted(metadata.tables.items()):
            if name in ("audit_events", "alembic_version"):
                continue
            rows = connection.execute(select(table)).all()
            dump[name] = sorted((tuple(row) for row in rows), key=repr)
    return dump


def audit_rows_of(runtime: Runtime, org: str) -> int:
    """How many audit events name `org`."""
    with runtime.engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM audit_events WHERE org_id = :org"), {"org": org}
            ).scalar()
            or 0
        )


class LiveServer:
    """guestgate served by uvicorn on a loopback port, in a thread of the test process."""

    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", lifespan="on", h11_max_incomplete_event_size=64 * 1024
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the live server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=20)
        self._socket.close()
