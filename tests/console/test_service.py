"""Console accounts: passwords, sign-in throttling and audit, session timeouts, invites, presets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from guestgate.audit.models import AuditEvent
from guestgate.console import auth, service
from guestgate.console.models import ConsoleUser
from guestgate.db import utcnow
from guestgate.errors import AuthenticationFailed, Conflict, NotFound, ParameterInvalid, RateLimited
from guestgate.runtime import Runtime
from tests.utils.console import PASSWORD, MemberFactory, make_org


def test_password_is_stored_as_argon2id_and_verifies() -> None:
    stored = auth.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert auth.verify_password(stored, PASSWORD)
    assert not auth.verify_password(stored, PASSWORD + "x")
    assert not auth.verify_password(None, PASSWORD)


def test_login_opens_a_session_and_audits_it(runtime: Runtime, member: MemberFactory) -> None:
    email = member("org-a", "admin")
    with runtime.sessions() as session:
        signed = service.login(
            email.upper(), PASSWORD, now=utcnow(), settings=runtime.settings, ip="192.0.2.7", session=session
        )
        assert signed.operator.role == "admin" and signed.operator.org_id == "org-a"
        found = service.resume(signed.token, now=utcnow(), settings=runtime.settings, session=session)
        assert found is not None and found.email == email
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "operator.login")).all()
        assert [(e.org_id, e.ip_address, e.actor) for e in events] == [
            ("org-a", "192.0.2.7", f"console:{email}")
        ]


def test_wrong_password_is_refused_and_audited_without_the_password(
    runtime: Runtime, member: MemberFactory
) -> None:
    email = member("org-a", "viewer")
    with runtime.sessions() as session:
        with pytest.raises(AuthenticationFailed):
            service.login(
                email, "wrong password!!", now=utcnow(), settings=runtime.settings, ip=None, session=session
            )
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "operator.login_failed")).one()
        assert event.detail == {"reason": "password"}


def test_unknown_email_is_refused_like_a_wrong_password(runtime: Runtime) -> None:
    with runtime.sessions() as session, pytest.raises(AuthenticationFailed) as caught:
        service.login(
            "nobody@example.com", PASSWORD, now=utcnow(), settings=runtime.settings, ip=None, session=session
        )
    assert caught.value.message == "The e-mail address or the password is wrong."


def test_too_many_wrong_passwords_lock_the_account_for_the_window(
    runtime: Runtime, member: MemberFactory
) -> None:
    email = member("org-a", "admin")
    settings = runtime.settings
    now = utcnow()
    with runtime.sessions() as session:
        for _ in range(settings.console_login_max_failures):
            with pytest.raises(AuthenticationFailed):
                service.login(email, "not the password", now=now, settings=settings, ip=None, session=session)
        # Locked: even the right password is refused until the window has passed.
        with pytest.raises(RateLimited):
            service.login(email, PASSWORD, now=now, settings=settings, ip=None, session=session)
        later = now + timedelta(minutes=settings.console_login_lock_minutes, seconds=1)
        assert service.login(email, PASSWORD, now=later, settings=settings, ip=None, session=session).token


def test_session_ends_after_idle_and_absolute_timeouts(runtime: Runtime, member: MemberFactory) -> None:
    email = member("org-a", "viewer")
    settings = runtime.settings
    now = utcnow()
    with runtime.sessions() as session:
        token = service.login(email, PASSWORD, now=now, settings=settings, ip=None, session=session).token
        idle = timedelta(minutes=settings.console_idle_minutes)
        assert service.resume(
            token, now=now + idle - timedelta(seconds=1), settings=settings, session=session
        )
        assert service.resume(token, now=now + 2 * idle, settings=settings, session=session) is None
    with runtime.sessions() as session:
        token = service.login(email, PASSWORD, now=now, settings=settings, ip=None, session=session).token
        moment = now
        # Active all the time, but past the absolute limit it ends all the same.
        while moment < now + timedelta(hours=settings.console_absolute_hours):
            assert service.resume(token, now=moment, settings=settings, session=session) is not None
            moment += idle - timedelta(minutes=1)
        assert service.resume(token, now=moment, settings=settings, session=session) is None


def test_invite_link_sets_the_password_once(runtime: Runtime) -> None:
    now = utcnow()
    with runtime.sessions() as session:
        invited = service.add_member(
            org_id="org-a",
            email="new@example.com",
            role="front-desk",
            now=now,
            settings=runtime.settings,
            session=session,
        )
        assert invited.invite_token is not None
        with pytest.raises(ParameterInvalid):
            service.set_password(invited.invite_token, "short", now=now, session=session)
        service.set_password(invited.invite_token, PASSWORD, now=now, session=session)
        with pytest.raises(NotFound):
            service.set_password(invited.invite_token, PASSWORD, now=now, session=session)
        assert service.login(
            "new@example.com", PASSWORD, now=now, settings=runtime.settings, ip=None, session=session
        )


def test_invite_link_expires(runtime: Runtime) -> None:
    now = utcnow()
    with runtime.sessions() as session:
        token = service.add_member(
            org_id="org-a",
            email="late@example.com",
            role="viewer",
            now=now,
            settings=runtime.settings,
            session=session,
        ).invite_token
        assert token is not None
        later = now + timedelta(hours=runtime.settings.console_invite_hours)
        with pytest.raises(NotFound):
            service.set_password(token, PASSWORD, now=later, session=session)


def test_a_user_in_two_orgs_can_switch_but_not_to_a_third(runtime: Runtime, member: MemberFactory) -> None:
    email = member("org-a", "admin", email="msp@example.com")
    member("org-b", "viewer", email="msp@example.com")
    with runtime.sessions() as session:
        service.add_member(
            org_id="org-c",
            email="other@example.com",
            role="owner",
            now=utcnow(),
            settings=runtime.settings,
            session=session,
            password=PASSWORD,
        )
        signed = service.login(
            email, PASSWORD, now=utcnow(), settings=runtime.settings, ip=None, session=session
        )
        service.switch_org(signed.operator, "org-b", session=session)
        now_b = service.resume(signed.token, now=utcnow(), settings=runtime.settings, session=session)
        assert now_b is not None and (now_b.org_id, now_b.role) == ("org-b", "viewer")
        with pytest.raises(NotFound):
            service.switch_org(signed.operator, "org-c", session=session)


def test_membership_twice_is_a_conflict_and_roles_are_checked(
    runtime: Runtime, member: MemberFactory
) -> None:
    member("org-a", "admin", email="a@example.com")
    with runtime.sessions() as session:
        with pytest.raises(Conflict):
            service.add_member(
                org_id="org-a",
                email="A@example.com",
                role="viewer",
                now=utcnow(),
                settings=runtime.settings,
                session=session,
            )
        session.rollback()
        with pytest.raises(ParameterInvalid) as caught:
            service.add_member(
                org_id="org-a",
                email="b@example.com",
                role="root",
                now=utcnow(),
                settings=runtime.settings,
                session=session,
            )
        assert caught.value.param == "role"


def test_disabling_a_user_ends_their_sessions(runtime: Runtime, member: MemberFactory) -> None:
    owner_email = member("org-a", "owner")
    desk_email = member("org-a", "front-desk")
    settings = runtime.settings
    with runtime.sessions() as session:
        owner = service.login(
            owner_email, PASSWORD, now=utcnow(), settings=settings, ip=None, session=session
        )
        desk = service.login(desk_email, PASSWORD, now=utcnow(), settings=settings, ip=None, session=session)
        desk_id = session.scalars(select(ConsoleUser.id).where(ConsoleUser.email == desk_email)).one()
        service.set_disabled(desk_id, True, org_id="org-a", by=owner.operator, session=session)
        assert service.resume(desk.token, now=utcnow(), settings=settings, session=session) is None
        with pytest.raises(AuthenticationFailed):
            service.login(desk_email, PASSWORD, now=utcnow(), settings=settings, ip=None, session=session)
        with pytest.raises(ParameterInvalid):
            service.set_disabled(
                owner.operator.user_id, True, org_id="org-a", by=owner.operator, session=session
            )


def test_presets_are_checked_and_belong_to_their_org(runtime: Runtime) -> None:
    a = make_org(runtime, "org-a")
    b = make_org(runtime, "org-b")
    with runtime.sessions() as session:
        preset = service.create_preset(
            org_id="org-a",
            instance_id=a.instance_id,
            name="Day pass",
            count=20,
            minutes_valid=1440,
            paper="a4",
            session=session,
        )
        with pytest.raises(ParameterInvalid) as caught:
            service.create_preset(
                org_id="org-a",
                instance_id=a.instance_id,
                name="Too many",
                count=501,
                minutes_valid=60,
                paper="a4",
                session=session,
            )
        assert caught.value.param == "count"
        with pytest.raises(NotFound):
            service.create_preset(
                org_id="org-a",
                instance_id=b.instance_id,
                name="Theirs",
                count=1,
                minutes_valid=60,
                paper="a4",
                session=session,
            )
        with pytest.raises(NotFound):
            service.get_preset(preset.id, org_id="org-b", session=session)
        assert [p.name for p in service.list_presets(org_id="org-a", session=session)] == ["Day pass"]
