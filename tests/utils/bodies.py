"""Comparing API bodies across requests."""

from __future__ import annotations

from typing import Any

# Signed URLs are minted fresh on every read, with an expiry counted from that second: two reads
# that straddle a second boundary differ there and nowhere else.
FRESH_URL_FIELDS = ("preview_url", "test_url")


def stable(body: Any) -> Any:
    """`body` without the parts that change from one read to the next (fresh signed URLs' query strings)."""
    if isinstance(body, list):
        return [stable(item) for item in body]
    if isinstance(body, dict):
        out: dict[str, Any] = {}
        for key, value in body.items():
            if isinstance(value, str) and (key in FRESH_URL_FIELDS or key in ("logo", "icon")):
                out[key] = value.split("?", 1)[0]
            else:
                out[key] = stable(value)
        return out
    return body
