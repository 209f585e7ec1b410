"""E-mail of a coupon batch: the message (text, HTML, CSV and PDF attachments) and how it is sent.

The message is in the portal's language (the instance's locale) with its times in the batch's
local zone (`guestgate.local_time`), the instance's name and accent colour, and a link to the
batch's printable page (the batch's signed URL: a browser gets the page, an API client JSON).

With an SMTP host configured the message goes out through aiosmtplib (STARTTLS, implicit TLS or
plain, with a login when a user is set). Without one (the embedded default) it is written as an
`.eml` file to the outbox folder, atomically, and the log says where.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING

import aiosmtplib
import structlog

from guestgate import local_time
from guestgate.config import Settings
from guestgate.coupons.words import Words
from guestgate.portal import theme

if TYPE_CHECKING:
    from guestgate.notifications.payload import BatchPayload

log = structlog.get_logger(__name__)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class EmailFailed(Exception):
    """An e-mail could not be handed over; `status_code` is the SMTP reply code when there was one."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def subject(batch: BatchPayload) -> str:
    """`50 guest Wi-Fi coupons: Daily Guest Passes (Lobby Wi-Fi)`, on one line, in the portal's language."""
    words = Words(batch.locale)
    schedule = _one_line(batch.schedule_name or words("deleted_schedule"))
    return f"{words.counted('coupons', batch.count)}: {schedule} ({_one_line(batch.instance_name)})"


def duration(minutes: int, locale: str | None = None) -> str:
    """A validity in words: `8 hours`, `1 day and 2 hours`, `1 hour and 30 minutes`."""
    return Words(locale).duration(minutes)


def build_message(
    batch: BatchPayload,
    *,
    to: str,
    sender: str,
    delivery_id: str,
    now: datetime,
    csv_text: str,
    pdf: bytes,
    file_stem: str,
) -> EmailMessage:
    """The batch's e-mail to one address, with the codes as CSV and the printable cards as PDF."""
    message = EmailMessage()
    message["Subject"] = subject(batch)
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = make_msgid(idstring=delivery_id.replace("-", ""), domain=_domain(sender))
    message["X-Guestgate-Delivery"] = delivery_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(_text_body(batch))
    message.add_alternative(_html_body(batch), subtype="html")
    # Bytes keep the CSV's CRLF line ends exactly (RFC 4180) instead of being re-folded as text.
    message.add_attachment(
        csv_text.encode("utf-8"), maintype="text", subtype="csv", filename=f"{file_stem}.csv"
    )
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{file_stem}.pdf")
    return message


def build_test_message(
    *, group_name: str, to: str, sender: str, delivery_id: str, now: datetime
) -> EmailMessage:
    """A short message that says it is a test of the notification group `group_name`."""
    message = EmailMessage()
    message["Subject"] = f"guestgate test message: {_one_line(group_name)}"
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = make_msgid(idstring=delivery_id.replace("-", ""), domain=_domain(sender))
    message["X-Guestgate-Delivery"] = delivery_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        f'This is a test message from guestgate for the notification group "{_one_line(group_name)}".\n'
        "Coupon batches of the schedules that use this group will arrive the same way.\n"
    )
    return message


async def send(message: EmailMessage, *, settings: Settings, delivery_id: str, now: datetime) -> int | None:
    """Send through SMTP, or write to the outbox without an SMTP host; raises EmailFailed."""
    if settings.smtp_host is None:
        path = await asyncio.to_thread(
            write_outbox, message, outbox=settings.outbox_dir, delivery_id=delivery_id, now=now
        )
        log.info("email_written_to_outbox", path=str(path), delivery_id=delivery_id, to=message["To"])
        return None
    return await send_smtp(message, settings=settings)


async def send_smtp(message: EmailMessage, *, settings: Settings) -> int:
    """Hand the message to the configured SMTP server; the reply code on success, else EmailFailed."""
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username or None,
            password=password if settings.smtp_username else None,
            use_tls=settings.smtp_security == "tls",
            start_tls=settings.smtp_security == "starttls",
            timeout=settings.smtp_timeout_seconds,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        first = exc.recipients[0] if exc.recipients else None
        code = first.code if first is not None else None
        reason = first.message if first is not None else str(exc)
        raise EmailFailed(f"recipient refused: {code} {reason}", status_code=code) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise EmailFailed(f"SMTP {exc.code} {exc.message}", status_code=exc.code) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        # Timeouts are SMTPTimeoutError (an SMTPException); refused connections are SMTPConnectError.
        raise EmailFailed(f"{type(exc).__name__}: {exc}") from exc
    return 250


