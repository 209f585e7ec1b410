"""Console accounts: users, memberships and roles, sign-in with throttling, sessions, coupon presets.

What a role may do is decided here (`allowed`), once, for every page; what the pages do is
done by the same services the API calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from guestgate.audit import service as audit_service
from guestgate.config import Settings
from guestgate.console import auth
from guestgate.console.models import ConsoleSession, ConsoleUser, CouponPreset, Membership
from guestgate.errors import (
    AuthenticationFailed,
    Conflict,
    NotFound,
    ParameterInvalid,
    PermissionDenied,
    RateLimited,
)
from guestgate.instances import service as instance_service
from guestgate.orgs import service as org_service
from guestgate.tenancy import get_owned

Role = Literal["owner", "admin", "viewer", "front-desk"]
ROLES: tuple[Role, ...] = get_args(Role)
Paper = Literal["a4", "letter"]
# What a role may do. `read` is every page; `write` every change; `desk` the front desk's
# work (print from presets, see guests online, disconnect); `users` the owner's users page.
Ability = Literal["read", "write", "desk", "users"]
ABILITIES: dict[str, frozenset[Ability]] = {
    "owner": frozenset({"read", "write", "desk", "users"}),
    "admin": frozenset({"read", "write", "desk"}),
    "viewer": frozenset({"read"}),
    "front-desk": frozenset({"desk"}),
}
MAX_EMAIL_LENGTH = 254
# Memberships listed per user (the org switcher) and presets per org: both small by nature.
MAX_MEMBERSHIPS = 200
MAX_PRESETS = 50
MAX_PRESET_COUNT = 500
MAX_PRESET_MINUTES = 525_600


@dataclass(frozen=True)
class Operator:
    """A signed-in browser: who, in which org, with which role, and its CSRF token."""

    user_id: str
    email: str
    org_id: str
    role: str
    csrf_token: str
    session_id: str

    def can(self, ability: Ability) -> bool:
        """True if the role grants `ability`."""
        return ability in ABILITIES.get(self.role, frozenset())

    def require(self, ability: Ability) -> None:
        """Raise PermissionDenied unless the role grants `ability`."""
        if not self.can(ability):
            raise PermissionDenied(f"Your role ({self.role}) does not allow this.", code="insufficient_scope")


def normalize_email(email: str) -> str:
    """The address as stored: trimmed and lowercase; ParameterInvalid if it cannot be one."""
    value = email.strip().lower()
    local, _, domain = value.partition("@")
    if not local or "." not in domain or len(value) > MAX_EMAIL_LENGTH or any(c.isspace() for c in value):
        raise ParameterInvalid("email", "must be an e-mail address")
    return value


def check_role(role: str) -> Role:
    """`role` if it is one of the four; ParameterInvalid otherwise."""
    for known in ROLES:
        if role == known:
            return known
    raise ParameterInvalid("role", "must be one of " + ", ".join(ROLES))


def check_password(password: str) -> str:
    """`password` if it is long enough (and not absurdly long); ParameterInvalid otherwise."""
    if len(password) < auth.MIN_PASSWORD_LENGTH:
        raise ParameterInvalid("password", f"must be at least {auth.MIN_PASSWORD_LENGTH} characters long")
    if len(password) > auth.MAX_PASSWORD_LENGTH:
        raise ParameterInvalid("password", f"must be at most {auth.MAX_PASSWORD_LENGTH} characters long")
    return password


@dataclass(frozen=True)
class Invited:
    """A user given a membership, with the one-time set-password token when one was made."""

    user: ConsoleUser
    invite_token: str | None


def add_member(
    *,
    org_id: str,
    email: str,
    role: str,
    now: datetime,
    settings: Settings,
    session: Session,
    password: str | None = None,
) -> Invited:
    """Give `email` the `role` in the org (the user is created if new) and commit.

    A new user without `password` gets a one-time set-password token, valid
    `console_invite_hours`; an existing user keeps their password.
    """
    address = normalize_email(email)
    checked_role = check_role(role)
    if password is not None:
        check_password(password)
    org_service.ensure(org_id, session=session)
    user = session.scalars(select(ConsoleUser).where(ConsoleUser.email == address)).first()
    token: str | None = None
    if user is None:
        user = ConsoleUser(email=address, failed_logins=0, disabled=False, created_at=now)
        session.add(user)
        if password is not None:
            user.password_hash = auth.hash_password(password)
        else:
            token = _new_invite(user, now=now, settings=settings)
        session.flush()
    if session.get(Membership, (user.id, org_id)) is not None:
        raise Conflict(f"{address} is already a member of this organisation.", code="resource_in_use")
    session.add(Membership(user_id=user.id, org_id=org_id, role=checked_role, created_at=now))
    audit_service.record(
        session,
        org_id=org_id,
        action="operator.member_add",
        target_type="console_user",
        target_id=user.id,
        detail={"email": address, "role": checked_role},
    )
    session.commit()
    return Invited(user, token)


def reinvite(user_id: str, *, org_id: str, now: datetime, settings: Settings, session: Session) -> str:
    """A fresh one-time set-password token for a member of the org (the old one stops working); commits."""
    user = _member(user_id, org_id=org_id, session=session)[0]
    token = _new_invite(user, now=now, settings=settings)
    audit_service.record(
        session, org_id=org_id, action="operator.invite", target_type="console_user", target_id=user.id
    )
    session.commit()
    return token


def _new_invite(user: ConsoleUser, *, now: datetime, settings: Settings) -> str:
    token = auth.new_token()
    user.invite_hash = auth.token_hash(token)
    user.invite_expires_at = now + timedelta(hours=settings.console_invite_hours)
    return token


def invited_user(token: str, *, now: datetime, session: Session) -> ConsoleUser:
    """The user a valid, unused set-password token belongs to; NotFound otherwise."""
    user = session.scalars(
        select(ConsoleUser).where(ConsoleUser.invite_hash == auth.token_hash(token))
    ).first()
    if user is None or user.invite_expires_at is None or user.invite_expires_at <= now or user.disabled:
        raise NotFound("set-password link")
    return user


def set_password(token: str, password: str, *, now: datetime, session: Session) -> ConsoleUser:
    """Set the password of the token's user, spend the token, end their sessions; commits."""
    user = invited_user(token, now=now, session=session)
    user.password_hash = auth.hash_password(check_password(password))
    user.invite_hash = None
    user.invite_expires_at = None
    user.failed_logins = 0
    user.failed_since = None
    session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
    session.commit()
    return user


