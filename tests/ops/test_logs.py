"""Structured JSON logs: a request id on every line of a request, and no secret in any line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import structlog
from fastapi.testclient import TestClient
from pydantic import SecretStr

from guestgate import logs
from guestgate.app import create_app
from guestgate.db import utcnow
from guestgate.gateways import reconcile
from guestgate.notifications import delivery, webhooks
from guestgate.runtime import Runtime
from guestgate.security import mint_token
from tests.notifications.test_delivery import SECRET, Receiver, receiver  # noqa: F401  (fixture)
from tests.notifications.test_email import SmtpFactory, smtp_server  # noqa: F401  (fixture)
from tests.utils.settings import TEST_KEYS, make_settings

GUEST_IP = "10.30.1.5"
CLIENT_SECRET = "oauth-client-secret-4711-do-not-log"
ROUTER_PASSWORD = "routeros-password-0815-do-not-log"
SMTP_PASSWORD = "smtp-password-2342-do-not-log"
WEBHOOK_SECRET = "webhook-secret-1337-do-not-log"
BOGUS_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bogus-bearer-do-not-log"
_TOKEN = re.compile(r'name="t" value="([^"]+)"')


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything guestgate logs while the test runs, as JSON lines at debug level."""
    stream = io.StringIO()
    yield stream
    logs.configure("info", json=False)
    structlog.contextvars.clear_contextvars()


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_every_line_of_a_request_carries_its_request_id(
    runtime: Runtime, captured: io.StringIO, headers: dict[str, str]
) -> None:
    logs.configure("debug", json=True, stream=captured)
    with TestClient(create_app(runtime=runtime)) as client:
        kept = client.get("/captive/instances", headers={**headers, "X-Request-ID": "proxy-abc.123:7"})
        fresh = client.get("/captive/instances/not-there", headers=headers)
        hostile = client.get(
            "/captive/instances", headers={**headers, "X-Request-ID": "a b\u00e9<script>".encode()}
        )
        too_long = client.get("/captive/instances", headers={**headers, "X-Request-ID": "x" * 129})
    assert kept.headers["x-request-id"] == "proxy-abc.123:7"
    generated = fresh.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", too_long.headers["x-request-id"])
    lines = _lines(captured)
    access = {line["request_id"]: line for line in lines if line.get("event") == "request"}
    assert access["proxy-abc.123:7"]["route"] == "/captive/instances"
    assert access["proxy-abc.123:7"]["status"] == 200
    assert access[generated]["route"] == "/captive/instances/{instanceId}"
    assert access[generated]["status"] == 404
    assert all({"timestamp", "level", "event"} <= line.keys() for line in lines)


def test_no_secret_reaches_the_logs(
    db_url: str,
    tmp_path: Path,
    captured: io.StringIO,
    smtp_server: SmtpFactory,  # noqa: F811
) -> None:
    _, smtp_port = smtp_server(authenticator=True, auth_require_tls=False)
    settings = make_settings(
        db_url,
        tmp_path / "var",
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_security="none",
        smtp_username="intruder",
        smtp_password=SecretStr(SMTP_PASSWORD),
        webhook_timeout_seconds=2,
        metrics_token=SecretStr("metrics-token-that-is-at-least-32-bytes"),
        # The router and the webhook are on loopback (port 9, nothing listens), allowed explicitly.
        outbound_allow_networks="127.0.0.0/8",
    )
    logs.configure_for(settings.model_copy(update={"log_level": "debug", "log_json": True}), stream=captured)
    secrets = [
        TEST_KEYS["jwt_secret"],
        TEST_KEYS["signing_key"],
        TEST_KEYS["encryption_key"],
        SMTP_PASSWORD,
        "metrics-token-that-is-at-least-32-bytes",
    ]
    runtime = Runtime.build(settings)
    try:
        bearer = mint_token(settings, org="org-a", subject="ops", scopes=("captive:write",), ttl_seconds=600)
        headers = {"Authorization": f"Bearer {bearer}"}
        with TestClient(create_app(runtime=runtime), client=(GUEST_IP, 40000)) as client:
            entry_token, code = _drive(client, headers)
            assert (
                client.get(
                    "/captive/instances", headers={"Authorization": f"Bearer {BOGUS_TOKEN}"}
                ).status_code
                == 401
            )
            assert (
                client.get(
                    "/metrics", headers={"Authorization": "Bearer metrics-token-that-is-at-least-32-bytes"}
                ).status_code
                == 200
            )
        now = utcnow()
        delivery.deliver_due_sync(runtime=runtime, now=now)
        reconcile.reconcile_all(runtime=runtime, now=now, pool=runtime.gateways)
    finally:
        runtime.close()
    output = captured.getvalue()
    events = {line.get("event") for line in _lines(captured)}
    # The flows did touch every secret: the SMTP login was refused, the router was tried, requests ran.
    assert "delivery_retry_scheduled" in events, events
    assert "gateway.reconcile_failed" in events, events
    assert "request" in events
    for secret in (
        *secrets,
        CLIENT_SECRET,
        ROUTER_PASSWORD,
        WEBHOOK_SECRET,
        bearer,
        BOGUS_TOKEN,
        entry_token,
        code,
    ):
        assert secret not in output, f"a secret reached the logs: {secret[:12]}..."


