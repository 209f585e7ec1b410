"""Console notification-group pages: create/edit with field errors, and "send test" to a real SMTP
server (aiosmtpd) and a real HTTP receiver, the outcome told in our words only."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from guestgate.config import Settings
from guestgate.notifications.models import NotificationGroup
from guestgate.runtime import Runtime
from tests.utils.console import MemberFactory, make_org, sign_in
from tests.utils.mail import REMOTE_WORDS, Inbox, smtp_server
from tests.utils.settings import make_settings

SECRET = "the signing secret of the hook"


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: records each POST, answers `status` with a body of its own."""

    status: int = 204
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    with smtp_server() as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
            text = f"{REMOTE_WORDS}".encode()
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(text)) if state.status != 204 else "0")
            self.end_headers()
            if state.status != 204:
                self.wfile.write(text)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(db_url: str, tmp_path: Path, smtp: tuple[Inbox, int]) -> Settings:
    """The aiosmtpd server as the SMTP server; webhooks on loopback pass the outbound policy."""
    return make_settings(
        db_url,
        tmp_path / "var",
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_security="none",
        outbound_allow_networks="127.0.0.0/8",
    )


def _group(runtime: Runtime) -> NotificationGroup:
    with runtime.sessions() as session:
        return session.scalars(select(NotificationGroup)).one()


def _result(html: str) -> str:
    found = re.search(r'id="test-result" role="status">([^<]+)</p>', html)
    assert found is not None, html
    return found.group(1)


def test_admin_creates_a_group_and_sends_a_test_e_mail_to_the_smtp_server(
    client: TestClient, runtime: Runtime, member: MemberFactory, smtp: tuple[Inbox, int]
) -> None:
    make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    created = client.post(
        "/console/notification-groups",
        data={"csrf_token": csrf, "name": "Front desk", "emails": "desk@example.com\nrefuse@example.com"},
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    group = _group(runtime)
    assert group.emails == ["desk@example.com", "refuse@example.com"]
    sent = client.post(
        f"/console/notification-groups/{group.id}/test",
        data={"csrf_token": csrf, "channel": "email", "target": "desk@example.com"},
    )
    assert (
        _result(sent.text)
        == "The SMTP server accepted the test message to desk@example.com (reply code 250)."
    )
    inbox = smtp[0]
    assert len(inbox.envelopes) == 1 and inbox.envelopes[0].rcpt_tos == ["desk@example.com"]
    content = inbox.envelopes[0].content
    assert isinstance(content, bytes)
    message = message_from_bytes(content, policy=policy.default)
    assert message["Subject"] == "guestgate test message: Front desk"
    refused = client.post(
        f"/console/notification-groups/{group.id}/test",
        data={"csrf_token": csrf, "channel": "email", "target": "refuse@example.com"},
    )
    assert _result(refused.text) == "The SMTP server refused the test message (reply code 550)."
    assert REMOTE_WORDS not in refused.text
    # Only the group's own targets: the console is no relay.
    elsewhere = client.post(
        f"/console/notification-groups/{group.id}/test",
        data={"csrf_token": csrf, "channel": "email", "target": "someone@example.org"},
    )
    assert _result(elsewhere.text) == "That address or URL is not one of this group&#39;s."
    assert len(inbox.envelopes) == 1


def test_send_test_to_a_webhook_is_signed_and_its_answer_told_in_our_words(
    client: TestClient, runtime: Runtime, member: MemberFactory, receiver: Receiver
) -> None:
    make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    url = f"http://127.0.0.1:{receiver.port}/hook"
    client.post(
        "/console/notification-groups",
        data={"csrf_token": csrf, "name": "Hooks", "webhooks[0].url": url, "webhooks[0].secret": SECRET},
    )
    group = _group(runtime)
    page = client.get(f"/console/notification-groups/{group.id}")
    assert SECRET not in page.text and url in page.text
    ok = client.post(
        f"/console/notification-groups/{group.id}/test",
        data={"csrf_token": csrf, "channel": "webhook", "target": url},
    )
    assert _result(ok.text) == "The webhook answered HTTP 204."
    headers, body = receiver.posts[0]
    assert headers["x-guestgate-event"] == "notifications.test"
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-guestgate-signature"] == expected
    assert json.loads(body)["notification_group_id"] == group.id
    receiver.status = 500
    failed = client.post(
        f"/console/notification-groups/{group.id}/test",
        data={"csrf_token": csrf, "channel": "webhook", "target": url},
    )
    assert _result(failed.text) == "The webhook failed: the receiver answered HTTP 500."
    assert REMOTE_WORDS not in failed.text


def test_group_errors_are_shown_at_the_field_that_caused_them(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    cases = [
        ({"emails": "desk@example.com\nnot an address"}, "emails", 400),
        # The first row is empty: the webhook without a secret is the form's second row.
        ({"webhooks[1].url": "http://127.0.0.1:9/hook"}, "webhooks[1].secret", 400),
        ({"webhooks[0].url": "http://10.1.2.3/hook", "webhooks[0].secret": SECRET}, "webhooks[0].url", 400),
        ({"webhooks[0].url": "ftp://127.0.0.1/x", "webhooks[0].secret": SECRET}, "webhooks[0].url", 400),
        ({"name": ""}, "name", 400),
    ]
    for changes, name, status in cases:
        form = {"csrf_token": csrf, "name": "Desk", **changes}
        bad = client.post("/console/notification-groups", data=form)
        assert bad.status_code == status, (changes, bad.status_code)
        assert f'id="{name}-error"' in bad.text, (changes, bad.text)
        assert SECRET not in bad.text
    second_row = client.post(
        "/console/notification-groups",
        data={"csrf_token": csrf, "name": "Desk", "webhooks[1].url": "http://127.0.0.1:9/hook"},
    )
    assert "The &#39;webhooks[1].secret&#39; parameter" in second_row.text
    with runtime.sessions() as session:
        assert session.scalars(select(NotificationGroup)).first() is None


def test_a_blank_secret_keeps_the_stored_one_of_the_same_url(
    client: TestClient, runtime: Runtime, member: MemberFactory
) -> None:
    make_org(runtime, "org-a")
    csrf = sign_in(client, member("org-a", "admin"))
    url = "http://127.0.0.1:9/hook"
    client.post(
        "/console/notification-groups",
        data={"csrf_token": csrf, "name": "Hooks", "webhooks[0].url": url, "webhooks[0].secret": SECRET},
    )
    group = _group(runtime)
    kept = client.post(
        f"/console/notification-groups/{group.id}",
        data={"csrf_token": csrf, "name": "Renamed", "webhooks[0].url": url},
        follow_redirects=False,
    )
    assert kept.status_code == 303
    moved = client.post(
        f"/console/notification-groups/{group.id}",
        data={"csrf_token": csrf, "name": "Renamed", "webhooks[0].url": "http://127.0.0.1:10/hook"},
    )
    assert moved.status_code == 400 and 'id="webhooks[0].secret-error"' in moved.text
    stored = _group(runtime)
    assert stored.name == "Renamed" and [h["url"] for h in stored.webhooks] == [url]
