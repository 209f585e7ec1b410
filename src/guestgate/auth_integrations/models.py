"""OAuth2 / OpenID Connect identity provider configurations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from guestgate.db import Base, UTCDateTime, UUIDStr, new_id, utcnow


class AuthIntegration(Base):
    """An identity provider an oauth2 instance signs guests in with."""

    __tablename__ = "auth_integrations"
    __table_args__ = (Index(None, "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(128), ForeignKey("orgs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str] = mapped_column(String(500))
    tenant: Mapped[str | None] = mapped_column(String(200), default=None)
    client_secret_sealed: Mapped[str] = mapped_column(Text)
    # `oidc` only: the issuer URL, and the host of its authorization endpoint as discovered when
    # saved (what the guest's browser must reach in the auth window; see discovery.py).
    issuer: Mapped[str | None] = mapped_column(String(500), default=None)
    sign_in_host: Mapped[str | None] = mapped_column(String(253), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
