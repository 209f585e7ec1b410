"""Walled-garden entries: destinations reachable before authentication."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from guestgate.db import Base, UTCDateTime, UUIDStr, new_id, utcnow


class WalledGardenEntry(Base):
    """An address, subnet or host name of one site open before login (always, or during the auth window)."""

    __tablename__ = "walled_garden_entries"
    __table_args__ = (
        Index(None, "site_id", "created_at"),
        # Exactly one of the two: an address entry or a host-name entry.
        CheckConstraint("(ip_address IS NULL) <> (hostname IS NULL)", name="ip_address_or_hostname"),
    )

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(128), ForeignKey("orgs.id", ondelete="CASCADE"))
    site_id: Mapped[str] = mapped_column(UUIDStr, ForeignKey("sites.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16), default="captive-auth")
    ip_address: Mapped[str | None] = mapped_column(String(64), default=None)
    # An exact DNS name or a `*.` wildcard, IDNA-encoded (see walled_garden.hostnames).
    hostname: Mapped[str | None] = mapped_column(String(253), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
