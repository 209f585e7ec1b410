"""Captive portal instances, their site subnets and their images."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from guestgate.db import Base, JSONDoc, UTCDateTime, UUIDStr, new_id, utcnow
from guestgate.plans.columns import PlanColumns


class Instance(PlanColumns, Base):
    """A captive portal configuration: strategy, session rules, theme, terms and sites."""

    __tablename__ = "instances"
    __table_args__ = (Index(None, "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(128), ForeignKey("orgs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    strategy: Mapped[str] = mapped_column(String(16))
    # RESTRICT: an integration in use cannot be deleted (409 resource_in_use).
    auth_integration_id: Mapped[str | None] = mapped_column(
        UUIDStr, ForeignKey("auth_integrations.id", ondelete="RESTRICT"), default=None, index=True
    )
    session_ttl: Mapped[int] = mapped_column(Integer)
    auth_window_ttl: Mapped[int] = mapped_column(Integer, default=300)
    theme: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)
    terms_text: Mapped[str | None] = mapped_column(Text, default=None)
    locale: Mapped[str] = mapped_column(String(16), default="en")
    # [extension] The guest network's name (SSID), printed on the cards.
    network_name: Mapped[str | None] = mapped_column(String(128), default=None)
    # [extension] IANA zone of times shown without a schedule's zone (guestgate.local_time).
    timezone: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InstanceSubnet(Base):
    """One subnet of one site served by an instance; a site subnet has at most one instance."""

    __tablename__ = "instance_subnets"
    __table_args__ = (UniqueConstraint("site_id", "subnet"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(
        UUIDStr, ForeignKey("instances.id", ondelete="CASCADE"), index=True
    )
    site_id: Mapped[str] = mapped_column(UUIDStr, ForeignKey("sites.id", ondelete="CASCADE"))
    subnet: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)


class Image(Base):
    """An uploaded logo or icon, validated by decoding; kept in the database with its instance."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("instance_id", "kind"),)

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    instance_id: Mapped[str] = mapped_column(UUIDStr, ForeignKey("instances.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
