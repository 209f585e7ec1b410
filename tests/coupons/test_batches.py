"""Coupon batches (issue 15): every batch has an id, a signed URL in four formats and headers on the
response that made it; Altostrat's body (a plain array of coupons) is unchanged."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import select

from guestgate.audit.models import AuditEvent
from guestgate.plans.service import DEFAULT
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_ISSUE, SCOPE_READ
from tests.core.test_errors import assert_error
from tests.schedules import make_group, seed_body, time_travel_proof
from tests.utils.settings import TokenFactory

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
# Altostrat's coupon fields, and [extension] the plan's: what the code buys and its sign-ins so far.
COUPON_FIELDS = {"id", "code", "expires_at", "redeemed_at", "created_at", "uses", "plan"}
BATCH_FIELDS = {
    "id",
    "instance_id",
    "schedule_id",
    "kind",
    "count",
    "minutes_valid",
    "created_at",
    "expires_at",
    "tokens_used",
    "tokens_available",
    "urls_revoked_at",
    "plan",
}


@pytest.fixture
def auth(auth: TokenFactory) -> TokenFactory:
    return time_travel_proof(auth)


@pytest.fixture
def headers(auth: TokenFactory) -> dict[str, str]:
    return auth()


@pytest.fixture
def instance_id(client: TestClient, headers: dict[str, str]) -> str:
    with time_machine.travel(NOW, tick=False):
        body = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600}
        response = client.post("/captive/instances", headers=headers, json=body)
    assert response.status_code == 201
    return str(response.json()["id"])


def at(moment: datetime, call: Any, *args: Any, **kwargs: Any) -> Any:
    with time_machine.travel(moment, tick=False):
        return call(*args, **kwargs)


def create(client: TestClient, headers: dict[str, str], instance_id: str, count: int = 3) -> Any:
    response = at(
        NOW,
        client.post,
        f"/captive/instances/{instance_id}/coupons",
        headers=headers,
        json={"count": count, "minutes_valid": 90},
    )
    assert response.status_code == 201, response.text
    return response


def alternates(response: Any) -> dict[str, str]:
    found = re.findall(r'<([^>]+)>; rel="alternate"; type="([^"]+)"', response.headers["link"])
    return {media: url for url, media in found}


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_create_keeps_altostrats_body_and_names_the_batch_and_its_urls(
    client: TestClient, headers: dict[str, str], instance_id: str
) -> None:
    response = create(client, headers, instance_id)
    body = response.json()
    assert isinstance(body, list) and len(body) == 3
    assert all(set(c) == COUPON_FIELDS for c in body)
    location = urlsplit(response.headers["location"])
    assert location.netloc == "testserver"
    assert re.fullmatch(rf"/captive/instances/{instance_id}/coupon-batches/[0-9a-f-]{{36}}", location.path)
    batch_id = location.path.rsplit("/", 1)[1]
    links = alternates(response)
    assert list(links) == ["application/json", "text/html", "application/pdf", "text/csv"]
    query = parse_qs(urlsplit(links["application/json"]).query)
    assert set(query) == {"batch", "expires", "signature"} and query["batch"] == [batch_id]
    assert links["text/html"] == links["application/json"] + "&format=html"
    codes = sorted(c["code"] for c in body)

    as_json = at(NOW, client.get, local(links["application/json"]))
    assert sorted(c["code"] for c in as_json.json()) == codes
    page = at(NOW, client.get, local(links["text/html"]))
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert all(code in page.text for code in codes)
    pdf = at(NOW, client.get, local(links["application/pdf"]))
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert all(code in text for code in codes)
    rows = list(csv.DictReader(io.StringIO(at(NOW, client.get, local(links["text/csv"])).text)))
    assert sorted(r["code"] for r in rows) == codes
    # Without a schedule the file is named after the batch's time (the instance has no zone: UTC).
    assert (
        'filename="coupons-2026-06-01-1200.csv"'
        in at(NOW, client.get, local(links["text/csv"])).headers["content-disposition"]
    )


def test_the_batch_resource_counts_its_coupons_and_lists_newest_first(
    client: TestClient, headers: dict[str, str], instance_id: str, runtime: Runtime
) -> None:
    first = create(client, headers, instance_id, count=2)
    later = at(
        NOW + timedelta(minutes=1),
        client.post,
        f"/captive/instances/{instance_id}/coupons",
        headers=headers,
        json={"count": 4, "minutes_valid": 30},
    )
    batch_url = urlsplit(first.headers["location"]).path
    item = at(NOW, client.get, batch_url, headers=headers).json()
    assert set(item) == BATCH_FIELDS
    assert item | {"id": None} == {
        "id": None,
        "instance_id": instance_id,
        "schedule_id": None,
        "kind": "api",
        "count": 2,
        "minutes_valid": 90,
        "created_at": "2026-06-01T12:00:00Z",
        "expires_at": "2026-06-01T13:30:00Z",
        "tokens_used": 0,
        "tokens_available": 2,
        "urls_revoked_at": None,
        # [extension] The plan the batch's codes were made with: the instance's default.
        "plan": DEFAULT.to_dict(),
    }
    listed = at(
        NOW + timedelta(minutes=2),
        client.get,
        f"/captive/instances/{instance_id}/coupon-batches",
        headers=headers,
    )
    assert [b["count"] for b in listed.json()] == [4, 2]
    paged = at(
        NOW,
        client.get,
        f"/captive/instances/{instance_id}/coupon-batches",
        headers=headers,
        params={"limit": 1},
    )
    assert len(paged.json()) == 1 and 'rel="next"' in paged.headers["link"]
    assert later.headers["location"] != first.headers["location"]
    with runtime.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "coupon_batch.create")).first()
        assert event is not None and event.detail["batch_id"] in {item["id"], later.headers["location"][-36:]}


def test_a_schedule_run_is_a_batch_with_its_headers(
    client: TestClient, headers: dict[str, str], instance_id: str, runtime: Runtime
) -> None:
    group = make_group(runtime)
    schedule = at(
        NOW,
        client.post,
        f"/captive/instances/{instance_id}/coupon-schedules",
        headers=headers,
        json=seed_body(group, count=4),
    ).json()
    ran = at(
        NOW,
        client.post,
        f"/captive/instances/{instance_id}/coupon-schedules/{schedule['id']}/run",
        headers=headers,
    )
    assert ran.status_code == 200 and ran.json()["id"] == schedule["id"]  # Altostrat's body: the schedule
    batch = at(NOW, client.get, urlsplit(ran.headers["location"]).path, headers=headers).json()
    assert (batch["kind"], batch["schedule_id"], batch["count"]) == ("manual", schedule["id"], 4)
    assert len(at(NOW, client.get, local(alternates(ran)["application/json"])).json()) == 4


@pytest.mark.parametrize("scope", [SCOPE_READ, SCOPE_ISSUE])
def test_readers_and_the_front_desk_get_a_batchs_url(
    client: TestClient, headers: dict[str, str], auth: TokenFactory, instance_id: str, scope: str
) -> None:
    batch_url = urlsplit(create(client, headers, instance_id).headers["location"]).path
    answer = at(NOW, client.get, f"{batch_url}/generate_url", headers=auth(scopes=(scope,)))
    assert answer.status_code == 200
    assert set(answer.json()) == {"signed_url", "expires_at"}
    assert answer.json()["expires_at"] == "2026-06-02T12:00:00Z"
    assert len(at(NOW, client.get, local(answer.json()["signed_url"])).json()) == 3


def test_another_orgs_batch_is_404(
    client: TestClient, headers: dict[str, str], auth: TokenFactory, instance_id: str
) -> None:
    batch_url = urlsplit(create(client, headers, instance_id).headers["location"]).path
    theirs = auth(org="org-b")
    for path in (batch_url, f"{batch_url}/generate_url"):
        assert_error(at(NOW, client.get, path, headers=theirs), 404, "not_found_error", "resource_not_found")
    assert_error(
        at(NOW, client.post, f"{batch_url}/revoke_urls", headers=theirs),
        404,
        "not_found_error",
        "resource_not_found",
    )
    unknown = batch_url.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"
    assert_error(at(NOW, client.get, unknown, headers=headers), 404, "not_found_error", "resource_not_found")
