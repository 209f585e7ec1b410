"""E-mail of a coupon batch: the message (text, HTML, CSV and PDF attachments) and how it is sent.

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

from guestgate.config import Settings

if TYPE_CHECKING:
    from guestgate.notifications.delivery import BatchPayload

log = structlog.get_logger(__name__)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
DELETED_SCHEDULE = "a deleted schedule"


class EmailFailed(Exception):
    """An e-mail could not be handed over; `status_code` is the SMTP reply code when there was one."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def subject(batch: BatchPayload) -> str:
    """`50 guest Wi-Fi coupons: Daily Guest Passes (Lobby Wi-Fi)`, on one line."""
    noun = "coupon" if batch.count == 1 else "coupons"
    schedule = _one_line(batch.schedule_name or DELETED_SCHEDULE)
    return f"{batch.count} guest Wi-Fi {noun}: {schedule} ({_one_line(batch.instance_name)})"


def duration(minutes: int) -> str:
    """A validity in words: `8 hours`, `1 day 2 hours`, `90 minutes` stays `1 hour 30 minutes`."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [
        f"{value} {unit}{'' if value == 1 else 's'}"
        for value, unit in ((days, "day"), (hours, "hour"), (mins, "minute"))
        if value
    ]
    return " ".join(parts) or "0 minutes"


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


def _text_body(batch: BatchPayload) -> str:
    schedule = _one_line(batch.schedule_name or DELETED_SCHEDULE)
    lines = [
        f"{batch.count} guest Wi-Fi {'coupon' if batch.count == 1 else 'coupons'} for "
        f"{_one_line(batch.instance_name)}, from the schedule {schedule}.",
        "",
        f"Instance:          {_one_line(batch.instance_name)}",
        f"Schedule:          {schedule}",
        f"Coupons:           {batch.count}",
        f"Valid for:         {duration(batch.valid_for_in_minutes)} (each code can be redeemed once)",
        f"Redeemable until:  {_human(batch.expires_at)}",
        f"Generated at:      {_human(batch.generated_at)}",
        "",
        "Attached: the printable cards (PDF, one per code, with a QR code) and the codes (CSV).",
    ]
    if batch.link is not None and batch.link_expires_at is not None:
        lines += [
            "",
            f"The schedule's currently valid coupons, at this link until {_human(batch.link_expires_at)}:",
            batch.link,
            "(append &format=csv for a spreadsheet)",
        ]
    lines += ["", "-- ", "guestgate"]
    return "\n".join(lines) + "\n"


def _html_body(batch: BatchPayload) -> str:
    e = html.escape
    schedule = e(_one_line(batch.schedule_name or DELETED_SCHEDULE))
    instance = e(_one_line(batch.instance_name))
    noun = "coupon" if batch.count == 1 else "coupons"
    rows = "".join(
        f'<tr><th align="left" style="padding:2px 12px 2px 0">{e(label)}</th><td>{e(value)}</td></tr>'
        for label, value in (
            ("Instance", _one_line(batch.instance_name)),
            ("Schedule", _one_line(batch.schedule_name or DELETED_SCHEDULE)),
            ("Coupons", str(batch.count)),
            ("Valid for", f"{duration(batch.valid_for_in_minutes)} (each code can be redeemed once)"),
            ("Redeemable until", _human(batch.expires_at)),
            ("Generated at", _human(batch.generated_at)),
        )
    )
    link = ""
    if batch.link is not None and batch.link_expires_at is not None:
        link = (
            f'<p><a href="{e(batch.link, quote=True)}">Open the schedule\'s currently valid coupons</a>'
            f" (the link works until {e(_human(batch.link_expires_at))}).</p>"
        )
    return (
        '<!doctype html><html><body style="font-family:Helvetica,Arial,sans-serif;color:#333">'
        f'<h2 style="margin:0 0 12px">{batch.count} guest Wi-Fi {noun}</h2>'
        f"<p>For <strong>{instance}</strong>, from the schedule <strong>{schedule}</strong>.</p>"
        f'<table cellspacing="0" cellpadding="0">{rows}</table>'
        "<p>Attached: the printable cards (PDF, one per code, with a QR code) and the codes (CSV).</p>"
        f"{link}"
        "</body></html>\n"
    )


def _human(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


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
