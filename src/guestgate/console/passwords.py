"""Console passwords after the first one: changed while signed in, or reset through a link sent by mail.

- Change: the current password (wrong ones count towards the login lock, so a stolen session
  cannot guess it at leisure) and the new one; the user's other sessions end.
- Reset: "Forgot password" takes an address and always answers the same words. Only an enabled
  account with a membership gets a mail, at most `console_reset_max_mails` of them per
  `console_reset_minutes`; the link's token is stored as its SHA-256, works once, for
  `console_reset_minutes`, and only the newest one works. Using it sets the password and ends
  every session of the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from guestgate.config import Settings
from guestgate.console import auth, service
from guestgate.console.models import ConsoleSession, ConsoleUser
from guestgate.console.service import Operator
from guestgate.errors import NotFound, ParameterInvalid, RateLimited


def change_password(
    operator: Operator,
    current: str,
    new: str,
    *,
    now: datetime,
    settings: Settings,
    ip: str | None,
    session: Session,
) -> None:
    """Replace the signed-in user's password (argon2id) and end their other sessions; commits.

    ParameterInvalid("current") for a wrong current password (counted like a wrong sign-in),
    RateLimited while the account is locked, ParameterInvalid("password") for a weak new one.
    """
    user = session.get(ConsoleUser, operator.user_id)
    if user is None:
        raise NotFound("user", operator.user_id)
    retry = service.locked_for(user, now=now, settings=settings)
    if retry is not None:
        session.commit()
        raise RateLimited(
            "Too many wrong passwords for this account. Try again in a few minutes.", retry_after=retry
        )
    if not auth.verify_password(user.password_hash, current):
        service.count_wrong_password(user, now=now)
        service.audit_user(
            user, "operator.password_change_failed", {"reason": "password"}, ip=ip, session=session
        )
        session.commit()
        raise ParameterInvalid("current", "is not your password")
    user.password_hash = auth.hash_password(service.check_password(new))
    user.failed_logins = 0
    user.failed_since = None
    user.reset_hash = None
    user.reset_expires_at = None
    session.execute(
        delete(ConsoleSession).where(
            ConsoleSession.user_id == user.id, ConsoleSession.id != operator.session_id
        )
    )
    service.audit_user(user, "operator.password_changed", {}, ip=ip, session=session)
    session.commit()


@dataclass(frozen=True)
class ResetMail:
    """A reset link to send: to whom, its token (only ever in the mail) and until when it works."""

    to: str
    token: str
    expires_at: datetime


def request_reset(
    email: str, *, now: datetime, settings: Settings, ip: str | None, session: Session
) -> ResetMail | None:
    """A fresh reset link for the address's account, or None when no mail is to go; commits.

    None for an unknown address, a disabled account, one without a membership, or one that had
    its `console_reset_max_mails` within the window: the caller answers the same words either way.
    A new link replaces the previous one.
    """
    try:
        address = service.normalize_email(email)
    except ParameterInvalid:
        return None
    user = session.scalars(select(ConsoleUser).where(ConsoleUser.email == address)).first()
    if user is None or user.disabled or not service.memberships(user.id, session=session):
        return None
    window = timedelta(minutes=settings.console_reset_minutes)
    if user.reset_since is None or user.reset_since + window <= now:
        user.reset_mails = 0
        user.reset_since = now
    if user.reset_mails >= settings.console_reset_max_mails:
        service.audit_user(
            user, "operator.password_reset_requested", {"sent": "no", "reason": "throttled"}, ip=ip, session=session
        )
        session.commit()
        return None
    token = auth.new_token()
    user.reset_mails += 1
    user.reset_hash = auth.token_hash(token)
    user.reset_expires_at = now + window
    service.audit_user(user, "operator.password_reset_requested", {"sent": "yes"}, ip=ip, session=session)
    session.commit()
    return ResetMail(user.email, token, user.reset_expires_at)


def reset_user(token: str, *, now: datetime, session: Session) -> ConsoleUser:
    """The user a valid, unused reset link belongs to; NotFound otherwise (expired, used, replaced, disabled)."""
    user = session.scalars(select(ConsoleUser).where(ConsoleUser.reset_hash == auth.token_hash(token))).first()
    if user is None or user.reset_expires_at is None or user.reset_expires_at <= now or user.disabled:
        raise NotFound("password-reset link")
    return user


def reset_password(token: str, password: str, *, now: datetime, ip: str | None, session: Session) -> ConsoleUser:
    """Set the password of the reset link's user, spend the link, end every session of theirs; commits."""
    user = reset_user(token, now=now, session=session)
    user.password_hash = auth.hash_password(service.check_password(password))
    user.reset_hash = None
    user.reset_expires_at = None
    # A pending invitation is moot once the person has a password.
    user.invite_hash = None
    user.invite_expires_at = None
    user.failed_logins = 0
    user.failed_since = None
    session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
    service.audit_user(user, "operator.password_reset", {}, ip=ip, session=session)
    session.commit()
    return user
