"""The password-reset mail of the console, sent the way every guestgate mail is (`notifications.email`).

With `GUESTGATE_SMTP_HOST` set it goes through that server (aiosmtplib, the same STARTTLS, TLS
and login settings as the schedule mails); without one it is written to the outbox folder. It
is sent after the answer (a background task), so how long "Forgot password" takes does not
tell whether an account exists; a failure is logged, never shown.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import structlog

from guestgate.config import Settings
from guestgate.console.passwords import ResetMail
from guestgate.notifications import email

log = structlog.get_logger(__name__)


def reset_url(settings: Settings, prefix: str, token: str) -> str:
    """The link of a reset token."""
    return f"{settings.public_url}{prefix}/reset-password/{token}"


def build_message(mail: ResetMail, *, url: str, sender: str, now: datetime, delivery_id: str) -> EmailMessage:
    """The reset mail: the one-time link and until when it works (UTC)."""
    message = EmailMessage()
    message["Subject"] = "Reset your guestgate console password"
    message["From"] = sender
    message["To"] = mail.to
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = make_msgid(idstring=delivery_id)
    message["Auto-Submitted"] = "auto-generated"
    until = mail.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    message.set_content(
        "Someone asked to reset the password of the guestgate console account "
        f"{mail.to}.\n\n"
        "To choose a new password, open this link:\n"
        f"{url}\n\n"
        f"It works once, until {until}. Using it signs the account out everywhere.\n"
        "If you did not ask for this, ignore this mail: your password stays as it is.\n\n"
        "-- \nguestgate\n"
    )
    return message


async def send(mail: ResetMail, *, settings: Settings, prefix: str, now: datetime) -> None:
    """Send the reset mail (SMTP or outbox); failures are logged without the link."""
    delivery_id = uuid.uuid4().hex
    message = build_message(
        mail,
        url=reset_url(settings, prefix, mail.token),
        sender=settings.smtp_from,
        now=now,
        delivery_id=delivery_id,
    )
    try:
        await email.send(message, settings=settings, delivery_id=delivery_id, now=now)
    except email.EmailFailed as exc:
        log.warning("console_reset_mail_failed", to=mail.to, error=str(exc))
        return
    log.info("console_reset_mail_sent", to=mail.to, delivery_id=delivery_id)
