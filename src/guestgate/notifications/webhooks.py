"""Webhook delivery of a coupon batch: a JSON POST signed with the webhook's secret.

Headers: `X-Guestgate-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`, so a receiver
verifies the bytes it got before parsing them, and `X-Guestgate-Delivery: <delivery id>`, the
same on every retry of one delivery, so a receiver can drop repeats. Any 2xx is success; another
status, a redirect, a timeout or a connection error is a failed attempt (retried by delivery).

The client's transport comes from the outbound policy, so a URL whose host now resolves to a
refused address (DNS rebinding) is not connected to. A failure is recorded in our words (the
status, or what failed): the receiver's body is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from importlib import metadata
from typing import Any

import httpx2

from guestgate.outbound import OutboundRefused, describe_failure

SIGNATURE_HEADER = "X-Guestgate-Signature"
DELIVERY_HEADER = "X-Guestgate-Delivery"
EVENT_HEADER = "X-Guestgate-Event"
EVENT = "coupons.batch_generated"
# The event of a notification group's "send test": receivers can tell it from a real batch.
TEST_EVENT = "notifications.test"


def _version() -> str:
    try:
        return metadata.version("guestgate")
    except metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"guestgate-webhooks/{_version()}"


class WebhookFailed(Exception):
    """A webhook POST did not succeed; `status_code` is the receiver's status when it answered."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def body_of(payload: dict[str, Any]) -> bytes:
    """The JSON body as sent (and signed): compact, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(body: bytes, secret: str) -> str:
    """The `X-Guestgate-Signature` value: `sha256=` and the hex HMAC-SHA256 of `body`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def headers(body: bytes, *, secret: str, delivery_id: str, event: str = EVENT) -> dict[str, str]:
    """Every header of a webhook POST."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature(body, secret),
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event,
    }


async def post(
    url: str,
    body: bytes,
    *,
    secret: str,
    delivery_id: str,
    timeout: float,
    client: httpx2.AsyncClient,
    event: str = EVENT,
) -> int:
    """POST the body; the 2xx status on success, else WebhookFailed (status and reason recorded)."""
    try:
        response = await client.post(
            url,
            content=body,
            headers=headers(body, secret=secret, delivery_id=delivery_id, event=event),
            timeout=timeout,
            follow_redirects=False,
        )
    except httpx2.TimeoutException as exc:
        raise WebhookFailed(f"timed out after {timeout:g} s") from exc
    except (OutboundRefused, httpx2.HTTPError) as exc:
        raise WebhookFailed(describe_failure(exc, timeout=timeout)) from exc
    status = response.status_code
    if not 200 <= status < 300:
        hint = " (redirects are not followed)" if 300 <= status < 400 else ""
        raise WebhookFailed(f"the receiver answered HTTP {status}{hint}", status_code=status)
    return status
