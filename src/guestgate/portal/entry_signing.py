"""Gateway-signed entry URLs: how a gateway vouches for a guest's IP, MAC and original URL.

A gateway that knows the guest (it saw the request before NAT) redirects to

    /guest/entry?site=<id>&ip=<guest ip>&mac=<guest mac>&orig=<url>&ts=<unix seconds>&sig=<hex>

where `sig` is HMAC-SHA256, under the site's entry key, of the lines
`entry`, site, ip, mac, orig and ts (absent values as empty lines). The site's key is
derived from the signing key, so no per-site secret needs storing: `site_key()` is what the
gateway drivers hand to a gateway.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from guestgate.config import Settings


def site_key(signing_key: str | bytes, site_id: str) -> bytes:
    """The entry-signing key of one site, derived from a signing key."""
    key = signing_key.encode() if isinstance(signing_key, str) else signing_key
    return hmac.new(key, b"site-entry:" + site_id.encode(), hashlib.sha256).digest()


def site_keys(settings: Settings, site_id: str) -> list[bytes]:
    """The site's current entry key and, during a rotation, the previous one."""
    configured = [settings.signing_key, settings.signing_key_previous]
    return [site_key(k.get_secret_value(), site_id) for k in configured if k is not None]


def sign_entry(key: bytes, *, site_id: str, ip: str, mac: str | None, orig: str | None, ts: int | str) -> str:
    """The hex signature of one set of entry parameters."""
    message = "\n".join(["entry", site_id, ip, mac or "", orig or "", str(ts)]).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def entry_query(
    settings: Settings,
    *,
    site_id: str,
    ip: str,
    mac: str | None = None,
    orig: str | None = None,
    now: datetime,
) -> dict[str, str]:
    """The query parameters of a signed entry URL (for gateway drivers and tests)."""
    ts = int(now.timestamp())
    key = site_keys(settings, site_id)[0]
    query = {"site": site_id, "ip": ip, "ts": str(ts)}
    if mac:
        query["mac"] = mac
    if orig:
        query["orig"] = orig
    query["sig"] = sign_entry(key, site_id=site_id, ip=ip, mac=mac, orig=orig, ts=ts)
    return query


def entry_signature_valid(
    keys: list[bytes],
    signature: str,
    *,
    site_id: str,
    ip: str,
    mac: str | None,
    orig: str | None,
    ts: str,
) -> bool:
    """True if `signature` signs these parameters under one of `keys`."""
    given = signature.strip().lower()
    return any(
        hmac.compare_digest(sign_entry(key, site_id=site_id, ip=ip, mac=mac, orig=orig, ts=ts), given)
        for key in keys
    )