@dataclass(frozen=True)
class MemberView:
    """A member of an org as the users page shows it."""

    user_id: str
    email: str
    role: str
    disabled: bool
    has_password: bool


def list_members(*, org_id: str, session: Session, limit: int = MAX_MEMBERSHIPS) -> list[MemberView]:
    """The org's members by e-mail (at most `limit`)."""
    rows = session.execute(
        select(ConsoleUser, Membership.role)
        .join(Membership, Membership.user_id == ConsoleUser.id)
        .where(Membership.org_id == org_id)
        .order_by(ConsoleUser.email)
        .limit(limit)
    )
    return [
        MemberView(user.id, user.email, role, user.disabled, user.password_hash is not None)
        for user, role in rows
    ]


def _member(user_id: str, *, org_id: str, session: Session) -> tuple[ConsoleUser, Membership]:
    membership = session.get(Membership, (user_id, org_id))
    user = session.get(ConsoleUser, user_id)
    if membership is None or user is None:
        raise NotFound("user", user_id)
    return user, membership


def change_role(user_id: str, role: str, *, org_id: str, by: Operator, session: Session) -> None:
    """Change a member's role in the org and commit; an owner cannot demote themselves."""
    checked = check_role(role)
    _, membership = _member(user_id, org_id=org_id, session=session)
    if user_id == by.user_id and checked != "owner":
        raise ParameterInvalid("role", "of your own account cannot be lowered (ask another owner)")
    before = membership.role
    membership.role = checked
    audit_service.record(
        session,
        org_id=org_id,
        action="operator.role_change",
        target_type="console_user",
        target_id=user_id,
        detail={"from": before, "to": checked},
    )
    session.commit()


def set_disabled(user_id: str, disabled: bool, *, org_id: str, by: Operator, session: Session) -> None:
    """Disable (signed out everywhere) or re-enable a member of the org, and commit."""
    user, _ = _member(user_id, org_id=org_id, session=session)
    if user_id == by.user_id:
        raise ParameterInvalid("user", "cannot be your own account")
    user.disabled = disabled
    if disabled:
        session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user.id))
    audit_service.record(
        session,
        org_id=org_id,
        action="operator.disable" if disabled else "operator.enable",
        target_type="console_user",
        target_id=user_id,
    )
    session.commit()


