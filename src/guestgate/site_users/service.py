"""Site users: guest sessions at a site, their expiry, operator disconnects and the expiry job.

A row says `active` until the expiry job or a disconnect ends it, so every read computes the
status with `now`: an active row past `expires_at` is reported (and filtered) as expired.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, func, or_, select, update
from sqlalchemy.orm import Session

from guestgate.audit import service as audit_service
from guestgate.errors import NotFound
from guestgate.pagination import Page, PageRequest, fetch_page
from guestgate.site_users.models import SessionStatus, SiteUser
from guestgate.site_users.schemas import Identity, SessionFilter, StatusName
from guestgate.site_users.schemas import SiteUser as SiteUserOut
from guestgate.sites import service as site_service

ACTIVE: StatusName = SessionStatus.ACTIVE.value
EXPIRED: StatusName = SessionStatus.EXPIRED.value
DISCONNECTED: StatusName = SessionStatus.DISCONNECTED.value
DEFAULT_EXPIRY_BATCH = 1000


def effective_status(user: SiteUser, *, now: datetime) -> StatusName:
    """The status to report: an active session whose `expires_at` has passed is expired."""
    if user.status == ACTIVE and user.expires_at <= now:
        return EXPIRED
    return cast(StatusName, user.status)


def get(site_id: str, user_id: str, *, org_id: str, session: Session) -> SiteUser:
    """The session of the org's site, or NotFound (the site first, then the session)."""
    site = site_service.get(site_id, org_id=org_id, session=session)
    user = session.get(SiteUser, user_id)
    if user is None or user.site_id != site.id:
        raise NotFound("site user", user_id)
    return user


def list_users(
    site_id: str, *, org_id: str, filters: SessionFilter, now: datetime, page: PageRequest, session: Session
) -> Page[SiteUser]:
    """The org's site's sessions matching `filters` (status as of `now`), newest first."""
    site = site_service.get(site_id, org_id=org_id, session=session)
    stmt = select(SiteUser).where(SiteUser.site_id == site.id)
    if filters.status is not None:
        stmt = stmt.where(_status_is(filters.status, now=now))
    if filters.ip_address is not None:
        stmt = stmt.where(SiteUser.ip_address == filters.ip_address)
    if filters.mac_address is not None:
        # Gateways and the portal report MACs in either case; the filter arrives lowercase.
        stmt = stmt.where(func.lower(SiteUser.mac_address) == filters.mac_address)
    if filters.since is not None:
        stmt = stmt.where(SiteUser.started_at >= filters.since)
    if filters.identity is not None:
        # A substring of what the provider shared; the other filters (the console's: a site's
        # active guests) bound the rows it reads.
        email = func.lower(SiteUser.identity["email"].as_string())
        name = func.lower(SiteUser.identity["name"].as_string())
        stmt = stmt.where(
            or_(
                email.contains(filters.identity, autoescape=True),
                name.contains(filters.identity, autoescape=True),
            )
        )
    return fetch_page(session, stmt, page, SiteUser.started_at, SiteUser.id)


def disconnect(site_id: str, user_id: str, *, org_id: str, now: datetime, session: Session) -> SiteUser:
    """End an active session now (reason `operator`) and commit; an ended session is returned unchanged."""
    user = get(site_id, user_id, org_id=org_id, session=session)
    if effective_status(user, now=now) != ACTIVE:
        return user
    # Conditional, so a concurrent expiry or disconnect is never overwritten: the loser sees its result.
    ended = cast(
        CursorResult[Any],
        session.execute(
            update(SiteUser)
            .where(SiteUser.id == user.id, _status_is(ACTIVE, now=now))
            .values(status=DISCONNECTED, ended_at=now, end_reason="operator")
            .execution_options(synchronize_session=False)
        ),
    )
    if ended.rowcount == 1:
        audit_service.record(
            session,
            org_id=org_id,
            action="site_user.disconnect",
            target_type="site_user",
            target_id=user.id,
            detail={"site_id": user.site_id, "ip_address": user.ip_address, "mac_address": user.mac_address},
        )
    session.commit()
    session.refresh(user)
    return user


def expire_sessions(*, now: datetime, session: Session, batch: int = DEFAULT_EXPIRY_BATCH) -> int:
    """Mark active sessions past `expires_at` as expired, `batch` rows per commit; returns how many."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    due = select(SiteUser.id).where(SiteUser.status == ACTIVE, SiteUser.expires_at <= now).limit(batch)
    total = 0
    while True:
        result = cast(
            CursorResult[Any],
            session.execute(
                update(SiteUser)
                # Re-checked in the UPDATE: another worker may have ended these rows since the SELECT.
                .where(SiteUser.id.in_(due), SiteUser.status == ACTIVE, SiteUser.expires_at <= now)
                .values(status=EXPIRED, ended_at=SiteUser.expires_at, end_reason="expired")
                .execution_options(synchronize_session=False)
            ),
        )
        session.commit()
        total += result.rowcount
        if result.rowcount < batch:
            return total


def to_out(user: SiteUser, *, now: datetime) -> SiteUserOut:
    """The API representation of a session, with its status as of `now`."""
    status = effective_status(user, now=now)
    ended_at = user.ended_at
    if ended_at is None and status == EXPIRED:
        ended_at = user.expires_at
    return SiteUserOut(
        id=user.id,
        site_id=user.site_id,
        instance_id=user.instance_id,
        ip_address=user.ip_address,
        mac_address=user.mac_address.lower() if user.mac_address else None,
        strategy=user.strategy,
        coupon_id=user.coupon_id,
        identity=_identity(user.identity),
        status=status,
        started_at=user.started_at,
        expires_at=user.expires_at,
        ended_at=ended_at,
    )


def _status_is(status: StatusName, *, now: datetime) -> ColumnElement[bool]:
    if status == ACTIVE:
        return SiteUser.live_at(now)
    if status == EXPIRED:
        return or_(SiteUser.status == EXPIRED, and_(SiteUser.status == ACTIVE, SiteUser.expires_at <= now))
    return SiteUser.status == status


def _identity(stored: dict[str, Any] | None) -> Identity | None:
    if not stored:
        return None
    return Identity(
        provider=str(stored.get("provider") or ""),
        subject=str(stored.get("subject") or ""),
        email=stored.get("email"),
        name=stored.get("name"),
    )
