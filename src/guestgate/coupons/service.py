"""Coupons: batch generation with instance-unique codes, and the listing of valid ones."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from guestgate.audit import service as audit_service
from guestgate.coupons import batches, codes
from guestgate.coupons.models import Coupon
from guestgate.coupons.schemas import Coupon as CouponOut
from guestgate.coupons.schemas import CouponCreate
from guestgate.db import new_id
from guestgate.errors import InternalError, InvalidRequest
from guestgate.instances import service as instance_service
from guestgate.ops import metrics
from guestgate.pagination import MAX_LIMIT, Page, PageRequest, fetch_page
from guestgate.plans import service as plan_service
from guestgate.plans.schemas import PlanOut
from guestgate.schedules.models import ScheduleRun

# With 31^6 possible codes a second round is already rare; running out of rounds means the
# instance holds a sizeable share of the whole code space.
MAX_DRAW_ROUNDS = 20


def generate_batch(
    *,
    org_id: str,
    instance_id: str,
    count: int,
    valid_minutes: int,
    now: datetime,
    session: Session,
    schedule_id: str | None = None,
    run_id: str | None = None,
    plan: plan_service.Plan = plan_service.DEFAULT,
) -> list[Coupon]:
    """Insert `count` coupons with codes unique in the instance, each carrying `plan`; flushed, the
    caller commits.

    Each round is one multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING`: the unique
    constraint itself refuses a code the instance already has (or that a concurrent batch has
    just taken), and the next round draws only the shortfall. No read comes first: checking
    the codes with `code IN (...)` beforehand cost a second statement, and PostgreSQL, before
    it has statistics of a freshly filled instance, planned it as a scan of all its coupons.
    """
    made: list[Coupon] = []
    drawn: set[str] = set()
    expires_at = now + timedelta(minutes=valid_minutes)
    # With validity from first use, the sign-in moves expires_at to first use + (expires_at -
    # created_at): the code's own columns say how long it is valid for.
    plan_columns = plan_service.columns(plan)
    for _ in range(MAX_DRAW_ROUNDS):
        if len(made) >= count:
            return made
        rows = [
            {
                "id": new_id(),
                "org_id": org_id,
                "instance_id": instance_id,
                "schedule_id": schedule_id,
                "run_id": run_id,
                "code": code,
                "expires_at": expires_at,
                "created_at": now,
                **plan_columns,
            }
            for code in _draw_codes(count - len(made), avoid=drawn)
        ]
        if rows:
            made.extend(session.scalars(_insert_new(session), rows))
    if len(made) >= count:
        return made
    raise InternalError("Could not draw enough unused coupon codes for this instance.")


@dataclass(frozen=True)
class CreatedBatch:
    """A batch made through the API: its record and its coupons."""

    batch: ScheduleRun
    coupons: list[Coupon]


def create_batch(
    instance_id: str, data: CouponCreate, *, org_id: str, now: datetime, session: Session
) -> CreatedBatch:
    """Generate a batch of coupons (with its batch record) for one of the org's coupon instances, and
    commit it."""
    instance = instance_service.get(instance_id, org_id=org_id, session=session)
    if instance.strategy != "coupon":
        raise InvalidRequest("Coupons can only be created for instances whose strategy is 'coupon'.")
    overrides = data.plan.given() if data.plan is not None else None
    plan = plan_service.check(plan_service.effective(instance, overrides), prefix="plan.")
    batch = batches.record(
        org_id=org_id,
        instance_id=instance.id,
        kind=batches.API,
        count=data.count,
        minutes_valid=data.minutes_valid,
        now=now,
        session=session,
        plan=plan,
    )
    coupons = generate_batch(
        org_id=org_id,
        instance_id=instance.id,
        count=data.count,
        valid_minutes=data.minutes_valid,
        now=now,
        session=session,
        run_id=batch.id,
        plan=plan,
    )
    audit_service.record(
        session,
        org_id=org_id,
        action="coupon_batch.create",
        target_type="instance",
        target_id=instance.id,
        detail={
            "count": len(coupons),
            "minutes_valid": data.minutes_valid,
            "batch_id": batch.id,
            **({"plan": overrides} if overrides else {}),
        },
    )
    session.commit()
    metrics.batch_created(len(coupons))
    return CreatedBatch(batch, coupons)


def list_valid(
    instance_id: str, *, org_id: str, now: datetime, page: PageRequest, session: Session
) -> Page[Coupon]:
    """The instance's unredeemed, unexpired coupons, newest first."""
    instance = instance_service.get(instance_id, org_id=org_id, session=session)
    # `redeemed_at IS NULL` spelled exactly as the partial index ix_coupons_unredeemed's
    # predicate, so both planners can answer from that index in created_at order.
    stmt = select(Coupon).where(
        Coupon.instance_id == instance.id, Coupon.redeemed_at.is_(None), Coupon.expires_at > now
    )
    return fetch_page(session, stmt, page, Coupon.created_at, Coupon.id)


def valid_pages(
    instance_id: str, *, org_id: str, now: datetime, session: Session, size: int = MAX_LIMIT
) -> Iterator[list[Coupon]]:
    """Every valid coupon of the instance as of `now`, newest first, `size` at a time (keyset pages)."""
    cursor: str | None = None
    while True:
        page = list_valid(
            instance_id, org_id=org_id, now=now, page=PageRequest.parse(size, cursor), session=session
        )
        yield page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def to_out(coupon: Coupon) -> CouponOut:
    """The API representation of a coupon."""
    return CouponOut(
        id=coupon.id,
        code=coupon.code,
        expires_at=coupon.expires_at,
        redeemed_at=coupon.redeemed_at,
        created_at=coupon.created_at,
        uses=coupon.uses,
        plan=PlanOut.of(plan_service.of(coupon)),
    )


def _draw_codes(count: int, *, avoid: set[str]) -> list[str]:
    """Up to `count` distinct new codes, none of them in `avoid` (which receives them).

    Bounded: a generator stuck on codes already drawn yields fewer, and the rounds run out.
    """
    fresh: list[str] = []
    for _ in range(2 * count + 8):
        if len(fresh) == count:
            break
        code = codes.generate()
        if code not in avoid:
            avoid.add(code)
            fresh.append(code)
    return fresh


def _insert_new(session: Session) -> Any:
    """A multi-row INSERT of coupons that skips codes the instance has, returning the new ones."""
    dialect = session.get_bind().dialect.name
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Coupon)
    # No `sort_by_parameter_order`: with rows that may be skipped, SQLAlchemy would send one
    # statement per row to match them up. The batch's order means nothing anyway.
    return stmt.on_conflict_do_nothing(index_elements=["instance_id", "code"]).returning(Coupon)