def memberships(user_id: str, *, session: Session) -> list[Membership]:
    """The user's memberships by org id (at most MAX_MEMBERSHIPS)."""
    return list(
        session.scalars(
            select(Membership)
            .where(Membership.user_id == user_id)
            .order_by(Membership.org_id)
            .limit(MAX_MEMBERSHIPS)
        )
    )


@dataclass(frozen=True)
class SignedIn:
    """A new session: the cookie's token and who it is."""

    token: str
    operator: Operator


def login(
    email: str, password: str, *, now: datetime, settings: Settings, ip: str | None, session: Session
) -> SignedIn:
    """Check the password and open a session in the user's first org; commits.

    Wrong passwords count against the account: `console_login_max_failures` of them within
    `console_login_lock_minutes` lock it for the rest of that window (RateLimited), whatever
    password comes next. Every outcome for a known account is audited in its orgs.
    """
    try:
        address = normalize_email(email)
    except ParameterInvalid:
        auth.verify_password(None, password)
        raise AuthenticationFailed(
            "The e-mail address or the password is wrong.", code="token_invalid"
        ) from None
    user = session.scalars(select(ConsoleUser).where(ConsoleUser.email == address)).first()
    retry = locked_for(user, now=now, settings=settings) if user is not None else None
    if user is not None and retry is not None:
        audit_user(user, "operator.login_failed", {"reason": "locked"}, ip=ip, session=session)
        session.commit()
        raise RateLimited(
            "Too many wrong passwords for this account. Try again in a few minutes.", retry_after=retry
        )
    ok = auth.verify_password(user.password_hash if user else None, password)
    orgs = memberships(user.id, session=session) if user is not None else []
    if user is None or not ok or user.disabled or not orgs:
        if user is not None:
            if not ok:
                count_wrong_password(user, now=now)
            reason = "password" if not ok else "disabled" if user.disabled else "no_membership"
            audit_user(user, "operator.login_failed", {"reason": reason}, ip=ip, session=session)
            session.commit()
        raise AuthenticationFailed("The e-mail address or the password is wrong.", code="token_invalid")
    assert user.password_hash is not None
    if auth.needs_rehash(user.password_hash):
        user.password_hash = auth.hash_password(password)
    user.failed_logins = 0
    user.failed_since = None
    token = auth.new_token()
    row = ConsoleSession(
        id=auth.token_hash(token),
        user_id=user.id,
        org_id=orgs[0].org_id,
        csrf_token=auth.new_token(),
        created_at=now,
        last_seen_at=now,
    )
    session.add(row)
    audit_user(user, "operator.login", {}, ip=ip, session=session)
    session.commit()
    return SignedIn(token, Operator(user.id, user.email, row.org_id, orgs[0].role, row.csrf_token, row.id))


def locked_for(user: ConsoleUser, *, now: datetime, settings: Settings) -> int | None:
    """Seconds the account refuses passwords for (too many wrong ones lately), or None.

    A window of failures that has run out is forgotten here.
    """
    window = timedelta(minutes=settings.console_login_lock_minutes)
    if user.failed_since is not None and user.failed_since + window <= now:
        user.failed_logins = 0
        user.failed_since = None
    if user.failed_logins < settings.console_login_max_failures or user.failed_since is None:
        return None
    return max(1, int((user.failed_since + window - now).total_seconds()))


def count_wrong_password(user: ConsoleUser, *, now: datetime) -> None:
    """Count a wrong password against the account (see `locked_for`)."""
    user.failed_logins += 1
    user.failed_since = user.failed_since or now


def audit_user(
    user: ConsoleUser, action: str, detail: dict[str, str], *, ip: str | None, session: Session
) -> None:
    """Record `action` on the user in each org they belong to, as done by them from `ip`."""
    # In each org: every owner sees what happens to the accounts of their members.
    audit_service.act_as(session, audit_service.Actor(f"console:{user.email}", ip))
    for membership in memberships(user.id, session=session):
        audit_service.record(
            session,
            org_id=membership.org_id,
            action=action,
            target_type="console_user",
            target_id=user.id,
            detail=detail,
        )


