"""Signed, expiring URLs of an instance: its preview page and its images."""

from __future__ import annotations

from datetime import datetime

from guestgate.security import UrlSigner

PREVIEW_TTL_SECONDS = 3600
ASSET_TTL_SECONDS = 24 * 3600
# Asset expiries are rounded up to the hour so an image URL stays the same (cacheable) for an hour.
ASSET_ROUNDING_SECONDS = 3600


def preview_url(instance_id: str, *, signer: UrlSigner, public_url: str, now: datetime) -> str:
    """A URL that renders the instance's portal page for one hour (nothing can be redeemed from it)."""
    expires = int(now.timestamp()) + PREVIEW_TTL_SECONDS
    signature = signer.sign("preview", instance_id, str(expires))
    return f"{public_url}/guest/preview/{instance_id}?expires={expires}&signature={signature}"


def asset_url(image_id: str, *, signer: UrlSigner, public_url: str, now: datetime) -> str:
    """A URL that serves an uploaded image for at least 24 hours."""
    raw = int(now.timestamp()) + ASSET_TTL_SECONDS
    expires = raw + (-raw % ASSET_ROUNDING_SECONDS)
    signature = signer.sign("asset", image_id, str(expires))
    return f"{public_url}/captive/assets/{image_id}?expires={expires}&signature={signature}"
