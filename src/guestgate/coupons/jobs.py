"""Coupon housekeeping: expired, unredeemed coupons are purged after the retention period."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from guestgate.coupons.models import Coupon

PURGE_BATCH = 1000


def purge_expired(*, now: datetime, retention_days: int, session: Session, batch: int = PURGE_BATCH) -> int:
    """Delete unredeemed coupons that expired more than `retention_days` ago, in bounded batches."""
    cutoff = now - timedelta(days=retention_days)
    purged = 0
    while True:
        ids = list(
            session.scalars(
                select(Coupon.id).where(Coupon.redeemed_at.is_(None), Coupon.expires_at < cutoff).limit(batch)
            )
        )
        if not ids:
            return purged
        # Re-check the condition: a coupon redeemed since the select must not go.
        result = session.execute(
            delete(Coupon)
            .where(Coupon.id.in_(ids), Coupon.redeemed_at.is_(None), Coupon.expires_at < cutoff)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        deleted: int = result.rowcount  # type: ignore[attr-defined]
        purged += deleted
        if len(ids) < batch:
            return purged
