"""Request and response shapes of walled-garden entries."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field
from pydantic.json_schema import WithJsonSchema

from guestgate.schemas import CIDR, Name, Timestamp, invalid
from guestgate.walled_garden import hostnames

EntryType = Literal["captive-auth", "captive-portal"]
DEFAULT_TYPE: EntryType = "captive-auth"
IP_ADDRESS_DESCRIPTION = "The IP address or subnet in CIDR notation that is allowed pre-authentication."
TYPE_DESCRIPTION = (
    "`captive-auth` entries are reachable only during a guest's OAuth auth window; "
    "`captive-portal` entries are reachable before authentication at all times. "
    "Null or absent means `captive-auth`."
)


def _not_everything(value: str) -> str:
    # A /0 entry would let every unauthenticated guest reach the whole Internet: no portal at all.
    if value.endswith("/0"):
        raise invalid("must not be 0.0.0.0/0 or ::/0 (that would open every destination)")
    return value


GardenAddress = Annotated[CIDR, AfterValidator(_not_everything)]


def _check_hostname(value: str) -> str:
    try:
        return hostnames.normalize(value)
    except hostnames.HostnameInvalid as exc:
        raise invalid(str(exc)) from exc


GardenHostname = Annotated[
    str,
    AfterValidator(_check_hostname),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 253, "example": "accounts.google.com"}),
]
HOSTNAME_DESCRIPTION = (
    "**[extension]** A DNS name allowed pre-authentication instead of an address: an exact name "
    "(`accounts.google.com`) or a wildcard for every name below a domain (`*.example.com`). "
    "Stored IDNA-encoded in lowercase. Exactly one of `ip_address` and `hostname` is given."
)


class WalledGardenEntryIn(BaseModel):
    """A walled-garden entry to create or replace."""

    name: Name = Field(description="A descriptive name for the entry.", examples=["Google Sign-In"])
    # Required unless `hostname` is given (checked by the service: exactly one of the two).
    ip_address: GardenAddress | None = Field(
        None,
        description=IP_ADDRESS_DESCRIPTION
        + " Must be a valid RFC 4632 address; a bare IP means /32 or /128. Required unless `hostname` is given.",
        examples=["142.250.0.0/15"],
    )
    hostname: GardenHostname | None = Field(None, description=HOSTNAME_DESCRIPTION, examples=["*.example.com"])
    type: EntryType | None = Field(None, description=TYPE_DESCRIPTION, examples=["captive-auth"])


class WalledGardenEntry(BaseModel):
    """A destination of one site reachable before authentication."""

    id: str = Field(description="The unique identifier for the walled garden entry.")
    name: str = Field(description="A descriptive name for the entry.")
    type: EntryType = Field(description=TYPE_DESCRIPTION)
    ip_address: str | None = Field(
        description=IP_ADDRESS_DESCRIPTION + " Null for a `hostname` entry.", examples=["142.250.0.0/15"]
    )
    # Absent from address entries, so they read exactly as they always have.
    hostname: str | None = Field(
        None,
        description=HOSTNAME_DESCRIPTION + " Present only on host-name entries.",
        examples=["accounts.google.com"],
        exclude_if=lambda value: value is None,
    )
    created_at: Timestamp = Field(description="The timestamp when the entry was created.")
