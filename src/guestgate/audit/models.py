"""The audit log: operator changes and guest sign-in failures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from guestgate.db import Base, JSONDoc, UTCDateTime, utcnow


class AuditEvent(Base):
    """Something that happened, by whom, to what."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index(None, "org_id", "at"),
        # The audit list's filters by resource and by action (migration 0003).
        Index(None, "org_id", "target_type", "target_id"),
        Index(None, "org_id", "action", "at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    org_id: Mapped[str | None] = mapped_column(String(128), default=None)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(64), default=None)
    target_id: Mapped[str | None] = mapped_column(String(64), default=None)
    ip_address: Mapped[str | None] = mapped_column(String(64), default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
