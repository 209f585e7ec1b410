"""Site user service: computed expiry, the expiry job (batches, idempotence), disconnect races, filters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from guestgate.errors import ParameterInvalid
from guestgate.runtime import Runtime
from guestgate.site_users import service
from guestgate.site_users.models import SiteUser
from guestgate.site_users.schemas import SessionFilter, normalize_ip, normalize_mac, parse_rfc3339
from guestgate.sites import service as site_service
from guestgate.sites.schemas import SiteIn

NOW = datetime(2025, 10, 29, 8, 0, tzinfo=UTC)
INSTANCE_ID = "9a7f1b2c-3d4e-4f6a-8b8c-9d0e1f2a3b4c"


def add_user(session: Session, site_id: str, *, org: str = "org-a", **fields: Any) -> SiteUser:
    """Insert a session row directly (the guest portal creates them in production) and commit."""
    now: datetime = fields.pop("now", NOW)
    values: dict[str, Any] = {
        "org_id": org,
        "site_id": site_id,
        "instance_id": INSTANCE_ID,
        "ip_address": "10.0.0.5",
        "strategy": "coupon",
        "status": "active",
        "started_at": now - timedelta(minutes=10),
        "expires_at": now + timedelta(hours=1),
        **fields,
    }
    user = SiteUser(**values)
    session.add(user)
    session.commit()
    return user


@pytest.fixture
def session(runtime: Runtime) -> Iterator[Session]:
    with runtime.sessions() as opened:
        yield opened


@pytest.fixture
def site_id(session: Session, runtime: Runtime) -> str:
    site = site_service.create(
        SiteIn(name="HQ", subnets=["10.0.0.0/24"]),
        org_id="org-a",
        box=runtime.box,
        rules=runtime.gateway_rules,
        session=session,
    )
    return site.id


def test_active_row_past_expiry_is_reported_expired_with_ended_at_its_expiry(
    session: Session, site_id: str
) -> None:
    user = add_user(session, site_id, expires_at=NOW)
    assert service.effective_status(user, now=NOW - timedelta(seconds=1)) == "active"
    assert service.effective_status(user, now=NOW) == "expired"
    out = service.to_out(user, now=NOW)
    assert out.status == "expired"
    assert out.ended_at == NOW


def test_stored_status_other_than_active_is_reported_as_is(session: Session, site_id: str) -> None:
    ended = NOW - timedelta(minutes=5)
    user = add_user(
        session, site_id, status="disconnected", ended_at=ended, expires_at=NOW + timedelta(hours=1)
    )
    out = service.to_out(user, now=NOW)
    assert (out.status, out.ended_at) == ("disconnected", ended)


def test_to_out_renders_mac_lowercase_and_identity(session: Session, site_id: str) -> None:
    identity = {"provider": "google", "subject": "1234", "email": "ana@example.com", "name": "Ana"}
    user = add_user(session, site_id, mac_address="AA:BB:CC:DD:EE:FF", strategy="oauth2", identity=identity)
    out = service.to_out(user, now=NOW)
    assert out.mac_address == "aa:bb:cc:dd:ee:ff"
    assert out.identity is not None and out.identity.model_dump() == identity
    assert out.coupon_id is None


def test_expire_sessions_ends_only_active_sessions_past_expiry(session: Session, site_id: str) -> None:
    due_earlier = add_user(session, site_id, expires_at=NOW - timedelta(hours=1))
    due_now = add_user(session, site_id, expires_at=NOW)
    running = add_user(session, site_id, expires_at=NOW + timedelta(seconds=1))
    gone = add_user(
        session,
        site_id,
        status="disconnected",
        ended_at=NOW - timedelta(hours=2),
        end_reason="operator",
        expires_at=NOW - timedelta(hours=1),
    )
    assert service.expire_sessions(now=NOW, session=session) == 2
    rows = {
        row.id: row for row in session.scalars(select(SiteUser).execution_options(populate_existing=True))
    }
    for user in (due_earlier, due_now):
        assert (rows[user.id].status, rows[user.id].end_reason) == ("expired", "expired")
        assert rows[user.id].ended_at == user.expires_at
    assert (rows[running.id].status, rows[running.id].ended_at) == ("active", None)
    assert (rows[gone.id].status, rows[gone.id].end_reason) == ("disconnected", "operator")


def test_expire_sessions_twice_changes_nothing_the_second_time(session: Session, site_id: str) -> None:
    add_user(session, site_id, expires_at=NOW - timedelta(minutes=1))
    assert service.expire_sessions(now=NOW, session=session) == 1
    before = [(r.id, r.status, r.ended_at) for r in session.scalars(select(SiteUser))]
    assert service.expire_sessions(now=NOW, session=session) == 0
    session.expire_all()
    assert [(r.id, r.status, r.ended_at) for r in session.scalars(select(SiteUser))] == before


@pytest.mark.parametrize(("due", "batch", "updates"), [(5, 2, [2, 2, 1]), (4, 2, [2, 2, 0]), (3, 10, [3])])
def test_expire_sessions_works_in_bounded_batches(
    session: Session, site_id: str, runtime: Runtime, due: int, batch: int, updates: list[int]
) -> None:
    for i in range(due):
        add_user(session, site_id, ip_address=f"10.0.0.{i + 1}", expires_at=NOW - timedelta(minutes=i + 1))
    add_user(session, site_id, ip_address="10.0.0.200", expires_at=NOW + timedelta(hours=1))
    touched: list[int] = []

    def record(conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE SITE_USERS"):
            touched.append(cursor.rowcount)

    event.listen(runtime.engine, "after_cursor_execute", record)
    try:
        assert service.expire_sessions(now=NOW, session=session, batch=batch) == due
    finally:
        event.remove(runtime.engine, "after_cursor_execute", record)
    assert touched == updates
    statuses = sorted(
        r.status for r in session.scalars(select(SiteUser).execution_options(populate_existing=True))
    )
    assert statuses == ["active"] + ["expired"] * due


def test_expire_sessions_rejects_a_batch_below_one(session: Session) -> None:
    with pytest.raises(ValueError, match="batch"):
        service.expire_sessions(now=NOW, session=session, batch=0)


def test_disconnect_ends_an_active_session_now_for_the_operator(session: Session, site_id: str) -> None:
    user = add_user(session, site_id)
    result = service.disconnect(site_id, user.id, org_id="org-a", now=NOW, session=session)
    assert (result.status, result.ended_at, result.end_reason) == ("disconnected", NOW, "operator")


def test_disconnect_of_a_session_past_expiry_leaves_it_expired(session: Session, site_id: str) -> None:
    user = add_user(session, site_id, expires_at=NOW)
    result = service.disconnect(site_id, user.id, org_id="org-a", now=NOW, session=session)
    assert (result.status, result.ended_at, result.end_reason) == ("active", None, None)
    assert service.to_out(result, now=NOW).status == "expired"


def test_disconnect_never_overwrites_a_concurrent_end(
    session: Session, site_id: str, runtime: Runtime
) -> None:
    user = add_user(session, site_id)
    assert user.status == "active"  # loaded in this session, now stale once the other one commits
    with runtime.sessions() as other:
        other.execute(
            update(SiteUser)
            .where(SiteUser.id == user.id)
            .values(status="disconnected", ended_at=NOW - timedelta(seconds=5), end_reason="instance_deleted")
        )
        other.commit()
    result = service.disconnect(site_id, user.id, org_id="org-a", now=NOW, session=session)
    assert (result.status, result.end_reason) == ("disconnected", "instance_deleted")
    assert result.ended_at == NOW - timedelta(seconds=5)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("10.0.0.5", "10.0.0.5"),
        (" 10.0.0.5 ", "10.0.0.5"),
        ("2001:DB8:0::1", "2001:db8::1"),
        ("::ffff:10.0.0.5", "10.0.0.5"),
    ],
)
def test_ip_filter_is_canonicalised(given: str, canonical: str) -> None:
    assert normalize_ip(given) == canonical


@pytest.mark.parametrize(
    "given", ["aa:bb:cc:dd:ee:ff", "AA:BB:CC:DD:EE:FF", "aa-bb-cc-dd-ee-ff", "AABB.CCDD.EEFF", "aabbccddeeff"]
)
def test_mac_filter_accepts_the_usual_forms(given: str) -> None:
    assert normalize_mac(given) == "aa:bb:cc:dd:ee:ff"


@pytest.mark.parametrize(
    "given", ["aa:bb-cc:dd:ee:ff", "aa:bb:cc:dd:ee", "gg:bb:cc:dd:ee:ff", "aabb.ccdd.eef", "a:b:c:d:e:f", ""]
)
def test_mac_filter_rejects_other_text(given: str) -> None:
    with pytest.raises(ValueError):
        normalize_mac(given)


@pytest.mark.parametrize(
    ("given", "moment"),
    [
        ("2025-10-29T08:00:00Z", NOW),
        ("2025-10-29t10:00:00+02:00", NOW),
        ("2025-10-29T08:00:00.5z", NOW + timedelta(milliseconds=500)),
    ],
)
def test_since_accepts_rfc3339_with_an_offset(given: str, moment: datetime) -> None:
    parsed = parse_rfc3339(given)
    assert parsed == moment and parsed.tzinfo == UTC


@pytest.mark.parametrize(
    "given",
    [
        "2025-10-29",
        "2025-10-29T08:00:00",
        "2025-10-29 08:00:00Z",
        "2025-13-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",
    ],
)
def test_since_rejects_anything_else(given: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(given)


def test_filter_parse_names_the_bad_parameter() -> None:
    with pytest.raises(ParameterInvalid) as raised:
        SessionFilter.parse(ip_address="10.0.0.1", mac_address="nope")
    assert raised.value.param == "mac_address"
    parsed = SessionFilter.parse(status="active", ip_address="10.0.0.1", since="2025-10-29T08:00:00Z")
    assert parsed == SessionFilter(status="active", ip_address="10.0.0.1", mac_address=None, since=NOW)
