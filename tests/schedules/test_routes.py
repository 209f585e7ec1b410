"""HTTP routes of coupon schedules (#14-#19): the seed's shapes, validation, rules, auth, tenancy."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from guestgate.coupons.models import Coupon
from guestgate.plans.service import DEFAULT
from guestgate.runtime import Runtime
from guestgate.security import SCOPE_ISSUE, SCOPE_READ, SCOPE_WRITE
from tests.schedules import (
    SCHEDULE_FIELDS,
    UNKNOWN_ID,
    add_run,
    assert_error,
    create_schedule,
    make_group,
    make_instance,
    seed_body,
    time_travel_proof,
    utc,
)
from tests.utils.settings import TokenFactory

NOW = utc(2025, 6, 1)  # Sunday; 10:00 AEST in Sydney
REQUIRED = ["name", "count", "recurrence_type", "valid_for_in_minutes", "timezone", "notification_group_id"]


@pytest.fixture
def auth(auth: TokenFactory) -> TokenFactory:
    return time_travel_proof(auth)


@pytest.fixture
def instance_id(runtime: Runtime, headers: dict[str, str]) -> str:
    return make_instance(runtime)


@pytest.fixture
def group_id(runtime: Runtime, headers: dict[str, str]) -> str:
    return make_group(runtime)


def collection(instance_id: str) -> str:
    return f"/captive/instances/{instance_id}/coupon-schedules"


def item(instance_id: str, schedule_id: str) -> str:
    return f"{collection(instance_id)}/{schedule_id}"


@pytest.fixture
def schedule(client: TestClient, headers: dict[str, str], instance_id: str, group_id: str) -> Any:
    with time_machine.travel(NOW, tick=False):
        return create_schedule(client, headers, instance_id, seed_body(group_id))


# --- the seed's example ------------------------------------------------------------------------


def test_post_accepts_the_seed_example_and_nulls_the_unused_day_fields(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str
) -> None:
    with time_machine.travel(NOW, tick=False):
        response = client.post(collection(instance_id), json=seed_body(group_id), headers=headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == SCHEDULE_FIELDS
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", body["id"])
    assert body == {
        "id": body["id"],
        "name": "Daily Guest Passes",
        "instance_id": instance_id,
        "count": 20,
        "recurrence_type": "daily",
        "day_of_week": None,
        "day_of_month": None,
        "valid_for_in_minutes": 480,
        "timezone": "Australia/Sydney",
        "notification_group_id": group_id,
        "time_of_day": "00:00",
        "last_run_at": None,
        "next_run_at": "2025-06-01T14:00:00Z",
        "tokens_used_since_last_run": 0,
        "tokens_generated_since_last_run": 0,
        "tokens_available_since_last_run": 0,
        "created_at": "2025-06-01T00:00:00Z",
        # [extension] No overrides: the instance's plan (the default).
        "plan": {},
        "effective_plan": DEFAULT.to_dict(),
    }
    assert client.get(item(instance_id, body["id"]), headers=headers).json() == body


def test_put_accepts_the_seed_example_and_returns_the_whole_schedule(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str, runtime: Runtime
) -> None:
    with time_machine.travel(NOW, tick=False):
        created = create_schedule(
            client,
            headers,
            instance_id,
            seed_body(make_group(runtime), name="Old", count=1, recurrence_type="weekly", day_of_week=3),
        )
        response = client.put(item(instance_id, created["id"]), json=seed_body(group_id), headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == {
        **created,
        "name": "Daily Guest Passes",
        "count": 20,
        "recurrence_type": "daily",
        "day_of_week": None,
        "day_of_month": None,
        "notification_group_id": group_id,
        "next_run_at": "2025-06-01T14:00:00Z",
    }
    assert client.get(item(instance_id, created["id"]), headers=headers).json() == body


def test_unknown_fields_are_ignored(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str
) -> None:
    body = create_schedule(client, headers, instance_id, seed_body(group_id, id=UNKNOWN_ID, colour="red"))
    assert body["id"] != UNKNOWN_ID
    assert "colour" not in body


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("field", REQUIRED)
@pytest.mark.parametrize("method", ["post", "put"])
def test_missing_required_field_is_400_parameter_missing(
    client: TestClient,
    headers: dict[str, str],
    instance_id: str,
    group_id: str,
    schedule: Any,
    field: str,
    method: str,
) -> None:
    body = seed_body(group_id)
    del body[field]
    url = collection(instance_id) if method == "post" else item(instance_id, schedule["id"])
    response = client.request(method.upper(), url, json=body, headers=headers)
    assert_error(response, 400, "parameter_missing", f"The '{field}' parameter is required for this request.")


@pytest.mark.parametrize(
    ("field", "good", "bad", "message"),
    [
        ("count", [1, 500], [0, 501, -1], "must be between 1 and 500"),
        ("valid_for_in_minutes", [1, 90000], [0, 90001], "must be between 1 and 90000"),
    ],
)
def test_integer_ranges_accept_their_edges_and_reject_beyond(
    client: TestClient,
    headers: dict[str, str],
    instance_id: str,
    group_id: str,
    field: str,
    good: list[int],
    bad: list[int],
    message: str,
) -> None:
    for value in good:
        assert (
            create_schedule(client, headers, instance_id, seed_body(group_id, **{field: value}))[field]
            == value
        )
    for value in bad:
        response = client.post(
            collection(instance_id), json=seed_body(group_id, **{field: value}), headers=headers
        )
        assert_error(response, 400, "parameter_invalid", f"The '{field}' parameter {message}.")


@pytest.mark.parametrize(
    ("kind", "field", "good", "bad", "message"),
    [
        ("weekly", "day_of_week", [0, 6], [-1, 7], "must be between 0 and 6"),
        ("monthly", "day_of_month", [1, 31], [0, 32], "must be between 1 and 31"),
    ],
)
def test_day_ranges_accept_their_edges_and_reject_beyond(
    client: TestClient,
    headers: dict[str, str],
    instance_id: str,
    group_id: str,
    kind: str,
    field: str,
    good: list[int],
    bad: list[int],
    message: str,
) -> None:
    for value in good:
        body = create_schedule(
            client, headers, instance_id, seed_body(group_id, recurrence_type=kind, **{field: value})
        )
        assert body[field] == value
    for value in bad:
        body = seed_body(group_id, recurrence_type=kind, **{field: value})
        response = client.post(collection(instance_id), json=body, headers=headers)
        assert_error(response, 400, "parameter_invalid", f"The '{field}' parameter {message}.")


def test_day_fields_are_range_checked_even_when_unused(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str
) -> None:
    response = client.post(collection(instance_id), json=seed_body(group_id, day_of_week=9), headers=headers)
    assert_error(response, 400, "parameter_invalid", "The 'day_of_week' parameter must be between 0 and 6.")


def test_unknown_recurrence_type_is_400(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str
) -> None:
    response = client.post(
        collection(instance_id), json=seed_body(group_id, recurrence_type="yearly"), headers=headers
    )
    assert_error(
        response,
        400,
        "parameter_invalid",
        "The 'recurrence_type' parameter must be one of 'daily', 'weekly' or 'monthly'.",
    )


@pytest.mark.parametrize("zone", ["Mars/Olympus", "EST5EDT6", "", "america/new_york"])
def test_invalid_timezone_is_400(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str, zone: str
) -> None:
    response = client.post(collection(instance_id), json=seed_body(group_id, timezone=zone), headers=headers)
    assert_error(
        response, 400, "parameter_invalid", "The 'timezone' parameter must be a valid IANA time zone."
    )


@pytest.mark.parametrize("value", ["00:00", "23:59", "07:05", "12:30"])
def test_time_of_day_accepts_hh_mm(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str, value: str
) -> None:
    assert (
        create_schedule(client, headers, instance_id, seed_body(group_id, time_of_day=value))["time_of_day"]
        == value
    )


@pytest.mark.parametrize(
    "value", ["24:00", "23:60", "7:05", "07:5", "0700", "07:00:00", "noon", "", " 07:00"]
)
def test_time_of_day_rejects_anything_else(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str, value: str
) -> None:
    response = client.post(
        collection(instance_id), json=seed_body(group_id, time_of_day=value), headers=headers
    )
    assert_error(
        response,
        400,
        "parameter_invalid",
        "The 'time_of_day' parameter must be a time as HH:MM (24-hour, 00:00 to 23:59).",
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("count", "many", "must be an integer"),
        ("count", 2.5, "must be an integer"),
        ("valid_for_in_minutes", None, "must be an integer"),
        ("name", 7, "must be a string"),
        ("name", "   ", "must not be empty"),
        ("name", "x" * 201, "must be at most 200 characters"),
        ("notification_group_id", None, "must be a string"),
        ("time_of_day", None, "must be a string"),
        ("day_of_week", "monday", "must be an integer"),
    ],
)
def test_wrong_values_are_400_naming_the_field(
    client: TestClient,
    headers: dict[str, str],
    instance_id: str,
    group_id: str,
    field: str,
    value: object,
    message: str,
) -> None:
    response = client.post(
        collection(instance_id), json=seed_body(group_id, **{field: value}), headers=headers
    )
    assert_error(response, 400, "parameter_invalid", f"The '{field}' parameter {message}.")


def test_name_is_trimmed_and_200_characters_are_accepted(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str
) -> None:
    assert (
        create_schedule(client, headers, instance_id, seed_body(group_id, name=" Lobby "))["name"] == "Lobby"
    )
    assert (
        create_schedule(client, headers, instance_id, seed_body(group_id, name="x" * 200))["name"]
        == "x" * 200
    )


@pytest.mark.parametrize(("kind", "field"), [("weekly", "day_of_week"), ("monthly", "day_of_month")])
@pytest.mark.parametrize("absent", ["omitted", "null"])
def test_recurrence_without_its_day_is_400_parameter_missing(
    client: TestClient,
    headers: dict[str, str],
    instance_id: str,
    group_id: str,
    schedule: Any,
    kind: str,
    field: str,
    absent: str,
) -> None:
    body = seed_body(group_id, recurrence_type=kind)
    if absent == "omitted":
        del body[field]
    else:
        body[field] = None
    for method, url in (("POST", collection(instance_id)), ("PUT", item(instance_id, schedule["id"]))):
        response = client.request(method, url, json=body, headers=headers)
        assert_error(
            response, 400, "parameter_missing", f"The '{field}' parameter is required for this request."
        )
    listed = client.get(collection(instance_id), headers=headers).json()
    assert [s["id"] for s in listed] == [schedule["id"]]
    assert listed[0]["recurrence_type"] == "daily"


@pytest.mark.parametrize(
    ("overrides", "days"),
    [
        ({"recurrence_type": "weekly", "day_of_week": 0, "day_of_month": 31}, (0, None)),
        ({"recurrence_type": "monthly", "day_of_week": 6, "day_of_month": 31}, (None, 31)),
        ({"recurrence_type": "daily", "day_of_week": 6, "day_of_month": 31}, (None, None)),
    ],
)
def test_day_field_that_does_not_apply_is_stored_as_null(
    client: TestClient,
    headers: dict[str, str],
    instance_id: str,
    group_id: str,
    overrides: dict[str, Any],
    days: tuple[int | None, int | None],
) -> None:
    body = create_schedule(client, headers, instance_id, seed_body(group_id, **overrides))
    assert (body["day_of_week"], body["day_of_month"]) == days


def test_unknown_notification_group_is_400_resource_missing(
    client: TestClient, headers: dict[str, str], instance_id: str, schedule: Any
) -> None:
    body = seed_body("ng_000000000000")
    for method, url in (("POST", collection(instance_id)), ("PUT", item(instance_id, schedule["id"]))):
        response = client.request(method, url, json=body, headers=headers)
        assert_error(
            response,
            400,
            "resource_missing",
            "The 'notification_group_id' parameter refers to 'ng_000000000000', which does not exist.",
        )


def test_another_orgs_notification_group_is_400_resource_missing(
    client: TestClient, headers: dict[str, str], runtime: Runtime, instance_id: str
) -> None:
    foreign = make_group(runtime, org="org-b")
    response = client.post(collection(instance_id), json=seed_body(foreign), headers=headers)
    assert_error(response, 400, "resource_missing")


def test_body_that_is_not_an_object_is_400(
    client: TestClient, headers: dict[str, str], instance_id: str
) -> None:
    response = client.post(collection(instance_id), json=[1, 2], headers=headers)
    assert_error(response, 400, "parameter_invalid")
    response = client.post(
        collection(instance_id), content=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert_error(response, 400, "invalid_json")


# --- next_run_at through the API ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "next_run"),
    [
        # From: daily 00:00 Australia/Sydney, now 2025-06-01T00:00Z (Sunday 10:00 AEST).
        ({"time_of_day": "18:30"}, "2025-06-01T08:30:00Z"),
        ({"timezone": "America/New_York"}, "2025-06-01T04:00:00Z"),
        ({"timezone": "America/New_York", "time_of_day": "23:59"}, "2025-06-01T03:59:00Z"),
        ({"recurrence_type": "weekly", "day_of_week": 0}, "2025-06-07T14:00:00Z"),
        ({"recurrence_type": "weekly", "day_of_week": 1}, "2025-06-01T14:00:00Z"),
        ({"recurrence_type": "monthly", "day_of_month": 31}, "2025-06-29T14:00:00Z"),
        ({"recurrence_type": "monthly", "day_of_month": 1, "time_of_day": "09:15"}, "2025-06-30T23:15:00Z"),
    ],
)
def test_put_changing_the_rule_moves_next_run_at(
    client: TestClient,
    headers: dict[str, str],
    instance_id: str,
    group_id: str,
    schedule: Any,
    change: dict[str, Any],
    next_run: str,
) -> None:
    assert schedule["next_run_at"] == "2025-06-01T14:00:00Z"
    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        response = client.put(
            item(instance_id, schedule["id"]), json=seed_body(group_id, **change), headers=headers
        )
    assert response.status_code == 200, response.text
    assert response.json()["next_run_at"] == next_run


def test_put_changing_the_day_of_a_monthly_schedule_moves_next_run_at(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str
) -> None:
    with time_machine.travel(NOW, tick=False):
        created = create_schedule(
            client, headers, instance_id, seed_body(group_id, recurrence_type="monthly")
        )
        assert created["next_run_at"] == "2025-06-14T14:00:00Z"  # 15 June 00:00 AEST
        body = seed_body(group_id, recurrence_type="monthly", day_of_month=2)
        assert client.put(item(instance_id, created["id"]), json=body, headers=headers).json()[
            "next_run_at"
        ] == ("2025-06-01T14:00:00Z")


def test_put_across_a_dst_change_uses_the_new_offset(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str
) -> None:
    with time_machine.travel(utc(2025, 10, 3), tick=False):
        created = create_schedule(client, headers, instance_id, seed_body(group_id, time_of_day="01:30"))
        assert created["next_run_at"] == "2025-10-03T15:30:00Z"  # Saturday 01:30 AEST
    with time_machine.travel(utc(2025, 10, 4), tick=False):
        body = seed_body(group_id, time_of_day="02:30")  # skipped on Sunday 5 October
        response = client.put(item(instance_id, created["id"]), json=body, headers=headers)
    assert response.json()["next_run_at"] == "2025-10-04T16:00:00Z"  # 03:00 AEDT, the end of the gap


def test_put_changing_nothing_of_the_rule_keeps_next_run_at(
    client: TestClient, headers: dict[str, str], runtime: Runtime, instance_id: str, schedule: Any
) -> None:
    body = seed_body(
        make_group(runtime), name="Evening passes", count=3, valid_for_in_minutes=90000, day_of_week=5
    )
    with time_machine.travel(NOW + timedelta(days=5), tick=False):
        response = client.put(item(instance_id, schedule["id"]), json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["next_run_at"] == schedule["next_run_at"]
    assert response.json()["name"] == "Evening passes"


def test_put_without_time_of_day_keeps_it(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str
) -> None:
    with time_machine.travel(NOW, tick=False):
        created = create_schedule(client, headers, instance_id, seed_body(group_id, time_of_day="08:00"))
        response = client.put(item(instance_id, created["id"]), json=seed_body(group_id), headers=headers)
    assert response.json()["time_of_day"] == "08:00"
    assert response.json()["next_run_at"] == created["next_run_at"] == "2025-06-01T22:00:00Z"


# --- list, get, delete, counters ---------------------------------------------------------------


def test_list_is_newest_first_with_a_next_link(
    client: TestClient, headers: dict[str, str], instance_id: str, group_id: str
) -> None:
    ids = []
    for i in range(3):
        with time_machine.travel(NOW + timedelta(minutes=i), tick=False):
            ids.append(create_schedule(client, headers, instance_id, seed_body(group_id, name=f"S{i}"))["id"])
    response = client.get(collection(instance_id), params={"limit": 2}, headers=headers)
    assert response.status_code == 200
    assert [s["id"] for s in response.json()] == [ids[2], ids[1]]
    assert all(set(s) == SCHEDULE_FIELDS for s in response.json())
    link = response.headers["Link"]
    match = re.fullmatch(r'<(http://testserver/captive/instances/[^>]+)>; rel="next"', link)
    assert match is not None
    rest = client.get(match.group(1).removeprefix("http://testserver"), headers=headers)
    assert [s["id"] for s in rest.json()] == [ids[0]]
    assert "Link" not in rest.headers


def test_list_of_an_instance_without_schedules_is_empty(
    client: TestClient, headers: dict[str, str], instance_id: str
) -> None:
    response = client.get(collection(instance_id), headers=headers)
    assert response.status_code == 200
    assert response.json() == []


def test_counters_show_the_last_run(
    client: TestClient, headers: dict[str, str], runtime: Runtime, instance_id: str, schedule: Any
) -> None:
    add_run(runtime, schedule["id"], ran_at=NOW - timedelta(days=1), valid=9)
    add_run(runtime, schedule["id"], ran_at=NOW, valid=15, redeemed=5)
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        got = client.get(item(instance_id, schedule["id"]), headers=headers).json()
        listed = client.get(collection(instance_id), headers=headers).json()
    assert got["tokens_generated_since_last_run"] == 20
    assert got["tokens_used_since_last_run"] == 5
    assert got["tokens_available_since_last_run"] == 15
    assert got["last_run_at"] == "2025-06-01T00:00:00Z"
    assert listed == [got]


def test_delete_is_204_and_keeps_the_coupons_valid(
    client: TestClient, headers: dict[str, str], runtime: Runtime, instance_id: str, schedule: Any
) -> None:
    run_id = add_run(runtime, schedule["id"], ran_at=NOW, valid=4)
    response = client.delete(item(instance_id, schedule["id"]), headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert_error(client.get(item(instance_id, schedule["id"]), headers=headers), 404, "resource_not_found")
    assert_error(client.delete(item(instance_id, schedule["id"]), headers=headers), 404, "resource_not_found")
    with runtime.sessions() as session:
        coupons = list(session.scalars(select(Coupon).where(Coupon.run_id == run_id)))
    assert len(coupons) == 4
    assert all(c.schedule_id is None and c.redeemed_at is None for c in coupons)


# --- 401 / 403 / 404 ---------------------------------------------------------------------------


def endpoints(
    instance_id: str, schedule_id: str, body: dict[str, Any]
) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", collection(instance_id), None),
        ("POST", collection(instance_id), body),
        ("GET", item(instance_id, schedule_id), None),
        ("PUT", item(instance_id, schedule_id), body),
        ("DELETE", item(instance_id, schedule_id), None),
        ("GET", item(instance_id, schedule_id) + "/generate_url", None),
    ]


def test_every_endpoint_without_a_token_is_401(
    client: TestClient, instance_id: str, group_id: str, schedule: Any
) -> None:
    for method, url, body in endpoints(instance_id, schedule["id"], seed_body(group_id)):
        response = client.request(method, url, json=body)
        assert_error(response, 401, "token_missing")


def test_an_expired_token_is_401(client: TestClient, auth: TokenFactory, instance_id: str) -> None:
    expired = auth(ttl=-60)
    assert_error(client.get(collection(instance_id), headers=expired), 401, "token_expired")


# Which scopes may call each endpoint (write implies read).
ALLOWED = {
    ("GET", "list"): {SCOPE_READ, SCOPE_WRITE, SCOPE_ISSUE},
    ("POST", "list"): {SCOPE_WRITE},
    ("GET", "item"): {SCOPE_READ, SCOPE_WRITE},
    ("PUT", "item"): {SCOPE_WRITE},
    ("DELETE", "item"): {SCOPE_WRITE},
    ("GET", "url"): {SCOPE_READ, SCOPE_WRITE, SCOPE_ISSUE},
}


@pytest.mark.parametrize("scope", [SCOPE_READ, SCOPE_WRITE, SCOPE_ISSUE])
def test_scopes_decide_who_may_call_what(
    client: TestClient, auth: TokenFactory, instance_id: str, group_id: str, schedule: Any, scope: str
) -> None:
    headers = auth(scopes=(scope,))
    body = seed_body(group_id)
    kinds = ["list", "list", "item", "item", "item", "url"]
    # DELETE last so the schedule is there for the others.
    calls = list(zip(endpoints(instance_id, schedule["id"], body), kinds, strict=True))
    calls.sort(key=lambda call: call[0][0] == "DELETE")
    for (method, url, payload), kind in calls:
        response = client.request(method, url, json=payload, headers=headers)
        if scope in ALLOWED[(method, kind)]:
            assert response.status_code in (200, 201, 204), (method, url, response.text)
        else:
            assert_error(response, 403, "insufficient_scope")


@pytest.mark.parametrize(
    "where", ["unknown instance", "another org's instance", "unknown schedule", "another instance's schedule"]
)
def test_every_endpoint_is_404_outside_the_callers_schedules(
    client: TestClient,
    headers: dict[str, str],
    auth: TokenFactory,
    runtime: Runtime,
    instance_id: str,
    group_id: str,
    schedule: Any,
    where: str,
) -> None:
    foreign_instance = make_instance(runtime, org="org-b")
    foreign_schedule = create_schedule(
        client, auth(org="org-b"), foreign_instance, seed_body(make_group(runtime, org="org-b"))
    )
    sibling = make_instance(runtime)
    target = {
        "unknown instance": (UNKNOWN_ID, schedule["id"]),
        "another org's instance": (foreign_instance, foreign_schedule["id"]),
        "unknown schedule": (instance_id, UNKNOWN_ID),
        "another instance's schedule": (sibling, schedule["id"]),
    }[where]
    for method, url, body in endpoints(*target, seed_body(group_id)):
        if url.endswith("coupon-schedules") and where in ("unknown schedule", "another instance's schedule"):
            continue  # collection endpoints have no schedule id
        response = client.request(method, url, json=body, headers=headers)
        assert_error(response, 404, "resource_not_found")
    # Nothing was changed or created by the refused calls.
    assert [s["id"] for s in client.get(collection(instance_id), headers=headers).json()] == [schedule["id"]]
    assert client.get(collection(sibling), headers=headers).json() == []
    assert (
        client.get(item(foreign_instance, foreign_schedule["id"]), headers=auth(org="org-b")).json()
        == foreign_schedule
    )


# --- the published OpenAPI matches the seed ----------------------------------------------------

# Verbatim from the seed (000_387e26e9321f50c8.txt), the one endpoint held as Altostrat wrote it.
SEED_SCHEMAS = """
CouponScheduleCreate:
  type: object
  required:
    - name
    - count
    - recurrence_type
    - valid_for_in_minutes
    - timezone
    - notification_group_id
  properties:
    name:
      type: string
      description: A human-readable name for the schedule.
      example: Daily Guest Passes
    count:
      type: integer
      description: The number of coupons to generate each time the schedule runs.
      minimum: 1
      maximum: 500
      example: 20
    recurrence_type:
      type: string
      enum:
        - daily
        - weekly
        - monthly
      description: How often the schedule should run.
      example: daily
    day_of_week:
      type: integer
      description: >-
        Required for 'weekly' recurrence. The day of the week to run
        (0=Sunday, 6=Saturday).
      minimum: 0
      maximum: 6
      nullable: true
      example: 1
    day_of_month:
      type: integer
      description: >-
        Required for 'monthly' recurrence. The day of the month to run
        (1-31).
      minimum: 1
      maximum: 31
      nullable: true
      example: 15
    valid_for_in_minutes:
      type: integer
      description: The number of minutes each generated coupon will be valid for.
      minimum: 1
      maximum: 90000
      example: 480
    timezone:
      type: string
      description: >-
        The timezone in which the schedule should be evaluated (e.g.,
        'America/New_York').
      example: Australia/Sydney
    notification_group_id:
      type: string
      description: The ID of a notification group to receive the generated coupons.
      example: ng_a1b2c3d4e5f6
