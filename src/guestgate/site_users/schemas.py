"""Response shape of site users (guest sessions) and the list filters' parsing."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from guestgate.errors import ParameterInvalid
from guestgate.schemas import Timestamp

# `quota_exceeded` (an extension): the session passed its data limit; only sessions with one end so.
StatusName = Literal["active", "expired", "disconnected", "quota_exceeded"]
# The longest identity search (an e-mail address is at most 254 characters).
MAX_IDENTITY_SEARCH = 254
Strategy = Literal["coupon", "oauth2"]
T = TypeVar("T")

# Colon or dash pairs (aa:bb:.. / aa-bb-..), Cisco dotted quads (aabb.ccdd.eeff) or bare hex.
_MAC_FORMS = re.compile(
    r"[0-9a-f]{2}([:-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}|[0-9a-f]{12}"
)
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def normalize_ip(value: str) -> str:
    """The canonical text of an IP address (an IPv4-mapped IPv6 address as IPv4); ValueError if not one."""
    text = value.strip()
    if not text or len(text) > 64:
        raise ValueError(value)
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def normalize_mac(value: str) -> str:
    """A MAC address as `aa:bb:cc:dd:ee:ff` from colon, dash or dotted (Cisco) form; ValueError if not one."""
    text = value.strip().lower()
    if not _MAC_FORMS.fullmatch(text):
        raise ValueError(value)
    digits = re.sub(r"[:\-.]", "", text)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 date-time with an explicit offset (`Z` or `+hh:mm`); ValueError otherwise."""
    text = value.strip().upper()
    if not _RFC3339.fullmatch(text):
        raise ValueError(value)
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except OverflowError as exc:  # 9999-12-31T23:59:59-01:00 has no UTC datetime
        raise ValueError(value) from exc


@dataclass(frozen=True)
class SessionFilter:
    """The validated filters of the site users list; None means no filter."""

    status: StatusName | None = None
    ip_address: str | None = None
    mac_address: str | None = None
    since: datetime | None = None
    # Part of the e-mail address or name an identity provider shared (lowercase).
    identity: str | None = None

    @classmethod
    def parse(
        cls,
        *,
        status: StatusName | None = None,
        ip_address: str | None = None,
        mac_address: str | None = None,
        since: str | None = None,
        identity: str | None = None,
    ) -> SessionFilter:
        """Validate and normalise the query parameters; ParameterInvalid names the first bad one."""
        return cls(
            status=status,
            ip_address=_parsed("ip_address", ip_address, normalize_ip, "must be an IPv4 or IPv6 address"),
            mac_address=_parsed(
                "mac_address", mac_address, normalize_mac, "must be a MAC address such as aa:bb:cc:dd:ee:ff"
            ),
            since=_parsed(
                "since",
                since,
                parse_rfc3339,
                "must be an RFC 3339 date-time with a time zone, such as 2025-10-29T08:00:00Z",
            ),
            identity=_parsed(
                "identity",
                identity,
                _identity_search,
                f"must be 2 to {MAX_IDENTITY_SEARCH} characters of an e-mail address or a name",
            ),
        )


def _identity_search(value: str) -> str:
    text = " ".join(value.split()).lower()
    if not 2 <= len(text) <= MAX_IDENTITY_SEARCH:
        raise ValueError(value)
    return text


def _parsed(name: str, value: str | None, parse: Callable[[str], T], reason: str) -> T | None:
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise ParameterInvalid(name, reason) from exc


class Identity(BaseModel):
    """Who signed in through an OAuth2 provider."""

    provider: str = Field(description="The identity provider: `google`, `github`, `azure` or **[extension]** `oidc`.")
    subject: str = Field(description="The user's stable id at the provider.")
    email: str | None = Field(description="The user's e-mail address, where the provider shared it.")
    name: str | None = Field(description="The user's display name, where the provider shared it.")


class SiteUser(BaseModel):
    """A guest's session at a site."""

    id: str = Field(description="The unique identifier for the session.")
    site_id: str = Field(description="The site the guest connected at.")
    instance_id: str = Field(description="The captive portal instance the guest authenticated through.")
    ip_address: str = Field(description="The guest's IP address.", examples=["10.0.0.23"])
    mac_address: str | None = Field(
        description="The guest's MAC address (lowercase, colon-separated), where the gateway reported it.",
        examples=["aa:bb:cc:dd:ee:ff"],
    )
    strategy: Strategy = Field(description="How the guest authenticated.")
    coupon_id: str | None = Field(description="The coupon redeemed, for the 'coupon' strategy.")
    identity: Identity | None = Field(description="Who signed in, for the 'oauth2' strategy.")
    status: StatusName = Field(
        description=(
            "`active` until `expires_at`, then `expired`; `disconnected` when ended early; "
            "`quota_exceeded` (extension) when it used its data limit."
        )
    )
    started_at: Timestamp = Field(description="When the guest authenticated.")
    expires_at: Timestamp = Field(description="When the session ends unless disconnected earlier.")
    ended_at: Timestamp | None = Field(
        description="When the session ended (its `expires_at` once expired), or null while it is active."
    )
