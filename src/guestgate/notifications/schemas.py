"""Request and response shapes of notification groups [extension]."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field, SecretStr

from guestgate.schemas import MaxItems, Name, Timestamp, invalid

MAX_EMAILS = 50
MAX_WEBHOOKS = 20
MAX_URL_CHARS = 2000
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 512
# Deliberately narrower than RFC 5322: dot-atom local part, a DNS domain with an alphabetic TLD.
# No quoting, no spaces, no control characters, so an address can never smuggle mail headers.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"{_LOCAL}@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}")
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")


def _check_email(value: str) -> str:
    address = value.strip()
    local, _, _domain = address.rpartition("@")
    if len(address) > 254 or len(local) > 64 or not _EMAIL.fullmatch(address):
        raise invalid("must be a valid e-mail address")
    return address


def _check_emails(values: list[str]) -> list[str]:
    if len(values) > MAX_EMAILS:
        raise invalid(f"must list at most {MAX_EMAILS} addresses")
    seen: set[str] = set()
    for address in values:
        if address.lower() in seen:
            raise invalid(f"lists '{address}' more than once")
        seen.add(address.lower())
    return values


def _check_url(value: str) -> str:
    url = value.strip()
    reason = "must be an absolute http or https URL"
    if len(url) > MAX_URL_CHARS:
        raise invalid(f"must be at most {MAX_URL_CHARS} characters")
    if not url or _URL_FORBIDDEN.search(url):
        raise invalid(reason)
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a port outside 0..65535 or not a number
    except ValueError as exc:
        raise invalid(reason) from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise invalid(reason)
    if parts.username is not None or parts.password is not None:
        # URLs are returned by the API and recorded with every delivery; credentials belong in `secret`.
        raise invalid("must not contain credentials (sign with the 'secret' instead)")
    return url


def _check_secret(value: SecretStr) -> SecretStr:
    length = len(value.get_secret_value())
    if length < MIN_SECRET_CHARS:
        raise invalid(f"must be at least {MIN_SECRET_CHARS} characters")
    if length > MAX_SECRET_CHARS:
        raise invalid(f"must be at most {MAX_SECRET_CHARS} characters")
    return value


Email = Annotated[str, AfterValidator(_check_email)]
WebhookUrl = Annotated[
    str,
    AfterValidator(_check_url),
    Field(
        description="Absolute http or https URL the batch is POSTed to. Loopback, private, link-local and "
        "other internal hosts are refused unless the deployment allows them (GUESTGATE_OUTBOUND_ALLOW_NETWORKS).",
        examples=["https://example.com/hook"],
    ),
]
WebhookSecret = Annotated[SecretStr, AfterValidator(_check_secret)]


class WebhookIn(BaseModel):
    """A webhook target; the secret signs each POST (HMAC-SHA256)."""

    url: WebhookUrl
    secret: WebhookSecret | None = Field(
        None,
        description=f"Write-only signing key, at least {MIN_SECRET_CHARS} characters. Required for a new "
        "URL; on update, omit it to keep the stored secret of the same URL.",
    )


def _check_webhooks(values: list[WebhookIn]) -> list[WebhookIn]:
    if len(values) > MAX_WEBHOOKS:
        raise invalid(f"must list at most {MAX_WEBHOOKS} webhooks")
    seen: set[str] = set()
    for hook in values:
        if hook.url in seen:
            raise invalid(f"lists the URL '{hook.url}' more than once")
        seen.add(hook.url)
    return values


Emails = Annotated[list[Email], MaxItems(MAX_EMAILS, "addresses"), AfterValidator(_check_emails)]
Webhooks = Annotated[list[WebhookIn], MaxItems(MAX_WEBHOOKS, "webhooks"), AfterValidator(_check_webhooks)]


class NotificationGroupIn(BaseModel):
    """A notification group to create or replace; either list may be empty."""

    name: Name = Field(description="A human-readable name for the group.", examples=["Front desk"])
    # Omitted (or null) lists are empty on create and keep their stored value on update.
    emails: Emails | None = Field(
        None,
        description=f"E-mail addresses that receive each batch (at most {MAX_EMAILS}). Omitted: empty on "
        "create, unchanged on update.",
    )
    webhooks: Webhooks | None = Field(
        None,
        description=f"Webhooks that receive each batch as a signed JSON POST (at most {MAX_WEBHOOKS}). "
        "Omitted: empty on create, unchanged on update.",
    )


class Webhook(BaseModel):
    """A webhook target; the secret itself is never returned."""

    url: str
    secret_set: bool = Field(description="Whether a signing secret is stored for this URL.")


class NotificationGroup(BaseModel):
    """Where coupon schedules deliver their batches."""

    id: str = Field(
        description="The unique identifier: `ng_` followed by 12 lowercase hex characters.",
        examples=["ng_a1b2c3d4e5f6"],
    )
    name: str
    emails: list[str]
    webhooks: list[Webhook]
    created_at: Timestamp