CouponSchedule:
  type: object
  properties:
    id:
      type: string
      format: uuid
      description: The unique identifier for the coupon schedule.
      example: 1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d
    name:
      type: string
      description: A human-readable name for the schedule.
      example: Daily Guest Passes
    instance_id:
      type: string
      format: uuid
      description: The ID of the instance this schedule belongs to.
      example: 9a7f1b2c-3d4e-5f6a-7b8c-9d0e1f2a3b4c
    count:
      type: integer
      description: The number of coupons to generate each time the schedule runs.
      example: 20
    recurrence_type:
      type: string
      enum:
        - daily
        - weekly
        - monthly
      description: How often the schedule should run.
      example: daily
    day_of_week:
      type: integer
      description: >-
        Required for 'weekly' recurrence. The day of the week to run
        (0=Sunday, 6=Saturday).
      nullable: true
      example: 1
    day_of_month:
      type: integer
      description: >-
        Required for 'monthly' recurrence. The day of the month to run
        (1-31).
      nullable: true
      example: 15
    valid_for_in_minutes:
      type: integer
      description: >-
        The number of minutes each generated coupon will be valid for after
        its creation.
      example: 480
    timezone:
      type: string
      description: >-
        The timezone in which the schedule should be evaluated (e.g.,
        'America/New_York').
      example: Australia/Sydney
    notification_group_id:
      type: string
      description: The ID of a notification group to receive the generated coupons.
      example: ng_a1b2c3d4e5f6
    last_run_at:
      type: string
      format: date-time
      description: The timestamp of the last time this schedule was successfully run.
      nullable: true
      example: '2025-10-29T08:00:00Z'
    next_run_at:
      type: string
      format: date-time
      description: The calculated timestamp of the next scheduled run.
      nullable: true
      example: '2025-10-30T08:00:00Z'
    tokens_used_since_last_run:
      type: integer
      description: The number of coupons from the last run that have been redeemed.
      example: 5
    tokens_generated_since_last_run:
      type: integer
      description: The total number of coupons generated in the last run.
      example: 20
    tokens_available_since_last_run:
      type: integer
      description: The number of valid, unredeemed coupons remaining from the last run.
      example: 15
    created_at:
      type: string
      format: date-time
      description: The timestamp when the schedule was created.
      example: '2025-10-20T14:30:00Z'
