"""The signed public coupon URLs (contract §6.6) and what a signature proves.

Two kinds, both `<public url>/captive/coupons?...&expires=<unix seconds>&signature=<hex>`, valid
for 24 hours:

- a schedule's link, Altostrat's form: `sid=<schedule id>`, signed as HMAC-SHA256 over
  ("coupons", sid, expires), exactly as before;
- a batch's link [extension]: `batch=<batch id>`, signed over ("coupon-batch", batch, expires).
  The purposes differ, so neither signature can stand for the other.

Every link lasts `URL_TTL_SECONDS` from the second it was signed, so `expires` also tells when it
was signed (`LinkScope.signed_at`); that is signed too, and it is all a link needs to be scoped
(a schedule's link covers the batches that existed in that second) and revoked (a link signed at
or before its schedule's or batch's `urls_revoked_at` second is refused). Links issued before
this rule existed have the same form, so they get the same scope, caps and revocation.
`format`, `paper`, `limit` and `cursor` are not signed: they choose how the link's coupons are
shown, never which.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlencode

from guestgate.errors import ParameterInvalid, ParameterMissing
from guestgate.security import UrlSigner

URL_TTL_SECONDS = 24 * 3600
PATH = "/captive/coupons"
SCHEDULE_PURPOSE = "coupons"
BATCH_PURPOSE = "coupon-batch"
ExportFormat = Literal["json", "csv", "pdf", "html"]
Paper = Literal["a4", "letter"]
Kind = Literal["schedule", "batch"]
# How each format is announced in a Link header, and its media type.
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "html": "text/html",
    "pdf": "application/pdf",
    "csv": "text/csv",
}


@dataclass(frozen=True)
class SignedLink:
    """A signed URL and when it stops working."""

    url: str
    expires_at: datetime

    def in_format(self, export_format: str) -> str:
        """The same link asking for `export_format` (`json` is the link itself)."""
        return self.url if export_format == "json" else f"{self.url}&{urlencode({'format': export_format})}"


@dataclass(frozen=True)
class LinkScope:
    """What a verified link grants: the coupons of one schedule or one batch, until `expires`."""

    kind: Kind
    target_id: str
    expires: int

    @property
    def signed_at(self) -> int:
        """The Unix second the link was signed in."""
        return self.expires - URL_TTL_SECONDS

    @property
    def key(self) -> str:
        """The link's rate-limit key: a hash of what it grants (every spelling of the link shares it)."""
        return hashlib.sha256(f"{self.kind}\n{self.target_id}\n{self.expires}".encode()).hexdigest()[:32]


def schedule_link(
    schedule_id: str, *, signer: UrlSigner, public_url: str, now: datetime, revoked_at: datetime | None = None
) -> SignedLink:
    """Altostrat's link to the schedule's valid coupons, valid for 24 hours from `now`."""
    expires = _expires(now, revoked_at)
    signature = signer.sign(SCHEDULE_PURPOSE, schedule_id, str(expires))
    return _link({"sid": schedule_id, "expires": expires, "signature": signature}, public_url, expires)


def batch_link(
    batch_id: str, *, signer: UrlSigner, public_url: str, now: datetime, revoked_at: datetime | None = None
) -> SignedLink:
    """The link to one batch's valid coupons, valid for 24 hours from `now`."""
    expires = _expires(now, revoked_at)
    signature = signer.sign(BATCH_PURPOSE, batch_id, str(expires))
    return _link({"batch": batch_id, "expires": expires, "signature": signature}, public_url, expires)


def coupons_url(schedule_id: str, *, signer: UrlSigner, public_url: str, now: datetime) -> str:
    """The schedule's link as a string (what `generate_url` answers)."""
    return schedule_link(schedule_id, signer=signer, public_url=public_url, now=now).url


def verify(
    *,
    sid: str | None,
    batch: str | None,
    expires: int,
    signature: str,
    signer: UrlSigner,
    now: datetime,
) -> LinkScope:
    """The scope of an untouched, unexpired link; SignatureInvalid if any part was changed, UrlExpired
    past `expires`, 400 when it names neither or both of a schedule and a batch."""
    if sid is not None and batch is not None:
        raise ParameterInvalid("batch", "cannot be combined with 'sid' (a link is a schedule's or a batch's)")
    if sid is None and batch is None:
        raise ParameterMissing("sid")
    kind: Kind = "schedule" if sid is not None else "batch"
    target = sid if sid is not None else batch
    assert target is not None
    purpose = SCHEDULE_PURPOSE if kind == "schedule" else BATCH_PURPOSE
    signer.verify_expiring(signature, expires, purpose, target, now=now.timestamp())
    return LinkScope(kind, target, expires)


def is_revoked(scope: LinkScope, revoked_at: datetime | None) -> bool:
    """True if the link was signed at or before the second of `revoked_at`."""
    return revoked_at is not None and scope.signed_at <= int(_aware(revoked_at).timestamp())


def filename(stem: str, extension: str) -> str:
    """The download name of a link's export."""
    return f"{stem}.{extension}"


def _expires(now: datetime, revoked_at: datetime | None) -> int:
    signed_at = int(now.timestamp())
    if revoked_at is not None:
        # A revocation refuses every link signed in its second: one signed after it, in the same
        # second, counts as signed in the next one (at most a second early), so it is not refused.
        signed_at = max(signed_at, int(_aware(revoked_at).timestamp()) + 1)
    return signed_at + URL_TTL_SECONDS


def _link(query: dict[str, object], public_url: str, expires: int) -> SignedLink:
    return SignedLink(f"{public_url}{PATH}?{urlencode(query)}", datetime.fromtimestamp(expires, tz=UTC))


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
