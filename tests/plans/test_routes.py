"""[extension] Access plans through the API, on both databases: the instance's default plan, a batch's
and a schedule's overrides, the plan copied onto every code, and 400 `parameter_invalid` naming
the field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from guestgate.coupons.models import Coupon
from guestgate.db import utcnow
from guestgate.plans.service import DEFAULT
from guestgate.runtime import Runtime
from guestgate.schedules import jobs
from guestgate.schedules.models import ScheduleRun
from tests.schedules import create_schedule, make_group, seed_body

PLAN = {
    "max_devices": 2,
    "max_uses": 10,
    "download_kbps": 10_000,
    "upload_kbps": 2_000,
    "data_limit_mb": 1_000,
    "validity_from": "first_use",
}


def make_instance(client: TestClient, headers: dict[str, str], **extra: object) -> Any:
    body = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600, **extra}
    response = client.post("/captive/instances", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def coupons_url(instance_id: str) -> str:
    return f"/captive/instances/{instance_id}/coupons"


def plan_of(body: dict[str, Any]) -> dict[str, Any]:
    return {name: body[name] for name in PLAN}


def assert_invalid(response: Any, param: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "parameter_invalid"
    assert body["message"].startswith(f"The '{param}' parameter "), body["message"]


def stored_codes(runtime: Runtime, instance_id: str) -> list[Coupon]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Coupon).where(Coupon.instance_id == instance_id)))


def test_an_instance_without_plan_fields_has_todays_plan(client: TestClient, headers: dict[str, str]) -> None:
    instance = make_instance(client, headers)
    assert plan_of(instance) == DEFAULT.to_dict()
    made = client.post(coupons_url(instance["id"]), json={"minutes_valid": 60, "count": 2}, headers=headers)
    assert made.status_code == 201
    assert all(c["plan"] == DEFAULT.to_dict() and c["uses"] == 0 for c in made.json())


def test_the_instances_plan_round_trips_and_is_each_new_codes(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    instance = make_instance(client, headers, **PLAN)
    assert plan_of(instance) == PLAN
    read = client.get(f"/captive/instances/{instance['id']}", headers=headers).json()
    assert plan_of(read) == PLAN
    made = client.post(coupons_url(instance["id"]), json={"minutes_valid": 60, "count": 3}, headers=headers)
    assert [c["plan"] for c in made.json()] == [PLAN] * 3
    rows = stored_codes(runtime, instance["id"])
    assert {(r.max_devices, r.max_uses, r.download_kbps, r.validity_from) for r in rows} == {
        (2, 10, 10_000, "first_use")
    }
    listed = client.get(coupons_url(instance["id"]), headers=headers).json()
    assert [c["plan"] for c in listed] == [PLAN] * 3


def test_an_update_keeps_omitted_plan_fields_and_null_removes_a_limit(
    client: TestClient, headers: dict[str, str]
) -> None:
    instance = make_instance(client, headers, **PLAN)
    body = {
        "name": "Lobby",
        "strategy": "coupon",
        "session_ttl": 3600,
        "data_limit_mb": None,
        "max_uses": None,
    }
    response = client.put(f"/captive/instances/{instance['id']}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert plan_of(response.json()) == {**PLAN, "data_limit_mb": None, "max_uses": None}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_devices", 0),
        ("max_devices", 101),
        ("max_devices", None),
        ("max_uses", 0),
        ("max_uses", 10_001),
        ("download_kbps", 63),
        ("upload_kbps", 10_000_001),
        ("data_limit_mb", 0),
        ("data_limit_mb", 10_000_001),
        ("validity_from", "tomorrow"),
        ("max_devices", 1.5),
    ],
)
def test_an_out_of_range_plan_field_is_refused_by_name(
    client: TestClient, headers: dict[str, str], field: str, value: object
) -> None:
    body = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600, field: value}
    assert_invalid(client.post("/captive/instances", json=body, headers=headers), field)


def test_fewer_sign_ins_than_devices_is_refused_naming_max_uses(
    client: TestClient, headers: dict[str, str]
) -> None:
    body = {"name": "Lobby", "strategy": "coupon", "session_ttl": 3600, "max_devices": 3}
    response = client.post("/captive/instances", json=body, headers=headers)
    assert_invalid(response, "max_uses")
    assert "at least max_devices (3)" in response.json()["message"]


def test_a_batchs_plan_overrides_the_instances_for_its_codes_only(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    instance = make_instance(client, headers, download_kbps=5_000)
    plan = {"max_devices": 3, "max_uses": None, "data_limit_mb": 2_000}
    made = client.post(
        coupons_url(instance["id"]), json={"minutes_valid": 60, "count": 2, "plan": plan}, headers=headers
    )
    assert made.status_code == 201, made.text
    expected = {**DEFAULT.to_dict(), "download_kbps": 5_000, **plan}
    assert [c["plan"] for c in made.json()] == [expected] * 2
    batch = client.get(made.headers["location"], headers=headers).json()
    assert batch["plan"] == expected
    with runtime.sessions() as session:
        run = session.get(ScheduleRun, batch["id"])
        assert run is not None and run.plan == expected
    # The next batch without overrides has the instance's plan again.
    again = client.post(coupons_url(instance["id"]), json={"minutes_valid": 60, "count": 1}, headers=headers)
    assert again.json()[0]["plan"] == {**DEFAULT.to_dict(), "download_kbps": 5_000}


@pytest.mark.parametrize(
    ("plan", "param"),
    [
        ({"max_devices": 500}, "plan.max_devices"),
        ({"download_kbps": 1}, "plan.download_kbps"),
        ({"max_devices": 4}, "plan.max_uses"),
        ({"speed": 5}, "plan.speed"),
        ([1, 2], "plan"),
    ],
)
def test_a_bad_batch_plan_is_refused_by_name_and_makes_nothing(
    client: TestClient, headers: dict[str, str], runtime: Runtime, plan: object, param: str
) -> None:
    instance = make_instance(client, headers)
    response = client.post(
        coupons_url(instance["id"]), json={"minutes_valid": 60, "count": 2, "plan": plan}, headers=headers
    )
    assert_invalid(response, param)
    assert stored_codes(runtime, instance["id"]) == []


def test_a_schedules_plan_round_trips_and_its_runs_make_codes_with_it(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    instance = make_instance(client, headers, upload_kbps=1_000)
    overrides = {"max_devices": 2, "max_uses": 4, "validity_from": "first_use"}
    schedule = create_schedule(
        client, headers, instance["id"], seed_body(make_group(runtime), count=3, plan=overrides)
    )
    effective = {**DEFAULT.to_dict(), "upload_kbps": 1_000, **overrides}
    assert schedule["plan"] == overrides
    assert schedule["effective_plan"] == effective
    url = f"/captive/instances/{instance['id']}/coupon-schedules/{schedule['id']}"
    assert client.get(url, headers=headers).json()["plan"] == overrides
    # The slot's run (the worker's job) and a run-now both use it, and record it on the batch.
    assert jobs.run_due(runtime=runtime, now=utcnow() + timedelta(days=2))
    assert client.post(f"{url}/run", headers=headers).status_code == 200
    rows = stored_codes(runtime, instance["id"])
    assert len(rows) >= 6
    assert {(r.max_devices, r.max_uses, r.upload_kbps, r.validity_from) for r in rows} == {
        (2, 4, 1_000, "first_use")
    }
    with runtime.sessions() as session:
        runs = list(session.scalars(select(ScheduleRun).where(ScheduleRun.schedule_id == schedule["id"])))
    assert runs and all(run.plan == effective for run in runs)


def test_a_schedule_update_without_plan_keeps_it_and_an_empty_plan_clears_it(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    instance = make_instance(client, headers)
    group = make_group(runtime)
    schedule = create_schedule(client, headers, instance["id"], seed_body(group, plan={"data_limit_mb": 500}))
    url = f"/captive/instances/{instance['id']}/coupon-schedules/{schedule['id']}"
    kept = client.put(url, json=seed_body(group), headers=headers)
    assert kept.status_code == 200, kept.text
    assert kept.json()["plan"] == {"data_limit_mb": 500}
    cleared = client.put(url, json=seed_body(group, plan={}), headers=headers)
    assert cleared.json()["plan"] == {} and cleared.json()["effective_plan"] == DEFAULT.to_dict()


def test_a_bad_schedule_plan_is_refused_by_name(
    client: TestClient, headers: dict[str, str], runtime: Runtime
) -> None:
    instance = make_instance(client, headers)
    response = client.post(
        f"/captive/instances/{instance['id']}/coupon-schedules",
        json=seed_body(make_group(runtime), plan={"max_devices": 2, "max_uses": 1}),
        headers=headers,
    )
    assert_invalid(response, "plan.max_uses")
