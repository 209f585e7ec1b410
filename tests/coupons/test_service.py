"""Coupon service: unique codes per instance, expiry, listing of valid coupons, pagination."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from guestgate.auth_integrations.models import AuthIntegration
from guestgate.coupons import codes, service
from guestgate.coupons.models import Coupon
from guestgate.coupons.schemas import CouponCreate
from guestgate.errors import InternalError, InvalidRequest, NotFound
from guestgate.instances import service as instance_service
from guestgate.instances.schemas import InstanceCreate
from guestgate.orgs import service as org_service
from guestgate.pagination import PageRequest
from guestgate.runtime import Runtime
from guestgate.schedules.models import ScheduleRun

NOW = datetime(2025, 10, 29, 8, 0, tzinfo=UTC)


@pytest.fixture
def session(runtime: Runtime) -> Iterator[Session]:
    with runtime.sessions() as opened:
        yield opened


def make_instance(session: Session, *, org: str = "org-a", name: str = "Lobby") -> str:
    data = InstanceCreate(name=name, strategy="coupon", session_ttl=3600)
    return instance_service.create(data, org_id=org, session=session).instance.id


@pytest.fixture
def instance_id(session: Session) -> str:
    return make_instance(session)


def scripted_codes(monkeypatch: pytest.MonkeyPatch, *scripted: str) -> None:
    """Make the draw return `scripted` first, then random codes."""
    queue = list(scripted)
    real = codes.generate
    monkeypatch.setattr(codes, "generate", lambda: queue.pop(0) if queue else real())


def generate(
    session: Session, instance_id: str, count: int, *, now: datetime = NOW, minutes: int = 60
) -> list[Coupon]:
    batch = service.generate_batch(
        org_id="org-a", instance_id=instance_id, count=count, valid_minutes=minutes, now=now, session=session
    )
    session.commit()
    return batch


def test_generate_batch_creates_count_coupons_with_distinct_codes(session: Session, instance_id: str) -> None:
    batch = generate(session, instance_id, 200)
    assert len(batch) == 200
    assert len({c.code for c in batch}) == 200
    assert all(codes.normalize(c.code) == c.code for c in batch)
    stored = session.scalars(select(Coupon.code).where(Coupon.instance_id == instance_id)).all()
    assert sorted(stored) == sorted(c.code for c in batch)


def test_generate_batch_sets_expiry_from_now_and_leaves_unredeemed(
    session: Session, instance_id: str
) -> None:
    batch = generate(session, instance_id, 3, minutes=90)
    for coupon in batch:
        assert coupon.created_at == NOW
        assert coupon.expires_at == datetime(2025, 10, 29, 9, 30, tzinfo=UTC)
        assert coupon.redeemed_at is None
        assert coupon.org_id == "org-a"
        assert coupon.schedule_id is None
        assert coupon.run_id is None
    session.expire_all()
    reloaded = session.get(Coupon, batch[0].id)
    assert reloaded is not None
    assert reloaded.expires_at == datetime(2025, 10, 29, 9, 30, tzinfo=UTC)


def test_generate_batch_flushes_without_committing(
    session: Session, instance_id: str, runtime: Runtime
) -> None:
    batch = service.generate_batch(
        org_id="org-a", instance_id=instance_id, count=2, valid_minutes=5, now=NOW, session=session
    )
    assert session.scalar(select(Coupon.id).where(Coupon.id == batch[0].id)) == batch[0].id
    session.rollback()
    with runtime.sessions() as other:
        assert other.scalars(select(Coupon)).all() == []


def test_generate_batch_redraws_a_code_the_instance_already_has(
    session: Session, instance_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted_codes(monkeypatch, "AAAAAA")
    generate(session, instance_id, 1)
    scripted_codes(monkeypatch, "AAAAAA", "BBBBBB", "CCCCCC")
    batch = generate(session, instance_id, 2)
    assert sorted(c.code for c in batch) == ["BBBBBB", "CCCCCC"]


def test_generate_batch_redraws_a_code_repeated_within_the_batch(
    session: Session, instance_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted_codes(monkeypatch, "DDDDDD", "DDDDDD", "EEEEEE", "DDDDDD", "FFFFFF")
    batch = generate(session, instance_id, 3)
    assert sorted(c.code for c in batch) == ["DDDDDD", "EEEEEE", "FFFFFF"]


def test_generate_batch_allows_a_code_another_instance_uses(
    session: Session, instance_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_instance(session, name="Bar")
    scripted_codes(monkeypatch, "GGGGGG", "GGGGGG")
    generate(session, other, 1)
    batch = generate(session, instance_id, 1)
    assert [c.code for c in batch] == ["GGGGGG"]


def test_generate_batch_gives_up_when_every_draw_is_taken(
    session: Session, instance_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted_codes(monkeypatch, "HHHHHH")
    generate(session, instance_id, 1)
    monkeypatch.setattr(codes, "generate", lambda: "HHHHHH")
    with pytest.raises(InternalError):
        generate(session, instance_id, 1)


def test_generate_batch_inserts_in_one_statement_without_reading_first(
    session: Session, instance_id: str
) -> None:
    generate(session, instance_id, 50)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb != "BEGIN":
            statements.append(verb)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        generate(session, instance_id, 200)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert statements == ["INSERT"]


def test_generate_batch_of_zero_creates_nothing(session: Session, instance_id: str) -> None:
    assert generate(session, instance_id, 0) == []
    assert session.scalars(select(Coupon)).all() == []


def test_generate_batch_records_schedule_and_run(session: Session, instance_id: str) -> None:
    from guestgate.notifications.models import NotificationGroup
    from guestgate.schedules.models import CouponSchedule, ScheduleRun

    session.add(NotificationGroup(id="ng_a1b2c3d4e5f6", org_id="org-a", name="Desk"))
    session.flush()
    schedule = CouponSchedule(
        org_id="org-a",
        instance_id=instance_id,
        name="Daily",
        count=2,
        recurrence_type="daily",
        valid_for_in_minutes=60,
        timezone="UTC",
        notification_group_id="ng_a1b2c3d4e5f6",
    )
    session.add(schedule)
    session.flush()
    run = ScheduleRun(
        org_id="org-a",
        instance_id=instance_id,
        schedule_id=schedule.id,
        kind="manual",
        count=2,
        valid_for_in_minutes=60,
    )
    session.add(run)
    session.flush()
    batch = service.generate_batch(
        org_id="org-a",
        instance_id=instance_id,
        count=2,
        valid_minutes=60,
        now=NOW,
        session=session,
        schedule_id=schedule.id,
        run_id=run.id,
    )
    session.commit()
    assert {(c.schedule_id, c.run_id) for c in batch} == {(schedule.id, run.id)}


def test_create_batch_commits_the_coupons(session: Session, instance_id: str, runtime: Runtime) -> None:
    made = service.create_batch(
        instance_id, CouponCreate(minutes_valid=30, count=4), org_id="org-a", now=NOW, session=session
    )
    assert len(made.coupons) == 4
    assert {c.expires_at for c in made.coupons} == {NOW + timedelta(minutes=30)}
    assert {c.run_id for c in made.coupons} == {made.batch.id}
    assert (made.batch.kind, made.batch.schedule_id, made.batch.count) == ("api", None, 4)
    assert (made.batch.valid_for_in_minutes, made.batch.ran_at) == (30, NOW)
    with runtime.sessions() as other:
        assert len(other.scalars(select(Coupon)).all()) == 4
        assert other.get(ScheduleRun, made.batch.id) is not None


def test_create_batch_rejects_an_oauth2_instance(session: Session, runtime: Runtime) -> None:
    org_service.ensure("org-a", session=session)
    integration = AuthIntegration(
        org_id="org-a",
        name="Google",
        type="google",
        client_id="cid",
        client_secret_sealed=runtime.box.seal("s"),
    )
    session.add(integration)
    session.flush()
    data = InstanceCreate(name="SSO", strategy="oauth2", session_ttl=3600, auth_integration_id=integration.id)
    instance = instance_service.create(data, org_id="org-a", session=session).instance
    with pytest.raises(InvalidRequest, match="strategy is 'coupon'"):
        service.create_batch(
            instance.id, CouponCreate(minutes_valid=30, count=1), org_id="org-a", now=NOW, session=session
        )
    assert session.scalars(select(Coupon)).all() == []


def test_create_batch_for_another_orgs_instance_is_not_found(session: Session) -> None:
    theirs = make_instance(session, org="org-b")
    with pytest.raises(NotFound):
        service.create_batch(
            theirs, CouponCreate(minutes_valid=30, count=1), org_id="org-a", now=NOW, session=session
        )


def test_list_valid_excludes_redeemed_and_expired_coupons(session: Session, instance_id: str) -> None:
    redeemed, fresh, expiring = generate(session, instance_id, 3, minutes=60)
    session.execute(
        update(Coupon).where(Coupon.id == redeemed.id).values(redeemed_at=NOW + timedelta(minutes=1))
    )
    session.execute(
        update(Coupon).where(Coupon.id == expiring.id).values(expires_at=NOW + timedelta(minutes=30))
    )
    session.commit()

    def valid_at(moment: datetime) -> set[str]:
        page = service.list_valid(
            instance_id, org_id="org-a", now=moment, page=PageRequest(), session=session
        )
        return {c.id for c in page.items}

    assert valid_at(NOW + timedelta(minutes=29)) == {fresh.id, expiring.id}
    # Expired means at or after expires_at.
    assert valid_at(NOW + timedelta(minutes=30)) == {fresh.id}
    assert valid_at(NOW + timedelta(minutes=60)) == set()


def test_list_valid_lists_only_this_instances_coupons(session: Session, instance_id: str) -> None:
    other = make_instance(session, name="Bar")
    mine = generate(session, instance_id, 2)
    generate(session, other, 2)
    page = service.list_valid(instance_id, org_id="org-a", now=NOW, page=PageRequest(), session=session)
    assert {c.id for c in page.items} == {c.id for c in mine}


def test_list_valid_is_newest_first(session: Session, instance_id: str) -> None:
    first = generate(session, instance_id, 2, now=NOW)
    second = generate(session, instance_id, 2, now=NOW + timedelta(minutes=5))
    third = generate(session, instance_id, 2, now=NOW + timedelta(minutes=10))
    page = service.list_valid(
        instance_id, org_id="org-a", now=NOW + timedelta(minutes=11), page=PageRequest(), session=session
    )
    listed = [c.id for c in page.items]
    assert set(listed[:2]) == {c.id for c in third}
    assert set(listed[2:4]) == {c.id for c in second}
    assert set(listed[4:]) == {c.id for c in first}
    # Within one batch (same created_at) the id breaks the tie, descending.
    assert listed[:2] == sorted(listed[:2], reverse=True)
    assert page.next_cursor is None


def test_list_valid_pages_with_limit_and_cursor(session: Session, instance_id: str) -> None:
    for minute in range(5):
        generate(session, instance_id, 1, now=NOW + timedelta(minutes=minute))
    seen: list[str] = []
    page = PageRequest(limit=2)
    sizes = []
    while True:
        result = service.list_valid(instance_id, org_id="org-a", now=NOW, page=page, session=session)
        sizes.append(len(result.items))
        seen += [c.id for c in result.items]
        if result.next_cursor is None:
            break
        page = PageRequest.parse(2, result.next_cursor)
    assert sizes == [2, 2, 1]
    everything = service.list_valid(instance_id, org_id="org-a", now=NOW, page=PageRequest(), session=session)
    assert seen == [c.id for c in everything.items]


def test_list_valid_for_unknown_instance_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound):
        service.list_valid(
            "00000000-0000-4000-8000-000000000000",
            org_id="org-a",
            now=NOW,
            page=PageRequest(),
            session=session,
        )


def test_list_valid_uses_the_partial_unredeemed_index(session: Session, instance_id: str) -> None:
    generate(session, instance_id, 20)
    captured: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if "FROM coupons" in statement:
            captured.append((statement, parameters))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        service.list_valid(instance_id, org_id="org-a", now=NOW, page=PageRequest(limit=5), session=session)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    ((statement, parameters),) = captured
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        plan = " ".join(
            str(row) for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        )
    else:
        # On a tiny table a sequential scan is cheaper; forbid it to see which index is chosen.
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = " ".join(str(row) for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters))
    assert "ix_coupons_unredeemed" in plan


def test_to_out_renders_the_contract_fields(session: Session, instance_id: str) -> None:
    (coupon,) = generate(session, instance_id, 1, minutes=90)
    out = service.to_out(coupon).model_dump(mode="json")
    assert out == {
        "id": coupon.id,
        "code": coupon.code,
        "expires_at": "2025-10-29T09:30:00Z",
        "redeemed_at": None,
        "created_at": "2025-10-29T08:00:00Z",
        # [extension] The plan the code was made with (the default), and its sign-ins so far.
        "uses": 0,
        "plan": {
            "max_devices": 1,
            "max_uses": 1,
            "download_kbps": None,
            "upload_kbps": None,
            "data_limit_mb": None,
            "validity_from": "creation",
        },
    }
