"""E-mail delivery against a real SMTP server (aiosmtpd) started by the tests, and the outbox mode."""

from __future__ import annotations

import csv
import io
import ipaddress
import math
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pypdf import PdfReader
from structlog.testing import capture_logs

from guestgate.db import utcnow
from guestgate.instances.models import Instance
from guestgate.notifications import delivery, email
from guestgate.notifications.outbox import DeliveryReport
from guestgate.notifications.payload import BatchCoupon, BatchPayload
from guestgate.schedules.models import CouponSchedule
from tests.coupons.test_export import pdftotext
from tests.notifications.test_delivery import (
    T0,
    RuntimeFactory,
    attempts,
    coupon_codes,
    deliveries,
    free_port,
    make_batch,
    make_runtime,
)

__all__ = ["make_runtime"]  # fixture used by name below
SMTP_USER = "mailer"
SMTP_PASSWORD = "smtp-password-that-must-never-be-logged"


@dataclass
class Inbox:
    """What the SMTP server accepted, and the logins it saw."""

    envelopes: list[Envelope] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def message(self, index: int = 0) -> EmailMessage:
        content = self.envelopes[index].content
        assert isinstance(content, bytes)
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def authenticate(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        ok = data.login.decode() == SMTP_USER and data.password.decode() == SMTP_PASSWORD
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself


SmtpFactory = Callable[..., tuple[Inbox, int]]


@pytest.fixture
def smtp_server() -> Iterator[SmtpFactory]:
    """`smtp_server(port=None, **aiosmtpd options)` -> (inbox, port): a real SMTP server on 127.0.0.1."""
    controllers: list[Controller] = []

    def start(port: int | None = None, **options: Any) -> tuple[Inbox, int]:
        inbox = Inbox()
        if "authenticator" in options:
            options["authenticator"] = inbox.authenticate
        port = port or free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return inbox, port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture
def tls_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ssl.SSLContext, Path]:
    """A self-signed certificate for 127.0.0.1 that the client trusts (SSL_CERT_FILE); the server context."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    return server, cert_path


def smtp_settings(port: int, **overrides: object) -> dict[str, object]:
    """Settings of a plain SMTP server on 127.0.0.1:`port`."""
    return {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_security": "none", **overrides}


def body_text(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert isinstance(part, EmailMessage)
    text = part.get_content()
    assert isinstance(text, str)
    return text


def attachments(message: EmailMessage) -> dict[str, tuple[str, bytes]]:
    """filename -> (content type, bytes)."""
    found: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        found[str(part.get_filename())] = (part.get_content_type(), payload)
    return found


# --- the message, against a real SMTP server --------------------------------------------------------


def test_batch_email_has_subject_bodies_attachments_and_a_link_that_works(
    make_runtime: RuntimeFactory, smtp_server: SmtpFactory, client: TestClient
) -> None:
    inbox, port = smtp_server()
    runtime = make_runtime(**smtp_settings(port, smtp_from="Front desk bot <bot@hotel.example>"))
    now = utcnow().replace(second=0, microsecond=0)
    batch = make_batch(runtime, now=now, emails=("desk@hotel.example",), count=23, valid_minutes=480)
    assert delivery.deliver_due_sync(runtime=runtime, now=now) == DeliveryReport(sent=1)

    [envelope] = inbox.envelopes
    assert envelope.mail_from == "bot@hotel.example"
    assert envelope.rcpt_tos == ["desk@hotel.example"]
    message = inbox.message()
    [row] = deliveries(runtime, batch.run_id)
    assert message["Subject"] == "23 guest Wi-Fi coupons: Daily Guest Passes (Lobby Wi-Fi)"
    assert message["To"] == "desk@hotel.example"
    assert message["X-Guestgate-Delivery"] == row.id
    expiry = f"{now + timedelta(hours=8):%Y-%m-%d %H:%M} UTC"

    text = body_text(message, "plain")
    for expected in ("23 guest Wi-Fi coupons", "Lobby Wi-Fi", "Daily Guest Passes", "8 hours", expiry):
        assert expected in text
    links = re.findall(r"http://testserver/captive/coupons\?\S+", text)
    assert len(links) == 1
    html = body_text(message, "html")
    assert f'href="{links[0].replace("&", "&amp;")}"' in html
    for expected in ("23 guest Wi-Fi coupons", "Lobby Wi-Fi", "Daily Guest Passes", "8 hours", expiry):
        assert expected in html

    files = attachments(message)
    # Named after the schedule and the batch's local date and time (the schedule's zone: UTC here).
    stem = f"daily-guest-passes-{now:%Y-%m-%d-%H%M}"
    assert sorted(files) == [f"{stem}.csv", f"{stem}.pdf"]
    csv_type, csv_bytes = files[f"{stem}.csv"]
    assert csv_type == "text/csv"
    assert b"\r\n" in csv_bytes
    rows = list(csv.DictReader(io.StringIO(csv_bytes.decode("utf-8"), newline="")))
    assert sorted(r["code"] for r in rows) == batch.codes
    assert list(rows[0]) == [
        "code",
        "expires_at",
        "created_at",
        "id",
        "valid_until",
        *("max_devices", "max_uses", "download_kbps", "upload_kbps", "data_limit_mb", "validity_from"),
    ]
    assert {r["valid_until"] for r in rows} == {expiry}
    assert {r["expires_at"] for r in rows} == {f"{now + timedelta(hours=8):%Y-%m-%dT%H:%M:%SZ}"}
    pdf_type, pdf_bytes = files[f"{stem}.pdf"]
    assert pdf_type == "application/pdf"
    reader = PdfReader(io.BytesIO(pdf_bytes))
    assert len(reader.pages) == math.ceil(23 / 10)
    pdf_text = "\n".join(page.extract_text() for page in reader.pages)
    assert all(code in pdf_text for code in batch.codes)

    link = urlsplit(links[0])
    listed = client.get(f"{link.path}?{link.query}")
    assert listed.status_code == 200
    assert sorted(c["code"] for c in listed.json()) == batch.codes
    as_csv = client.get(f"{link.path}?{link.query}&format=csv")
    assert as_csv.status_code == 200
    assert sorted(r["code"] for r in csv.DictReader(io.StringIO(as_csv.text))) == batch.codes

    [attempt] = attempts(runtime, row.id)
    assert (attempt.attempt, attempt.ok, attempt.status_code, attempt.error) == (1, True, 250, None)


def test_the_email_and_its_files_read_in_sydney_time_across_the_april_change(
    make_runtime: RuntimeFactory, smtp_server: SmtpFactory, client: TestClient
) -> None:
    # Generated at 01:00 AEDT on 5 April 2026, valid 8 hours: the clocks go back at 03:00 AEDT,
    # so the codes stop at 08:00 AEST (22:00 UTC), not 09:00.
    inbox, port = smtp_server()
    runtime = make_runtime(**smtp_settings(port))
    generated = datetime(2026, 4, 4, 14, 0, tzinfo=UTC)
    batch = make_batch(runtime, now=generated, emails=("desk@hotel.example",), count=3, valid_minutes=480)
    with runtime.sessions() as session:
        schedule = session.get(CouponSchedule, batch.schedule_id)
        instance = session.get(Instance, batch.instance_id)
        assert schedule is not None and instance is not None
        schedule.timezone = "Australia/Sydney"
        instance.network_name = "Harbour-Guest"
        instance.theme = {**instance.theme, "accent_color": "#7a3e9d"}
        session.commit()
    assert delivery.deliver_due_sync(runtime=runtime, now=generated) == DeliveryReport(sent=1)
    message = inbox.message()
    text, page = body_text(message, "plain"), body_text(message, "html")
    for part in (text, page):
        assert "2026-04-05 01:00 AEDT" in part  # generated at
        assert "2026-04-05 08:00 AEST" in part  # redeemable until
        assert (
            "2026-04-06 00:00 AEST" in part
        )  # the link works until: 24 h later, an hour earlier by the clock
        assert "Harbour-Guest" in part and "8 hours" in part and " UTC" not in part
    assert "background:#7a3e9d" in page  # the instance's accent colour
    assert message.get_body(preferencelist=("plain",)) is not None
    files = attachments(message)
    assert sorted(files) == [
        "daily-guest-passes-2026-04-05-0100.csv",
        "daily-guest-passes-2026-04-05-0100.pdf",
    ]
    rows = list(csv.DictReader(io.StringIO(files["daily-guest-passes-2026-04-05-0100.csv"][1].decode())))
    assert {r["valid_until"] for r in rows} == {"2026-04-05 08:00 AEST"}
    assert {r["expires_at"] for r in rows} == {"2026-04-04T22:00:00Z"}  # the API's UTC stays
    pdf_text = " ".join(pdftotext(files["daily-guest-passes-2026-04-05-0100.pdf"][1]).split())
    assert "Valid until 2026-04-05 08:00 AEST" in pdf_text and "Network: Harbour-Guest" in pdf_text
    # The link is the batch's signed URL: JSON for an API client, the printable page for a browser.
    [link] = re.findall(r"http://testserver/captive/coupons\?\S+", text)
    path = urlsplit(link)
    with time_machine.travel(generated, tick=False):
        as_json = client.get(f"{path.path}?{path.query}", headers={"Accept": "application/json"})
        as_page = client.get(f"{path.path}?{path.query}", headers={"Accept": "text/html,*/*;q=0.8"})
    assert sorted(c["code"] for c in as_json.json()) == batch.codes
    assert as_page.headers["content-type"] == "text/html; charset=utf-8"
    assert all(code in as_page.text for code in batch.codes)


def test_the_email_is_in_the_portals_language(make_runtime: RuntimeFactory, smtp_server: SmtpFactory) -> None:
    inbox, port = smtp_server()
    runtime = make_runtime(**smtp_settings(port))
    batch = make_batch(runtime, now=T0, emails=("desk@hotel.example",), count=2, valid_minutes=90)
    with runtime.sessions() as session:
        instance = session.get(Instance, batch.instance_id)
        assert instance is not None
        instance.locale = "es"
        session.commit()
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(sent=1)
    message = inbox.message()
    assert message["Subject"] == "2 cupones de wifi para invitados: Daily Guest Passes (Lobby Wi-Fi)"
    text = body_text(message, "plain")
    assert "1 hora y 30 minutos" in text and "Canjeables hasta" in text
    assert 'lang="es"' in body_text(message, "html")


def test_starttls_with_login_sends_the_mail(
    make_runtime: RuntimeFactory, smtp_server: SmtpFactory, tls_files: tuple[ssl.SSLContext, Path]
) -> None:
    server_context, _ = tls_files
    inbox, port = smtp_server(
        tls_context=server_context, require_starttls=True, authenticator=True, auth_require_tls=True
    )
    runtime = make_runtime(
        **smtp_settings(
            port, smtp_security="starttls", smtp_username=SMTP_USER, smtp_password=SecretStr(SMTP_PASSWORD)
        )
    )
    make_batch(runtime, now=T0, emails=("desk@hotel.example",))
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(sent=1)
    assert inbox.logins == [SMTP_USER]
    assert len(inbox.envelopes) == 1


def test_implicit_tls_sends_the_mail(
    make_runtime: RuntimeFactory, smtp_server: SmtpFactory, tls_files: tuple[ssl.SSLContext, Path]
) -> None:
    server_context, _ = tls_files
    inbox, port = smtp_server(ssl_context=server_context)
    runtime = make_runtime(**smtp_settings(port, smtp_security="tls"))
    make_batch(runtime, now=T0, emails=("desk@hotel.example",))
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(sent=1)
    assert len(inbox.envelopes) == 1


def test_refused_login_is_recorded_without_the_password(
    make_runtime: RuntimeFactory, smtp_server: SmtpFactory, tls_files: tuple[ssl.SSLContext, Path]
) -> None:
    server_context, _ = tls_files
    inbox, port = smtp_server(tls_context=server_context, authenticator=True)
    runtime = make_runtime(
        **smtp_settings(
            port, smtp_security="starttls", smtp_username="intruder", smtp_password=SecretStr(SMTP_PASSWORD)
        )
    )
    batch = make_batch(runtime, now=T0, emails=("desk@hotel.example",))
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(retried=1)
    [row] = deliveries(runtime, batch.run_id)
    [attempt] = attempts(runtime, row.id)
    assert attempt.status_code == 535
    assert attempt.error is not None
    assert attempt.error.startswith("SMTP 535")
    assert SMTP_PASSWORD not in attempt.error
    assert inbox.envelopes == []


def test_refused_recipient_is_a_failed_attempt_with_the_smtp_code(
    make_runtime: RuntimeFactory, smtp_server: SmtpFactory
) -> None:
    class Refusing:
        async def handle_RCPT(self, _s: Any, _ss: Any, _e: Any, _address: str, _options: Any) -> str:
            return "550 5.1.1 No such mailbox"

    port = free_port()
    controller = Controller(Refusing(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        runtime = make_runtime(**smtp_settings(port))
        batch = make_batch(runtime, now=T0, emails=("nobody@hotel.example",))
        assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(retried=1)
    finally:
        controller.stop()
    [row] = deliveries(runtime, batch.run_id)
    [attempt] = attempts(runtime, row.id)
    assert (attempt.ok, attempt.status_code) == (False, 550)
    assert attempt.error == "recipient refused: 550 5.1.1 No such mailbox"


def test_smtp_down_is_retried_with_backoff_and_sent_when_it_is_back(
    make_runtime: RuntimeFactory, smtp_server: SmtpFactory
) -> None:
    port = free_port()
    runtime = make_runtime(**smtp_settings(port))
    batch = make_batch(runtime, now=T0, emails=("desk@hotel.example",))
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(retried=1)
    [row] = deliveries(runtime, batch.run_id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, T0 + timedelta(seconds=30))
    assert row.last_error is not None
    assert row.last_error.startswith("SMTPConnectError")
    assert delivery.deliver_due_sync(runtime=runtime, now=T0 + timedelta(seconds=29)) == DeliveryReport()
    assert delivery.deliver_due_sync(runtime=runtime, now=T0 + timedelta(seconds=30)) == DeliveryReport(
        retried=1
    )
    [row] = deliveries(runtime, batch.run_id)
    assert row.next_attempt_at == T0 + timedelta(seconds=90)

    inbox, _ = smtp_server(port=port)
    assert delivery.deliver_due_sync(runtime=runtime, now=T0 + timedelta(seconds=90)) == DeliveryReport(
        sent=1
    )
    [row] = deliveries(runtime, batch.run_id)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    log = attempts(runtime, row.id)
    assert [(a.attempt, a.ok) for a in log] == [(1, False), (2, False), (3, True)]
    assert [a.at for a in log] == [T0, T0 + timedelta(seconds=30), T0 + timedelta(seconds=90)]
    assert len(inbox.envelopes) == 1
    assert coupon_codes(runtime, batch.run_id) == batch.codes


# --- the outbox (no SMTP host) -----------------------------------------------------------------------


def test_without_smtp_the_mail_is_written_to_the_outbox_as_a_parseable_eml(
    make_runtime: RuntimeFactory,
) -> None:
    runtime = make_runtime()
    batch = make_batch(runtime, now=T0, emails=("desk@hotel.example",), count=3)
    with capture_logs() as logs:
        assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(sent=1)
    [row] = deliveries(runtime, batch.run_id)
    outbox = runtime.settings.outbox_dir
    path = outbox / f"20261125T100000Z-{row.id}.eml"
    assert sorted(outbox.iterdir()) == [path]  # no temporary file left behind
    assert path.stat().st_mode & 0o777 == 0o600
    written = [entry for entry in logs if entry["event"] == "email_written_to_outbox"]
    assert [entry["path"] for entry in written] == [str(path)]
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "3 guest Wi-Fi coupons: Daily Guest Passes (Lobby Wi-Fi)"
    assert message["To"] == "desk@hotel.example"
    files = attachments(message)
    assert sorted(content_type for content_type, _ in files.values()) == ["application/pdf", "text/csv"]
    [attempt] = attempts(runtime, row.id)
    assert (attempt.ok, attempt.status_code) == (True, None)


def test_unwritable_outbox_is_a_failed_attempt(make_runtime: RuntimeFactory, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    runtime = make_runtime(data_dir=blocker)
    batch = make_batch(runtime, now=T0, emails=("desk@hotel.example",))
    assert delivery.deliver_due_sync(runtime=runtime, now=T0) == DeliveryReport(retried=1)
    [row] = deliveries(runtime, batch.run_id)
    assert row.last_error is not None
    assert row.last_error.startswith("cannot write to the outbox")


# --- the message builder --------------------------------------------------------------------------------


def payload(**overrides: Any) -> BatchPayload:
    values: dict[str, Any] = {
        "run_id": "run-1",
        "schedule_id": "sched-1",
        "schedule_name": "Daily Guest Passes",
        "instance_id": "inst-1",
        "instance_name": "Lobby Wi-Fi",
        "accent_color": "#0396d5",
        "count": 1,
        "valid_for_in_minutes": 90,
        "generated_at": T0,
        "expires_at": T0 + timedelta(minutes=90),
        "coupons": (BatchCoupon("c-1", "8B7W3D", T0 + timedelta(minutes=90), T0),),
        "link": "http://testserver/captive/coupons?sid=sched-1&expires=1&signature=ab",
        "link_expires_at": T0 + timedelta(days=1),
    }
    values.update(overrides)
    return BatchPayload(**values)


def build(batch: BatchPayload) -> EmailMessage:
    return email.build_message(
        batch,
        to="desk@hotel.example",
        sender="guestgate <guestgate@hotel.example>",
        delivery_id="0b7c9a54-5e0f-4c1b-9a51-2b8f4c2f5d10",
        now=T0,
        csv_text="code\r\n8B7W3D\r\n",
        pdf=b"%PDF-1.4 test",
        file_stem="guest-coupons",
    )


def test_names_are_escaped_in_html_and_kept_on_one_line_in_the_subject() -> None:
    message = build(payload(instance_name="Bar & <Lounge>\r\nBcc: x@evil.example", schedule_name="A\nB"))
    assert message["Subject"] == "1 guest Wi-Fi coupon: A B (Bar & <Lounge> Bcc: x@evil.example)"
    assert message["Bcc"] is None
    html = body_text(message, "html")
    assert "Bar &amp; &lt;Lounge&gt; Bcc: x@evil.example" in html
    assert "<Lounge>" not in html
    assert 'href="http://testserver/captive/coupons?sid=sched-1&amp;expires=1&amp;signature=ab"' in html
    assert "1 guest Wi-Fi coupon " in body_text(message, "plain")


def test_mail_of_a_deleted_schedule_has_no_link() -> None:
    message = build(payload(schedule_id=None, schedule_name=None, link=None, link_expires_at=None))
    assert message["Subject"] == "1 guest Wi-Fi coupon: a deleted schedule (Lobby Wi-Fi)"
    assert "captive/coupons" not in body_text(message, "plain")
    assert "captive/coupons" not in body_text(message, "html")


def test_message_headers_identify_the_delivery_and_keep_the_csv_bytes() -> None:
    message = build(payload())
    assert message["Message-ID"].endswith("@hotel.example>")
    assert message["Date"] == "Wed, 25 Nov 2026 10:00:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    files = attachments(message)
    assert files["guest-coupons.csv"] == ("text/csv", b"code\r\n8B7W3D\r\n")
    assert files["guest-coupons.pdf"] == ("application/pdf", b"%PDF-1.4 test")


@pytest.mark.parametrize(
    ("minutes", "words"),
    [
        (1, "1 minute"),
        (45, "45 minutes"),
        (60, "1 hour"),
        (90, "1 hour and 30 minutes"),
        (480, "8 hours"),
        (1440, "1 day"),
        (1501, "1 day, 1 hour and 1 minute"),
        (525_600, "365 days"),
    ],
)
def test_validity_is_written_in_words(minutes: int, words: str) -> None:
    assert email.duration(minutes) == words
