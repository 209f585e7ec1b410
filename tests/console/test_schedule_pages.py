"""Console schedule pages: create/edit with the next five runs in the schedule's zone, run now, deliveries."""

from __future__ import annotations

import re
import socket
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from guestgate.config import Settings
from guestgate.coupons.models import Coupon
from guestgate.db import utcnow
from guestgate.notifications import delivery
from guestgate.notifications import service as group_service
from guestgate.notifications.models import Delivery
from guestgate.notifications.schemas import NotificationGroupIn, WebhookIn
from guestgate.runtime import Runtime
from guestgate.schedules.models import CouponSchedule
from tests.utils.console import MemberFactory, Org, make_org, sign_in
from tests.utils.settings import make_settings

SECRET = "a webhook secret of some length"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Webhooks on loopback pass the outbound policy (the closed port below)."""
    return make_settings(db_url, tmp_path / "var", outbound_allow_networks="127.0.0.0/8")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _group(runtime: Runtime, org: Org, *, hook: str | None = None) -> str:
    hooks = [WebhookIn(url=hook, secret=SecretStr(SECRET))] if hook else []
    with runtime.sessions() as session:
        return group_service.create(
            NotificationGroupIn(name="Front desk", emails=["desk@example.com"], webhooks=hooks),
            org_id=org.id,
            box=runtime.box,
            outbound=runtime.outbound,
            session=session,
        ).id


def _form(csrf: str, group: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": csrf,
        "name": "Monday passes",
        "count": "5",
        "valid_for_in_minutes": "480",
        "recurrence_type": "weekly",
        "day_of_week": "1",
        "time_of_day": "08:00",
        "timezone": "Australia/Sydney",
        "notification_group_id": group,
    }
    form.update(changes)
    return form


def _expected_mondays(now: datetime, count: int = 5) -> list[str]:
    """The next `count` Mondays at 08:00 in Sydney after `now`, as the page writes them."""
    zone = ZoneInfo("Australia/Sydney")
    local = now.astimezone(zone)
    day = local.date()
    found: list[str] = []
    while len(found) < count:
        if day.weekday() == 0:
            slot = datetime(day.year, day.month, day.day, 8, 0, tzinfo=zone)
            if slot > now:
                found.append(f"Mon {slot:%Y-%m-%d %H:%M} {slot.tzname()}")
        day += timedelta(days=1)
    return found


def test_admin_creates_a_schedule_and_sees_its_next_five_runs_in_its_zone(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    group = _group(runtime, org)
    csrf = sign_in(client, member("org-a", "admin"))
    assert client.get(f"/console/schedules/new?instance={org.instance_id}").status_code == 200
    created = client.post(
        f"/console/schedules/{org.instance_id}", data=_form(csrf, group), follow_redirects=False
    )
    assert created.status_code == 303, created.text
    page = client.get(created.headers["location"])
    listed = re.search(r'<ol id="next-runs">(.*?)</ol>', page.text, re.S)
    assert listed is not None
    assert re.findall(r"<li>([^<]+)</li>", listed.group(1)) == _expected_mondays(utcnow())
    assert "Monday passes" in client.get(f"/console/schedules?instance={org.instance_id}").text
    # Edited to daily at 23:30: the runs follow.
    edited = client.post(
        created.headers["location"],
        data=_form(csrf, group, recurrence_type="daily", time_of_day="23:30", day_of_week=""),
        follow_redirects=False,
    )
    assert edited.status_code == 303
    runs = re.findall(r"<li>([^<]+)</li>", client.get(created.headers["location"]).text)
    assert len(runs) == 5 and all(" 23:30 AE" in run for run in runs)


def test_schedule_errors_are_shown_next_to_their_field(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    group = _group(runtime, org)
    csrf = sign_in(client, member("org-a", "admin"))
    cases = [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"day_of_week": ""}, "day_of_week"),
        ({"time_of_day": "25:00"}, "time_of_day"),
        ({"count": "0"}, "count"),
        ({"notification_group_id": "ng_000000000000"}, "notification_group_id"),
    ]
    for changes, field in cases:
        bad = client.post(f"/console/schedules/{org.instance_id}", data=_form(csrf, group, **changes))
        assert bad.status_code == 400, (field, bad.status_code)
        assert f'id="{field}-error"' in bad.text, field
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(CouponSchedule)) == 0


def test_run_now_makes_a_batch_and_the_deliveries_show_their_retry_state(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    group = _group(runtime, org, hook=f"http://127.0.0.1:{_closed_port()}/hook")
    csrf = sign_in(client, member("org-a", "admin"))
    created = client.post(
        f"/console/schedules/{org.instance_id}", data=_form(csrf, group), follow_redirects=False
    )
    path = created.headers["location"]
    ran = client.post(f"{path}/run", data={"csrf_token": csrf})
    assert ran.status_code == 200
    assert "Made 5 coupons; their deliveries are queued." in ran.text
    assert ran.text.count("queued</td>") == 2
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Coupon)) == 5
    report = delivery.deliver_due_sync(runtime=runtime, now=utcnow())
    assert (report.sent, report.retried) == (1, 1)  # the e-mail went to the outbox; the hook is down
    page = client.get(path)
    assert ">sent</td>" in page.text
    with runtime.sessions() as session:
        hook = session.scalars(select(Delivery).where(Delivery.channel == "webhook")).one()
    zone = ZoneInfo("Australia/Sydney")
    retry = hook.next_attempt_at.astimezone(zone)
    assert f"retry at {retry:%Y-%m-%d %H:%M} {retry.tzname()}" in page.text
    assert "connection refused" in page.text.lower() or "could not connect" in page.text.lower()


def test_a_viewer_reads_a_schedule_but_cannot_run_it(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    org = make_org(runtime, "org-a")
    group = _group(runtime, org)
    admin = TestClient(client.app)
    csrf = sign_in(admin, member("org-a", "admin"))
    path = admin.post(
        f"/console/schedules/{org.instance_id}", data=_form(csrf, group), follow_redirects=False
    ).headers["location"]
    viewer_csrf = sign_in(client, member("org-a", "viewer"))
    page = client.get(path)
    assert page.status_code == 200 and "Run now" not in page.text and "<fieldset disabled>" in page.text
    assert client.post(f"{path}/run", data={"csrf_token": viewer_csrf}).status_code == 403
