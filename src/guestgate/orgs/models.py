"""Organisations: the tenants every resource belongs to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from guestgate.db import Base, UTCDateTime, utcnow


class Org(Base):
    """A tenant; its id is the `org` claim of operator tokens."""

    __tablename__ = "orgs"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