def _drive(client: TestClient, headers: dict[str, str]) -> tuple[str, str]:
    """Every flow that handles a secret; returns the guest's entry token and coupon code."""
    integration = client.post(
        "/captive/auth-integrations",
        headers=headers,
        json={"name": "G", "type": "google", "config": {"client_id": "cid", "client_secret": CLIENT_SECRET}},
    )
    assert integration.status_code == 201, integration.text
    site = client.post(
        "/captive/sites",
        headers=headers,
        json={
            "name": "HQ",
            "subnets": ["10.30.0.0/16"],
            "gateway": {
                "driver": "routeros",
                "host": "127.0.0.1",
                "port": 9,
                "username": "api",
                "password": ROUTER_PASSWORD,
            },
        },
    ).json()
    instance = client.post(
        "/captive/instances", headers=headers, json={"name": "L", "strategy": "coupon", "session_ttl": 3600}
    ).json()
    body = {
        "name": "L",
        "strategy": "coupon",
        "session_ttl": 3600,
        "sites": [{"id": site["id"], "subnets": ["10.30.1.0/24"]}],
    }
    assert client.put(f"/captive/instances/{instance['id']}", headers=headers, json=body).status_code == 200
    group = client.post(
        "/captive/notification-groups",
        headers=headers,
        json={
            "name": "Desk",
            "emails": ["desk@example.com"],
            "webhooks": [{"url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET}],
        },
    ).json()
    schedules = f"/captive/instances/{instance['id']}/coupon-schedules"
    schedule = client.post(
        schedules,
        headers=headers,
        json={
            "name": "Daily",
            "count": 2,
            "recurrence_type": "daily",
            "valid_for_in_minutes": 60,
            "timezone": "UTC",
            "notification_group_id": group["id"],
        },
    ).json()
    assert client.post(f"{schedules}/{schedule['id']}/run", headers=headers).status_code == 200
    coupons = client.post(
        f"/captive/instances/{instance['id']}/coupons",
        headers=headers,
        json={"count": 1, "minutes_valid": 60},
    )
    code = coupons.json()[0]["code"]
    entry = client.get("/guest/entry", params={"site": site["id"]})
    found = _TOKEN.search(entry.text)
    assert found is not None, entry.text
    token = found.group(1)
    client.post("/guest/signin", data={"t": token, "code": "ZZZZZZ"})
    signed_in = client.post("/guest/signin", data={"t": token, "code": code})
    assert signed_in.status_code == 200, signed_in.text
    return token, code


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "console"])
def test_uvicorn_lines_carry_no_color_message(
    captured: io.StringIO, as_json: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    import uvicorn

    # As in `guestgate serve` (log_config=None): uvicorn's loggers hand their lines to the root's
    # handler, whatever another test's uvicorn.Config made of them.
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [])
        monkeypatch.setattr(logger, "propagate", True)
        monkeypatch.setattr(logger, "disabled", False)
        monkeypatch.setattr(logger, "level", logging.NOTSET)
    logs.configure("info", json=as_json, stream=captured)
    # uvicorn's own code logs this line with `extra={"color_message": ...}` (ANSI-coloured copy).
    config = uvicorn.Config("guestgate.app:create_app", host="127.0.0.1", port=0, log_config=None)
    config.bind_socket().close()
    output = captured.getvalue()
    assert "Uvicorn running on http://127.0.0.1:" in output
    assert "color_message" not in output and "\x1b[" not in output
    if as_json:
        (line,) = (json.loads(raw) for raw in output.splitlines() if "Uvicorn running" in raw)
        assert line["logger"] == "uvicorn.error" and line["level"] == "info"


QUERY_SECRET = "hook-token-5150-do-not-log"


def test_outbound_request_urls_reach_no_log_with_their_query_string(
    db_url: str,
    tmp_path: Path,
    captured: io.StringIO,
    receiver: Receiver,  # noqa: F811
) -> None:
    # At debug level the HTTP clients would log every request's URL (httpx2 at INFO, httpcore2 traces).
    settings = make_settings(db_url, tmp_path / "var", outbound_allow_networks="127.0.0.0/8")
    logs.configure_for(settings.model_copy(update={"log_level": "debug", "log_json": True}), stream=captured)
    runtime = Runtime.build(settings)
    url = f"{receiver.url}?token={QUERY_SECRET}&sig={QUERY_SECRET}"
    body = webhooks.body_of({"count": 0})

    async def post() -> int:
        transport = runtime.outbound.async_transport("webhook")
        async with httpx2.AsyncClient(transport=transport) as client:
            return await webhooks.post(url, body, secret=SECRET, delivery_id="d-1", timeout=5, client=client)

    try:
        assert asyncio.run(post()) == 204
        with httpx2.Client(transport=runtime.outbound.transport("webhook")) as client:
            assert client.post(url, content=body).status_code == 204
        # A library that logs a URL anyway (here by hand, at WARNING) loses its query string.
        logging.getLogger("some.library").warning("fetched %s", url)
    finally:
        runtime.close()
    output = captured.getvalue()
    assert len(receiver.received) == 2
    assert QUERY_SECRET not in output
    assert f"fetched {receiver.url}?[redacted]" in output
