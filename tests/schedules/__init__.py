"""Tests of the coupon schedules domain, and the helpers they share."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from fastapi.testclient import TestClient

from guestgate.coupons.models import Coupon
from guestgate.instances import service as instance_service
from guestgate.instances.schemas import InstanceCreate
from guestgate.notifications.models import NotificationGroup
from guestgate.orgs import service as org_service
from guestgate.runtime import Runtime
from guestgate.schedules.models import CouponSchedule, ScheduleRun
from tests.utils.settings import TokenFactory

# Distinct coupon codes across every run a test records (codes are unique per instance).
_CODES = itertools.count(1)
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
}
SCHEDULE_FIELDS = {
    "id",
    "name",
    "instance_id",
    "count",
    "recurrence_type",
    "day_of_week",
    "day_of_month",
    "valid_for_in_minutes",
    "timezone",
    "notification_group_id",
    "time_of_day",
    "last_run_at",
    "next_run_at",
    "tokens_used_since_last_run",
    "tokens_generated_since_last_run",
    "tokens_available_since_last_run",
    "created_at",
    # [extension] The schedule's plan overrides and the plan its next codes get.
    "plan",
    "effective_plan",
}


def seed_body(group_id: str, **overrides: object) -> dict[str, Any]:
    """The seed's example CouponScheduleCreate, with a real notification group."""
    body: dict[str, Any] = {
        "name": "Daily Guest Passes",
        "count": 20,
        "recurrence_type": "daily",
        "day_of_week": 1,
        "day_of_month": 15,
        "valid_for_in_minutes": 480,
        "timezone": "Australia/Sydney",
        "notification_group_id": group_id,
    }
    body.update(overrides)
    return body


def make_instance(runtime: Runtime, *, org: str = "org-a") -> str:
    """A coupon instance of `org`, created through the instances service."""
    with runtime.sessions() as session:
        data = InstanceCreate(name="Lobby", strategy="coupon", session_ttl=3600)
        return instance_service.create(data, org_id=org, session=session).instance.id


def make_group(runtime: Runtime, *, org: str = "org-a") -> str:
    """A notification group row of `org` (inserted directly: its API is another domain's)."""
    group_id = "ng_" + secrets.token_hex(6)
    with runtime.sessions() as session:
        org_service.ensure(org, session=session)
        session.add(NotificationGroup(id=group_id, org_id=org, name="Front desk", emails=[], webhooks=[]))
        session.commit()
    return group_id


def add_run(
    runtime: Runtime,
    schedule_id: str,
    *,
    ran_at: datetime,
    valid: int = 0,
    redeemed: int = 0,
    expired: int = 0,
    make_last: bool = True,
) -> str:
    """Record a run of the schedule with coupons in each state; optionally make it the last run."""
    with runtime.sessions() as session:
        schedule = session.get(CouponSchedule, schedule_id)
        assert schedule is not None
        count = valid + redeemed + expired
        run = ScheduleRun(
            org_id=schedule.org_id,
            instance_id=schedule.instance_id,
            schedule_id=schedule.id,
            slot_at=ran_at,
            kind="scheduled",
            count=count,
            valid_for_in_minutes=60,
            ran_at=ran_at,
        )
        session.add(run)
        session.flush()
        states = ["valid"] * valid + ["redeemed"] * redeemed + ["expired"] * expired
        for i, state in enumerate(states):
            session.add(
                Coupon(
                    org_id=schedule.org_id,
                    instance_id=schedule.instance_id,
                    schedule_id=schedule.id,
                    run_id=run.id,
                    code=f"T{next(_CODES):05d}",
                    expires_at=ran_at + (timedelta(minutes=-1) if state == "expired" else timedelta(days=1)),
                    redeemed_at=ran_at if state == "redeemed" else None,
                    created_at=ran_at + timedelta(seconds=i),
                )
            )
        if make_last:
            schedule.last_run_id = run.id
            schedule.last_run_at = ran_at
        session.commit()
        return run.id


def create_schedule(
    client: TestClient, headers: dict[str, str], instance_id: str, body: dict[str, Any]
) -> Any:
    """POST a schedule and return its JSON, asserting 201."""
    response = client.post(f"/captive/instances/{instance_id}/coupon-schedules", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def assert_error(response: Any, status: int, code: str, message: str | None = None) -> None:
    """The contract's error body with this status and code (and message, when given)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "code", "message", "doc_url"}
    assert body["type"] == ERROR_TYPES[status]
    assert body["code"] == code
    assert body["doc_url"] == f"http://testserver/errors/{code}"
    if message is not None:
        assert body["message"] == message


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """An aware UTC datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# Tokens minted long before, valid long after, every moment the tests travel to with time-machine.
TOKEN_ISSUED_AT = datetime(2020, 1, 1, tzinfo=UTC)
TOKEN_TTL_SECONDS = 30 * 365 * 24 * 3600


def time_travel_proof(auth: TokenFactory) -> TokenFactory:
    """`auth` minting tokens that stay valid at any frozen time from 2020 to 2049."""

    def make(**kwargs: Any) -> dict[str, str]:
        with time_machine.travel(TOKEN_ISSUED_AT, tick=False):
            return auth(**{"ttl": TOKEN_TTL_SECONDS, **kwargs})

    return make
