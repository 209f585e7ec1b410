"""Site users: guest sessions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, ForeignKey, Index, Integer, String, and_, text
from sqlalchemy.orm import Mapped, mapped_column

from guestgate.db import Base, JSONDoc, UTCDateTime, UUIDStr, new_id, utcnow


class SessionStatus(StrEnum):
    """A session's stored status (the API's `status` values: `site_users.schemas.StatusName`)."""

    ACTIVE = "active"
    EXPIRED = "expired"
    DISCONNECTED = "disconnected"
    QUOTA_EXCEEDED = "quota_exceeded"


class SiteUser(Base):
    """A guest's session at a site: who, from where, how, and until when."""

    __tablename__ = "site_users"
    __table_args__ = (
        Index(None, "site_id", "started_at"),
        Index(None, "site_id", "ip_address", "status"),
        Index(None, "status", "expires_at"),
        # A guest's live sessions, newest first (the sign-in's look-up): its equality columns and
        # its order leave a planner no better index, so a cached generic plan is safe (0004).
        Index(
            "ix_site_users_active_guest",
            "site_id",
            "ip_address",
            "expires_at",
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        # A code's live sessions (its devices), counted at sign-in (0011).
        Index(
            "ix_site_users_active_coupon",
            "coupon_id",
            "expires_at",
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(128), ForeignKey("orgs.id", ondelete="CASCADE"))
    site_id: Mapped[str] = mapped_column(UUIDStr, ForeignKey("sites.id", ondelete="CASCADE"))
    # Not a foreign key: a session's record outlives the instance that created it.
    instance_id: Mapped[str] = mapped_column(UUIDStr, index=True)
    ip_address: Mapped[str] = mapped_column(String(64))
    mac_address: Mapped[str | None] = mapped_column(String(17), default=None)
    strategy: Mapped[str] = mapped_column(String(16))
    coupon_id: Mapped[str | None] = mapped_column(UUIDStr, default=None)
    identity: Mapped[dict[str, Any] | None] = mapped_column(JSONDoc, default=None)
    status: Mapped[str] = mapped_column(String(16), default=SessionStatus.ACTIVE.value)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    end_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    # When the site's gateway was first known to let the guest through (None: not yet).
    gateway_applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The session's limits, from its code's plan at sign-in (None: no limit).
    download_kbps: Mapped[int | None] = mapped_column(Integer, default=None)
    upload_kbps: Mapped[int | None] = mapped_column(Integer, default=None)
    data_limit_mb: Mapped[int | None] = mapped_column(Integer, default=None)
    # Usage: bytes from the guest (`in`) and to it (`out`), added up across gateway reboots.
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The gateway's raw counters at the last reading: a smaller reading means the gateway restarted.
    gateway_bytes_in: Mapped[int | None] = mapped_column(BigInteger, default=None)
    gateway_bytes_out: Mapped[int | None] = mapped_column(BigInteger, default=None)

    @classmethod
    def live_at(cls, now: datetime) -> ColumnElement[bool]:
        """Sessions the gateway must let through at `now`: active and not yet expired."""
        return and_(cls.status == SessionStatus.ACTIVE, cls.expires_at > now)
