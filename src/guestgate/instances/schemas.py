"""Request and response shapes of captive portal instances."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field
from pydantic.json_schema import WithJsonSchema

from guestgate.plans.schemas import (
    DATA_DOC,
    DOWNLOAD_DOC,
    MAX_DEVICES_DOC,
    MAX_USES_DOC,
    UPLOAD_DOC,
    VALIDITY_DOC,
    PlanFields,
)
from guestgate.plans.service import ValidityFrom
from guestgate.portal.i18n import LOCALES
from guestgate.schemas import CIDR, Between, HexColor, MaxItems, Name, Timestamp, TimeZoneName, invalid

Strategy = Literal["oauth2", "coupon"]
SessionTTL = Annotated[int, Between(1200, 604800)]
AuthWindowTTL = Annotated[int, Between(120, 900)]
DEFAULT_THEME = {
    "accent_text": "#FFFFFF",
    "accent_color": "#0396d5",
    "text_color": "#4f4f4f",
    "secondary_text_color": "#8f8f8f",
    "background_color": "#f9f9f9",
    "border_color": "#e0e0e0",
    "box_color": "#ffffff",
}
DEFAULT_AUTH_WINDOW_TTL = 300
MAX_TERMS_CHARS = 20_000
# An SSID is at most 32 octets (IEEE 802.11).
MAX_NETWORK_NAME_BYTES = 32
NETWORK_NAME_DOC = (
    "[extension] The guest Wi-Fi network's name (SSID, at most 32 bytes), printed on the coupon cards "
    "and the printable page."
)
TIMEZONE_DOC = (
    "[extension] The IANA time zone of times people read without a schedule's zone: cards, CSV and "
    "pages of `POST .../coupons` batches, and the portal's status page. Null: UTC."
)
# Sites one instance may be active on, subnets of one site it may list, and subnets in all.
MAX_INSTANCE_SITES = 1000
MAX_SITE_ENTRY_SUBNETS = 256
MAX_INSTANCE_SUBNETS = 4096
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


def _check_locale(value: str) -> str:
    # The portal speaks a locale's language (`pt-BR` -> `pt`): a tag whose language it lacks
    # would silently show English, so it is refused here.
    if not _LOCALE.fullmatch(value) or value.replace("_", "-").split("-", 1)[0].lower() not in LOCALES:
        raise invalid(
            f"must be one of the supported languages ({', '.join(LOCALES)}), optionally with a region "
            "such as 'pt-BR'"
        )
    return value


def _check_terms(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_TERMS_CHARS:
        raise invalid(f"must be at most {MAX_TERMS_CHARS} characters")
    return value


def _check_network_name(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    if not stripped:
        raise invalid("must not be empty (send null to remove it)")
    if len(stripped.encode()) > MAX_NETWORK_NAME_BYTES:
        raise invalid(f"must be at most {MAX_NETWORK_NAME_BYTES} bytes (a Wi-Fi network name, SSID)")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in stripped):
        raise invalid("must not contain control characters")
    return stripped


def _count_subnets(value: object) -> object:
    """Refuse more than `MAX_INSTANCE_SUBNETS` subnets in all before any of them is parsed."""
    if isinstance(value, list):
        total = sum(len(item.get("subnets") or ()) for item in value if isinstance(item, dict))
        if total > MAX_INSTANCE_SUBNETS:
            raise invalid(f"must list at most {MAX_INSTANCE_SUBNETS} subnets in all (it lists {total})")
    return value


Locale = Annotated[str, AfterValidator(_check_locale)]
NetworkName = Annotated[
    str | None,
    AfterValidator(_check_network_name),
    WithJsonSchema({"anyOf": [{"type": "string", "minLength": 1, "maxLength": 32}, {"type": "null"}]}),
]
TermsText = Annotated[str | None, AfterValidator(_check_terms)]


class ThemeIn(BaseModel):
    """The seven writable colours (`#RRGGBB` or `#RGB`); an omitted colour keeps its value."""

    accent_text: HexColor | None = Field(None, examples=["#FFFFFF"])
    accent_color: HexColor | None = Field(None, examples=["#0396d5"])
    text_color: HexColor | None = Field(None, examples=["#4f4f4f"])
    secondary_text_color: HexColor | None = Field(None, examples=["#8f8f8f"])
    background_color: HexColor | None = Field(None, examples=["#f9f9f9"])
    border_color: HexColor | None = Field(None, examples=["#e0e0e0"])
    box_color: HexColor | None = Field(None, examples=["#ffffff"])


class Theme(BaseModel):
    """The portal's appearance: images (signed URLs, set by upload) and colours."""

    logo: str | None = Field(description="Signed, expiring URL of the logo, or null.")
    icon: str | None = Field(description="Signed, expiring URL of the icon, or null.")
    accent_text: str
    accent_color: str
    text_color: str
    secondary_text_color: str
    background_color: str
    border_color: str
    box_color: str


