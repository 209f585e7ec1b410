"""API tokens: the register of the operator tokens this deployment minted, so they can be revoked."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from guestgate.db import Base, UTCDateTime, UUIDStr, new_id, utcnow


class ApiToken(Base):
    """A named operator token of one org; its id is the token's `jti` claim.

    The token itself is never stored: it is shown once, when it is minted. There is no
    `last_used_at`: keeping it would be a write on every authenticated request.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (Index(None, "org_id", "created_at"),)

    id: Mapped[str] = mapped_column(UUIDStr, primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(String(128), ForeignKey("orgs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # Space-separated, as in the token's `scope` claim.
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, default=None)
    # "cli", or the subject of the operator who minted it through the API (a console user's id later).
    created_by: Mapped[str] = mapped_column(String(200))
