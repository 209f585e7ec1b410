"""Console operators, their org memberships, their browser sessions and the front desk's coupon presets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from guestgate.db import Base, UTCDateTime, UUIDStr, new_id, utcnow


class ConsoleUser(Base):
    """A person who signs in to the console: an e-mail address and an argon2id password hash."""

    __tablename__ = "console_users"

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    # Stored lowercase: the address is the login name and is unique whatever its case.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    # Null until the person has chosen a password through their one-time link.
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # SHA-256 of the one-time set-password token (the token itself is only ever in the link).
    invite_hash: Mapped[str | None] = mapped_column(String(64), default=None, unique=True)
    invite_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Login throttling: failures counted in a window that starts at the first failure.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    failed_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # SHA-256 of the one-time reset link mailed by "Forgot password" (only the newest one works).
    reset_hash: Mapped[str | None] = mapped_column(String(64), default=None, unique=True, index=True)
    reset_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Reset mails sent to the address in the window that starts at `reset_since` (the throttle).
    reset_mails: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reset_since: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Membership(Base):
    """A user's role in one org."""

    __tablename__ = "console_memberships"
    __table_args__ = (Index(None, "org_id"),)

    user_id: Mapped[str] = mapped_column(
        UUIDStr, ForeignKey("console_users.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("orgs.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsoleSession(Base):
    """A signed-in browser; the cookie holds a random token whose SHA-256 is the id."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index(None, "user_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(UUIDStr, ForeignKey("console_users.id", ondelete="CASCADE"))
    # The org the user is working in (one of their memberships).
    org_id: Mapped[str] = mapped_column(String(128), ForeignKey("orgs.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CouponPreset(Base):
    """What the front desk prints in two clicks: count, validity and paper for one coupon instance."""

    __tablename__ = "console_coupon_presets"
    __table_args__ = (Index(None, "org_id", "name"),)

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(128), ForeignKey("orgs.id", ondelete="CASCADE"))
    instance_id: Mapped[str] = mapped_column(UUIDStr, ForeignKey("instances.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    count: Mapped[int] = mapped_column(Integer)
    minutes_valid: Mapped[int] = mapped_column(Integer)
    paper: Mapped[str] = mapped_column(String(8), default="a4")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
