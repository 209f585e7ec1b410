"""Sites: the places where a gateway enforces guest access."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guestgate.db import Base, JSONDoc, UTCDateTime, UUIDStr, new_id, utcnow


class Site(Base):
    """A site: its guest subnets and the gateway driver that enforces access there."""

    __tablename__ = "sites"
    __table_args__ = (Index(None, "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(128), ForeignKey("orgs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    subnets: Mapped[list[str]] = mapped_column(JSONDoc, default=list)
    gateway_driver: Mapped[str] = mapped_column(String(32), default="none")
    # Non-secret driver settings (interface, address, port, namespace, host, username...).
    gateway_config: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    # Secret driver settings (password, agent key), sealed with the encryption key.
    gateway_secrets_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    gateway_status: Mapped[str] = mapped_column(String(32), default="unknown")
    gateway_last_error: Mapped[str | None] = mapped_column(Text, default=None)
    gateway_last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # NULL: the agent key derived from the signing key and the id alone (every site until its
    # first rotation); otherwise a random salt mixed in, replaced by each rotation.
    agent_key_salt: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
