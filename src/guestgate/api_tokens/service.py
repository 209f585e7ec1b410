"""API tokens: mint a named, revocable operator token, list an org's, revoke one.

A minted token is a JWT whose `jti` is its row's id; the row, not the token, is stored (the
token is shown once). The verifier refuses a `jti` that is revoked or not in the table
(`guestgate.api_tokens.revocation` keeps that check in memory).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from guestgate.api_tokens.models import ApiToken
from guestgate.api_tokens.schemas import ApiTokenOut
from guestgate.audit import service as audit_service
from guestgate.config import Settings
from guestgate.errors import InvalidRequest, NotFound, ParameterInvalid, PermissionDenied
from guestgate.pagination import Page, PageRequest, fetch_page
from guestgate.security import ALL_SCOPES, SCOPE_READ, SCOPE_WRITE, mint_token
from guestgate.tenancy import get_owned

MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 365 * 24 * 3600
DEFAULT_TTL_SECONDS = 30 * 24 * 3600
# Tokens of one org that are neither revoked nor expired. Far above what a team hands out; it
# keeps a leaked write token from filling the table with fresh ones.
MAX_ACTIVE_PER_ORG = 100
MAX_NAME_CHARS = 200


class Forgetter(Protocol):
    """What `revoke` tells at once that a token id is revoked (the process's RevocationCache)."""

    def forget(self, jti: str) -> None:
        """Refuse `jti` from now on."""


def mint(
    org_id: str,
    name: str,
    scopes: Collection[str],
    ttl_seconds: int,
    created_by: str,
    *,
    settings: Settings,
    session: Session,
    now: datetime,
    subject: str = "operator",
    granted_by: Collection[str] | None = None,
) -> tuple[ApiToken, str]:
    """Register a token of the org and commit; return its row and the JWT (the only time it is shown).

    `granted_by`: the scopes of whoever asks (an operator's token, a console user's role); a
    token never grants more than they have (`captive:write` covers `captive:read`). The org must
    exist; the name is 1..200 characters, the lifetime 60 s..365 days, and an org has at most
    100 active tokens.
    """
    clean_name = name.strip()
    if not clean_name or len(clean_name) > MAX_NAME_CHARS:
        raise ParameterInvalid("name", f"must be 1 to {MAX_NAME_CHARS} characters")
    wanted = list(dict.fromkeys(scopes))
    unknown = [s for s in wanted if s not in ALL_SCOPES]
    if not wanted or unknown:
        raise ParameterInvalid("scopes", f"must be one or more of {', '.join(ALL_SCOPES)}")
    if not MIN_TTL_SECONDS <= ttl_seconds <= MAX_TTL_SECONDS:
        raise ParameterInvalid("ttl_seconds", f"must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}")
    if granted_by is not None:
        beyond = [s for s in wanted if not _covers(granted_by, s)]
        if beyond:
            raise PermissionDenied(
                f"A token can only grant scopes its creator has; not yours: {', '.join(beyond)}."
            )
    if active_count(org_id, session=session, now=now) >= MAX_ACTIVE_PER_ORG:
        raise InvalidRequest(
            f"An org can have at most {MAX_ACTIVE_PER_ORG} active API tokens: revoke one first."
        )
    row = ApiToken(
        org_id=org_id,
        name=clean_name,
        scopes=" ".join(wanted),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
        created_by=created_by[:200],
    )
    session.add(row)
    session.flush()
    token = mint_token(
        settings,
        org=org_id,
        subject=subject,
        scopes=wanted,
        ttl_seconds=ttl_seconds,
        jti=row.id,
        issued_at=now.timestamp(),
    )
    _audit(row, "api_token.create", session=session)
    session.commit()
    return row, token


def get(token_id: str, *, org_id: str, session: Session) -> ApiToken:
    """The org's token, or NotFound (another org's looks the same)."""
    if len(token_id) > 64:
        raise NotFound("API token", token_id)
    return get_owned(session, ApiToken, token_id, org_id, resource="API token")


def find(token_id: str, *, session: Session) -> ApiToken | None:
    """The token of any org (for the deployment's own CLI), or None."""
    return session.get(ApiToken, token_id) if len(token_id) <= 64 else None


def list_tokens(org_id: str, *, page: PageRequest, session: Session) -> Page[ApiToken]:
    """The org's tokens (revoked and expired included), newest first."""
    stmt = select(ApiToken).where(ApiToken.org_id == org_id)
    return fetch_page(session, stmt, page, ApiToken.created_at, ApiToken.id)


def active_count(org_id: str, *, session: Session, now: datetime) -> int:
    """How many of the org's tokens are neither revoked nor expired (counted up to the cap + 1)."""
    active = (
        select(ApiToken.id)
        .where(ApiToken.org_id == org_id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > now)
        .limit(MAX_ACTIVE_PER_ORG + 1)
        .subquery()
    )
    return session.scalar(select(func.count()).select_from(active)) or 0


def revoke(
    token_id: str, *, org_id: str, session: Session, now: datetime, revocations: Forgetter | None = None
) -> ApiToken:
    """Revoke the org's token and commit; revoking it again changes nothing.

    Pass the process's `runtime.revocations` so this process refuses the token at once; other
    processes refuse it within GUESTGATE_API_TOKEN_REVOCATION_SECONDS.
    """
    row = get(token_id, org_id=org_id, session=session)
    if row.revoked_at is None:
        row.revoked_at = now
        _audit(row, "api_token.revoke", session=session)
        session.commit()
    if revocations is not None:
        revocations.forget(row.id)
    return row


def is_revoked(token_id: str, *, org_id: str, session: Session) -> bool:
    """True unless the id is a token of the org that is not revoked (unknown ids count as revoked)."""
    return accepted_org(token_id, session=session) != org_id


def accepted_org(token_id: str, *, session: Session) -> str | None:
    """The org of the token if it is registered and not revoked, else None (expiry is the JWT's)."""
    if len(token_id) > 64:
        return None
    return session.scalar(
        select(ApiToken.org_id).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
    )


def to_out(row: ApiToken) -> ApiTokenOut:
    """The API's view of a token (never the token itself)."""
    return ApiTokenOut(
        id=row.id,
        name=row.name,
        scopes=row.scopes.split(),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        created_by=row.created_by,
    )


def _covers(granted: Collection[str], scope: str) -> bool:
    return scope in granted or (scope == SCOPE_READ and SCOPE_WRITE in granted)


def _audit(row: ApiToken, action: str, *, session: Session) -> None:
    audit_service.record(
        session,
        org_id=row.org_id,
        action=action,
        target_type="api_token",
        target_id=row.id,
        detail={"name": row.name, "scopes": row.scopes, "expires_at": row.expires_at.isoformat()},
    )