"""


@pytest.fixture
def openapi(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


@pytest.mark.parametrize("name", ["CouponScheduleCreate", "CouponSchedule"])
def test_openapi_schema_is_the_seeds_plus_time_of_day(openapi: dict[str, Any], name: str) -> None:
    seed = yaml.safe_load(SEED_SCHEMAS)[name]
    published = openapi["components"]["schemas"][name]
    extension = published["properties"].pop("time_of_day")
    # [extension] The access plan's fields (guestgate.plans): the overrides, and on the
    # response the plan they make.
    plans = [published["properties"].pop("plan")]
    if name == "CouponSchedule":
        plans.append(published["properties"].pop("effective_plan"))
    assert published == seed
    assert extension["type"] == "string"
    assert extension["description"].startswith("[extension]")
    assert all(plan["description"].startswith("[extension]") for plan in plans)


def test_openapi_time_of_day_is_optional_with_midnight_default(openapi: dict[str, Any]) -> None:
    schema = openapi["components"]["schemas"]["CouponScheduleCreate"]
    assert "time_of_day" not in schema["required"]
    assert schema["properties"]["time_of_day"]["default"] == "00:00"
    assert re.fullmatch(schema["properties"]["time_of_day"]["pattern"], "23:59")
    assert not re.fullmatch(schema["properties"]["time_of_day"]["pattern"], "24:00")


def test_openapi_put_operation_is_the_seeds(openapi: dict[str, Any]) -> None:
    put = openapi["paths"]["/captive/instances/{instanceId}/coupon-schedules/{scheduleId}"]["put"]
    assert put["tags"] == ["Coupon Schedules"]
    assert put["summary"] == "Update a coupon schedule"
    assert put["description"] == "Updates the configuration of an existing coupon schedule."
    assert put["operationId"] == "updateCouponSchedule"
    assert [(p["name"], p["in"], p["required"]) for p in put["parameters"]] == [
        ("instanceId", "path", True),
        ("scheduleId", "path", True),
    ]
    assert put["parameters"][0]["description"] == "The unique identifier for the captive portal instance."
    assert put["parameters"][1]["description"] == "The unique identifier for the coupon schedule."
    assert put["requestBody"]["required"] is True
    assert put["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CouponScheduleCreate"
    }
    ok = put["responses"]["200"]
    assert ok["description"] == "The coupon schedule was updated successfully."
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CouponSchedule"}
    for status, name in [
        ("400", "BadRequest"),
        ("401", "Unauthorized"),
        ("403", "Forbidden"),
        ("404", "NotFound"),
        ("500", "ServerError"),
    ]:
        assert put["responses"][status] == {"$ref": f"#/components/responses/{name}"}
    assert put["security"] == [{"bearerAuth": []}]


def test_openapi_operations_of_the_domain(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    base = "/captive/instances/{instanceId}/coupon-schedules"
    found = {
        (path, method): (operation["operationId"], operation["tags"])
        for path, item in paths.items()
        for method, operation in item.items()
        if path.startswith(base) or path == "/captive/coupons"
    }
    schedules = ["Coupon Schedules"]
    expected = {
        (base, "get"): ("listCouponSchedules", schedules),
        (base, "post"): ("createCouponSchedule", schedules),
        (base + "/{scheduleId}", "get"): ("getCouponSchedule", schedules),
        (base + "/{scheduleId}", "put"): ("updateCouponSchedule", schedules),
        (base + "/{scheduleId}", "delete"): ("deleteCouponSchedule", schedules),
        (base + "/{scheduleId}/generate_url", "get"): ("generateCouponScheduleUrl", schedules),
        (base + "/{scheduleId}/run", "post"): ("runCouponSchedule", schedules),
        (base + "/{scheduleId}/revoke_urls", "post"): ("revokeCouponScheduleUrls", schedules),
        ("/captive/coupons", "get"): ("getPublicCoupons", ["Public Coupon URLs"]),
    }
    assert {key: found[key] for key in expected} == expected
    public = paths["/captive/coupons"]["get"]
    assert public["security"] == []
    format_param = next(p for p in public["parameters"] if p["name"] == "format")
    assert format_param["schema"]["anyOf"][0]["enum"] == ["json", "csv", "pdf", "html"]