def resume(token: str | None, *, now: datetime, settings: Settings, session: Session) -> Operator | None:
    """The operator of a session cookie, or None if it is unknown, timed out, disabled or orphaned.

    The idle clock is moved on at most once a minute, so most page views write nothing.
    """
    if not token:
        return None
    row = session.get(ConsoleSession, auth.token_hash(token))
    if row is None:
        return None
    idle = timedelta(minutes=settings.console_idle_minutes)
    absolute = timedelta(hours=settings.console_absolute_hours)
    user = session.get(ConsoleUser, row.user_id)
    membership = session.get(Membership, (row.user_id, row.org_id))
    if (
        row.last_seen_at + idle <= now
        or row.created_at + absolute <= now
        or user is None
        or user.disabled
        or membership is None
    ):
        session.delete(row)
        session.commit()
        return None
    if now - row.last_seen_at >= timedelta(minutes=1):
        row.last_seen_at = now
        session.commit()
    return Operator(user.id, user.email, row.org_id, membership.role, row.csrf_token, row.id)


def logout(operator: Operator, *, session: Session) -> None:
    """End the session and commit."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.id == operator.session_id))
    session.commit()


def switch_org(operator: Operator, org_id: str, *, session: Session) -> None:
    """Move the session to another org the user belongs to (NotFound otherwise) and commit."""
    if session.get(Membership, (operator.user_id, org_id)) is None:
        raise NotFound("organisation", org_id)
    row = session.get(ConsoleSession, operator.session_id)
    if row is None:
        raise NotFound("session")
    row.org_id = org_id
    session.commit()


def list_presets(*, org_id: str, session: Session) -> list[CouponPreset]:
    """The org's coupon presets by name (at most MAX_PRESETS)."""
    return list(
        session.scalars(
            select(CouponPreset)
            .where(CouponPreset.org_id == org_id)
            .order_by(CouponPreset.name)
            .limit(MAX_PRESETS)
        )
    )


def get_preset(preset_id: str, *, org_id: str, session: Session) -> CouponPreset:
    """The org's preset, or NotFound."""
    return get_owned(session, CouponPreset, preset_id, org_id, resource="coupon preset")


def create_preset(
    *,
    org_id: str,
    instance_id: str,
    name: str,
    count: int,
    minutes_valid: int,
    paper: str,
    session: Session,
) -> CouponPreset:
    """Add a coupon preset for one of the org's coupon instances and commit."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ParameterInvalid("name", "must be 1 to 100 characters long")
    if not 1 <= count <= MAX_PRESET_COUNT:
        raise ParameterInvalid("count", f"must be between 1 and {MAX_PRESET_COUNT}")
    if not 1 <= minutes_valid <= MAX_PRESET_MINUTES:
        raise ParameterInvalid("minutes_valid", f"must be between 1 and {MAX_PRESET_MINUTES}")
    if paper not in get_args(Paper):
        raise ParameterInvalid("paper", "must be a4 or letter")
    instance = instance_service.get(instance_id, org_id=org_id, session=session)
    if instance.strategy != "coupon":
        raise ParameterInvalid("instance_id", "must be an instance whose strategy is 'coupon'")
    if len(list_presets(org_id=org_id, session=session)) >= MAX_PRESETS:
        raise ParameterInvalid("name", f"cannot be added: an organisation has at most {MAX_PRESETS} presets")
    preset = CouponPreset(
        org_id=org_id,
        instance_id=instance.id,
        name=name,
        count=count,
        minutes_valid=minutes_valid,
        paper=paper,
    )
    session.add(preset)
    session.flush()
    audit_service.record(
        session,
        org_id=org_id,
        action="coupon_preset.create",
        target_type="coupon_preset",
        target_id=preset.id,
        detail={"name": name, "count": count, "minutes_valid": minutes_valid},
    )
    session.commit()
    return preset


def delete_preset(preset_id: str, *, org_id: str, session: Session) -> None:
    """Remove one of the org's presets and commit."""
    preset = get_preset(preset_id, org_id=org_id, session=session)
    session.delete(preset)
    audit_service.record(
        session,
        org_id=org_id,
        action="coupon_preset.delete",
        target_type="coupon_preset",
        target_id=preset.id,
        detail={"name": preset.name},
    )
    session.commit()
