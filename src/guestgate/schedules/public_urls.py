"""Signed public URLs of a schedule's valid coupons (§6.6) and the exports they serve.

`<public url>/captive/coupons?sid=<schedule id>&expires=<unix seconds>&signature=<hex>`, where
the signature is HMAC-SHA256 over ("coupons", sid, expires). Whoever holds the link (a front
desk, a notification e-mail) sees the codes without a token for 24 hours.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import urlencode

from guestgate.security import UrlSigner

URL_TTL_SECONDS = 24 * 3600
PURPOSE = "coupons"
PATH = "/captive/coupons"
ExportFormat = Literal["json", "csv", "pdf"]
Paper = Literal["a4", "letter"]


def coupons_url(schedule_id: str, *, signer: UrlSigner, public_url: str, now: datetime) -> str:
    """A URL listing the schedule's valid coupons, valid for 24 hours from `now`."""
    expires = int(now.timestamp()) + URL_TTL_SECONDS
    signature = signer.sign(PURPOSE, schedule_id, str(expires))
    query = urlencode({"sid": schedule_id, "expires": expires, "signature": signature})
    return f"{public_url}{PATH}?{query}"


def verify(schedule_id: str, *, expires: int, signature: str, signer: UrlSigner, now: datetime) -> None:
    """Raise SignatureInvalid if any part was changed, UrlExpired if `expires` has passed."""
    signer.verify_expiring(signature, expires, PURPOSE, schedule_id, now=now.timestamp())


def filename(schedule_id: str, extension: str) -> str:
    """The download name of a schedule's export."""
    return f"coupons-{schedule_id}.{extension}"
