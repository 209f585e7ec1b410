"""The plan's columns, shared by the instance (its default plan) and each coupon (its effective plan).

Migration 0010 documents the meaning and defaults; a NULL limit means "no limit".
"""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column


class PlanColumns:
    """Mixin: `max_devices`, `max_uses`, `download_kbps`, `upload_kbps`, `data_limit_mb`, `validity_from`."""

    max_devices: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # `evaluates_none`: an explicit None (no limit) is written as NULL; without it the ORM would
    # leave the column out of the INSERT, and the default (1) would take its place.
    max_uses: Mapped[int | None] = mapped_column(Integer().evaluates_none(), default=1, server_default="1")
    download_kbps: Mapped[int | None] = mapped_column(Integer, default=None)
    upload_kbps: Mapped[int | None] = mapped_column(Integer, default=None)
    data_limit_mb: Mapped[int | None] = mapped_column(Integer, default=None)
    validity_from: Mapped[str] = mapped_column(String(16), default="creation", server_default="creation")
