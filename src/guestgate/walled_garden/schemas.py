"""Request and response shapes of walled-garden entries."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from guestgate.schemas import CIDR, Name, Timestamp, invalid

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


class WalledGardenEntryIn(BaseModel):
    """A walled-garden entry to create or replace."""

    name: Name = Field(description="A descriptive name for the entry.", examples=["Google Sign-In"])
    ip_address: GardenAddress = Field(
        description=IP_ADDRESS_DESCRIPTION
        + " Must be a valid RFC 4632 address; a bare IP means /32 or /128.",
        examples=["142.250.0.0/15"],
    )
    type: EntryType | None = Field(None, description=TYPE_DESCRIPTION, examples=["captive-auth"])


class WalledGardenEntry(BaseModel):
    """A destination of one site reachable before authentication."""

    id: str = Field(description="The unique identifier for the walled garden entry.")
    name: str = Field(description="A descriptive name for the entry.")
    type: EntryType = Field(description=TYPE_DESCRIPTION)
    ip_address: str = Field(description=IP_ADDRESS_DESCRIPTION, examples=["142.250.0.0/15"])
    created_at: Timestamp = Field(description="The timestamp when the entry was created.")
