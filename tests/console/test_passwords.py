"""Console passwords: change while signed in, and "Forgot password" with its link mailed through a real
SMTP server (aiosmtpd): one-time, short-lived, hashed, throttled, and the same answer for every address."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from guestgate.audit.models import AuditEvent
from guestgate.config import Settings
from guestgate.console import auth, passwords, service
from guestgate.console.models import ConsoleSession, ConsoleUser
from guestgate.db import utcnow
from guestgate.errors import NotFound
from guestgate.runtime import Runtime
from tests.utils.console import PASSWORD, MemberFactory, csrf_of, make_org, sign_in
from tests.utils.mail import Inbox, smtp_server
from tests.utils.settings import make_settings

NEW_PASSWORD = "a much longer new passphrase"
ANSWER = "If this address belongs to an active console account, a link to choose a new password is on its way."


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as running:
        yield running


@pytest.fixture
def settings(db_url: str, tmp_path: Path, smtp: tuple[Inbox, int]) -> Settings:
    """aiosmtpd as the SMTP server; two reset mails per address, four requests a minute per client."""
    return make_settings(
        db_url,
        tmp_path / "var",
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_security="none",
        console_reset_max_mails=2,
        console_reset_per_minute=4,
    )


def _forgot(client: TestClient, email: str) -> str:
    page = client.get("/console/forgot-password")
    answer = client.post("/console/forgot-password", data={"email": email, "csrf_token": csrf_of(page.text)})
    assert answer.status_code == 200, answer.text
    return answer.text


def _link(inbox: Inbox, index: int = -1) -> str:
    body = inbox.messages()[index].get_content()
    found = re.search(r"(https?://\S+/console/reset-password/(\S+))", body)
    assert found is not None, body
    return found.group(1)


def _user(runtime: Runtime, email: str) -> ConsoleUser:
    with runtime.sessions() as session:
        user = session.scalars(select(ConsoleUser).where(ConsoleUser.email == email)).one()
        session.expunge(user)
        return user


def _actions(runtime: Runtime, prefix: str) -> list[str]:
    with runtime.sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.action.startswith(prefix)).order_by(AuditEvent.id)
            )
        )


def test_a_mailed_reset_link_sets_the_password_once_and_ends_every_session(
    client: TestClient, runtime: Runtime, member: MemberFactory, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    make_org(runtime, "org-a")
    email = member("org-a", "viewer")
    signed_in = TestClient(client.app)
    sign_in(signed_in, email)

    assert ANSWER in _forgot(client, email)
    [message] = inbox.messages()
    assert message["To"] == email and message["Subject"] == "Reset your guestgate console password"
    link = _link(inbox)
    token = link.rsplit("/", 1)[1]
    assert link.startswith(runtime.settings.public_url + "/console/reset-password/")
    # Only the token's hash is kept.
    user = _user(runtime, email)
    assert user.reset_hash == auth.token_hash(token) != token
    assert user.reset_expires_at is not None
    assert timedelta(minutes=29) < user.reset_expires_at - utcnow() <= timedelta(minutes=30)

    path = link.removeprefix(runtime.settings.public_url)
    form = client.get(path)
    assert form.status_code == 200 and email in form.text
    differ = client.post(path, data={"password": NEW_PASSWORD, "confirm": "something else entirely"})
    assert differ.status_code == 400 and 'id="confirm-error"' in differ.text
    weak = client.post(path, data={"password": "short", "confirm": "short"})
    assert weak.status_code == 400 and "at least 12 characters" in weak.text
    done = client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/console/login"

    assert client.get(path).status_code == 404  # used once
    assert client.post(path, data={"password": PASSWORD, "confirm": PASSWORD}).status_code == 404
    after = signed_in.get("/console/guests", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/console/login")
    page = client.get("/console/login")
    old = client.post(
        "/console/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert old.status_code == 401
    sign_in(client, email, NEW_PASSWORD)
    assert _actions(runtime, "operator.password_reset") == [
        "operator.password_reset_requested",
        "operator.password_reset",
    ]
    assert all(token not in str(row) for row in _audit_details(runtime))


def _audit_details(runtime: Runtime) -> list[object]:
    with runtime.sessions() as session:
        return [e.detail for e in session.scalars(select(AuditEvent))]


def test_forgot_password_answers_the_same_words_whatever_the_address(
    client: TestClient, runtime: Runtime, member: MemberFactory, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    make_org(runtime, "org-a")
    active = member("org-a", "admin")
    disabled = member("org-a", "viewer")
    owner = member("org-a", "owner")
    with runtime.sessions() as session:
        who = service.Operator(_user(runtime, owner).id, owner, "org-a", "owner", "", "")
        service.set_disabled(_user(runtime, disabled).id, True, org_id="org-a", by=who, session=session)

    answers = {
        "unknown": _forgot(client, "nobody@example.com"),
        "not an address": _forgot(client, "not an address"),
        "disabled": _forgot(client, disabled),
        "active": _forgot(client, active),
    }
    # Another client (the per-client limit is four a minute) asks twice more for the active address.
    other = TestClient(client.app, client=("192.0.2.7", 50000))
    answers["active again"] = _forgot(other, active.upper())
    answers["throttled"] = _forgot(other, active)
    assert len(set(answers.values())) == 1, answers.keys()
    # Two mails to the active address (its limit); none to the others.
    assert [m["To"] for m in inbox.messages()] == [active, active]
    # Only the newest link works.
    first, second = _link(inbox, 0), _link(inbox, 1)
    assert client.get(first.removeprefix(runtime.settings.public_url)).status_code == 404
    assert client.get(second.removeprefix(runtime.settings.public_url)).status_code == 200
    with runtime.sessions() as session:
        details = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "operator.password_reset_requested")
        ).all()
        assert details == [{"sent": "yes"}, {"sent": "yes"}, {"sent": "no", "reason": "throttled"}]


def test_forgot_password_is_throttled_per_client_before_any_lookup(
    client: TestClient, runtime: Runtime, smtp: tuple[Inbox, int]
) -> None:
    for _ in range(4):
        _forgot(client, "nobody@example.com")
    page = client.get("/console/forgot-password")
    refused = client.post(
        "/console/forgot-password", data={"email": "nobody@example.com", "csrf_token": csrf_of(page.text)}
    )
    assert refused.status_code == 429
    assert "Too many password-reset requests from your address" in refused.text
    # Another client address has its own allowance.
    assert ANSWER in _forgot(TestClient(client.app, client=("192.0.2.8", 50000)), "nobody@example.com")


def test_forgot_password_without_its_csrf_token_sends_nothing(
    client: TestClient, runtime: Runtime, member: MemberFactory, smtp: tuple[Inbox, int]
) -> None:
    make_org(runtime, "org-a")
    email = member("org-a", "viewer")
    client.get("/console/forgot-password")
    for token in ({}, {"csrf_token": "forged"}):
        refused = client.post("/console/forgot-password", data={"email": email, **token})
        assert refused.status_code == 403 and "This form has expired" in refused.text
    assert smtp[0].envelopes == []
    assert _user(runtime, email).reset_hash is None


def test_a_reset_link_expires_and_stops_working_for_a_disabled_account(
    runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    email = member("org-a", "viewer")
    now = utcnow()
    with runtime.sessions() as session:
        mail = passwords.request_reset(email, now=now, settings=runtime.settings, ip=None, session=session)
        assert mail is not None
        assert passwords.reset_user(mail.token, now=now + timedelta(minutes=29), session=session).email == email
        with pytest.raises(NotFound):
            passwords.reset_user(mail.token, now=now + timedelta(minutes=30), session=session)
        user = session.scalars(select(ConsoleUser).where(ConsoleUser.email == email)).one()
        user.disabled = True
        session.commit()
        with pytest.raises(NotFound):
            passwords.reset_user(mail.token, now=now, session=session)
        # A disabled account is sent nothing at all.
        assert passwords.request_reset(email, now=now, settings=runtime.settings, ip=None, session=session) is None


def test_changing_the_password_ends_the_other_sessions_and_keeps_this_one(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    email = member("org-a", "front-desk")
    other = TestClient(client.app)
    sign_in(other, email)
    csrf = sign_in(client, email)
    page = client.get("/console/account")
    assert page.status_code == 200 and 'action="/console/account/password"' in page.text

    def change(current: str, new: str, confirm: str | None = None) -> str:
        form = {"csrf_token": csrf, "current": current, "password": new, "confirm": confirm or new}
        response = client.post("/console/account/password", data=form)
        return f"{response.status_code} {response.text}"

    assert change(PASSWORD, NEW_PASSWORD, "not the same").startswith("400")
    wrong = change("not my password at all", NEW_PASSWORD)
    assert wrong.startswith("400") and 'id="current-error"' in wrong and "is not your password" in wrong
    assert "at least 12 characters" in change(PASSWORD, "short")
    done = change(PASSWORD, NEW_PASSWORD)
    assert done.startswith("200") and 'id="password-changed"' in done

    assert client.get("/console/guests").status_code == 200
    gone = other.get("/console/guests", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"].startswith("/console/login")
    with runtime.sessions() as session:
        assert len(session.scalars(select(ConsoleSession)).all()) == 1
    sign_in(other, email, NEW_PASSWORD)
    assert _actions(runtime, "operator.password_change") == [
        "operator.password_change_failed",
        "operator.password_changed",
    ]


def test_wrong_current_passwords_lock_the_account_like_wrong_sign_ins(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    email = member("org-a", "viewer")
    csrf = sign_in(client, email)
    form = {"csrf_token": csrf, "current": "guess guess guess", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    statuses = [client.post("/console/account/password", data=form).status_code for _ in range(6)]
    assert statuses == [400] * 5 + [429]
    # The right password is refused too while locked, and the sign-in page says the same.
    locked = client.post("/console/account/password", data={**form, "current": PASSWORD})
    assert locked.status_code == 429 and "Too many wrong passwords" in locked.text
    page = client.get("/console/login")
    login = client.post(
        "/console/login", data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert login.status_code == 429


def test_the_password_form_without_the_session_csrf_token_changes_nothing(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    email = member("org-a", "owner")
    sign_in(client, email)
    before = _user(runtime, email).password_hash
    for token in ({}, {"csrf_token": "forged"}):
        form = {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD, **token}
        refused = client.post("/console/account/password", data=form)
        assert refused.status_code == 403 and "This form has expired" in refused.text
    assert _user(runtime, email).password_hash == before
