"""Coupons: batch generation with instance-unique codes, and the listing of valid ones."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from guestgate.audit import service as audit_service
from guestgate.coupons import codes
from guestgate.coupons.models import Coupon
from guestgate.coupons.schemas import Coupon as CouponOut
from guestgate.coupons.schemas import CouponCreate
from guestgate.db import new_id
from guestgate.errors import InternalError, InvalidRequest
from guestgate.instances import service as instance_service
from guestgate.ops import metrics
from guestgate.pagination import Page, PageRequest, fetch_page

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
) -> list[Coupon]:
    """Insert `count` coupons with codes unique in the instance; flushed, the caller commits."""
    if count < 1:
        return []
    expires_at = now + timedelta(minutes=valid_minutes)
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
        }
        for code in _draw_codes(instance_id, count, session=session)
    ]
    # One multi-row INSERT ... RETURNING instead of a unit-of-work flush per object. A code
    # taken by a concurrent batch after our check still fails on the unique constraint.
    stmt = insert(Coupon).returning(Coupon, sort_by_parameter_order=True)
    return list(session.scalars(stmt, rows))


def create_batch(
    instance_id: str, data: CouponCreate, *, org_id: str, now: datetime, session: Session
) -> list[Coupon]:
    """Generate a batch of coupons for one of the org's coupon instances, and commit it."""
    instance = instance_service.get(instance_id, org_id=org_id, session=session)
    if instance.strategy != "coupon":
        raise InvalidRequest("Coupons can only be created for instances whose strategy is 'coupon'.")
    coupons = generate_batch(
        org_id=org_id,
        instance_id=instance.id,
        count=data.count,
        valid_minutes=data.minutes_valid,
        now=now,
        session=session,
    )
    audit_service.record(
        session,
        org_id=org_id,
        action="coupon_batch.create",
        target_type="instance",
        target_id=instance.id,
        detail={"count": len(coupons), "minutes_valid": data.minutes_valid},
    )
    session.commit()
    metrics.batch_created(len(coupons))
    return coupons


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


def to_out(coupon: Coupon) -> CouponOut:
    """The API representation of a coupon."""
    return CouponOut(
        id=coupon.id,
        code=coupon.code,
        expires_at=coupon.expires_at,
        redeemed_at=coupon.redeemed_at,
        created_at=coupon.created_at,
    )


def _draw_codes(instance_id: str, count: int, *, session: Session) -> list[str]:
    """`count` distinct codes not used by the instance, checked with one query per round."""
    chosen: dict[str, None] = {}
    for _ in range(MAX_DRAW_ROUNDS):
        fresh: dict[str, None] = {}
        for _ in range(count - len(chosen)):
            code = codes.generate()
            if code not in chosen:
                fresh[code] = None
        if fresh:
            taken = set(
                session.scalars(
                    select(Coupon.code).where(Coupon.instance_id == instance_id, Coupon.code.in_(list(fresh)))
                )
            )
            chosen.update((code, None) for code in fresh if code not in taken)
        if len(chosen) == count:
            return list(chosen)
    raise InternalError("Could not draw enough unused coupon codes for this instance.")
