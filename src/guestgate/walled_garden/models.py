"""Walled-garden entries: destinations reachable before authentication."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from guestgate.db import Base, UTCDateTime, UUIDStr, new_id, utcnow


class WalledGardenEntry(Base):
    """An address or subnet of one site open before login (always, or during the auth window)."""

    __tablename__ = "walled_garden_entries"
    __table_args__ = (Index(None, "site_id", "created_at"),)

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(128), ForeignKey("orgs.id", ondelete="CASCADE"))
    site_id: Mapped[str] = mapped_column(UUIDStr, ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16), default="captive-auth")
    ip_address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