class SiteAssignment(BaseModel):
    """A site and the subnets of it where the instance is active."""

    id: str = Field(description="The id of a registered site.")
    subnets: Annotated[list[CIDR], MaxItems(MAX_SITE_ENTRY_SUBNETS, "subnets")] = Field(
        description=f"Subnets (CIDR) within the site's subnets: 1 to {MAX_SITE_ENTRY_SUBNETS}, none "
        "overlapping another, none taken by another instance at the site.",
    )


SiteAssignments = Annotated[
    list[SiteAssignment], MaxItems(MAX_INSTANCE_SITES, "sites"), BeforeValidator(_count_subnets)
]


class InstanceCreate(PlanFields):
    """A new captive portal instance; [extension] its plan fields are the default plan of its codes."""

    name: Name = Field(description="A human-readable name for the instance.", examples=["Lobby Wi-Fi"])
    strategy: Strategy = Field(description="The authentication method for this captive portal.")
    session_ttl: SessionTTL = Field(
        description="Seconds a session lasts after authentication (1200..604800).", examples=[3600]
    )
    auth_integration_id: str | None = Field(
        None,
        description="The ID of the authentication integration used if the strategy is 'oauth2'. Null "
        "for 'coupon' strategy.",
    )
    # [extension] What an update takes, a creation takes too, checked by the same service code.
    auth_window_ttl: AuthWindowTTL | None = Field(
        None,
        description="For OAuth2 strategy, the duration in seconds that the walled garden is temporarily "
        "opened to allow the user to complete authentication with the identity provider (120..900).",
    )
    theme: ThemeIn | None = None
    terms_text: TermsText = Field(
        None, description="The text of the terms and conditions that can be displayed to the user."
    )
    locale: Locale | None = Field(
        None,
        description=f"The portal's language: {', '.join(f'`{code}`' for code in LOCALES)}, optionally "
        "with a region (`pt-BR`); the guest's browser language wins when the portal speaks it.",
    )
    sites: SiteAssignments | None = Field(
        None,
        description="A list of sites and their subnets where this captive portal instance is active; "
        f"`[]` removes every site. At most {MAX_INSTANCE_SITES} sites and {MAX_INSTANCE_SUBNETS} "
        "subnets in all.",
    )
    network_name: NetworkName = Field(
        None,
        description=NETWORK_NAME_DOC + " Omitted: kept; null: removed.",
        examples=["Lobby-Guest"],
    )
    timezone: TimeZoneName | None = Field(
        None,
        description=TIMEZONE_DOC + " Omitted: kept; null: removed (UTC).",
        examples=["Australia/Sydney"],
    )


class InstanceUpdate(InstanceCreate):
    """The whole writable representation; optional fields that are omitted keep their values."""


class SiteSubnets(BaseModel):
    """A site of an instance and its subnets."""

    id: str
    subnets: list[str]


class Instance(BaseModel):
    """A complete captive portal configuration."""

    id: str = Field(description="The unique identifier for the instance.")
    name: str = Field(description="A human-readable name for the instance.")
    strategy: Strategy = Field(description="The authentication method for this captive portal.")
    auth_integration_id: str | None
    session_ttl: int
    auth_window_ttl: int
    theme: Theme
    terms_text: str | None
    locale: str
    sites: list[SiteSubnets] = Field(
        description="A list of sites and their subnets where this captive portal instance is active."
    )
    network_name: str | None = Field(description=NETWORK_NAME_DOC)
    timezone: str | None = Field(description=TIMEZONE_DOC)
    max_devices: int = Field(description=MAX_DEVICES_DOC)
    max_uses: int | None = Field(description=MAX_USES_DOC)
    download_kbps: int | None = Field(description=DOWNLOAD_DOC)
    upload_kbps: int | None = Field(description=UPLOAD_DOC)
    data_limit_mb: int | None = Field(description=DATA_DOC)
    validity_from: ValidityFrom = Field(description=VALIDITY_DOC)
    created_at: Timestamp
    preview_url: str = Field(
        description="A temporary, signed URL to preview the captive portal's appearance."
    )
