"""Keyset pagination (newest first) for list endpoints: `?limit=` and `?cursor=`."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Integer, Select, and_, func, literal, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from guestgate.errors import ParameterInvalid

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Our cursors are under 100 characters; anything far longer is refused unread.
MAX_CURSOR_CHARS = 256
# The ids a cursor may carry: our UUIDs, or integers that fit a signed 64-bit column.
_CURSOR_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_MAX_INT_ID = 2**63 - 1
T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """A validated page request."""

    limit: int = DEFAULT_LIMIT
    after: tuple[datetime, str] | None = None

    @classmethod
    def parse(
        cls, limit: int | None, cursor: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT
    ) -> PageRequest:
        """Validate `limit` (1..`maximum`, 1..1000 unless told) and decode `cursor`."""
        if limit is None:
            limit = default
        if not 1 <= limit <= maximum:
            raise ParameterInvalid("limit", f"must be between 1 and {maximum}")
        return cls(limit=limit, after=decode_cursor(cursor) if cursor else None)


@dataclass(frozen=True)
class Page(Generic[T]):
    """A page of items and the cursor of the next page (None on the last)."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """An opaque cursor for the position after (created_at, id)."""
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) position of a cursor; ParameterInvalid if it is not one of ours.

    A cursor is the client's to send back, so it is checked like any input: a time that
    cannot be expressed in UTC (year 1 at +01:00, year 9999 at -01:00) or an id with characters
    no id of ours has would otherwise reach the database driver and fail there.
    """
    if len(cursor) > MAX_CURSOR_CHARS:
        raise ParameterInvalid("cursor", "is not a cursor this API returned")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError("naive time")
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise ParameterInvalid("cursor", "is not a cursor this API returned") from exc
    if not _CURSOR_ID.fullmatch(row_id):
        raise ParameterInvalid("cursor", "is not a cursor this API returned")
    return moment, row_id


def fetch_page(
    session: Session,
    stmt: Select[T],
    page: PageRequest,
    created: InstrumentedAttribute[Any],
    ident: InstrumentedAttribute[Any],
) -> Page[T]:
    """Run `stmt` newest first from the cursor, one row more than the limit to find the next page."""
    if page.after is not None:
        stamp, raw_id = page.after
        row_id = _cursor_id(ident, raw_id)
        # `created <= stamp` says nothing the OR does not, but it is the half an index on
        # (..., created) can seek to: a deep page starts there instead of filtering every row
        # of the pages before it.
        stmt = stmt.where(created <= stamp, or_(created < stamp, and_(created == stamp, ident < row_id)))
    # Only rows at least as new as the page's last one can be on it: its `created` is the one
    # `limit` rows down in `created` order alone, which an index on (..., created) reads
    # directly, without a sort. Bounded so, the page sorts its few hundred rows by (created, id)
    # whatever the planner believes: before PostgreSQL has statistics of a freshly filled
    # table it estimates one row, and sorted all 100,000 of an instance's coupons for a page.
    floor = stmt.with_only_columns(created).order_by(created.desc()).offset(page.limit).limit(1)
    oldest = literal(datetime(1, 1, 1, tzinfo=UTC), created.type)
    stmt = stmt.where(created >= func.coalesce(floor.scalar_subquery(), oldest))
    rows = list(session.scalars(stmt.order_by(created.desc(), ident.desc()).limit(page.limit + 1)))
    if len(rows) <= page.limit:
        return Page(rows, None)
    rows = rows[: page.limit]
    last = rows[-1]
    return Page(rows, encode_cursor(getattr(last, created.key), str(getattr(last, ident.key))))


def _cursor_id(ident: InstrumentedAttribute[Any], raw_id: str) -> str | int:
    """The cursor's id as the id column compares it: text, or a number for integer ids."""
    if not isinstance(ident.type, Integer):
        return raw_id
    try:
        value = int(raw_id)
    except ValueError as exc:
        raise ParameterInvalid("cursor", "is not a cursor this API returned") from exc
    if not 0 <= value <= _MAX_INT_ID:
        raise ParameterInvalid("cursor", "is not a cursor this API returned")
    return value
