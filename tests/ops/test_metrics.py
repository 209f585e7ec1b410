"""`/metrics`: the scraper's token sees the process counters and every org's gateways; an org's
token only its gateways. Counters move with requests, sign-ins, schedule runs and deliveries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from guestgate.app import create_app
from guestgate.db import utcnow
from guestgate.notifications import delivery
from guestgate.ops import metrics
from guestgate.runtime import Runtime
from guestgate.security import ALL_SCOPES, mint_token
from tests.utils.settings import make_settings

SCRAPER = "scraper-token-that-is-at-least-32-bytes-long"
GUEST_IP = "10.40.1.5"
_TOKEN = re.compile(r'name="t" value="([^"]+)"')


@pytest.fixture
def scraped(db_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, Runtime]]:
    """The app with a metrics token, called from a guest's address."""
    # The webhook that fails (a delivery retry) is on loopback, allowed as a deployment would.
    settings = make_settings(
        db_url, tmp_path / "var", metrics_token=SecretStr(SCRAPER), outbound_allow_networks="127.0.0.0/8"
    )
    runtime = Runtime.build(settings)
    try:
        with TestClient(
            create_app(runtime=runtime), client=(GUEST_IP, 40000), raise_server_exceptions=False
        ) as client:
            yield client, runtime
    finally:
        runtime.close()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPER}"})
    assert response.status_code == 200, response.text
    return _samples(response.text)


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_follow_requests_signins_schedule_runs_and_deliveries(
    scraped: tuple[TestClient, Runtime],
) -> None:
    client, runtime = scraped
    token = mint_token(runtime.settings, org="org-m", subject="m", scopes=ALL_SCOPES, ttl_seconds=600)
    headers = {"Authorization": f"Bearer {token}"}
    before = _scrape(client)
    site = client.post(
        "/captive/sites", headers=headers, json={"name": "S", "subnets": ["10.40.0.0/16"]}
    ).json()
    instance = client.post(
        "/captive/instances", headers=headers, json={"name": "L", "strategy": "coupon", "session_ttl": 3600}
    ).json()
    body = {
        "name": "L",
        "strategy": "coupon",
        "session_ttl": 3600,
        "sites": [{"id": site["id"], "subnets": ["10.40.1.0/24"]}],
    }
    assert client.put(f"/captive/instances/{instance['id']}", headers=headers, json=body).status_code == 200
    assert client.get(f"/captive/instances/{instance['id']}", headers=headers).status_code == 200
    assert client.get("/captive/instances/missing", headers=headers).status_code == 404
    codes = client.post(
        f"/captive/instances/{instance['id']}/coupons",
        headers=headers,
        json={"count": 3, "minutes_valid": 60},
    ).json()
    group = client.post(
        "/captive/notification-groups",
        headers=headers,
        json={
            "name": "D",
            "emails": ["a@example.com", "b@example.com"],
            "webhooks": [{"url": "http://127.0.0.1:9/h", "secret": "s" * 32}],
        },
    ).json()
    schedules = f"/captive/instances/{instance['id']}/coupon-schedules"
    schedule = client.post(
        schedules,
        headers=headers,
        json={
            "name": "D",
            "count": 4,
            "recurrence_type": "daily",
            "valid_for_in_minutes": 60,
            "timezone": "UTC",
            "notification_group_id": group["id"],
        },
    ).json()
    assert client.post(f"{schedules}/{schedule['id']}/run", headers=headers).status_code == 200
    entry = client.get("/guest/entry", params={"site": site["id"]})
    found = _TOKEN.search(entry.text)
    assert found is not None, entry.text
    client.post("/guest/signin", data={"t": found.group(1), "code": "ZZZZZZ"})
    client.post("/guest/signin", data={"t": found.group(1), "code": codes[0]["code"]})
    client.post("/guest/signin", data={"t": "forged", "code": codes[1]["code"]})
    # Without SMTP the e-mails go to the outbox (sent); the webhook's port is closed (retry).
    delivery.deliver_due_sync(runtime=runtime, now=utcnow())
    after = _scrape(client)

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    item = "/captive/instances/{instanceId}"
    assert moved("guestgate_http_requests_total", method="GET", route=item, status="200") == 1
    assert moved("guestgate_http_requests_total", method="GET", route=item, status="404") == 1
    assert moved("guestgate_http_requests_total", method="POST", route="/captive/sites", status="201") == 1
    assert moved("guestgate_http_request_duration_seconds_count", method="PUT", route=item) == 1
    assert moved("guestgate_guest_signins_total", strategy="coupon", result="unknown") == 1
    assert moved("guestgate_guest_signins_total", strategy="coupon", result="success") == 1
    assert moved("guestgate_guest_signins_total", strategy="coupon", result="rejected") == 1
    assert moved("guestgate_schedule_runs_total", kind="manual") == 1
    assert moved("guestgate_coupons_generated_total", source="schedule_manual") == 4
    assert moved("guestgate_coupons_generated_total", source="api") == 3
    assert moved("guestgate_deliveries_total", channel="email", result="sent") == 2
    assert moved("guestgate_deliveries_total", channel="webhook", result="retry") == 1
    # The portal is dispatched before the middleware: not in the request metrics.
    assert not any(labels and dict(labels).get("route", "").startswith("/guest") for _, labels in after)
    # Every org's sites, with the org.
    assert (
        _value(
            after,
            "guestgate_gateway_status",
            org_id="org-m",
            site_id=site["id"],
            driver="none",
            state="not_enforcing",
        )
        == 1
    )


def test_an_org_token_sees_its_gateways_but_no_process_counters(scraped: tuple[TestClient, Runtime]) -> None:
    client, runtime = scraped
    token = mint_token(runtime.settings, org="org-m", subject="m", scopes=ALL_SCOPES, ttl_seconds=600)
    headers = {"Authorization": f"Bearer {token}"}
    site = client.post(
        "/captive/sites", headers=headers, json={"name": "S", "subnets": ["10.40.0.0/16"]}
    ).json()
    text = client.get("/metrics", headers=headers).text
    assert site["id"] in text
    assert "guestgate_http_requests_total" not in text
    assert "guestgate_guest_signins_total" not in text
    assert "org_id" not in text


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-scraper-token-of-some-length-xx", f"Basic {SCRAPER}"]
)
def test_metrics_without_a_valid_token_are_401(
    scraped: tuple[TestClient, Runtime], authorization: str | None
) -> None:
    client, _ = scraped
    response = client.get("/metrics", headers={"Authorization": authorization} if authorization else {})
    assert response.status_code == 401
    assert response.json()["type"] == "authentication_error"


def test_without_a_metrics_token_no_bearer_reaches_the_process_counters(client: TestClient) -> None:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPER}"})
    assert response.status_code == 401


def test_the_worker_serves_its_counters_to_the_scraper_only(tmp_path: Path) -> None:
    settings = make_settings("sqlite://", tmp_path, metrics_token=SecretStr(SCRAPER))
    metrics.schedule_ran("scheduled", 5)
    with TestClient(metrics.worker_app(settings)) as client:
        assert client.get("/metrics").json()["code"] == "token_missing"
        assert (
            client.get("/metrics", headers={"Authorization": "Bearer nope"}).json()["code"] == "token_invalid"
        )
        response = client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPER}"})
    assert response.status_code == 200
    assert _value(_samples(response.text), "guestgate_schedule_runs_total", kind="scheduled") >= 1
