"""Coupons: access codes, each with its plan (by default single-use)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from guestgate.db import Base, UTCDateTime, UUIDStr, new_id, utcnow
from guestgate.plans import service as plan_service
from guestgate.plans.columns import PlanColumns


class Coupon(PlanColumns, Base):
    """A 6-character access code of one instance, with the plan it was made with."""

    __tablename__ = "coupons"
    __table_args__ = (
        # Codes are unique per instance for as long as the row exists (stricter than "among
        # unexpired coupons"); the guest sign-in looks coupons up by this pair.
        UniqueConstraint("instance_id", "code"),
        # Listing valid coupons newest first, and housekeeping of expired ones.
        Index(
            "ix_coupons_unredeemed",
            "instance_id",
            "created_at",
            sqlite_where=text("redeemed_at IS NULL"),
            postgresql_where=text("redeemed_at IS NULL"),
        ),
        Index(None, "expires_at"),
        # A schedule link's valid coupons, newest first (guestgate.coupon_links).
        Index(
            "ix_coupons_schedule_unredeemed",
            "schedule_id",
            "created_at",
            sqlite_where=text("redeemed_at IS NULL"),
            postgresql_where=text("redeemed_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(128), ForeignKey("orgs.id", ondelete="CASCADE"))
    instance_id: Mapped[str] = mapped_column(UUIDStr, ForeignKey("instances.id", ondelete="CASCADE"))
    schedule_id: Mapped[str | None] = mapped_column(
        UUIDStr, ForeignKey("coupon_schedules.id", ondelete="SET NULL"), default=None, index=True
    )
    run_id: Mapped[str | None] = mapped_column(
        UUIDStr, ForeignKey("schedule_runs.id", ondelete="SET NULL"), default=None, index=True
    )
    code: Mapped[str] = mapped_column(String(6))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The first sign-in (None: unused); `uses` counts every sign-in (the plan's `max_uses`).
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    uses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def plan(self) -> plan_service.Plan:
        """What the code buys (its plan columns)."""
        return plan_service.of(self)