def write_outbox(message: EmailMessage, *, outbox: Path, delivery_id: str, now: datetime) -> Path:
    """Write `<outbox>/<timestamp>-<delivery id>.eml` atomically (temporary file, then rename)."""
    name = f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{delivery_id}.eml"
    try:
        outbox.mkdir(parents=True, exist_ok=True)
        path = outbox / name
        tmp = outbox / f".{name}.tmp"
        # 0600: the file holds the codes, which are bearer secrets.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(message.as_bytes())
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except OSError as exc:
        raise EmailFailed(f"cannot write to the outbox: {exc}") from exc
    return path


def _facts(batch: BatchPayload, words: Words) -> list[tuple[str, str]]:
    """The batch's facts as (label, value), times in the batch's local zone."""
    zone = batch.zone
    facts = [(words("instance"), _one_line(batch.instance_name))]
    if batch.network_name:
        facts.append((words("network"), _one_line(batch.network_name)))
    facts += [
        (words("schedule"), _one_line(batch.schedule_name or words("deleted_schedule"))),
        (words("count"), str(batch.count)),
        (words("valid_for"), words("valid_for_value", duration=words.duration(batch.valid_for_in_minutes))),
        (words("redeemable_until"), local_time.date_time(batch.expires_at, zone)),
        (words("generated_at"), local_time.date_time(batch.generated_at, zone)),
    ]
    return facts


def _intro(batch: BatchPayload, words: Words) -> str:
    return words(
        "email_intro",
        coupons=words.counted("coupons", batch.count),
        instance=_one_line(batch.instance_name),
        schedule=_one_line(batch.schedule_name or words("deleted_schedule")),
    )


def _text_body(batch: BatchPayload) -> str:
    words = Words(batch.locale)
    facts = _facts(batch, words)
    width = max(len(label) for label, _ in facts) + 2
    lines = [_intro(batch, words), ""]
    lines += [f"{label + ':':<{width}} {value}" for label, value in facts]
    lines += ["", words("email_attached")]
    if batch.link is not None and batch.link_expires_at is not None:
        lines += [
            "",
            f"{words('email_open_page')}:",
            batch.link,
            words("email_link_until", time=local_time.date_time(batch.link_expires_at, batch.zone)),
        ]
    lines += ["", "-- ", "guestgate"]
    return "\n".join(lines) + "\n"


def _html_body(batch: BatchPayload) -> str:
    e = html.escape
    words = Words(batch.locale)
    accent = theme.colours({"accent_color": batch.accent_color})["accent_color"]
    on_accent = theme.readable("#ffffff", accent, theme.LARGE_TEXT_CONTRAST)
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0;vertical-align:top">{e(label)}</th>'
        f"<td>{e(value)}</td></tr>"
        for label, value in _facts(batch, words)
    )
    link = ""
    if batch.link is not None and batch.link_expires_at is not None:
        until = local_time.date_time(batch.link_expires_at, batch.zone)
        link = (
            f'<p style="margin:20px 0 4px"><a href="{e(batch.link, quote=True)}" style="display:inline-block;'
            f"background:{accent};color:{on_accent};padding:10px 16px;border-radius:6px;"
            f'font-weight:bold;text-decoration:none">{e(words("email_open_page"))}</a></p>'
            f'<p style="margin:4px 0;color:#666;font-size:13px">{e(words("email_link_until", time=until))}</p>'
        )
    return (
        f'<!doctype html><html lang="{e(words.language)}"><body style="margin:0;font-family:Helvetica,Arial,'
        'sans-serif;color:#333">'
        f'<div style="background:{accent};color:{on_accent};padding:14px 20px;font-size:18px;'
        f'font-weight:bold">{e(_one_line(batch.instance_name) or words("default_name"))}</div>'
        '<div style="padding:16px 20px">'
        f'<h2 style="margin:0 0 12px">{e(words.counted("coupons", batch.count))}</h2>'
        f"<p>{e(_intro(batch, words))}</p>"
        f'<table cellspacing="0" cellpadding="0">{rows}</table>'
        f"<p>{e(words('email_attached'))}</p>"
        f"{link}"
        "</div></body></html>\n"
    )


def _one_line(text: str) -> str:
    # Names are free text: a line break must not split a header or a line of the body.
    return _CONTROL.sub(" ", text).strip()


def _domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    try:
        domain = Address(addr_spec=address).domain
    except (ValueError, IndexError):
        domain = ""
    return domain or "guestgate.invalid"
